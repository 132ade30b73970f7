// One HTTP exchange over libcurl, as the registry client needs it: headers
// in and out, the body streamed to a callback, redirects followed, and a
// transfer aborted when it makes no progress.
//
//   HttpRequest request{.url = "https://r/v2/", .headers = {"Accept: ..."}};
//   request.on_body = [&](std::string_view chunk) { body.append(chunk); return absl::OkStatus(); };
//   absl::StatusOr<HttpResponse> response = Perform(request);
#ifndef BERTH_RUNTIME_REGISTRY_HTTP_H_
#define BERTH_RUNTIME_REGISTRY_HTTP_H_

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::registry {

struct HttpRequest {
  std::string method = "GET";  // GET or HEAD
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // "user:password" for Basic auth, or empty.
  std::string basic_auth;
  bool insecure = false;  // do not verify TLS peers
  int64_t max_body = -1;  // abort bodies larger than this (bytes); -1 for no limit
  int progress_timeout_seconds = 60;
  // Called with each body chunk of a 2xx answer; an error aborts the
  // transfer and is returned. Bodies of other answers are kept in
  // HttpResponse::body (up to 64 KiB) for error messages.
  std::function<absl::Status(std::string_view)> on_body;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, of the final answer
  std::string body;                            // non-2xx bodies, truncated
  std::string effective_url;                   // after redirects
  int64_t body_bytes = 0;                      // bytes given to on_body

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

// Performs the request. Transport failures (refused, reset, timeout, TLS)
// are Unavailable errors; an HTTP answer of any status is OK with that
// status; on_body errors come back as they were returned.
absl::StatusOr<HttpResponse> Perform(const HttpRequest& request);

// A parsed WWW-Authenticate challenge: `Bearer realm="...",service="..."`.
struct Challenge {
  std::string scheme;                         // lower-case: "bearer", "basic"
  std::map<std::string, std::string> params;  // lower-case keys
};
std::vector<Challenge> ParseChallenges(std::string_view header);

// Percent-encodes for a URL query value.
std::string UrlEncode(std::string_view text);

}  // namespace berth::registry

#endif  // BERTH_RUNTIME_REGISTRY_HTTP_H_
