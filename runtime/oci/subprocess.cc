#include "runtime/oci/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

extern char** environ;

namespace berth::oci {

absl::StatusOr<Pipe> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

namespace {

// posix_spawn's file actions and attributes, destroyed on every path.
class SpawnAttrs {
 public:
  SpawnAttrs() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnAttrs() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  posix_spawn_file_actions_t* actions() { return &actions_; }
  posix_spawnattr_t* attr() { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

void AppendCapped(std::string& out, const char* data, size_t n, size_t cap) {
  if (out.size() >= cap) return;
  out.append(data, std::min(n, cap - out.size()));
}

// Reads what `fd` has now into `out`; closes it at EOF or on error. With `drain`, reads
// until the pipe is empty (the fd must be non-blocking then).
void ReadInto(UniqueFd& fd, std::string& out, size_t cap, bool drain) {
  char buf[16384];
  while (fd.valid()) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n > 0) {
      AppendCapped(out, buf, n, cap);
      if (!drain) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    fd.reset();  // EOF or a real error: nothing more will come.
  }
}

}  // namespace

absl::StatusOr<pid_t> Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("spawn: empty argv");
  const std::string& path = options.argv[0];
  const int n = static_cast<int>(options.fds.size());

  // Lift every source above the child's fd range first, so that the dup2s into 0..n-1
  // cannot overwrite a source that a later dup2 still needs.
  UniqueFd devnull;
  std::vector<UniqueFd> lifted;
  lifted.reserve(n);
  for (int source : options.fds) {
    if (source == kDevNull) {
      if (!devnull.valid()) {
        devnull.reset(open("/dev/null", O_RDWR | O_CLOEXEC));
        if (!devnull.valid()) return ErrnoStatus(errno, "open /dev/null");
      }
      source = devnull.get();
    }
    UniqueFd high(fcntl(source, F_DUPFD_CLOEXEC, std::max(n, 3)));
    if (!high.valid()) return ErrnoStatus(errno, StrCat("spawn ", path, ": dup fd ", source));
    lifted.push_back(std::move(high));
  }

  SpawnAttrs attrs;
  for (int i = 0; i < n; ++i) {
    posix_spawn_file_actions_adddup2(attrs.actions(), lifted[i].get(), i);
  }
  posix_spawn_file_actions_addclosefrom_np(attrs.actions(), n);

  // A daemon may block or ignore signals (SIGPIPE, SIGCHLD...); those survive exec and
  // would reach runc and the container's processes.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(attrs.attr(), &none);
  posix_spawnattr_setsigdefault(attrs.attr(), &all);
  posix_spawnattr_setflags(attrs.attr(), POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv;
  for (const std::string& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) envp.push_back(*e);
  for (const std::string& e : options.extra_env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = 0;
  int rc = posix_spawn(&pid, path.c_str(), attrs.actions(), attrs.attr(), argv.data(), envp.data());
  if (rc != 0) return ErrnoStatus(rc, StrCat("spawn ", path));
  return pid;
}

// Debian 12's <sys/pidfd.h> lacks extern "C"; the system calls are simple enough.
absl::StatusOr<UniqueFd> PidfdOpen(pid_t pid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return ErrnoStatus(errno, StrCat("pidfd_open ", pid));
  // pidfds are always close-on-exec.
  return UniqueFd(fd);
}

absl::Status PidfdKill(const UniqueFd& pidfd, int signal) {
  if (syscall(SYS_pidfd_send_signal, pidfd.get(), signal, nullptr, 0) != 0) {
    return ErrnoStatus(errno, StrCat("pidfd_send_signal ", signal));
  }
  return absl::OkStatus();
}

int WaitStatusExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return StrCat("exit status ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    return StrCat("killed by signal ", WTERMSIG(wait_status), " (",
                  strsignal(WTERMSIG(wait_status)), ")");
  }
  return StrCat("wait status ", wait_status);
}

absl::StatusOr<SubprocessResult> RunSubprocess(const SubprocessOptions& options) {
  Pipe out, err;
  if (options.stdout_fd == kCapture) {
    ASSIGN_OR_RETURN(out, MakePipe());
  }
  if (options.stderr_fd == kCapture) {
    ASSIGN_OR_RETURN(err, MakePipe());
  }
  SpawnOptions spawn{.argv = options.argv, .extra_env = options.extra_env};
  spawn.fds = {options.stdin_fd,
               options.stdout_fd == kCapture ? out.write.get() : options.stdout_fd,
               options.stderr_fd == kCapture ? err.write.get() : options.stderr_fd};
  ASSIGN_OR_RETURN(const pid_t pid, Spawn(spawn));
  out.write.reset();
  err.write.reset();

  SubprocessResult result;
  result.pid = pid;
  absl::StatusOr<UniqueFd> pidfd = PidfdOpen(pid);
  if (!pidfd.ok()) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return pidfd.status();
  }

  const absl::Time deadline = absl::Now() + options.timeout;
  while (true) {
    pollfd fds[3] = {{pidfd->get(), POLLIN, 0},
                     {out.read.get(), POLLIN, 0},
                     {err.read.get(), POLLIN, 0}};  // a negative fd is ignored by poll
    int timeout_ms = -1;
    if (options.timeout != absl::InfiniteDuration()) {
      absl::Duration left = deadline - absl::Now();
      timeout_ms = left <= absl::ZeroDuration()
                       ? 0
                       : static_cast<int>(absl::ToInt64Milliseconds(left + absl::Milliseconds(1)));
    }
    int rc = poll(fds, 3, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      int e = errno;
      (void)PidfdKill(*pidfd, SIGKILL);
      waitpid(pid, nullptr, 0);
      return ErrnoStatus(e, "poll");
    }
    if (rc == 0) {
      result.timed_out = true;
      if (options.on_timeout) {
        options.on_timeout();
        // Let the child wind down after what on_timeout did (reap what it started).
        pollfd exited = {pidfd->get(), POLLIN, 0};
        int grace_ms = static_cast<int>(absl::ToInt64Milliseconds(options.timeout_grace));
        while (poll(&exited, 1, grace_ms) < 0 && errno == EINTR) {
        }
      }
      (void)PidfdKill(*pidfd, SIGKILL);
      break;
    }
    if (fds[1].revents != 0) ReadInto(out.read, result.out, options.max_capture, false);
    if (fds[2].revents != 0) ReadInto(err.read, result.err, options.max_capture, false);
    if (fds[0].revents != 0) break;
  }
  while (waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
  }
  // The child is gone; what it wrote is in the pipes. Someone it started may hold the
  // write end forever, so take only what is there.
  for (auto [fd, text] : {std::pair{&out.read, &result.out}, std::pair{&err.read, &result.err}}) {
    if (!fd->valid()) continue;
    fcntl(fd->get(), F_SETFL, fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
    ReadInto(*fd, *text, options.max_capture, true);
  }
  return result;
}

}  // namespace berth::oci
