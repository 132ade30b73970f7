// OciRuntime: one OCI runtime handler (runc today; crun or a VM runtime tomorrow), driven
// one operation at a time, the way runc's command line works.
//
//   std::unique_ptr<OciRuntime> runc = std::make_unique<RuncRuntime>(RuncOptions{
//       .binary = "/usr/sbin/runc", .root = "/run/berth/runc"});
//   RETURN_IF_ERROR(runc->Create(id, bundle_dir, {.pid_file = pid_path, .stdio = {in, out, err}}));
//   RETURN_IF_ERROR(runc->Start(id));
//   ASSIGN_OR_RETURN(ContainerState state, runc->State(id));   // state.status == kRunning
//   RETURN_IF_ERROR(runc->Kill(id, SIGTERM, /*all=*/false));
//   ...
//   RETURN_IF_ERROR(runc->Delete(id, /*force=*/true));
//
// In berthd a container's Create is normally done by its berth-shim (runtime/shim), which
// must hold the container's stdio; berthd calls Start, State, Kill, Delete, Update and Exec.
//
// Contract for every implementation:
// - Every method blocks until the runtime has finished or its timeout has passed; on a
//   timeout the runtime process is killed and DeadlineExceeded is returned.
// - Errors name the operation and the container and carry the runtime's own message
//   ("runc start c1: cannot start a container that has stopped"). A container the runtime
//   does not know is NotFound; an operation the container's state forbids (kill of a
//   stopped container, start of a running one) is FailedPrecondition.
// - Methods are thread-safe; different containers may be operated on concurrently. The
//   caller serializes operations on one container.
// - File descriptors passed in options are borrowed: the caller keeps and closes them.
#ifndef BERTH_RUNTIME_OCI_OCI_RUNTIME_H_
#define BERTH_RUNTIME_OCI_OCI_RUNTIME_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace berth::oci {

enum class ContainerStatus { kCreating, kCreated, kRunning, kPaused, kStopped };

// "creating", "created", "running", "paused", "stopped".
std::string_view ContainerStatusName(ContainerStatus status);

// What `runc state` reports.
struct ContainerState {
  std::string id;
  ContainerStatus status = ContainerStatus::kStopped;
  int pid = 0;  // The container's init process in the host PID namespace; 0 once stopped.
  std::string bundle;
  std::string rootfs;
  absl::Time created = absl::InfinitePast();
  std::map<std::string, std::string> annotations;
};

// The standard streams of a process the runtime starts. -1 means /dev/null.
struct StdioFds {
  int in = -1;
  int out = -1;
  int err = -1;
};

struct CreateOptions {
  // Where the runtime writes the container's init pid (absolute path). Optional.
  std::string pid_file;
  // For a container whose process.terminal is true: a unix socket (absolute path) on which
  // the runtime sends the pty master with SCM_RIGHTS. `stdio` is then ignored.
  std::string console_socket;
  // For a container without a terminal: the runtime passes these to the container's process.
  StdioFds stdio;
  // Do not pivot_root (needed when the rootfs is on a ramfs); see runc create --no-pivot.
  bool no_pivot = false;
  // Do not create a new session keyring for the container.
  bool no_new_keyring = false;
  // 0 means the runtime's default timeout.
  absl::Duration timeout = absl::ZeroDuration();
};

struct ExecOptions {
  // As for CreateOptions; a terminal process (process.terminal true) with `console_socket`
  // gets its pty master sent there; without it the runtime itself relays between `stdio`
  // and the pty (only when not detached).
  StdioFds stdio;
  std::string console_socket;
  // Return once the process has started rather than when it exits.
  bool detach = false;
  // Where the runtime writes the exec'd process's pid (absolute path). Optional; when empty
  // a private file is used so that a timeout can still kill the process.
  std::string pid_file;
  // 0 means no timeout for a process waited on, the default timeout for a detached one.
  // On timeout the exec'd process itself is SIGKILLed, then the runtime.
  absl::Duration timeout = absl::ZeroDuration();
  // Not detached, no terminal: collect the process's stdout and stderr into ExecResult
  // (stdio.out and stdio.err are then ignored), up to max_capture bytes each. Output a
  // background child writes after the process exited is not waited for.
  bool capture = false;
  size_t max_capture = 16 << 20;
};

struct ExecResult {
  int pid = 0;                   // The exec'd process's host pid, when the runtime wrote it.
  std::optional<int> exit_code;  // Not detached: its exit code (128 + signal if killed).
  std::string out, err;          // With ExecOptions::capture.
};

class OciRuntime {
 public:
  virtual ~OciRuntime() = default;

  // The handler's name, e.g. "runc".
  virtual std::string_view Name() const = 0;

  // Creates container `id` from the OCI bundle at `bundle_dir` (config.json + rootfs). On
  // return the container is in state created: its init process exists and waits for Start.
  virtual absl::Status Create(std::string_view id, std::string_view bundle_dir,
                              const CreateOptions& options) = 0;

  // Runs the created container's process.
  virtual absl::Status Start(std::string_view id) = 0;

  virtual absl::StatusOr<ContainerState> State(std::string_view id) = 0;

  // Sends `signal` to the container's init process, or with `all` to every process in it.
  virtual absl::Status Kill(std::string_view id, int signal, bool all) = 0;

  // Deletes the container's runtime state (and cgroups). Without `force` the container must
  // be stopped (or created); with it a running container is killed first.
  virtual absl::Status Delete(std::string_view id, bool force) = 0;

  // Changes the cgroup resources of a running container. `resources_json` is an OCI
  // LinuxResources object ({"memory": {"limit": ...}, "cpu": {...}, ...}).
  virtual absl::Status Update(std::string_view id, std::string_view resources_json) = 0;

  // Runs an additional process in the container. `process_json` is an OCI Process object
  // ({"args": [...], "env": [...], "cwd": "/", "terminal": false, "user": {...}, ...}).
  virtual absl::StatusOr<ExecResult> Exec(std::string_view id, std::string_view process_json,
                                          const ExecOptions& options) = 0;

  // Every container the runtime knows in this handler's state root.
  virtual absl::StatusOr<std::vector<ContainerState>> List() = 0;
};

using OciRuntimePtr = std::unique_ptr<OciRuntime>;

}  // namespace berth::oci

#endif  // BERTH_RUNTIME_OCI_OCI_RUNTIME_H_
