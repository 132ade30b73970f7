// Running helper programs (the OCI runtime, berth-shim) from a multi-threaded daemon:
// posix_spawn with an explicit fd table, no shell, signals reset, and a timeout that
// kills the child by pidfd so a recycled pid is never hit.
//
//   ASSIGN_OR_RETURN(SubprocessResult r,
//                    RunSubprocess({.argv = {"/usr/sbin/runc", "--version"},
//                                   .timeout = absl::Seconds(5)}));
//   if (r.ExitCode() != 0) return absl::InternalError(StrCat("runc: ", r.Describe()));
//
// Every descriptor this module creates is close-on-exec; a child gets exactly the fds
// it is given and nothing else (closefrom in the child).
#ifndef BERTH_RUNTIME_OCI_SUBPROCESS_H_
#define BERTH_RUNTIME_OCI_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/unique_fd.h"

namespace berth::oci {

using ::berth::UniqueFd;

using ::berth::ErrnoStatus;

// A pipe whose ends are both close-on-exec.
struct Pipe {
  UniqueFd read;
  UniqueFd write;
};
absl::StatusOr<Pipe> MakePipe();

// Child fd table for Spawn: fds[i] becomes fd i in the child; kDevNull opens /dev/null.
inline constexpr int kDevNull = -1;

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is a path; there is no PATH search.
  std::vector<int> fds = {kDevNull, kDevNull, kDevNull};
  // Extra environment entries ("K=V") on top of this process's environment.
  std::vector<std::string> extra_env;
};

// Starts a child: signals unblocked and at their defaults, fds exactly as given. Returns its
// pid; the caller must wait for it.
absl::StatusOr<pid_t> Spawn(const SpawnOptions& options);

// A pidfd for `pid` (close-on-exec), and a signal sent through one: unlike kill(2) it can
// never hit a process that reused the pid.
absl::StatusOr<UniqueFd> PidfdOpen(pid_t pid);
absl::Status PidfdKill(const UniqueFd& pidfd, int signal);

// What a finished child did, from its wait status.
int WaitStatusExitCode(int wait_status);          // exit code, or 128 + signal
std::string DescribeWaitStatus(int wait_status);  // "exit status 1", "killed by signal 9"

// For RunSubprocess's stdio: capture the stream into the result.
inline constexpr int kCapture = -2;

struct SubprocessOptions {
  std::vector<std::string> argv;
  int stdin_fd = kDevNull;   // an fd to lend the child, kDevNull
  int stdout_fd = kCapture;  // an fd, kDevNull or kCapture
  int stderr_fd = kCapture;
  std::vector<std::string> extra_env;
  absl::Duration timeout = absl::InfiniteDuration();
  // Called once when the timeout passes, before the child is SIGKILLed (e.g. to kill what
  // the child started).
  std::function<void()> on_timeout;
  // After on_timeout, how long the child may take to exit by itself before the SIGKILL.
  absl::Duration timeout_grace = absl::ZeroDuration();
  // Captured output beyond this many bytes per stream is dropped.
  size_t max_capture = 1 << 20;
};

struct SubprocessResult {
  pid_t pid = 0;
  int wait_status = 0;
  bool timed_out = false;
  std::string out;  // captured stdout
  std::string err;  // captured stderr

  int ExitCode() const { return WaitStatusExitCode(wait_status); }
  std::string Describe() const { return DescribeWaitStatus(wait_status); }
};

// Runs a child to completion (or until the timeout kills it). Captured streams are read
// until the child exits, then drained of what is buffered; a grandchild that keeps the
// pipe open (a container given runc's stdout) cannot hold this call up.
absl::StatusOr<SubprocessResult> RunSubprocess(const SubprocessOptions& options);

}  // namespace berth::oci

#endif  // BERTH_RUNTIME_OCI_SUBPROCESS_H_
