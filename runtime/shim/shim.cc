#include "runtime/shim/shim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "runtime/shim/shim_protocol.h"

extern char** environ;

namespace berth::shim {
namespace {

constexpr size_t kStdinBufferLimit = 64 * 1024;
constexpr size_t kClientBacklogLimit = 1 << 20;
constexpr size_t kReadChunk = 16 * 1024;

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= n;
  }
  return true;
}

std::string ReadFd(int fd, size_t cap) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  while (out.size() < cap) {
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, n);
    off += n;
  }
  return out;
}

void AppendUtf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | cp >> 6);
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | cp >> 12);
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The value of string field `key` in one line of JSON, unescaped; "" when absent. Enough
// for runc's flat log records ({"level":"error","msg":"...","time":"..."}).
std::string JsonStringField(const std::string& line, const char* key) {
  std::string needle = std::string("\"") + key + "\":\"";
  size_t pos = line.find(needle);
  if (pos == std::string::npos) return "";
  std::string out;
  for (size_t i = pos + needle.size(); i < line.size(); ++i) {
    char c = line[i];
    if (c == '"') break;
    if (c != '\\' || i + 1 >= line.size()) {
      out += c;
      continue;
    }
    char e = line[++i];
    switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'u':
        if (i + 4 < line.size()) {
          AppendUtf8(out,
                     static_cast<unsigned>(strtoul(line.substr(i + 1, 4).c_str(), nullptr, 16)));
          i += 4;
        }
        break;
      default:
        out += e;  // \" \\ \/
    }
  }
  return out;
}

// The error messages of a runc JSON log, joined with "; ".
std::string RuntimeLogErrors(const std::string& log) {
  std::string out;
  std::vector<std::string> seen;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t end = log.find('\n', pos);
    if (end == std::string::npos) end = log.size();
    std::string line = log.substr(pos, end - pos);
    pos = end + 1;
    std::string level = JsonStringField(line, "level");
    if (level != "error" && level != "fatal" && level != "panic") continue;
    std::string msg = JsonStringField(line, "msg");
    bool dup = false;
    for (const std::string& s : seen) dup = dup || s == msg;
    if (msg.empty() || dup) continue;
    seen.push_back(msg);
    out += out.empty() ? msg : "; " + msg;
  }
  return out;
}

std::string DescribeWait(int status) {
  char buf[64];
  if (WIFEXITED(status)) {
    snprintf(buf, sizeof(buf), "exit status %d", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG(status));
  } else {
    snprintf(buf, sizeof(buf), "wait status %d", status);
  }
  return buf;
}

// A child with fds 0..2 as given (-1 = /dev/null), nothing else, signals reset. The shim
// blocks the signals it handles through signalfd; the runtime and the container must
// not inherit that mask.
pid_t SpawnChild(const std::vector<std::string>& args, int in, int out, int err) {
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  int fds[3] = {in, out, err};
  int lifted[3];
  for (int i = 0; i < 3; ++i) {
    lifted[i] = fcntl(fds[i] >= 0 ? fds[i] : devnull, F_DUPFD_CLOEXEC, 3);
    posix_spawn_file_actions_adddup2(&actions, lifted[i], i);
  }
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  for (int fd : lifted) close(fd);
  close(devnull);
  return pid;
}

struct Client {
  int fd = -1;
  uint8_t flags = 0;  // kAttach* once attached
  bool dead = false;
  std::string in;   // bytes received, not yet a whole frame
  std::string out;  // frames not yet sent
};

class Shim {
 public:
  Shim(const ShimConfig& config, int sync_fd)
      : config_(config), sync_fd_(sync_fd), log_(config.log_path, config.max_log_line) {}

  int Run();

 private:
  bool Setup(std::string* error);
  bool CreateContainer(std::string* error);
  void Serve();
  void Finish();

  std::vector<std::string> RuntimeArgv(const std::string& log_path) const;
  std::string SocketPath(const char* name, bool for_child) const;
  int Listen(const char* name, std::string* error);
  bool ReceiveConsole(int conn, std::string* error);
  void OnSignals();
  void Reap();
  void RecordExit(int status);
  void ReadOutput(int& fd, CriStream stream);
  void DrainOutput(int& fd, CriStream stream);
  void Broadcast(FrameType type, const char* data, size_t size, uint8_t flag);
  void Send(Client& c, FrameType type, const char* data, size_t size);
  void Flush(Client& c);
  void ReadClient(Client& c);
  void HandleFrame(Client& c, FrameType type, const std::string& payload);
  void Disconnect(Client& c);
  void FlushStdin();
  void CloseStdin();
  void ReopenLog(std::string* error);
  void Report(const std::string& line);
  void Note(const char* format, ...);
  bool WriteStateFile(const char* name, const std::string& content);

  const ShimConfig& config_;
  int sync_fd_;
  CriLogWriter log_;
  int dir_fd_ = -1;
  int signal_fd_ = -1;
  int listen_fd_ = -1;
  int console_listen_fd_ = -1;
  int out_fd_ = -1;  // stdout pipe, or the pty master
  int err_fd_ = -1;  // stderr pipe (no tty)
  int stdin_fd_ = -1;
  std::string stdin_buffer_;
  bool stdin_closing_ = false;
  bool stdin_once_used_ = false;
  std::vector<Client> clients_;

  pid_t runtime_pid_ = -1;
  bool runtime_done_ = false;
  int runtime_status_ = 0;
  pid_t init_pid_ = 0;
  std::vector<std::pair<pid_t, int>> early_exits_;  // reaped before init.pid was read
  bool exited_ = false;
  int exit_status_ = 0;
  int64_t exited_at_ = 0;
  int64_t drain_deadline_ms_ = 0;
};

void Shim::Note(const char* format, ...) {
  char buf[1024];
  std::string ts = CriLogWriter::FormatTimestamp(CriLogWriter::RealtimeNanos());
  int n = snprintf(buf, sizeof(buf), "%s ", ts.c_str());
  va_list args;
  va_start(args, format);
  n += vsnprintf(buf + n, sizeof(buf) - n - 1, format, args);
  va_end(args);
  if (n > static_cast<int>(sizeof(buf)) - 2) n = sizeof(buf) - 2;
  buf[n++] = '\n';
  int fd = openat(dir_fd_, kShimLogFile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return;
  WriteAll(fd, buf, n);
  close(fd);
}

void Shim::Report(const std::string& line) {
  if (sync_fd_ < 0) return;
  WriteAll(sync_fd_, line.data(), line.size());
  CloseFd(sync_fd_);
}

bool Shim::WriteStateFile(const char* name, const std::string& content) {
  std::string tmp = std::string(".") + name + ".tmp";
  int fd = openat(dir_fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = WriteAll(fd, content.data(), content.size()) && fsync(fd) == 0;
  close(fd);
  return ok && renameat(dir_fd_, tmp.c_str(), dir_fd_, name) == 0;
}

std::string Shim::SocketPath(const char* name, bool for_child) const {
  std::string path = config_.state_dir + "/" + name;
  if (path.size() < sizeof(sockaddr_un::sun_path)) return path;
  // Too long for sockaddr_un: go through our handle on the directory. A child (runc)
  // cannot use /proc/self, so it gets our pid.
  char buf[64];
  if (for_child) {
    snprintf(buf, sizeof(buf), "/proc/%d/fd/%d/", getpid(), dir_fd_);
  } else {
    snprintf(buf, sizeof(buf), "/proc/self/fd/%d/", dir_fd_);
  }
  return buf + std::string(name);
}

int Shim::Listen(const char* name, std::string* error) {
  unlinkat(dir_fd_, name, 0);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = SocketPath(name, false);
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 16) != 0) {
    *error = "listen on " + config_.state_dir + "/" + name + ": " + strerrordesc_np(errno);
    if (fd >= 0) close(fd);
    return -1;
  }
  fchmodat(dir_fd_, name, 0600, 0);
  return fd;
}

std::vector<std::string> Shim::RuntimeArgv(const std::string& log_path) const {
  std::vector<std::string> argv = {config_.runtime, "--root", config_.runtime_root};
  argv.insert(argv.end(), config_.runtime_args.begin(), config_.runtime_args.end());
  if (!log_path.empty()) argv.insert(argv.end(), {"--log", log_path, "--log-format", "json"});
  return argv;
}

bool Shim::Setup(std::string* error) {
  dir_fd_ = open(config_.state_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) {
    *error = "open state dir " + config_.state_dir + ": " + strerrordesc_np(errno);
    return false;
  }
  char pid[32];
  snprintf(pid, sizeof(pid), "%d", getpid());
  if (!WriteStateFile(kShimPidFile, pid)) {
    *error = "write " + config_.state_dir + "/" + kShimPidFile + ": " + strerrordesc_np(errno);
    return false;
  }
  // A state dir is per container; an exit file here would be from an earlier life.
  unlinkat(dir_fd_, kExitFile, 0);
  unlinkat(dir_fd_, kInitPidFile, 0);

  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&mask, sig);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal_fd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) {
    *error = std::string("signalfd: ") + strerrordesc_np(errno);
    return false;
  }
  if (!log_.Open(error)) return false;
  listen_fd_ = Listen(kSocketFile, error);
  return listen_fd_ >= 0;
}

bool Shim::ReceiveConsole(int conn, std::string* error) {
  char data[256];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  iovec iov = {data, sizeof(data)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return true;  // not yet
    *error = std::string("receive console: ") + strerrordesc_np(errno);
    return false;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      memcpy(&out_fd_, CMSG_DATA(c), sizeof(int));
    }
  }
  if (out_fd_ < 0) {
    *error = "receive console: the runtime sent no file descriptor";
    return false;
  }
  fcntl(out_fd_, F_SETFL, fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
  if (config_.stdin) stdin_fd_ = fcntl(out_fd_, F_DUPFD_CLOEXEC, 3);
  return true;
}

bool Shim::CreateContainer(std::string* error) {
  // runc's JSON log goes to an anonymous file that runc opens through /proc.
  int log_fd = memfd_create("runc-create-log", MFD_CLOEXEC);
  char log_path[64] = "";
  if (log_fd >= 0) snprintf(log_path, sizeof(log_path), "/proc/%d/fd/%d", getpid(), log_fd);

  std::vector<std::string> argv = RuntimeArgv(log_path);
  argv.insert(argv.end(), {"create", "--bundle", config_.bundle, "--pid-file",
                           config_.state_dir + "/" + kInitPidFile});
  int child_in = -1, child_out = -1, child_err = -1;
  if (config_.tty) {
    console_listen_fd_ = Listen(kConsoleSocketFile, error);
    if (console_listen_fd_ < 0) return false;
    argv.insert(argv.end(), {"--console-socket", SocketPath(kConsoleSocketFile, true)});
  } else {
    // Our ends are kept; the child's ends are closed once runc has them.
    auto make_pipe = [&](int& ours, int& theirs, bool we_read) {
      int p[2];
      if (pipe2(p, O_CLOEXEC) != 0) {
        *error = std::string("pipe: ") + strerrordesc_np(errno);
        return false;
      }
      ours = we_read ? p[0] : p[1];
      theirs = we_read ? p[1] : p[0];
      return true;
    };
    if (!make_pipe(out_fd_, child_out, true) || !make_pipe(err_fd_, child_err, true) ||
        (config_.stdin && !make_pipe(stdin_fd_, child_in, false))) {
      for (int fd : {child_in, child_out, child_err}) {
        if (fd >= 0) close(fd);
      }
      return false;
    }
    for (int fd : {out_fd_, err_fd_, stdin_fd_}) {
      if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
  }
  if (config_.no_pivot) argv.push_back("--no-pivot");
  if (config_.no_new_keyring) argv.push_back("--no-new-keyring");
  argv.push_back(config_.id);

  runtime_pid_ = SpawnChild(argv, child_in, child_out, child_err);
  int spawn_errno = errno;
  for (int fd : {child_in, child_out, child_err}) {
    if (fd >= 0) close(fd);
  }
  if (runtime_pid_ < 0) {
    *error = "spawn " + config_.runtime + ": " + strerrordesc_np(spawn_errno);
    return false;
  }

  const int64_t deadline = MonotonicMs() + config_.create_timeout_ms;
  int console_conn = -1;
  bool ok = true;
  while (ok) {
    if (runtime_done_ && (WEXITSTATUS(runtime_status_) != 0 || !WIFEXITED(runtime_status_))) break;
    if (runtime_done_ && (!config_.tty || out_fd_ >= 0)) break;
    if (runtime_done_) {
      // runc sends the console before it exits; take what is queued, then give up.
      if (console_conn < 0) {
        console_conn = accept4(console_listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      }
      if (console_conn >= 0) ok = ReceiveConsole(console_conn, error);
      if (ok && out_fd_ < 0) {
        *error = config_.runtime + " create " + config_.id + ": no console was sent";
        ok = false;
      }
      break;
    }
    pollfd fds[3] = {{signal_fd_, POLLIN, 0},
                     {console_conn < 0 ? console_listen_fd_ : -1, POLLIN, 0},
                     {console_conn, POLLIN, 0}};
    int64_t left = deadline - MonotonicMs();
    if (left <= 0) {
      kill(runtime_pid_, SIGKILL);
      waitpid(runtime_pid_, nullptr, 0);
      runtime_pid_ = -1;
      // It may have got far enough to leave state behind.
      std::vector<std::string> del = RuntimeArgv("");
      del.insert(del.end(), {"delete", "--force", config_.id});
      pid_t pid = SpawnChild(del, -1, -1, -1);
      if (pid > 0) waitpid(pid, nullptr, 0);
      char buf[96];
      snprintf(buf, sizeof(buf), " create timed out after %d ms", config_.create_timeout_ms);
      *error = config_.runtime + buf;
      ok = false;
      break;
    }
    if (poll(fds, 3, static_cast<int>(left)) < 0 && errno != EINTR) {
      *error = std::string("poll: ") + strerrordesc_np(errno);
      ok = false;
      break;
    }
    if (fds[0].revents != 0) OnSignals();
    if (fds[1].revents != 0) {
      console_conn = accept4(console_listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    }
    if (fds[2].revents != 0 && out_fd_ < 0) {
      ok = ReceiveConsole(console_conn, error);
      if (out_fd_ >= 0) CloseFd(console_conn);
    }
  }
  CloseFd(console_conn);
  if (console_listen_fd_ >= 0) {
    CloseFd(console_listen_fd_);
    unlinkat(dir_fd_, kConsoleSocketFile, 0);
  }
  if (ok && runtime_done_ && !(WIFEXITED(runtime_status_) && WEXITSTATUS(runtime_status_) == 0)) {
    std::string runtime_error = log_fd >= 0 ? RuntimeLogErrors(ReadFd(log_fd, 1 << 20)) : "";
    *error = config_.runtime + " create " + config_.id + ": " +
             (runtime_error.empty() ? DescribeWait(runtime_status_) : runtime_error);
    ok = false;
  }
  if (log_fd >= 0) close(log_fd);
  if (!ok) return false;

  int pid_fd = openat(dir_fd_, kInitPidFile, O_RDONLY | O_CLOEXEC);
  if (pid_fd >= 0) {
    init_pid_ = atoi(ReadFd(pid_fd, 32).c_str());
    close(pid_fd);
  }
  if (init_pid_ <= 0) {
    *error = config_.runtime + " create " + config_.id + ": no pid in " + kInitPidFile;
    return false;
  }
  for (auto [pid, status] : early_exits_) {
    if (pid == init_pid_) RecordExit(status);
  }
  early_exits_.clear();
  return true;
}

void Shim::OnSignals() {
  signalfd_siginfo info;
  while (read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
    switch (info.ssi_signo) {
      case SIGCHLD:
        Reap();
        break;
      case SIGUSR1: {
        std::string error;
        ReopenLog(&error);
        break;
      }
      default:
        Note("ignoring signal %u from pid %u: the shim exits when its container does",
             info.ssi_signo, info.ssi_pid);
    }
  }
}

void Shim::Reap() {
  while (true) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (pid == runtime_pid_) {
      runtime_done_ = true;
      runtime_status_ = status;
    } else if (init_pid_ > 0 && pid == init_pid_) {
      RecordExit(status);
    } else if (init_pid_ == 0) {
      early_exits_.emplace_back(pid, status);
    }
    // Anything else was orphaned inside a container without its own PID namespace and
    // reparented to us: reaping it is all there is to do.
  }
}

void Shim::RecordExit(int status) {
  if (exited_) return;
  exited_ = true;
  exit_status_ = status;
  exited_at_ = CriLogWriter::RealtimeNanos();
  drain_deadline_ms_ = MonotonicMs() + config_.drain_timeout_ms;
}

void Shim::ReopenLog(std::string* error) {
  if (!log_.Reopen(error)) Note("%s", error->c_str());
}

void Shim::Send(Client& c, FrameType type, const char* data, size_t size) {
  if (c.dead) return;
  char header[kFrameHeaderSize];
  EncodeFrameHeader(type, static_cast<uint32_t>(size), header);
  c.out.append(header, sizeof(header));
  if (size > 0) c.out.append(data, size);
  Flush(c);
  if (c.out.size() > kClientBacklogLimit) Disconnect(c);
}

void Shim::Flush(Client& c) {
  while (!c.dead && !c.out.empty()) {
    ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return Disconnect(c);
    c.out.erase(0, n);
  }
  // A burst for a slow client may have grown the buffer; give the memory back.
  if (c.out.empty() && c.out.capacity() > kReadChunk) std::string().swap(c.out);
}

void Shim::Broadcast(FrameType type, const char* data, size_t size, uint8_t flag) {
  for (Client& c : clients_) {
    if (c.flags & flag) Send(c, type, data, size);
  }
}

void Shim::Disconnect(Client& c) {
  if (c.dead) return;
  c.dead = true;
  CloseFd(c.fd);
  c.out.clear();
  c.in.clear();
  if ((c.flags & kAttachStdin) && config_.stdin_once) CloseStdin();
}

void Shim::CloseStdin() {
  if (stdin_fd_ < 0) return;
  if (config_.tty) {
    // The pty is also the output; end the input the way a terminal does.
    stdin_buffer_ += '\x04';
    FlushStdin();
    return;
  }
  stdin_closing_ = true;
  FlushStdin();
}

void Shim::FlushStdin() {
  while (stdin_fd_ >= 0 && !stdin_buffer_.empty()) {
    ssize_t n = write(stdin_fd_, stdin_buffer_.data(), stdin_buffer_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) {  // EPIPE: nobody reads the container's stdin any more
      stdin_buffer_.clear();
      CloseFd(stdin_fd_);
      return;
    }
    stdin_buffer_.erase(0, n);
  }
  if (stdin_buffer_.empty() && stdin_buffer_.capacity() > kReadChunk) {
    std::string().swap(stdin_buffer_);
  }
  if (stdin_closing_ && stdin_buffer_.empty()) CloseFd(stdin_fd_);
}

void Shim::HandleFrame(Client& c, FrameType type, const std::string& payload) {
  switch (type) {
    case FrameType::kAttach: {
      uint8_t flags = payload.empty() ? 0 : static_cast<uint8_t>(payload[0]);
      if ((flags & kAttachStdin) && !config_.stdin) {
        static const char kNoStdin[] = "container has no stdin";
        return Send(c, FrameType::kError, kNoStdin, sizeof(kNoStdin) - 1);
      }
      c.flags = flags;
      return Send(c, FrameType::kOk, nullptr, 0);
    }
    case FrameType::kStdin:
      if (stdin_fd_ < 0 || stdin_closing_) return;
      stdin_buffer_ += payload;
      return FlushStdin();
    case FrameType::kCloseStdin:
      return CloseStdin();
    case FrameType::kResize: {
      if (!config_.tty || out_fd_ < 0 || payload.size() < 4) return;
      auto u16 = [&](int i) {
        return static_cast<unsigned short>(static_cast<unsigned char>(payload[i]) << 8 |
                                           static_cast<unsigned char>(payload[i + 1]));
      };
      winsize ws{};
      ws.ws_col = u16(0);
      ws.ws_row = u16(2);
      ioctl(out_fd_, TIOCSWINSZ, &ws);
      return;
    }
    case FrameType::kReopenLog: {
      std::string error;
      ReopenLog(&error);
      if (error.empty()) return Send(c, FrameType::kOk, nullptr, 0);
      return Send(c, FrameType::kError, error.data(), error.size());
    }
    default: {
      static const char kUnknown[] = "unknown frame type";
      Send(c, FrameType::kError, kUnknown, sizeof(kUnknown) - 1);
      Flush(c);
      return Disconnect(c);
    }
  }
}

void Shim::ReadClient(Client& c) {
  char buf[8192];
  ssize_t n = recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) return Disconnect(c);
  c.in.append(buf, n);
  size_t off = 0;
  while (!c.dead && c.in.size() - off >= kFrameHeaderSize) {
    uint32_t length = DecodeFrameLength(c.in.data() + off);
    if (length > kMaxFramePayload) {
      static const char kTooBig[] = "frame too large";
      Send(c, FrameType::kError, kTooBig, sizeof(kTooBig) - 1);
      return Disconnect(c);
    }
    if (c.in.size() - off < kFrameHeaderSize + length) break;
    FrameType type = static_cast<FrameType>(c.in[off]);
    std::string payload = c.in.substr(off + kFrameHeaderSize, length);
    off += kFrameHeaderSize + length;
    HandleFrame(c, type, payload);
  }
  if (!c.dead) c.in.erase(0, off);
}

void Shim::ReadOutput(int& fd, CriStream stream) {
  static char buf[kReadChunk];
  ssize_t n = read(fd, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {  // EOF; EIO from a pty master whose terminal is closed everywhere
    CloseFd(fd);
    log_.Finish(stream);
    return;
  }
  log_.Write(stream, buf, n);
  if (stream == CriStream::kStdout) {
    Broadcast(FrameType::kStdout, buf, n, kAttachStdout);
  } else {
    Broadcast(FrameType::kStderr, buf, n, kAttachStderr);
  }
}

void Shim::DrainOutput(int& fd, CriStream stream) {
  while (fd >= 0) {
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) {  // nothing buffered: whoever still holds it keeps it
      CloseFd(fd);
      log_.Finish(stream);
      return;
    }
    ReadOutput(fd, stream);
  }
}

void Shim::Serve() {
  std::vector<pollfd> fds;
  while (true) {
    if (exited_ && ((out_fd_ < 0 && err_fd_ < 0) || MonotonicMs() >= drain_deadline_ms_)) return;
    fds.clear();
    fds.push_back({signal_fd_, POLLIN, 0});
    fds.push_back({out_fd_, POLLIN, 0});
    fds.push_back({err_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({stdin_buffer_.empty() ? -1 : stdin_fd_, POLLOUT, 0});
    const size_t first_client = fds.size();
    const size_t client_count = clients_.size();
    for (const Client& c : clients_) {
      short events = stdin_buffer_.size() < kStdinBufferLimit ? POLLIN : 0;
      if (!c.out.empty()) events |= POLLOUT;
      fds.push_back({c.fd, events, 0});
    }
    int timeout = -1;
    if (exited_)
      timeout = static_cast<int>(std::max<int64_t>(0, drain_deadline_ms_ - MonotonicMs()));
    if (poll(fds.data(), fds.size(), timeout) < 0) {
      if (errno != EINTR) {
        Note("poll: %s", strerrordesc_np(errno));
        usleep(100000);
      }
      continue;
    }
    if (fds[0].revents != 0) OnSignals();
    if (fds[1].revents != 0) ReadOutput(out_fd_, CriStream::kStdout);
    if (fds[2].revents != 0) ReadOutput(err_fd_, CriStream::kStderr);
    if (fds[4].revents != 0) FlushStdin();
    for (size_t i = 0; i < client_count; ++i) {
      Client& c = clients_[i];
      short revents = fds[first_client + i].revents;
      if (revents & POLLOUT) Flush(c);
      if (revents & (POLLIN | POLLHUP | POLLERR)) ReadClient(c);
    }
    if (fds[3].revents != 0) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) clients_.push_back(Client{.fd = fd});
    }
    std::erase_if(clients_, [](const Client& c) { return c.dead; });
  }
}

void Shim::Finish() {
  // Past the drain deadline: take what is buffered, then let go.
  DrainOutput(out_fd_, CriStream::kStdout);
  DrainOutput(err_fd_, CriStream::kStderr);
  char json[256];
  int code = WIFEXITED(exit_status_) ? WEXITSTATUS(exit_status_) : 128 + WTERMSIG(exit_status_);
  int sig = WIFSIGNALED(exit_status_) ? WTERMSIG(exit_status_) : 0;
  std::string at = CriLogWriter::FormatTimestamp(exited_at_);
  int n = snprintf(json, sizeof(json),
                   "{\"pid\":%d,\"exit_code\":%d,\"signal\":%d,\"exited_at\":\"%s\","
                   "\"oom_killed\":false}\n",
                   init_pid_, code, sig, at.c_str());
  if (!WriteStateFile(kExitFile, std::string(json, n))) {
    Note("write exit file: %s", strerrordesc_np(errno));
  }
  unlinkat(dir_fd_, kSocketFile, 0);
  for (Client& c : clients_) {
    if (c.flags != 0) Send(c, FrameType::kExit, json, n);
    Flush(c);
    CloseFd(c.fd);
  }
  CloseFd(stdin_fd_);
  CloseFd(listen_fd_);
}

int Shim::Run() {
  std::string error;
  if (!Setup(&error) || !CreateContainer(&error)) {
    for (char& ch : error) {
      if (ch == '\n') ch = ' ';
    }
    if (dir_fd_ >= 0) {
      Note("%s", error.c_str());
      unlinkat(dir_fd_, kSocketFile, 0);
    }
    Report("error " + error + "\n");
    return 1;
  }
  char ok[48];
  snprintf(ok, sizeof(ok), "ok %d\n", init_pid_);
  Report(ok);
  Serve();
  Finish();
  return 0;
}

}  // namespace

int RunShim(const ShimConfig& config, int sync_fd) { return Shim(config, sync_fd).Run(); }

}  // namespace berth::shim
