// berthd's side of berth-shim: start a shim (which runs `runc create`), learn of the
// container's exit the moment it is recorded, and talk to the shim's socket.
//
//   ASSIGN_OR_RETURN(ShimHandle shim, StartShim({
//       .shim_binary = "/usr/lib/berth/berth-shim",
//       .id = id, .bundle_dir = bundle, .state_dir = "/run/berth/containers/" + id,
//       .log_path = "/var/log/pods/ns_pod_uid/ctr/0.log",
//       .runtime = {.binary = "/usr/sbin/runc", .root = "/run/berth/runc"}}));
//   // The container is created (shim.container_pid waits in runc init); now:
//   RETURN_IF_ERROR(runc.Start(id));
//   ...
//   ASSIGN_OR_RETURN(ExitStatus exit, WaitForExit(shim.state_dir, absl::Seconds(10)));
//   RETURN_IF_ERROR(runc.Delete(id, /*force=*/false));
//
// After a berthd restart nothing of the handle is needed: everything is found again from
// the state directory (ReadShimPid, ReadInitPid, ReadExitFile, ShimConnection::Connect).
// The files and the socket protocol are documented in shim_protocol.h.
//
// All functions are thread-safe (they share no state); a ShimConnection is not.
#ifndef BERTH_RUNTIME_SHIM_SHIM_CLIENT_H_
#define BERTH_RUNTIME_SHIM_SHIM_CLIENT_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/oci/subprocess.h"
#include "runtime/shim/shim_protocol.h"

namespace berth::shim {

// The OCI runtime the shim runs `create` with: a binary with runc's command line
// (RuncRuntime::options() has the same fields).
struct ShimRuntime {
  std::string binary = "/usr/sbin/runc";
  std::string root;                      // --root
  std::vector<std::string> global_args;  // after --root
};

struct ShimOptions {
  std::string shim_binary;  // path of berth-shim
  std::string id;
  std::string bundle_dir;  // absolute; config.json's process.terminal must match `tty`
  std::string state_dir;   // absolute, per container; created (0700) if missing
  std::string log_path;    // CRI log; its directory must exist. "" = no log file
  ShimRuntime runtime;
  bool tty = false;
  bool stdin = false;
  bool stdin_once = false;
  bool no_pivot = false;
  bool no_new_keyring = false;
  size_t max_log_line = 16 * 1024;
  absl::Duration create_timeout = absl::Seconds(60);
  absl::Duration drain_timeout = absl::Seconds(2);
};

struct ShimHandle {
  pid_t shim_pid = 0;
  pid_t container_pid = 0;  // the container's init, in the host PID namespace
  std::string state_dir;
};

// Starts a shim and waits until `runc create` has finished. OK means the container is in
// state created and the shim serves its socket. On failure the message carries the
// runtime's error and no shim is left running (the runtime may still know the container
// if it failed half-way; `runc delete --force` cleans that).
absl::StatusOr<ShimHandle> StartShim(const ShimOptions& options);

struct ExitStatus {
  pid_t pid = 0;
  int exit_code = 0;  // 128 + signal when killed by a signal
  int signal = 0;     // 0 unless killed by a signal
  absl::Time exited_at = absl::InfinitePast();
  bool oom_killed = false;
};

// The recorded exit; NotFound while the container has not exited (or its output is still
// being drained).
absl::StatusOr<ExitStatus> ReadExitFile(const std::string& state_dir);

// Waits for the exit file with inotify (no polling): returns as soon as the shim records
// the exit. DeadlineExceeded after `timeout`; Unavailable if the shim is gone without
// recording one (it was SIGKILLed). absl::InfiniteDuration() waits forever.
absl::StatusOr<ExitStatus> WaitForExit(const std::string& state_dir, absl::Duration timeout);

// The pids in the state directory's pid files; NotFound when absent.
absl::StatusOr<pid_t> ReadShimPid(const std::string& state_dir);
absl::StatusOr<pid_t> ReadInitPid(const std::string& state_dir);

// Whether the shim of `state_dir` is alive: its pid file names a live berth-shim process
// started for this state directory (a recycled pid does not count).
bool ShimAlive(const std::string& state_dir);

// Waits until the shim of `state_dir` is gone (its container was killed or deleted);
// SIGKILLs it after `timeout`. Returns at once when no shim runs.
void ReapShim(const std::string& state_dir, absl::Duration timeout);

// Asks the shim to reopen the CRI log file (after the caller renamed it away) and waits
// until it has: the ReopenContainerLog RPC.
absl::Status ReopenLog(const std::string& state_dir, absl::Duration timeout = absl::Seconds(5));

// One connection to a shim's socket.
class ShimConnection {
 public:
  struct Frame {
    FrameType type;
    std::string payload;
  };

  static absl::StatusOr<ShimConnection> Connect(const std::string& state_dir);

  // Subscribes to output (and claims stdin); waits for the shim's answer.
  absl::Status Attach(bool out, bool err, bool in, absl::Duration timeout = absl::Seconds(5));
  absl::Status WriteStdin(std::string_view data);
  absl::Status CloseStdin();
  absl::Status Resize(uint16_t width, uint16_t height);
  absl::Status ReopenLog(absl::Duration timeout = absl::Seconds(5));

  // The next frame (kStdout, kStderr, kExit, kOk, kError). OutOfRange when the shim closed
  // the connection, DeadlineExceeded after `timeout`.
  absl::StatusOr<Frame> ReadFrame(absl::Duration timeout);

  // For an event loop: the socket, non-blocking is up to the caller.
  int fd() const { return fd_.get(); }

 private:
  explicit ShimConnection(oci::UniqueFd fd) : fd_(std::move(fd)) {}
  absl::Status SendFrame(FrameType type, std::string_view payload);
  absl::Status ExpectOk(std::string_view what, absl::Duration timeout);

  oci::UniqueFd fd_;
  std::string buffer_;  // received bytes not yet returned as frames
};

}  // namespace berth::shim

#endif  // BERTH_RUNTIME_SHIM_SHIM_CLIENT_H_
