// What the streaming server drives: a process whose stdio a client streams (exec, attach)
// and connections into a pod's network (port-forward). The server knows wire protocols;
// the backend (server/stream_backend.h over berth's runtime) knows containers. Tests can
// give the server a backend of their own.
#ifndef BERTH_SERVER_STREAMING_BACKEND_H_
#define BERTH_SERVER_STREAMING_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/base/unique_fd.h"

namespace berth::streaming {

// What a CRI Exec, Attach or PortForward request asked for; kept with the URL's token.
struct ExecRequest {
  std::string container_id;
  std::vector<std::string> command;
  bool tty = false, stdin = false, stdout = false, stderr = false;
  // With a tty: the terminal's size at start (0: unknown, the backend picks one).
  uint16_t width = 0, height = 0;
};
struct AttachRequest {
  std::string container_id;
  bool tty = false, stdin = false, stdout = false, stderr = false;
};
struct PortForwardRequest {
  std::string pod_id;
};

enum class OutputStream { kStdout, kStderr };
using OutputFn = std::function<void(OutputStream, std::string_view)>;

// A running exec'd process, or an attachment to a container's own process. The session
// calls WriteStdin/CloseStdin/Resize from its reading thread while another thread sits in
// Wait: implementations must allow that.
class RemoteProcess {
 public:
  virtual ~RemoteProcess() = default;
  // Errors are the process's business (it closed its stdin): they are dropped.
  virtual void WriteStdin(std::string_view data) = 0;
  virtual void CloseStdin() = 0;
  virtual void Resize(uint16_t width, uint16_t height) = 0;
  // Sends the process's output to `out` (called from this thread only) until it ends, and
  // returns its exit code (128 + signal when killed). Attach returns 0 when the container
  // exits. An error means the process could not run (the message says why).
  virtual absl::StatusOr<int> Wait(const OutputFn& out) = 0;
  // The client is gone: an exec'd process is killed, an attachment detaches (the container
  // goes on). Wait returns soon after. Safe from any thread, any number of times.
  virtual void Cancel() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual absl::StatusOr<std::unique_ptr<RemoteProcess>> StartExec(const ExecRequest& request) = 0;
  virtual absl::StatusOr<std::unique_ptr<RemoteProcess>> Attach(const AttachRequest& request) = 0;
  // A TCP connection to `port` on the pod's loopback, made inside the pod's network
  // namespace (the node's, for a host-network pod).
  virtual absl::StatusOr<UniqueFd> DialPort(const std::string& pod_id, uint16_t port) = 0;
};

}  // namespace berth::streaming

#endif  // BERTH_SERVER_STREAMING_BACKEND_H_
