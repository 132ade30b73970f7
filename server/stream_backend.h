// The streaming server's backend over berth's runtime: exec through `runc exec` (pipes, or
// a pty that runc relays to the container's own), attach through the container's shim
// socket, port-forward by dialing inside the pod's network namespace.
#ifndef BERTH_SERVER_STREAM_BACKEND_H_
#define BERTH_SERVER_STREAM_BACKEND_H_

#include "runtime/runtime.h"
#include "server/streaming/backend.h"

namespace berth::server {

class RuntimeStreamBackend : public streaming::Backend {
 public:
  explicit RuntimeStreamBackend(Runtime& runtime) : runtime_(runtime) {}

  absl::StatusOr<std::unique_ptr<streaming::RemoteProcess>> StartExec(
      const streaming::ExecRequest& request) override;
  absl::StatusOr<std::unique_ptr<streaming::RemoteProcess>> Attach(
      const streaming::AttachRequest& request) override;
  absl::StatusOr<UniqueFd> DialPort(const std::string& pod_id, uint16_t port) override;

 private:
  Runtime& runtime_;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_STREAM_BACKEND_H_
