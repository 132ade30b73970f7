// The requests behind streaming URLs. Exec, Attach and PortForward store their request and
// hand the client a URL naming an unguessable token (256 bits from the kernel); the first
// connection to that URL takes the request out, so a token works once, and only until it
// expires (as the kubelet's and containerd's streaming servers do, one minute by default).
//
//   TokenCache cache({.ttl = absl::Minutes(1), .max_entries = 1000});
//   ASSIGN_OR_RETURN(std::string token, cache.Insert(ExecRequest{...}));
//   std::optional<StreamRequest> request = cache.Consume(token);   // nullopt the 2nd time
#ifndef BERTH_SERVER_STREAMING_TOKEN_CACHE_H_
#define BERTH_SERVER_STREAMING_TOKEN_CACHE_H_

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/streaming/backend.h"

namespace berth::streaming {

using StreamRequest = std::variant<ExecRequest, AttachRequest, PortForwardRequest>;

class TokenCache {
 public:
  struct Options {
    absl::Duration ttl = absl::Minutes(1);
    size_t max_entries = 1000;
    std::function<absl::Time()> now = absl::Now;  // tests move time
  };
  explicit TokenCache(Options options) : options_(std::move(options)) {}

  // A fresh token for `request`. ResourceExhausted when max_entries unexpired tokens wait.
  absl::StatusOr<std::string> Insert(StreamRequest request);
  // The request, removed: nullopt for an unknown, used or expired token.
  std::optional<StreamRequest> Consume(const std::string& token);
  size_t size();

 private:
  void DropExpiredLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Entry {
    StreamRequest request;
    absl::Time expires;
  };
  const Options options_;
  absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::streaming

#endif  // BERTH_SERVER_STREAMING_TOKEN_CACHE_H_
