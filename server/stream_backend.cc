#include "server/stream_backend.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/synchronization/notification.h"
#include "nlohmann/json.hpp"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/oci/subprocess.h"
#include "runtime/shim/shim_client.h"
#include "spdlog/spdlog.h"

namespace berth::server {

namespace {

using streaming::OutputFn;
using streaming::OutputStream;

void Signal(const UniqueFd& event) {
  uint64_t one = 1;
  (void)!write(event.get(), &one, sizeof one);
}

void WriteFully(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the process closed its stdin or exited
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// A process started by `runc exec` (under berth-shim --reap), its stdio on pipes or on a
// pty whose other end runc relays to the container's terminal.
class ExecProcess : public streaming::RemoteProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ExecProcess>> Start(
      oci::RuncRuntime& runc, const containers::ContainerManager::ExecTarget& target,
      const std::string& scratch_parent, const streaming::ExecRequest& request) {
    std::unique_ptr<ExecProcess> p(new ExecProcess());
    p->tty_ = request.tty;
    std::error_code ec;
    std::filesystem::create_directories(scratch_parent, ec);
    std::string scratch = scratch_parent + "/exec-XXXXXX";
    if (mkdtemp(scratch.data()) == nullptr) return ErrnoStatus(errno, StrCat("mkdtemp ", scratch));
    p->scratch_dir_ = scratch;
    p->pid_file_ = scratch + "/pid";
    p->cancel_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    p->done_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!p->cancel_.valid() || !p->done_.valid()) return ErrnoStatus(errno, "eventfd");

    oci::StdioFds stdio;
    if (request.tty) {
      UniqueFd master(posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!master.valid() || grantpt(master.get()) != 0 || unlockpt(master.get()) != 0) {
        return ErrnoStatus(errno, "exec: open a pty");
      }
      char name[128];
      if (ptsname_r(master.get(), name, sizeof name) != 0) return ErrnoStatus(errno, "ptsname");
      UniqueFd slave(open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!slave.valid()) return ErrnoStatus(errno, StrCat("exec: open ", name));
      // runc sets it raw too, but only once it runs: nothing typed before may be echoed.
      termios mode{};
      if (tcgetattr(slave.get(), &mode) == 0) {
        cfmakeraw(&mode);
        tcsetattr(slave.get(), TCSANOW, &mode);
      }
      // The client's size when it sent one before the start, else a classic 80x24: runc
      // gives the container's terminal the size of this one as it starts.
      winsize size{.ws_row = request.height > 0 ? request.height : uint16_t{24},
                   .ws_col = request.width > 0 ? request.width : uint16_t{80}};
      ioctl(master.get(), TIOCSWINSZ, &size);
      p->console_size_ = size;
      stdio = {slave.get(), slave.get(), slave.get()};
      p->master_ = std::move(master);
      p->child_fds_.push_back(std::move(slave));
    } else {
      if (request.stdin) {
        ASSIGN_OR_RETURN(oci::Pipe in, oci::MakePipe());
        stdio.in = in.read.get();
        p->stdin_ = std::move(in.write);
        p->child_fds_.push_back(std::move(in.read));
      }
      if (request.stdout) {
        ASSIGN_OR_RETURN(oci::Pipe out, oci::MakePipe());
        stdio.out = out.write.get();
        p->stdout_ = std::move(out.read);
        p->child_fds_.push_back(std::move(out.write));
      }
      if (request.stderr) {
        ASSIGN_OR_RETURN(oci::Pipe err, oci::MakePipe());
        stdio.err = err.write.get();
        p->stderr_ = std::move(err.read);
        p->child_fds_.push_back(std::move(err.write));
      }
    }
    ExecProcess* raw = p.get();
    std::string id = target.id, process_json = target.process_json;
    if (request.tty) {
      // runc copies our terminal's size to the container's only after the process has
      // started, so a quick `stty size` could see 0x0: the OCI consoleSize sets it before.
      nlohmann::json process = nlohmann::json::parse(process_json, nullptr, false);
      if (process.is_object()) {
        process["consoleSize"] = {{"height", p->console_size_.ws_row},
                                  {"width", p->console_size_.ws_col}};
        process_json = process.dump();
      }
    }
    p->runner_ = std::thread([raw, &runc, id, process_json, stdio] {
      raw->result_ = runc.Exec(id, process_json, {.stdio = stdio, .pid_file = raw->pid_file_});
      raw->child_fds_.clear();  // EOF (or EIO on the pty) once the process's copies go too
      Signal(raw->done_);
    });
    return p;
  }

  ~ExecProcess() override {
    if (runner_.joinable()) {
      Kill();
      runner_.join();
    }
    std::error_code ec;
    if (!scratch_dir_.empty()) std::filesystem::remove_all(scratch_dir_, ec);
  }

  void WriteStdin(std::string_view data) override {
    std::lock_guard lock(stdin_mu_);
    int fd = tty_ ? master_.get() : stdin_.get();
    if (fd >= 0 && !stdin_closed_) WriteFully(fd, data);
  }

  void CloseStdin() override {
    std::lock_guard lock(stdin_mu_);
    if (stdin_closed_) return;
    stdin_closed_ = true;
    if (tty_) {
      WriteFully(master_.get(), "\x04");  // ^D: end of input for the terminal's reader
    } else {
      stdin_.reset();
    }
  }

  void Resize(uint16_t width, uint16_t height) override {
    if (!tty_ || width == 0 || height == 0) return;
    winsize size{.ws_row = height, .ws_col = width};
    ioctl(master_.get(), TIOCSWINSZ, &size);  // the kernel sends runc SIGWINCH
  }

  void Cancel() override { Signal(cancel_); }

  absl::StatusOr<int> Wait(const OutputFn& out) override {
    absl::Time drain_deadline = absl::InfiniteFuture();
    bool runner_done = false;
    char buffer[32 * 1024];
    while (true) {
      struct Source {
        UniqueFd* fd;
        OutputStream stream;
      };
      std::vector<Source> sources;
      if (tty_ && master_.valid() && !master_eof_) sources.push_back({&master_, OutputStream::kStdout});
      if (stdout_.valid()) sources.push_back({&stdout_, OutputStream::kStdout});
      if (stderr_.valid()) sources.push_back({&stderr_, OutputStream::kStderr});
      if (sources.empty() && runner_done) break;
      std::vector<pollfd> fds;
      for (const Source& s : sources) fds.push_back({s.fd->get(), POLLIN, 0});
      fds.push_back({cancel_.get(), POLLIN, 0});
      fds.push_back({done_.get(), POLLIN, 0});
      int timeout_ms = -1;
      if (runner_done) {
        // A background child may hold the pipes: what it writes later is not waited for.
        absl::Duration left = drain_deadline - absl::Now();
        if (left <= absl::ZeroDuration()) break;
        timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
      }
      int ready = poll(fds.data(), fds.size(), timeout_ms);
      if (ready < 0 && errno != EINTR) break;
      if (ready <= 0) continue;
      for (size_t i = 0; i < sources.size(); ++i) {
        if (fds[i].revents == 0) continue;
        ssize_t n = read(sources[i].fd->get(), buffer, sizeof buffer);
        if (n > 0) {
          out(sources[i].stream, std::string_view(buffer, static_cast<size_t>(n)));
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          if (sources[i].fd == &master_) {
            master_eof_ = true;  // EIO: every slave end is closed; keep the fd for stdin
          } else {
            sources[i].fd->reset();
          }
        }
      }
      uint64_t count;
      if (fds[sources.size()].revents != 0 && read(cancel_.get(), &count, sizeof count) > 0) {
        Kill();
      }
      if (!runner_done && fds[sources.size() + 1].revents != 0) {
        runner_done = true;
        drain_deadline = absl::Now() + absl::Seconds(2);
      }
    }
    runner_.join();
    if (!result_.ok()) return result_.status();
    return result_->exit_code.value_or(-1);
  }

 private:
  ExecProcess() = default;

  void Kill() {
    std::ifstream in(pid_file_);
    int pid = 0;
    if (!(in >> pid) || pid <= 0) return;
    absl::StatusOr<UniqueFd> pidfd = oci::PidfdOpen(pid);
    if (pidfd.ok()) (void)oci::PidfdKill(*pidfd, SIGKILL);
  }

  bool tty_ = false;
  winsize console_size_{};
  std::string scratch_dir_, pid_file_;
  UniqueFd master_, stdout_, stderr_;
  bool master_eof_ = false;
  std::mutex stdin_mu_;
  UniqueFd stdin_;
  bool stdin_closed_ = false;
  std::vector<UniqueFd> child_fds_;  // the child's ends, runner thread only once started
  UniqueFd cancel_, done_;
  absl::StatusOr<oci::ExecResult> result_ = absl::UnknownError("exec did not run");
  std::thread runner_;
};

// An attachment to a container's own stdio through its shim's socket.
class AttachProcess : public streaming::RemoteProcess {
 public:
  AttachProcess(shim::ShimConnection connection, UniqueFd cancel)
      : connection_(std::move(connection)), cancel_(std::move(cancel)) {}

  void WriteStdin(std::string_view data) override {
    std::lock_guard lock(write_mu_);
    (void)connection_.WriteStdin(data);
  }
  void CloseStdin() override {
    std::lock_guard lock(write_mu_);
    (void)connection_.CloseStdin();
  }
  void Resize(uint16_t width, uint16_t height) override {
    std::lock_guard lock(write_mu_);
    (void)connection_.Resize(width, height);
  }
  void Cancel() override { Signal(cancel_); }

  absl::StatusOr<int> Wait(const OutputFn& out) override {
    while (true) {
      pollfd fds[2] = {{connection_.fd(), POLLIN, 0}, {cancel_.get(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "attach: poll");
      }
      if (fds[1].revents != 0) return 0;  // detached; the container goes on
      absl::StatusOr<shim::ShimConnection::Frame> frame = connection_.ReadFrame(absl::Seconds(10));
      if (!frame.ok()) return 0;  // the shim closed: the container is gone
      switch (frame->type) {
        case shim::FrameType::kStdout:
          out(OutputStream::kStdout, frame->payload);
          break;
        case shim::FrameType::kStderr:
          out(OutputStream::kStderr, frame->payload);
          break;
        case shim::FrameType::kExit:
          return 0;
        default:
          break;
      }
    }
  }

 private:
  shim::ShimConnection connection_;
  UniqueFd cancel_;
  std::mutex write_mu_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<streaming::RemoteProcess>> RuntimeStreamBackend::StartExec(
    const streaming::ExecRequest& request) {
  containers::ContainerManager& containers = runtime_.containers();
  ASSIGN_OR_RETURN(containers::ContainerManager::ExecTarget target,
                   containers.PrepareExec(request.container_id, request.command, request.tty));
  ASSIGN_OR_RETURN(std::unique_ptr<ExecProcess> process,
                   ExecProcess::Start(containers.runtime(), target, containers.ScratchDir(), request));
  return process;
}

absl::StatusOr<std::unique_ptr<streaming::RemoteProcess>> RuntimeStreamBackend::Attach(
    const streaming::AttachRequest& request) {
  ASSIGN_OR_RETURN(containers::ContainerManager::AttachTarget target,
                   runtime_.containers().PrepareAttach(request.container_id));
  ASSIGN_OR_RETURN(shim::ShimConnection connection, shim::ShimConnection::Connect(target.shim_dir));
  RETURN_IF_ERROR(connection.Attach(request.stdout, request.stderr, request.stdin && target.stdin));
  UniqueFd cancel(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!cancel.valid()) return ErrnoStatus(errno, "eventfd");
  return std::make_unique<AttachProcess>(std::move(connection), std::move(cancel));
}

absl::StatusOr<UniqueFd> RuntimeStreamBackend::DialPort(const std::string& pod_id, uint16_t port) {
  ASSIGN_OR_RETURN(std::optional<sandbox::PodSandbox> pod, runtime_.pods().Find(pod_id));
  if (!pod.has_value()) return absl::NotFoundError(StrCat("pod sandbox ", pod_id, " not found"));
  if (pod->state != sandbox::PodState::kReady) {
    return absl::FailedPreconditionError(StrCat("pod sandbox ", pod->id, " is not ready"));
  }
  const std::string netns = pod->netns;  // "" for a host-network pod
  absl::StatusOr<UniqueFd> result = absl::UnknownError("not dialed");
  // setns changes the calling thread only; a thread of its own keeps berthd's others out
  // of the pod's namespace, and the socket stays in the namespace it was made in.
  std::thread dialer([&] {
    if (!netns.empty()) {
      UniqueFd ns(open(netns.c_str(), O_RDONLY | O_CLOEXEC));
      if (!ns.valid() || setns(ns.get(), CLONE_NEWNET) != 0) {
        result = ErrnoStatus(errno, StrCat("enter the network namespace ", netns));
        return;
      }
    }
    int last_errno = 0;
    for (int family : {AF_INET, AF_INET6}) {
      UniqueFd fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd.valid()) {
        last_errno = errno;
        continue;
      }
      int rc;
      if (family == AF_INET) {
        sockaddr_in address{.sin_family = AF_INET, .sin_port = htons(port)};
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
      } else {
        sockaddr_in6 address{.sin6_family = AF_INET6, .sin6_port = htons(port)};
        address.sin6_addr = in6addr_loopback;
        rc = connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
      }
      if (rc == 0) {
        result = std::move(fd);
        return;
      }
      last_errno = errno;
    }
    result = ErrnoStatus(last_errno, StrCat("dial localhost:", port, " in pod ", pod_id));
  });
  dialer.join();
  return result;
}

}  // namespace berth::server
