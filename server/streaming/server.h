// berth's streaming server: where the URLs of CRI Exec, Attach and PortForward lead. The
// kubelet (or crictl) connects to the URL and upgrades the connection to SPDY/3.1 or
// WebSocket; the session then runs the remotecommand or portforward protocol
// (spdy_sessions.h, ws_sessions.h) against a Backend.
//
//   ASSIGN_OR_RETURN(auto server, StreamingServer::Start({.address = "127.0.0.1"}, backend));
//   ASSIGN_OR_RETURN(std::string url, server->Url(ExecRequest{...}));
//   // "http://127.0.0.1:41234/exec/<64 hex>": usable once, for token_ttl
//
// Plain HTTP on loopback by default, like containerd (the kubelet proxies to it). Every
// connection has a deadline: handshake_timeout until its session starts, then
// idle_timeout after the last byte moved; past it the connection is shut down (and an
// exec'd process killed). At most max_sessions connections are served at once; more get
// 503. Threads: one accepting, one watching deadlines, one (plus a pump) per connection.
#ifndef BERTH_SERVER_STREAMING_SERVER_H_
#define BERTH_SERVER_STREAMING_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "runtime/base/unique_fd.h"
#include "server/streaming/backend.h"
#include "server/streaming/token_cache.h"

namespace berth::streaming {

struct StreamingServerOptions {
  std::string address = "127.0.0.1";  // an IPv4 or IPv6 literal
  uint16_t port = 0;                   // 0: an ephemeral port
  absl::Duration token_ttl = absl::Minutes(1);
  absl::Duration handshake_timeout = absl::Seconds(30);
  absl::Duration idle_timeout = absl::Hours(4);  // containerd's stream_idle_timeout
  size_t max_sessions = 128;
};

class StreamingServer {
 public:
  static absl::StatusOr<std::unique_ptr<StreamingServer>> Start(StreamingServerOptions options,
                                                                Backend& backend);
  ~StreamingServer();

  // Closes the listener and every connection (killing exec'd processes), waits for them.
  void Stop();

  // A one-time URL for the request.
  absl::StatusOr<std::string> Url(StreamRequest request);

  // "http://127.0.0.1:41234"
  const std::string& base_url() const { return base_url_; }
  // Connections being served now.
  size_t active_connections();

 private:
  struct Connection;
  StreamingServer(StreamingServerOptions options, Backend& backend);

  void AcceptLoop();
  void WatchLoop();
  void Serve(Connection& connection);
  void Touch(Connection& connection);

  const StreamingServerOptions options_;
  Backend& backend_;
  TokenCache tokens_;
  UniqueFd listener_;
  UniqueFd stop_event_;  // eventfd: wakes the accept loop
  std::string base_url_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::list<std::shared_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);

  std::thread accept_thread_;
  std::thread watch_thread_;
};

}  // namespace berth::streaming

#endif  // BERTH_SERVER_STREAMING_SERVER_H_
