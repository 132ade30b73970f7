#include "runtime/shim/shim_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::shim {

using oci::ErrnoStatus;
using oci::UniqueFd;

namespace {

std::string Path(const std::string& dir, const char* name) { return dir + "/" + name; }

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("open ", path));
  std::string out;
  char buf[4096];
  while (out.size() < (1 << 20)) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, StrCat("read ", path));
    if (n == 0) break;
    out.append(buf, n);
  }
  return out;
}

absl::StatusOr<pid_t> ReadPid(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  absl::string_view trimmed = absl::StripAsciiWhitespace(absl::string_view(text));
  std::string digits(trimmed.data(), trimmed.size());
  char* end = nullptr;
  long pid = strtol(digits.c_str(), &end, 10);
  if (digits.empty() || *end != '\0' || pid <= 0) {
    return absl::DataLossError(StrCat(path, ": not a pid: \"", digits, "\""));
  }
  return static_cast<pid_t>(pid);
}

int RemainingMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

absl::Time DeadlineAfter(absl::Duration timeout) {
  return timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
}

// A sockaddr_un for `dir`/`name`. A path too long for sun_path goes through an O_PATH
// handle on the directory (/proc/self/fd/N/name), which `dir_fd` keeps open.
absl::StatusOr<sockaddr_un> SocketAddress(const std::string& dir, const char* name,
                                          UniqueFd& dir_fd) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = Path(dir, name);
  if (path.size() >= sizeof(addr.sun_path)) {
    dir_fd.reset(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd.valid()) return ErrnoStatus(errno, StrCat("open ", dir));
    path = StrCat("/proc/self/fd/", dir_fd.get(), "/", name);
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

absl::StatusCode CodeForShimError(std::string_view message) {
  if (message.find("exists") != std::string_view::npos) return absl::StatusCode::kAlreadyExists;
  if (message.find("timed out") != std::string_view::npos) {
    return absl::StatusCode::kDeadlineExceeded;
  }
  return absl::StatusCode::kUnknown;
}

// A pidfd for the state dir's live shim; invalid when there is none.
UniqueFd ShimPidfd(const std::string& state_dir) {
  absl::StatusOr<pid_t> pid = ReadShimPid(state_dir);
  if (!pid.ok()) return UniqueFd();
  absl::StatusOr<UniqueFd> pidfd = oci::PidfdOpen(*pid);
  // Checked after opening: the pidfd then refers to the process that was checked.
  if (!pidfd.ok() || !ShimAlive(state_dir)) return UniqueFd();
  return *std::move(pidfd);
}

// Waits (bounded) until the state dir's shim has exited, SIGKILLing it with `kill`.
void AwaitShimExit(const std::string& state_dir, bool kill) {
  UniqueFd pidfd = ShimPidfd(state_dir);
  if (!pidfd.valid()) return;
  if (kill) (void)oci::PidfdKill(pidfd, SIGKILL);
  pollfd p = {pidfd.get(), POLLIN, 0};
  while (poll(&p, 1, 5000) < 0 && errno == EINTR) {
  }
}

}  // namespace

absl::StatusOr<ShimHandle> StartShim(const ShimOptions& o) {
  const std::string what = StrCat("start shim for container ", o.id);
  for (auto [value, name] : {std::pair{&o.shim_binary, "shim binary"},
                             {&o.id, "id"},
                             {&o.bundle_dir, "bundle dir"},
                             {&o.state_dir, "state dir"},
                             {&o.runtime.binary, "runtime binary"},
                             {&o.runtime.root, "runtime root"}}) {
    if (value->empty()) return absl::InvalidArgumentError(StrCat(what, ": no ", name));
  }
  if (o.state_dir[0] != '/' || o.bundle_dir[0] != '/') {
    return absl::InvalidArgumentError(StrCat(what, ": state and bundle dirs must be absolute"));
  }
  std::error_code ec;
  std::filesystem::create_directories(o.state_dir, ec);
  if (ec) return absl::InternalError(StrCat(what, ": create ", o.state_dir, ": ", ec.message()));
  chmod(o.state_dir.c_str(), 0700);

  std::vector<std::string> argv = {o.shim_binary,    "--id",           o.id,          "--bundle",
                                   o.bundle_dir,     "--state-dir",    o.state_dir,   "--runtime",
                                   o.runtime.binary, "--runtime-root", o.runtime.root};
  for (const std::string& arg : o.runtime.global_args) {
    argv.insert(argv.end(), {"--runtime-arg", arg});
  }
  if (!o.log_path.empty()) argv.insert(argv.end(), {"--log-path", o.log_path});
  if (o.tty) argv.push_back("--tty");
  if (o.stdin) argv.push_back("--stdin");
  if (o.stdin_once) argv.push_back("--stdin-once");
  if (o.no_pivot) argv.push_back("--no-pivot");
  if (o.no_new_keyring) argv.push_back("--no-new-keyring");
  argv.insert(argv.end(),
              {"--max-log-line", std::to_string(o.max_log_line), "--create-timeout-ms",
               std::to_string(absl::ToInt64Milliseconds(o.create_timeout)), "--drain-timeout-ms",
               std::to_string(absl::ToInt64Milliseconds(o.drain_timeout)), "--sync-fd", "3"});

  ASSIGN_OR_RETURN(oci::Pipe sync, oci::MakePipe());
  absl::StatusOr<pid_t> first = oci::Spawn(
      {.argv = argv, .fds = {oci::kDevNull, oci::kDevNull, oci::kDevNull, sync.write.get()}});
  if (!first.ok())
    return absl::Status(first.status().code(), StrCat(what, ": ", first.status().message()));
  sync.write.reset();
  // The first process only forks the daemon and exits.
  int status = 0;
  while (waitpid(*first, &status, 0) < 0 && errno == EINTR) {
  }

  // One line: "ok <pid>" or "error <message>"; EOF without one means the shim died.
  std::string line;
  const absl::Time deadline = absl::Now() + o.create_timeout + absl::Seconds(10);
  while (line.find('\n') == std::string::npos) {
    pollfd p = {sync.read.get(), POLLIN, 0};
    int rc = poll(&p, 1, RemainingMs(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) {
      AwaitShimExit(o.state_dir, /*kill=*/true);
      return absl::DeadlineExceededError(StrCat(what, ": no answer from berth-shim within ",
                                                absl::FormatDuration(o.create_timeout)));
    }
    char buf[4096];
    ssize_t n = read(sync.read.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buf, n);
  }
  size_t nl = line.find('\n');
  if (nl == std::string::npos) {
    absl::StatusOr<std::string> shim_log = ReadSmallFile(Path(o.state_dir, kShimLogFile));
    return absl::InternalError(StrCat(what, ": berth-shim exited without an answer (",
                                      oci::DescribeWaitStatus(status), ")",
                                      shim_log.ok() ? ": " + *shim_log : ""));
  }
  line.resize(nl);
  if (line.rfind("error ", 0) == 0) {
    AwaitShimExit(o.state_dir, /*kill=*/false);  // it exits right after answering
    std::string message = line.substr(6);
    return absl::Status(CodeForShimError(message), StrCat(what, ": ", message));
  }
  if (line.rfind("ok ", 0) != 0) {
    AwaitShimExit(o.state_dir, /*kill=*/true);
    return absl::InternalError(StrCat(what, ": unexpected answer from berth-shim: ", line));
  }
  ShimHandle handle;
  handle.state_dir = o.state_dir;
  handle.container_pid = atoi(line.c_str() + 3);
  ASSIGN_OR_RETURN(handle.shim_pid, ReadShimPid(o.state_dir));
  return handle;
}

absl::StatusOr<pid_t> ReadShimPid(const std::string& state_dir) {
  return ReadPid(Path(state_dir, kShimPidFile));
}

absl::StatusOr<pid_t> ReadInitPid(const std::string& state_dir) {
  return ReadPid(Path(state_dir, kInitPidFile));
}

bool ShimAlive(const std::string& state_dir) {
  absl::StatusOr<pid_t> pid = ReadShimPid(state_dir);
  if (!pid.ok()) return false;
  absl::StatusOr<std::string> cmdline = ReadSmallFile(StrCat("/proc/", *pid, "/cmdline"));
  if (!cmdline.ok()) return false;
  std::string wanted =
      StrCat(std::string_view("\0--state-dir\0", 13), state_dir, std::string_view("\0", 1));
  return cmdline->find(wanted) != std::string::npos;
}

void ReapShim(const std::string& state_dir, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (ShimAlive(state_dir) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  if (!ShimAlive(state_dir)) return;
  absl::StatusOr<pid_t> pid = ReadShimPid(state_dir);
  if (pid.ok() && *pid > 0) kill(*pid, SIGKILL);
  deadline = absl::Now() + absl::Seconds(2);
  while (ShimAlive(state_dir) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
}

absl::StatusOr<ExitStatus> ReadExitFile(const std::string& state_dir) {
  const std::string path = Path(state_dir, kExitFile);
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(StrCat("no exit recorded in ", state_dir));
    }
    return text.status();
  }
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("exit_code")) {
    return absl::DataLossError(StrCat(path, ": not an exit record: ", text->substr(0, 200)));
  }
  ExitStatus exit;
  exit.pid = j.value("pid", 0);
  exit.exit_code = j.value("exit_code", 0);
  exit.signal = j.value("signal", 0);
  exit.oom_killed = j.value("oom_killed", false);
  std::string at = j.value("exited_at", "");
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, at, &exit.exited_at, &err)) {
    return absl::DataLossError(StrCat(path, ": bad exited_at \"", at, "\": ", err));
  }
  return exit;
}

absl::StatusOr<ExitStatus> WaitForExit(const std::string& state_dir, absl::Duration timeout) {
  const absl::Time deadline = DeadlineAfter(timeout);
  UniqueFd inotify(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!inotify.valid()) return ErrnoStatus(errno, "inotify_init1");
  // The shim renames the exit file into place; watch before looking, so it cannot land
  // unseen in between.
  if (inotify_add_watch(inotify.get(), state_dir.c_str(),
                        IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
    return ErrnoStatus(errno, StrCat("watch ", state_dir));
  }
  absl::StatusOr<ExitStatus> exit = ReadExitFile(state_dir);
  if (!absl::IsNotFound(exit.status())) return exit;

  // Also watch the shim itself: if it dies without recording an exit, say so rather than
  // wait for the timeout.
  UniqueFd pidfd = ShimPidfd(state_dir);
  if (!pidfd.valid()) {
    exit = ReadExitFile(state_dir);
    if (!absl::IsNotFound(exit.status())) return exit;
    return absl::UnavailableError(
        StrCat("berth-shim of ", state_dir, " is not running and recorded no exit"));
  }

  while (true) {
    pollfd fds[2] = {{inotify.get(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
    int rc = poll(fds, 2, RemainingMs(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoStatus(errno, "poll");
    if (rc == 0) {
      return absl::DeadlineExceededError(StrCat("container of ", state_dir, " still running after ",
                                                absl::FormatDuration(timeout)));
    }
    if (fds[0].revents != 0) {
      alignas(inotify_event) char buf[4096];
      bool gone = false;
      ssize_t n;
      while ((n = read(inotify.get(), buf, sizeof(buf))) > 0) {
        for (char* p = buf; p < buf + n;) {
          auto* event = reinterpret_cast<inotify_event*>(p);
          if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) gone = true;
          p += sizeof(inotify_event) + event->len;
        }
      }
      exit = ReadExitFile(state_dir);
      if (!absl::IsNotFound(exit.status())) return exit;
      if (gone) return absl::NotFoundError(StrCat("state dir ", state_dir, " was removed"));
    }
    if (fds[1].revents != 0) {
      exit = ReadExitFile(state_dir);
      if (!absl::IsNotFound(exit.status())) return exit;
      return absl::UnavailableError(
          StrCat("berth-shim of ", state_dir, " exited without recording the container's exit"));
    }
  }
}

absl::Status ReopenLog(const std::string& state_dir, absl::Duration timeout) {
  ASSIGN_OR_RETURN(ShimConnection conn, ShimConnection::Connect(state_dir));
  return conn.ReopenLog(timeout);
}

absl::StatusOr<ShimConnection> ShimConnection::Connect(const std::string& state_dir) {
  UniqueFd dir_fd;
  ASSIGN_OR_RETURN(sockaddr_un addr, SocketAddress(state_dir, kSocketFile, dir_fd));
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    std::string message = StrCat("connect to shim of ", state_dir, ": ", strerror(err));
    // No socket or nobody listening: the shim is gone (its container exited).
    if (err == ENOENT || err == ECONNREFUSED) return absl::UnavailableError(message);
    return ErrnoStatus(err, message);
  }
  return ShimConnection(std::move(fd));
}

absl::Status ShimConnection::SendFrame(FrameType type, std::string_view payload) {
  if (payload.size() > kMaxFramePayload) {
    return absl::InvalidArgumentError(
        StrCat("shim frame of ", payload.size(), " bytes is too large"));
  }
  char header[kFrameHeaderSize];
  EncodeFrameHeader(type, static_cast<uint32_t>(payload.size()), header);
  std::string frame(header, sizeof(header));
  frame.append(payload.data(), payload.size());
  size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = send(fd_.get(), frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "send to shim");
    done += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<ShimConnection::Frame> ShimConnection::ReadFrame(absl::Duration timeout) {
  const absl::Time deadline = DeadlineAfter(timeout);
  while (true) {
    if (buffer_.size() >= kFrameHeaderSize) {
      uint32_t length = DecodeFrameLength(buffer_.data());
      if (length > kMaxFramePayload) {
        return absl::DataLossError(StrCat("shim sent a frame of ", length, " bytes"));
      }
      if (buffer_.size() >= kFrameHeaderSize + length) {
        Frame frame{static_cast<FrameType>(buffer_[0]), buffer_.substr(kFrameHeaderSize, length)};
        buffer_.erase(0, kFrameHeaderSize + length);
        return frame;
      }
    }
    pollfd p = {fd_.get(), POLLIN, 0};
    int rc = poll(&p, 1, RemainingMs(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoStatus(errno, "poll shim socket");
    if (rc == 0) return absl::DeadlineExceededError("no frame from shim in time");
    char buf[65536];
    ssize_t n = recv(fd_.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read shim socket");
    if (n == 0) return absl::OutOfRangeError("shim closed the connection");
    buffer_.append(buf, n);
  }
}

absl::Status ShimConnection::ExpectOk(std::string_view what, absl::Duration timeout) {
  ASSIGN_OR_RETURN(Frame reply, ReadFrame(timeout));
  if (reply.type == FrameType::kOk) return absl::OkStatus();
  if (reply.type == FrameType::kError) {
    return absl::FailedPreconditionError(StrCat(what, ": ", reply.payload));
  }
  return absl::InternalError(
      StrCat(what, ": unexpected frame type ", static_cast<int>(reply.type)));
}

absl::Status ShimConnection::Attach(bool out, bool err, bool in, absl::Duration timeout) {
  char flags = static_cast<char>((out ? kAttachStdout : 0) | (err ? kAttachStderr : 0) |
                                 (in ? kAttachStdin : 0));
  RETURN_IF_ERROR(SendFrame(FrameType::kAttach, std::string_view(&flags, 1)));
  return ExpectOk("attach", timeout);
}

absl::Status ShimConnection::WriteStdin(std::string_view data) {
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), kMaxFramePayload);
    RETURN_IF_ERROR(SendFrame(FrameType::kStdin, data.substr(0, n)));
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status ShimConnection::CloseStdin() { return SendFrame(FrameType::kCloseStdin, ""); }

absl::Status ShimConnection::Resize(uint16_t width, uint16_t height) {
  char payload[4] = {static_cast<char>(width >> 8), static_cast<char>(width),
                     static_cast<char>(height >> 8), static_cast<char>(height)};
  return SendFrame(FrameType::kResize, std::string_view(payload, 4));
}

absl::Status ShimConnection::ReopenLog(absl::Duration timeout) {
  RETURN_IF_ERROR(SendFrame(FrameType::kReopenLog, ""));
  return ExpectOk("reopen container log", timeout);
}

}  // namespace berth::shim
