// `berthctl exec | attach | port-forward`: a process in a container, and a pod's ports.
// Plain `exec` runs the command through ExecSync, as crictl does without -i or -t. With
// -i or -t, and for attach and port-forward, the CRI call returns a URL on the runtime's
// streaming server, which stream_client.h speaks to over WebSocket, or with --spdy
// spdy_stream_client.h over SPDY/3.1. The local side (raw mode, signals, resizes,
// listeners) is the same for both.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <list>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/spdy_stream_client.h"
#include "cli/stream_client.h"
#include "cli/stream_protocol.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/base/unique_fd.h"

namespace berth::cli {
namespace {

namespace v1 = ::runtime::v1;
using streaming::remotecommand::TerminalSize;

struct ExecOptions {
  std::string id;
  std::vector<std::string> command;
  int64_t timeout_seconds = 0;  // 0: none; ExecSync only
  bool stdin = false;
  bool tty = false;
  bool spdy = false;  // streaming over SPDY/3.1 instead of WebSocket
};

struct AttachOptions {
  std::string id;
  bool stdin = false;
  bool tty = false;
  bool spdy = false;
};

struct PortForwardOptions {
  std::string pod;
  std::vector<std::string> mappings;  // LOCAL:REMOTE
  bool spdy = false;
};

// ---------------------------------------------------------------------------
// Signals, terminal

// Per signal, the write end of the pipe its handler writes the signal number to.
volatile std::sig_atomic_t signal_pipe_fd[NSIG];

void WriteSignalToPipe(int signal) {
  int saved_errno = errno;
  int fd = signal_pipe_fd[signal];
  if (fd >= 0) {
    char byte = static_cast<char>(signal);
    [[maybe_unused]] ssize_t ignored = write(fd, &byte, 1);
  }
  errno = saved_errno;
}

// While alive, `signals` are caught into a pipe (the self-pipe trick), so a thread
// waiting in poll() sees them; the old handlers come back on destruction. With
// `once`, a second signal of a kind gets the old action (a second Ctrl-C kills).
class SignalPipe {
 public:
  static absl::StatusOr<std::unique_ptr<SignalPipe>> Catch(std::vector<int> signals, bool once) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return ErrnoStatus(errno, "pipe");
    return std::unique_ptr<SignalPipe>(
        new SignalPipe(UniqueFd(fds[0]), UniqueFd(fds[1]), std::move(signals), once));
  }
  ~SignalPipe() {
    for (size_t i = 0; i < signals_.size(); ++i) {
      sigaction(signals_[i], &old_[i], nullptr);
      signal_pipe_fd[signals_[i]] = -1;
    }
  }
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  // Readable once a signal has come.
  int fd() const { return read_.get(); }
  // The first signal caught and not yet taken, or 0.
  int Take() {
    char byte = 0;
    return read(read_.get(), &byte, 1) == 1 ? static_cast<unsigned char>(byte) : 0;
  }

 private:
  SignalPipe(UniqueFd read_end, UniqueFd write_end, std::vector<int> signals, bool once)
      : read_(std::move(read_end)), write_(std::move(write_end)), signals_(std::move(signals)) {
    old_.resize(signals_.size());
    for (size_t i = 0; i < signals_.size(); ++i) {
      signal_pipe_fd[signals_[i]] = write_.get();
      struct sigaction action {};
      action.sa_handler = WriteSignalToPipe;
      action.sa_flags = SA_RESTART | (once ? SA_RESETHAND : 0);
      sigemptyset(&action.sa_mask);
      sigaction(signals_[i], &action, &old_[i]);
    }
  }

  UniqueFd read_;
  UniqueFd write_;
  std::vector<int> signals_;
  std::vector<struct sigaction> old_;
};

// SIGPIPE ignored while alive: a closed stdout ends the session with an error, and the
// terminal gets restored, instead of berthctl dying on the spot.
class IgnoreSigpipe {
 public:
  IgnoreSigpipe() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &old_);
  }
  ~IgnoreSigpipe() { sigaction(SIGPIPE, &old_, nullptr); }
  IgnoreSigpipe(const IgnoreSigpipe&) = delete;
  IgnoreSigpipe& operator=(const IgnoreSigpipe&) = delete;

 private:
  struct sigaction old_ {};
};

// The terminal on `fd` in raw mode while alive: every key goes to the remote tty (Ctrl-C
// included: it interrupts the remote command, not berthctl), and output is not
// translated twice. Restored on destruction, on every way out of the session.
class RawTerminal {
 public:
  static absl::StatusOr<std::unique_ptr<RawTerminal>> Enter(int fd) {
    termios saved{};
    if (tcgetattr(fd, &saved) != 0) return ErrnoStatus(errno, "tcgetattr on stdin");
    termios raw = saved;
    cfmakeraw(&raw);
    if (tcsetattr(fd, TCSANOW, &raw) != 0) return ErrnoStatus(errno, "tcsetattr on stdin");
    return std::unique_ptr<RawTerminal>(new RawTerminal(fd, saved));
  }
  ~RawTerminal() { tcsetattr(fd_, TCSANOW, &saved_); }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  RawTerminal(int fd, const termios& saved) : fd_(fd), saved_(saved) {}
  int fd_;
  termios saved_;
};

std::optional<TerminalSize> TerminalSizeOf(int fd) {
  winsize size{};
  if (ioctl(fd, TIOCGWINSZ, &size) != 0 || size.ws_col == 0 || size.ws_row == 0) {
    return std::nullopt;
  }
  return TerminalSize{size.ws_col, size.ws_row};
}

// How a streaming session ended.
struct SessionEnd {
  int exit_code = 0;  // the remote one
  int signal = 0;     // non-zero: the user interrupted berthctl with it
};

// Runs an exec or attach session on `url` on berthctl's own stdin/stdout/stderr, over
// WebSocket or, with `spdy`, SPDY/3.1.
// `local_tty`: the user asked for a terminal (-t) and the session has one, so a terminal
// on stdin goes raw and its size (from stdout, else stdin) follows SIGWINCH.
absl::StatusOr<SessionEnd> RunSession(const std::string& url, bool stdin, bool tty, bool local_tty,
                                      bool spdy) {
  ASSIGN_OR_RETURN(std::unique_ptr<SignalPipe> interrupts,
                   SignalPipe::Catch({SIGINT, SIGTERM, SIGHUP}, /*once=*/true));
  IgnoreSigpipe ignore_sigpipe;
  RemoteCommandIo io{.in_fd = stdin ? STDIN_FILENO : -1,
                     .out_fd = STDOUT_FILENO,
                     .err_fd = STDERR_FILENO,
                     .tty = tty,
                     .interrupt_fd = interrupts->fd()};

  std::unique_ptr<SignalPipe> winch;
  TerminalSizeSource resize;
  const int size_fd = isatty(STDOUT_FILENO) ? STDOUT_FILENO : STDIN_FILENO;
  if (local_tty && isatty(size_fd)) {
    ASSIGN_OR_RETURN(winch, SignalPipe::Catch({SIGWINCH}, /*once=*/false));
    resize.wake_fd = winch->fd();
    resize.size = [size_fd] { return TerminalSizeOf(size_fd); };
    io.resize = &resize;
  }
  // Raw only with stdin going to the session: without it, typing would go nowhere
  // and Ctrl-C must stay berthctl's way out.
  std::unique_ptr<RawTerminal> raw;
  if (local_tty && stdin && isatty(STDIN_FILENO)) {
    ASSIGN_OR_RETURN(raw, RawTerminal::Enter(STDIN_FILENO));
  }
  // The session writes to the fds directly: what iostreams hold goes first.
  std::cout.flush();
  std::cerr.flush();

  absl::StatusOr<int> exit_code = spdy ? RunRemoteCommandSpdy(url, io) : RunRemoteCommand(url, io);
  raw.reset();  // before anything is printed
  if (absl::IsCancelled(exit_code.status())) {
    int signal = interrupts->Take();
    return SessionEnd{.signal = signal != 0 ? signal : SIGINT};
  }
  if (!exit_code.ok()) return exit_code.status();
  return SessionEnd{.exit_code = *exit_code};
}

// ---------------------------------------------------------------------------
// exec

CommandResult ExecSync(Client& client, const std::string& container_id, const ExecOptions& options,
                       int& exit_code) {
  v1::ExecSyncRequest request;
  request.set_container_id(container_id);
  for (const std::string& arg : options.command) request.add_cmd(arg);
  request.set_timeout(options.timeout_seconds);
  grpc::ClientContext ctx;
  // Without a timeout the command may run as long as it likes, so the call may too.
  if (options.timeout_seconds > 0) {
    client.Prepare(ctx, std::chrono::seconds(options.timeout_seconds));
  }
  v1::ExecSyncResponse response;
  grpc::Status s = client.runtime().ExecSync(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "ExecSync", client);
  std::cout << response.stdout();
  std::cerr << response.stderr();
  exit_code = response.exit_code();
  return absl::OkStatus();
}

CommandResult Exec(const GlobalOptions& global, const ExecOptions& options, int& exit_code) {
  const bool streaming = options.stdin || options.tty;
  if (streaming && options.timeout_seconds != 0) {
    // The CRI's streaming Exec has no timeout; only ExecSync kills on one.
    return absl::InvalidArgumentError("--timeout works without -i and -t only");
  }
  if (!streaming && options.spdy) {
    // ExecSync is a plain RPC: there is no stream to carry.
    return absl::InvalidArgumentError("--spdy works with -i or -t only");
  }
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  ASSIGN_OR_RETURN(v1::ContainerStatusResponse status, GetContainerStatus(*client, options.id));
  if (!streaming) return ExecSync(*client, status.status().id(), options, exit_code);

  v1::ExecRequest request;
  request.set_container_id(status.status().id());
  for (const std::string& arg : options.command) request.add_cmd(arg);
  request.set_tty(options.tty);
  request.set_stdin(options.stdin);
  request.set_stdout(true);
  request.set_stderr(!options.tty);  // a tty merges them
  v1::ExecResponse response;
  grpc::ClientContext ctx;
  client->Prepare(ctx);
  grpc::Status s = client->runtime().Exec(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "Exec", *client);
  ASSIGN_OR_RETURN(SessionEnd end, RunSession(response.url(), options.stdin, options.tty,
                                              options.tty, options.spdy));
  // Interrupted: as if the signal had ended berthctl, which the command outlives.
  exit_code = end.signal != 0 ? 128 + end.signal : end.exit_code;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// attach

// Whether the container was created with a tty, from ContainerStatus' verbose info:
// the OCI spec's process.terminal (berth, containerd) or containerd's config.tty.
std::optional<bool> ContainerTty(const v1::ContainerStatusResponse& status) {
  auto info = status.info().find("info");
  if (info == status.info().end()) return std::nullopt;
  nlohmann::json json = nlohmann::json::parse(info->second, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  nlohmann::json::json_pointer terminal("/runtimeSpec/process/terminal");
  if (json.contains(terminal) && json[terminal].is_boolean()) return json[terminal].get<bool>();
  nlohmann::json::json_pointer config_tty("/config/tty");
  if (json.contains(config_tty) && json[config_tty].is_boolean()) {
    return json[config_tty].get<bool>();
  }
  return std::nullopt;
}

CommandResult Attach(const GlobalOptions& global, const AttachOptions& options, int& exit_code) {
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  ASSIGN_OR_RETURN(v1::ContainerStatusResponse status,
                   GetContainerStatus(*client, options.id, /*verbose=*/true));
  const std::string& id = status.status().id();
  if (status.status().state() != v1::CONTAINER_RUNNING) {
    return absl::FailedPreconditionError(
        StrCat("container ", options.id, " is not running: nothing to attach to"));
  }
  // The request's tty must be the container's own; -t only says what to do locally.
  std::optional<bool> container_tty = ContainerTty(status);
  const bool tty = container_tty.value_or(options.tty);
  if (options.tty && !tty) {
    std::cerr << "Unable to use a TTY - container " << ShortId(id) << " did not allocate one\n";
  }
  v1::AttachRequest request;
  request.set_container_id(id);
  request.set_stdin(options.stdin);
  request.set_tty(tty);
  request.set_stdout(true);
  request.set_stderr(!tty);
  v1::AttachResponse response;
  grpc::ClientContext ctx;
  client->Prepare(ctx);
  grpc::Status s = client->runtime().Attach(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "Attach", *client);
  ASSIGN_OR_RETURN(SessionEnd end, RunSession(response.url(), options.stdin, tty,
                                              options.tty && tty, options.spdy));
  if (end.signal != 0) {
    // Leaving an attach is no failure: the container goes on.
    std::cerr << "Detached from container " << ShortId(id) << "\n";
    exit_code = 0;
    return absl::OkStatus();
  }
  exit_code = end.exit_code;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// port-forward

// A pod's full id from its id, unique id prefix or name (`berthctl run --name web`
// names its pod too).
absl::StatusOr<v1::PodSandboxStatus> GetPodStatus(Client& client, const std::string& id_or_name) {
  auto query = [&](const std::string& id, v1::PodSandboxStatusResponse* response) {
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    grpc::ClientContext ctx;
    client.Prepare(ctx);
    return client.runtime().PodSandboxStatus(&ctx, request, response);
  };
  v1::PodSandboxStatusResponse response;
  grpc::Status s = query(id_or_name, &response);
  if (s.error_code() == grpc::NOT_FOUND) {
    v1::ListPodSandboxRequest list;
    v1::ListPodSandboxResponse listed;
    grpc::ClientContext ctx;
    client.Prepare(ctx);
    if (client.runtime().ListPodSandbox(&ctx, list, &listed).ok()) {
      std::vector<std::string> named;
      for (const v1::PodSandbox& pod : listed.items()) {
        if (pod.metadata().name() == id_or_name) named.push_back(pod.id());
      }
      if (named.size() > 1) {
        return absl::FailedPreconditionError(
            StrCat(named.size(), " pods are named ", id_or_name, ": give an id"));
      }
      if (named.size() == 1) s = query(named[0], &response);
    }
  }
  if (!s.ok()) return RpcError(s, "PodSandboxStatus", client);
  return response.status();
}

// A socket listening on 127.0.0.1:port (0: one the kernel picks); the port it got.
absl::StatusOr<std::pair<UniqueFd, uint16_t>> ListenOnLoopback(uint16_t port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return ErrnoStatus(errno, StrCat("listen on 127.0.0.1:", port));
  }
  if (listen(fd.get(), SOMAXCONN) != 0) {
    return ErrnoStatus(errno, StrCat("listen on 127.0.0.1:", port));
  }
  socklen_t length = sizeof(address);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
  return std::make_pair(std::move(fd), ntohs(address.sin_port));
}

// One accepted connection: a fresh URL (each is good for one connection), then the relay.
absl::Status ForwardOne(Client& client, const std::string& pod_id, uint16_t remote_port,
                        UniqueFd conn, std::stop_token stop, bool spdy) {
  v1::PortForwardRequest request;
  request.set_pod_sandbox_id(pod_id);
  request.add_port(remote_port);
  v1::PortForwardResponse response;
  grpc::ClientContext ctx;
  client.Prepare(ctx);
  grpc::Status s = client.runtime().PortForward(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "PortForward", client);
  if (spdy) {
    return ForwardConnectionSpdy(response.url(), remote_port, std::move(conn), std::move(stop));
  }
  return ForwardConnection(response.url(), remote_port, std::move(conn), std::move(stop));
}

CommandResult PortForward(const GlobalOptions& global, const PortForwardOptions& options) {
  std::vector<PortMapping> mappings;
  for (const std::string& text : options.mappings) {
    ASSIGN_OR_RETURN(PortMapping mapping, ParsePortMapping(text));
    mappings.push_back(mapping);
  }
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  ASSIGN_OR_RETURN(v1::PodSandboxStatus pod, GetPodStatus(*client, options.pod));
  if (pod.state() != v1::SANDBOX_READY) {
    return absl::FailedPreconditionError(
        StrCat("pod ", options.pod, " is not ready: its network is gone"));
  }
  const std::string pod_id = pod.id();

  struct Listener {
    UniqueFd fd;
    PortMapping mapping;  // local: the port actually bound
  };
  std::vector<Listener> listeners;
  for (PortMapping mapping : mappings) {
    ASSIGN_OR_RETURN(auto bound, ListenOnLoopback(mapping.local));
    mapping.local = bound.second;
    listeners.push_back({std::move(bound.first), mapping});
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SignalPipe> interrupts,
                   SignalPipe::Catch({SIGINT, SIGTERM}, /*once=*/true));
  IgnoreSigpipe ignore_sigpipe;
  for (const Listener& listener : listeners) {
    std::cout << "Forwarding from 127.0.0.1:" << listener.mapping.local << " -> "
              << listener.mapping.remote << std::endl;  // flushed: scripts wait for it
  }

  std::mutex print_mu;  // connection threads report on their own
  struct Connection {
    std::shared_ptr<std::atomic<bool>> done;
    std::jthread thread;  // destroyed: asked to stop, then joined
  };
  std::list<Connection> connections;
  while (true) {
    std::vector<pollfd> fds;
    fds.push_back({interrupts->fd(), POLLIN, 0});
    for (const Listener& listener : listeners) fds.push_back({listener.fd.get(), POLLIN, 0});
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "poll");
    }
    if (fds[0].revents != 0) break;
    connections.remove_if([](const Connection& c) { return c.done->load(); });
    for (size_t i = 0; i < listeners.size(); ++i) {
      if (fds[i + 1].revents == 0) continue;
      UniqueFd conn(accept4(listeners[i].fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn.valid()) {
        // Out of fds: the listener stays readable, so wait instead of spinning.
        if (errno == EMFILE || errno == ENFILE) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        continue;  // else gone before we took it
      }
      const PortMapping mapping = listeners[i].mapping;
      {
        std::lock_guard lock(print_mu);
        std::cout << "Handling connection for " << mapping.local << std::endl;
      }
      auto done = std::make_shared<std::atomic<bool>>(false);
      connections.push_back(
          {done,
           std::jthread([&, mapping, done,
                         conn = std::make_shared<UniqueFd>(std::move(conn))](std::stop_token stop) {
             absl::Status forwarded =
                 ForwardOne(*client, pod_id, mapping.remote, std::move(*conn), stop, options.spdy);
             if (!forwarded.ok()) {
               std::lock_guard lock(print_mu);
               std::cerr << "berthctl: 127.0.0.1:" << mapping.local << " -> " << mapping.remote
                         << ": " << forwarded.message() << std::endl;
             }
             *done = true;
           })});
    }
  }
  // Open connections end with a WebSocket close, or a SPDY connection's, each (their
  // jthreads stop and join).
  connections.clear();
  return absl::OkStatus();
}

}  // namespace

void AddStreamCommands(CLI::App& app, const GlobalOptions& global) {
  auto exec = std::make_shared<ExecOptions>();
  CLI::App* exec_cmd = app.add_subcommand(
      "exec", "run a command in a running container and exit with its exit code");
  exec_cmd->add_option("id", exec->id, "container id (or unique prefix, or name)")->required();
  exec_cmd->add_option("command", exec->command, "the command and its arguments, after --")
      ->required();
  exec_cmd->add_flag("-i,--stdin", exec->stdin, "pass stdin to the command (streaming)");
  exec_cmd->add_flag("-t,--tty", exec->tty,
                     "run the command on a terminal (streaming; raw mode when stdin is one)");
  exec_cmd
      ->add_option("--timeout", exec->timeout_seconds,
                   "seconds before it is killed (0: none; not with -i or -t)")
      ->capture_default_str();
  exec_cmd->add_flag("--spdy", exec->spdy,
                     "stream over SPDY/3.1 (as kubectl and crictl) instead of WebSocket (with -i "
                     "or -t)");
  exec_cmd->callback([&global, exec] {
    int exit_code = 0;
    RunCommand([&] { return Exec(global, *exec, exit_code); });
    ExitWith(exit_code);
  });

  auto attach = std::make_shared<AttachOptions>();
  CLI::App* attach_cmd = app.add_subcommand(
      "attach",
      "attach to a running container's output (and stdin with -i) until it exits; Ctrl-C "
      "detaches and leaves it running (with -it, Ctrl-C goes to the container)");
  attach_cmd->add_option("id", attach->id, "container id (or unique prefix, or name)")->required();
  attach_cmd->add_flag("-i,--stdin", attach->stdin, "pass stdin to the container");
  attach_cmd->add_flag("-t,--tty", attach->tty,
                       "stdin is a terminal: raw mode and resizes (if the container has a tty)");
  attach_cmd->add_flag("--spdy", attach->spdy,
                       "stream over SPDY/3.1 (as kubectl and crictl) instead of WebSocket");
  attach_cmd->callback([&global, attach] {
    int exit_code = 0;
    RunCommand([&] { return Attach(global, *attach, exit_code); });
    ExitWith(exit_code);
  });

  auto forward = std::make_shared<PortForwardOptions>();
  CLI::App* forward_cmd = app.add_subcommand(
      "port-forward", "forward local ports on 127.0.0.1 to a pod's ports until interrupted");
  forward_cmd->add_option("pod", forward->pod, "pod sandbox id (or unique prefix, or name)")
      ->required();
  forward_cmd
      ->add_option("ports", forward->mappings,
                   "LOCAL:REMOTE, PORT (the same on both sides) or :REMOTE (any free local port)")
      ->required();
  forward_cmd->add_flag("--spdy", forward->spdy,
                        "forward over SPDY/3.1 (as kubectl and crictl) instead of WebSocket");
  forward_cmd->callback(
      [&global, forward] { RunCommand([&] { return PortForward(global, *forward); }); });
}

}  // namespace berth::cli
