// `berthctl exec | attach | port-forward` as typed, against a fake CRI runtime (a gRPC
// server on a unix socket whose Exec/Attach/PortForward return URLs on the in-test
// WebSocket server, ws_test_server.h, or with --spdy the SPDY one, spdy_test_server.h):
// the requests berthctl makes, the terminal it sets up on a pty, its exit codes and its
// signals. No berthd, no root.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "api/runtime/v1/api.grpc.pb.h"
#include "cli/spdy_test_server.h"
#include "cli/ws_test_server.h"
#include "runtime/base/unique_fd.h"
#include "server/streaming/remotecommand.h"
#include "server/streaming/ws_channel.h"

namespace berth::cli {
namespace {

namespace v1 = ::runtime::v1;
namespace ws = ::berth::streaming::ws;
namespace remotecommand = ::berth::streaming::remotecommand;
namespace spdy = ::berth::streaming::spdy;
using spdytest::SpdySession;
using spdytest::SpdyTestServer;
using wstest::ServerSession;
using wstest::TestServer;

constexpr char kContainerId[] = "c0ffee0000000000000000000000000000000000000000000000000000000001";
constexpr char kPodId[] = "beef000000000000000000000000000000000000000000000000000000000002";

// Just enough of a CRI runtime: one running container named "web" in one ready pod
// named "webpod"; streaming calls answer with URLs on `stream_base`.
class FakeRuntime final : public v1::RuntimeService::Service {
 public:
  std::string stream_base;  // "http://127.0.0.1:PORT"
  bool container_tty = false;

  grpc::Status ContainerStatus(grpc::ServerContext*, const v1::ContainerStatusRequest* request,
                               v1::ContainerStatusResponse* response) override {
    if (request->container_id() != kContainerId) {
      return grpc::Status(grpc::NOT_FOUND, "no such container");
    }
    response->mutable_status()->set_id(kContainerId);
    response->mutable_status()->set_state(v1::CONTAINER_RUNNING);
    if (request->verbose()) {
      (*response->mutable_info())["info"] =
          std::string(R"({"runtimeSpec":{"process":{"terminal":)") +
          (container_tty ? "true" : "false") + "}}}";
    }
    return grpc::Status::OK;
  }
  grpc::Status ListContainers(grpc::ServerContext*, const v1::ListContainersRequest*,
                              v1::ListContainersResponse* response) override {
    v1::Container* c = response->add_containers();
    c->set_id(kContainerId);
    c->mutable_metadata()->set_name("web");
    return grpc::Status::OK;
  }
  grpc::Status ExecSync(grpc::ServerContext*, const v1::ExecSyncRequest* request,
                        v1::ExecSyncResponse* response) override {
    std::lock_guard lock(mu_);
    exec_syncs_.push_back(*request);
    response->set_stdout("sync out\n");
    response->set_stderr("sync err\n");
    response->set_exit_code(4);
    return grpc::Status::OK;
  }
  grpc::Status Exec(grpc::ServerContext*, const v1::ExecRequest* request,
                    v1::ExecResponse* response) override {
    std::lock_guard lock(mu_);
    execs_.push_back(*request);
    response->set_url(stream_base + "/exec/token" + std::to_string(++tokens_));
    return grpc::Status::OK;
  }
  grpc::Status Attach(grpc::ServerContext*, const v1::AttachRequest* request,
                      v1::AttachResponse* response) override {
    std::lock_guard lock(mu_);
    attaches_.push_back(*request);
    response->set_url(stream_base + "/attach/token" + std::to_string(++tokens_));
    return grpc::Status::OK;
  }
  grpc::Status PodSandboxStatus(grpc::ServerContext*, const v1::PodSandboxStatusRequest* request,
                                v1::PodSandboxStatusResponse* response) override {
    if (request->pod_sandbox_id() != kPodId) return grpc::Status(grpc::NOT_FOUND, "no such pod");
    response->mutable_status()->set_id(kPodId);
    response->mutable_status()->set_state(v1::SANDBOX_READY);
    return grpc::Status::OK;
  }
  grpc::Status ListPodSandbox(grpc::ServerContext*, const v1::ListPodSandboxRequest*,
                              v1::ListPodSandboxResponse* response) override {
    v1::PodSandbox* pod = response->add_items();
    pod->set_id(kPodId);
    pod->mutable_metadata()->set_name("webpod");
    return grpc::Status::OK;
  }
  grpc::Status PortForward(grpc::ServerContext*, const v1::PortForwardRequest* request,
                           v1::PortForwardResponse* response) override {
    std::lock_guard lock(mu_);
    forwards_.push_back(*request);
    response->set_url(stream_base + "/portforward/token" + std::to_string(++tokens_));
    return grpc::Status::OK;
  }

  std::vector<v1::ExecSyncRequest> exec_syncs() {
    std::lock_guard lock(mu_);
    return exec_syncs_;
  }
  std::vector<v1::ExecRequest> execs() {
    std::lock_guard lock(mu_);
    return execs_;
  }
  std::vector<v1::AttachRequest> attaches() {
    std::lock_guard lock(mu_);
    return attaches_;
  }
  std::vector<v1::PortForwardRequest> forwards() {
    std::lock_guard lock(mu_);
    return forwards_;
  }

 private:
  std::mutex mu_;
  int tokens_ = 0;
  std::vector<v1::ExecSyncRequest> exec_syncs_;
  std::vector<v1::ExecRequest> execs_;
  std::vector<v1::AttachRequest> attaches_;
  std::vector<v1::PortForwardRequest> forwards_;
};

std::string BerthctlPath() {
  return std::string(std::getenv("TEST_SRCDIR")) + "/" + std::getenv("TEST_WORKSPACE") +
         "/cli/berthctl";
}

// Reads what is there now from a non-blocking fd.
void Drain(int fd, std::string& out) {
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
}

// A berthctl child. Its stdin and stdout are pipes, or with a pty its controlling
// terminal (it leads a session of its own, as a shell's foreground job would);
// stderr is always a pipe.
class Berthctl {
 public:
  Berthctl(const std::string& socket, std::vector<std::string> args, bool pty = false) {
    int in[2], out[2], err[2];
    EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
    if (pty) {
      winsize size{.ws_row = 30, .ws_col = 100};
      int master, slave;
      EXPECT_EQ(openpty(&master, &slave, nullptr, nullptr, &size), 0);
      fcntl(master, F_SETFD, FD_CLOEXEC);
      fcntl(slave, F_SETFD, FD_CLOEXEC);
      master_.reset(master);
      slave_.reset(slave);
      in[0] = out[1] = slave;
      in[1] = out[0] = -1;
    } else {
      EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
      EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    }
    args.insert(args.begin(), {BerthctlPath(), "-r", "unix://" + socket});
    pid_ = fork();
    if (pid_ == 0) {
      setsid();
      if (pty) ioctl(slave_.get(), TIOCSCTTY, 0);
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    err_.reset(err[0]);
    close(err[1]);
    if (!pty) {
      close(in[0]);
      close(out[1]);
      stdin_.reset(in[1]);
      stdout_.reset(out[0]);
    }
    fcntl(output_fd(), F_SETFL, O_NONBLOCK);
    fcntl(err_.get(), F_SETFL, O_NONBLOCK);
  }
  ~Berthctl() {
    if (pid_ > 0 && !exit_code_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  int input_fd() const { return master_.valid() ? master_.get() : stdin_.get(); }
  int output_fd() const { return master_.valid() ? master_.get() : stdout_.get(); }
  int slave_fd() const { return slave_.get(); }
  void CloseStdin() { stdin_.reset(); }
  void Signal(int signal) { kill(pid_, signal); }

  // Collects output until `done(out)` holds; false after 20 s.
  bool WaitForOutput(const std::function<bool(const std::string&)>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done(out_)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      pollfd pfd{output_fd(), POLLIN, 0};
      poll(&pfd, 1, 50);
      Drain(output_fd(), out_);
    }
    return true;
  }

  // The exit code (-1 for a signal); nullopt if still running after 20 s.
  std::optional<int> Wait() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!exit_code_ && std::chrono::steady_clock::now() < deadline) {
      Drain(output_fd(), out_);
      Drain(err_.get(), err_text_);
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Drain(output_fd(), out_);
    Drain(err_.get(), err_text_);
    return exit_code_;
  }

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_text_; }

 private:
  pid_t pid_ = -1;
  UniqueFd master_, slave_, stdin_, stdout_, err_;
  std::optional<int> exit_code_;
  std::string out_, err_text_;
};

class StreamCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A berthctl that died early must fail the test, not kill it with SIGPIPE.
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/berthctl-stream-XXXXXX";  // short: a socket path has 108 bytes
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/cri.sock";
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix://" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(&runtime_);
    grpc_server_ = builder.BuildAndStart();
    ASSERT_NE(grpc_server_, nullptr);
  }
  void TearDown() override {
    grpc_server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  // The WebSocket server for this test; streaming URLs point at it.
  void Serve(std::function<void(ServerSession&)> handler, int connections = 1) {
    ws_server_.emplace(std::move(handler), connections);
    runtime_.stream_base = ws_server_->Url("");
  }
  // The same, for --spdy.
  void ServeSpdy(std::function<void(SpdySession&)> handler, int connections = 1) {
    spdy_server_.emplace(std::move(handler), connections);
    runtime_.stream_base = spdy_server_->Url("");
  }

  std::string dir_;
  std::string socket_;
  FakeRuntime runtime_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::optional<TestServer> ws_server_;
  std::optional<SpdyTestServer> spdy_server_;
};

TEST_F(StreamCommandsTest, PlainExecStaysOnExecSync) {
  Berthctl berthctl(socket_, {"exec", "web", "--", "ls", "/"});
  EXPECT_EQ(berthctl.Wait(), 4);
  EXPECT_EQ(berthctl.out(), "sync out\n");
  EXPECT_EQ(berthctl.err(), "sync err\n");
  ASSERT_EQ(runtime_.exec_syncs().size(), 1u);
  EXPECT_EQ(runtime_.exec_syncs()[0].container_id(), kContainerId);
  EXPECT_TRUE(runtime_.execs().empty());
}

TEST_F(StreamCommandsTest, ExecWithStdinStreams) {
  Serve([](ServerSession& session) {
    EXPECT_EQ(session.target(), "/exec/token1");
    session.Accept(ws::Purpose::kRemoteCommand);
    while (std::optional<ws::Message> message = session.Read()) {
      if (message->kind == ws::Message::Kind::kClose) break;
      session.Send(ws::kStdoutChannel, message->data);
      session.Send(ws::kStderrChannel, "seen " + std::to_string(message->data.size()) + "\n");
    }
    session.Send(ws::kErrorChannel, remotecommand::NonZeroExitStatusJson(3, {"cat"}));
    session.Close();
  });
  Berthctl berthctl(socket_, {"exec", "-i", "web", "--", "cat"});
  ASSERT_EQ(write(berthctl.input_fd(), "hi there", 8), 8);
  berthctl.CloseStdin();
  EXPECT_EQ(berthctl.Wait(), 3) << berthctl.err();
  EXPECT_EQ(berthctl.out(), "hi there");
  EXPECT_EQ(berthctl.err(), "seen 8\n");
  ASSERT_EQ(runtime_.execs().size(), 1u);
  const v1::ExecRequest request = runtime_.execs()[0];
  EXPECT_EQ(request.container_id(), kContainerId);
  EXPECT_EQ(request.cmd_size(), 1);
  EXPECT_TRUE(request.stdin());
  EXPECT_FALSE(request.tty());
  EXPECT_TRUE(request.stdout());
  EXPECT_TRUE(request.stderr());
  EXPECT_TRUE(runtime_.exec_syncs().empty());
}

TEST_F(StreamCommandsTest, ExecTtyOnATerminal) {
  std::promise<void> raw_on, output_sent;
  std::future<void> raw_on_seen = raw_on.get_future(), output_seen = output_sent.get_future();
  std::vector<remotecommand::TerminalSize> sizes;
  Serve([&](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand);
    remotecommand::TerminalSizeDecoder decoder;
    std::string input;
    while (std::optional<ws::Message> message = session.Read()) {
      if (message->channel == ws::kResizeChannel) {
        absl::StatusOr<std::vector<remotecommand::TerminalSize>> decoded =
            decoder.Feed(message->data);
        ASSERT_TRUE(decoded.ok()) << decoded.status();
        sizes.insert(sizes.end(), decoded->begin(), decoded->end());
        // The first size comes once the terminal is raw.
        if (sizes.size() == 1) raw_on.set_value();
        if (sizes.size() == 2) break;
      } else if (message->channel == ws::kStdinChannel) {
        input += message->data;
        if (input == "abc") {
          session.Send(ws::kStdoutChannel, "got:" + input + "\r\n");
          output_sent.set_value();
        }
      }
    }
    session.Send(ws::kErrorChannel, remotecommand::NonZeroExitStatusJson(5, {"sh"}));
    session.Close();
  });
  Berthctl berthctl(socket_, {"exec", "-it", "web", "--", "sh"}, /*pty=*/true);
  ASSERT_EQ(raw_on_seen.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  // No newline: a raw terminal hands keys over one by one.
  ASSERT_EQ(write(berthctl.input_fd(), "abc", 3), 3);
  ASSERT_EQ(output_seen.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_TRUE(berthctl.WaitForOutput(
      [](const std::string& out) { return out.find("got:abc") != std::string::npos; }));
  // The window grows: SIGWINCH, and a resize message.
  winsize bigger{.ws_row = 40, .ws_col = 120};
  ASSERT_EQ(ioctl(berthctl.input_fd(), TIOCSWINSZ, &bigger), 0);
  EXPECT_EQ(berthctl.Wait(), 5) << berthctl.err();
  // Raw: no local echo of "abc", and "\r\n" went out as it came.
  EXPECT_EQ(berthctl.out(), "got:abc\r\n");
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], (remotecommand::TerminalSize{100, 30}));
  EXPECT_EQ(sizes[1], (remotecommand::TerminalSize{120, 40}));
  // And the terminal is back as it was.
  termios after{};
  ASSERT_EQ(tcgetattr(berthctl.slave_fd(), &after), 0);
  EXPECT_NE(after.c_lflag & ICANON, 0u);
  EXPECT_NE(after.c_lflag & ECHO, 0u);
  ASSERT_EQ(runtime_.execs().size(), 1u);
  EXPECT_TRUE(runtime_.execs()[0].tty());
  EXPECT_TRUE(runtime_.execs()[0].stdin());
  EXPECT_FALSE(runtime_.execs()[0].stderr());
}

TEST_F(StreamCommandsTest, ExecTimeoutIsForExecSyncOnly) {
  Berthctl berthctl(socket_, {"exec", "-t", "--timeout", "5", "web", "--", "sh"});
  EXPECT_EQ(berthctl.Wait(), 1);
  EXPECT_NE(berthctl.err().find("--timeout works without -i and -t only"), std::string::npos)
      << berthctl.err();
}

TEST_F(StreamCommandsTest, AttachThenCtrlCDetaches) {
  std::promise<void> attached;
  std::future<void> attached_seen = attached.get_future();
  Serve([&](ServerSession& session) {
    EXPECT_EQ(session.target(), "/attach/token1");
    session.Accept(ws::Purpose::kRemoteCommand);
    session.Send(ws::kStdoutChannel, "log line\n");
    attached.set_value();
    while (std::optional<ws::Message> message = session.Read()) {
    }
    EXPECT_TRUE(session.closed_cleanly());
  });
  Berthctl berthctl(socket_, {"attach", "-i", kContainerId});
  ASSERT_EQ(attached_seen.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_TRUE(berthctl.WaitForOutput([](const std::string& out) { return !out.empty(); }));
  berthctl.Signal(SIGINT);
  EXPECT_EQ(berthctl.Wait(), 0) << berthctl.err();
  EXPECT_EQ(berthctl.out(), "log line\n");
  EXPECT_NE(berthctl.err().find("Detached from container c0ffee0000000"), std::string::npos)
      << berthctl.err();
  ASSERT_EQ(runtime_.attaches().size(), 1u);
  const v1::AttachRequest request = runtime_.attaches()[0];
  EXPECT_TRUE(request.stdin());
  EXPECT_FALSE(request.tty());  // the container's own setting
  EXPECT_TRUE(request.stdout());
  EXPECT_TRUE(request.stderr());
}

TEST_F(StreamCommandsTest, AttachTakesTheContainersTty) {
  runtime_.container_tty = true;
  Serve([&](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand);
    session.Send(ws::kStdoutChannel, "$ ");
    session.Send(ws::kErrorChannel, remotecommand::SuccessStatusJson());
    session.Close();
  });
  Berthctl berthctl(socket_, {"attach", "web"});
  EXPECT_EQ(berthctl.Wait(), 0) << berthctl.err();
  EXPECT_EQ(berthctl.out(), "$ ");
  ASSERT_EQ(runtime_.attaches().size(), 1u);
  EXPECT_TRUE(runtime_.attaches()[0].tty());
  EXPECT_FALSE(runtime_.attaches()[0].stdin());
  EXPECT_FALSE(runtime_.attaches()[0].stderr());
}

// A connection to 127.0.0.1:port.
UniqueFd Connect(uint16_t port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

std::string ReadToEnd(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  return out;
}

TEST_F(StreamCommandsTest, PortForwardRelaysEachConnectionOnAFreshUrl) {
  Serve(
      [](ServerSession& session) {
        std::smatch match;
        std::string target = session.target();
        ASSERT_TRUE(
            std::regex_match(target, match, std::regex(R"(/portforward/token\d+\?port=(\d+))")))
            << target;
        const auto port = static_cast<uint16_t>(std::stoi(match[1]));
        session.Accept(ws::Purpose::kPortForward);
        session.Send(0, ws::EncodePortPrefix(port));
        session.Send(1, ws::EncodePortPrefix(port));
        while (std::optional<ws::Message> message = session.Read()) {
          session.Send(0, std::to_string(port) + ":" + message->data);
        }
      },
      /*connections=*/2);
  Berthctl berthctl(socket_, {"port-forward", "webpod", ":80", ":8080"});
  std::smatch match;
  std::regex forwarding(
      R"(Forwarding from 127\.0\.0\.1:(\d+) -> 80\nForwarding from 127\.0\.0\.1:(\d+) -> 8080\n)");
  ASSERT_TRUE(berthctl.WaitForOutput([&](const std::string& out) {
    return std::regex_search(out, match, forwarding);
  })) << berthctl.out()
      << berthctl.err();
  const auto local80 = static_cast<uint16_t>(std::stoi(match[1]));
  const auto local8080 = static_cast<uint16_t>(std::stoi(match[2]));

  for (auto [local, remote] : {std::pair{local80, 80}, std::pair{local8080, 8080}}) {
    UniqueFd conn = Connect(local);
    ASSERT_EQ(write(conn.get(), "ping", 4), 4);
    std::string expected = std::to_string(remote) + ":ping";
    std::string got(expected.size(), '\0');
    ASSERT_EQ(read(conn.get(), got.data(), got.size()), static_cast<ssize_t>(got.size()));
    EXPECT_EQ(got, expected);
    shutdown(conn.get(), SHUT_WR);
    EXPECT_EQ(ReadToEnd(conn.get()), "");  // the end travels both ways
  }
  berthctl.Signal(SIGINT);
  EXPECT_EQ(berthctl.Wait(), 0) << berthctl.err();
  EXPECT_NE(berthctl.out().find("Handling connection for " + std::to_string(local80)),
            std::string::npos);
  ASSERT_EQ(runtime_.forwards().size(), 2u);
  EXPECT_EQ(runtime_.forwards()[0].pod_sandbox_id(), kPodId);
  EXPECT_EQ(runtime_.forwards()[0].port_size(), 1);
  EXPECT_EQ(runtime_.forwards()[0].port(0), 80);
  EXPECT_EQ(runtime_.forwards()[1].port(0), 8080);
}

// --- The same over SPDY/3.1 (--spdy).

std::string StreamType(const std::optional<spdy::SynStream>& syn) {
  if (!syn) return "<none>";
  return std::string(syn->headers.Get("streamtype").value_or("<no streamtype>"));
}

TEST_F(StreamCommandsTest, ExecWithStdinOverSpdy) {
  ServeSpdy([](SpdySession& session) {
    EXPECT_EQ(session.target(), "/exec/token1");
    EXPECT_TRUE(session.HasHeaderLine("Upgrade: SPDY/3.1")) << session.head();
    session.Accept("v4.channel.k8s.io");
    std::optional<spdy::SynStream> error = session.AcceptStream();
    std::optional<spdy::SynStream> in = session.AcceptStream();
    std::optional<spdy::SynStream> out = session.AcceptStream();
    std::optional<spdy::SynStream> err = session.AcceptStream();
    ASSERT_EQ(StreamType(error), "error");
    ASSERT_EQ(StreamType(in), "stdin");
    ASSERT_EQ(StreamType(out), "stdout");
    ASSERT_EQ(StreamType(err), "stderr");
    while (true) {
      std::optional<spdy::ReceivedFrame> frame = session.Next();
      ASSERT_TRUE(frame.has_value());
      auto* data = std::get_if<spdy::Data>(&*frame);
      ASSERT_NE(data, nullptr);
      ASSERT_EQ(data->stream_id, in->stream_id);
      if (!data->data.empty()) {
        session.Send(out->stream_id, data->data);
        session.Send(err->stream_id, "seen " + std::to_string(data->data.size()) + "\n");
      }
      if (data->fin) break;  // stdin's EOF
    }
    session.Send(error->stream_id, remotecommand::NonZeroExitStatusJson(3, {"cat"}));
    for (uint32_t id : {out->stream_id, err->stream_id, error->stream_id}) session.Finish(id);
    EXPECT_FALSE(session.Next().has_value());
  });
  Berthctl berthctl(socket_, {"exec", "--spdy", "-i", "web", "--", "cat"});
  ASSERT_EQ(write(berthctl.input_fd(), "hi there", 8), 8);
  berthctl.CloseStdin();
  EXPECT_EQ(berthctl.Wait(), 3) << berthctl.err();
  EXPECT_EQ(berthctl.out(), "hi there");
  EXPECT_EQ(berthctl.err(), "seen 8\n");
  ASSERT_EQ(runtime_.execs().size(), 1u);
  EXPECT_TRUE(runtime_.execs()[0].stdin());
  EXPECT_FALSE(runtime_.execs()[0].tty());
  EXPECT_TRUE(runtime_.execs()[0].stderr());
}

TEST_F(StreamCommandsTest, ExecTtyOverSpdyOnATerminal) {
  std::promise<void> raw_on, output_sent;
  std::future<void> raw_on_seen = raw_on.get_future(), output_seen = output_sent.get_future();
  std::vector<remotecommand::TerminalSize> sizes;
  ServeSpdy([&](SpdySession& session) {
    session.Accept("v4.channel.k8s.io");
    std::optional<spdy::SynStream> error = session.AcceptStream();
    std::optional<spdy::SynStream> in = session.AcceptStream();
    std::optional<spdy::SynStream> out = session.AcceptStream();
    std::optional<spdy::SynStream> resize = session.AcceptStream();
    ASSERT_EQ(StreamType(error), "error");
    ASSERT_EQ(StreamType(in), "stdin");
    ASSERT_EQ(StreamType(out), "stdout");
    ASSERT_EQ(StreamType(resize), "resize");  // a tty: no stderr
    remotecommand::TerminalSizeDecoder decoder;
    std::string input;
    while (sizes.size() < 2) {
      std::optional<spdy::ReceivedFrame> frame = session.Next();
      ASSERT_TRUE(frame.has_value());
      auto* data = std::get_if<spdy::Data>(&*frame);
      ASSERT_NE(data, nullptr);
      if (data->stream_id == resize->stream_id) {
        absl::StatusOr<std::vector<remotecommand::TerminalSize>> decoded = decoder.Feed(data->data);
        ASSERT_TRUE(decoded.ok()) << decoded.status();
        sizes.insert(sizes.end(), decoded->begin(), decoded->end());
        if (sizes.size() == 1) raw_on.set_value();
      } else if (data->stream_id == in->stream_id) {
        input += data->data;
        if (input == "abc") {
          session.Send(out->stream_id, "got:" + input + "\r\n");
          output_sent.set_value();
        }
      }
    }
    session.Send(error->stream_id, remotecommand::NonZeroExitStatusJson(5, {"sh"}));
    for (uint32_t id : {out->stream_id, error->stream_id}) session.Finish(id);
    EXPECT_FALSE(session.Next().has_value());
  });
  Berthctl berthctl(socket_, {"exec", "--spdy", "-it", "web", "--", "sh"}, /*pty=*/true);
  ASSERT_EQ(raw_on_seen.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_EQ(write(berthctl.input_fd(), "abc", 3), 3);
  ASSERT_EQ(output_seen.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_TRUE(berthctl.WaitForOutput(
      [](const std::string& out) { return out.find("got:abc") != std::string::npos; }));
  winsize bigger{.ws_row = 40, .ws_col = 120};
  ASSERT_EQ(ioctl(berthctl.input_fd(), TIOCSWINSZ, &bigger), 0);
  EXPECT_EQ(berthctl.Wait(), 5) << berthctl.err();
  EXPECT_EQ(berthctl.out(), "got:abc\r\n");  // raw: no local echo
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], (remotecommand::TerminalSize{100, 30}));
  EXPECT_EQ(sizes[1], (remotecommand::TerminalSize{120, 40}));
  termios after{};
  ASSERT_EQ(tcgetattr(berthctl.slave_fd(), &after), 0);
  EXPECT_NE(after.c_lflag & ICANON, 0u);
  EXPECT_NE(after.c_lflag & ECHO, 0u);
}

TEST_F(StreamCommandsTest, SpdyNeedsAStream) {
  Berthctl berthctl(socket_, {"exec", "--spdy", "web", "--", "ls"});
  EXPECT_EQ(berthctl.Wait(), 1);
  EXPECT_NE(berthctl.err().find("--spdy works with -i or -t only"), std::string::npos)
      << berthctl.err();
  EXPECT_TRUE(runtime_.exec_syncs().empty());
}

TEST_F(StreamCommandsTest, AttachOverSpdyThenCtrlCDetaches) {
  std::promise<void> attached;
  std::future<void> attached_seen = attached.get_future();
  ServeSpdy([&](SpdySession& session) {
    EXPECT_EQ(session.target(), "/attach/token1");
    session.Accept("v4.channel.k8s.io");
    std::optional<spdy::SynStream> error = session.AcceptStream();
    std::optional<spdy::SynStream> out = session.AcceptStream();
    std::optional<spdy::SynStream> err = session.AcceptStream();
    ASSERT_EQ(StreamType(out), "stdout");
    ASSERT_EQ(StreamType(err), "stderr");
    session.Send(out->stream_id, "log line\n");
    attached.set_value();
    EXPECT_FALSE(session.Next().has_value());  // the client leaves
    EXPECT_TRUE(session.closed());
  });
  Berthctl berthctl(socket_, {"attach", "--spdy", kContainerId});
  ASSERT_EQ(attached_seen.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_TRUE(berthctl.WaitForOutput([](const std::string& out) { return !out.empty(); }));
  berthctl.Signal(SIGINT);
  EXPECT_EQ(berthctl.Wait(), 0) << berthctl.err();
  EXPECT_EQ(berthctl.out(), "log line\n");
  EXPECT_NE(berthctl.err().find("Detached from container c0ffee0000000"), std::string::npos)
      << berthctl.err();
  ASSERT_EQ(runtime_.attaches().size(), 1u);
  EXPECT_FALSE(runtime_.attaches()[0].stdin());
}

TEST_F(StreamCommandsTest, PortForwardOverSpdyTakesAFreshUrlPerConnection) {
  ServeSpdy(
      [](SpdySession& session) {
        EXPECT_TRUE(std::regex_match(session.target(), std::regex(R"(/portforward/token\d+)")))
            << session.target();
        session.Accept("portforward.k8s.io");
        std::optional<spdy::SynStream> error = session.AcceptStream();
        ASSERT_EQ(StreamType(error), "error");
        const std::string port(error->headers.Get("port").value_or(""));
        uint32_t data_id = 0;
        while (true) {
          std::optional<spdy::ReceivedFrame> frame = session.Next();
          ASSERT_TRUE(frame.has_value());
          if (auto* syn = std::get_if<spdy::SynStream>(&*frame)) {
            EXPECT_EQ(StreamType(*syn), "data");
            EXPECT_EQ(syn->headers.Get("port"), port);
            data_id = syn->stream_id;
            session.Write(spdy::SynReply{.stream_id = data_id});
          } else if (auto* data = std::get_if<spdy::Data>(&*frame)) {
            if (data->stream_id != data_id || data_id == 0) continue;  // the error stream's FIN
            if (!data->data.empty()) session.Send(data_id, port + ":" + data->data);
            if (data->fin) break;
          }
        }
        session.Finish(data_id);
        session.Finish(error->stream_id);
        EXPECT_FALSE(session.Next().has_value());
      },
      /*connections=*/2);
  Berthctl berthctl(socket_, {"port-forward", "--spdy", "webpod", ":80"});
  std::smatch match;
  std::regex forwarding(R"(Forwarding from 127\.0\.0\.1:(\d+) -> 80\n)");
  ASSERT_TRUE(berthctl.WaitForOutput([&](const std::string& out) {
    return std::regex_search(out, match, forwarding);
  })) << berthctl.out()
      << berthctl.err();
  const auto local = static_cast<uint16_t>(std::stoi(match[1]));
  for (int i = 0; i < 2; ++i) {
    UniqueFd conn = Connect(local);
    ASSERT_EQ(write(conn.get(), "ping", 4), 4);
    std::string got(7, '\0');
    ASSERT_EQ(read(conn.get(), got.data(), got.size()), 7);
    EXPECT_EQ(got, "80:ping");
    shutdown(conn.get(), SHUT_WR);
    EXPECT_EQ(ReadToEnd(conn.get()), "");
  }
  berthctl.Signal(SIGINT);
  EXPECT_EQ(berthctl.Wait(), 0) << berthctl.err();
  EXPECT_EQ(berthctl.err(), "");
  ASSERT_EQ(runtime_.forwards().size(), 2u);
  EXPECT_EQ(runtime_.forwards()[1].port(0), 80);
}

TEST_F(StreamCommandsTest, PortForwardToAnUnknownPod) {
  Berthctl berthctl(socket_, {"port-forward", "nosuchpod", "8080:80"});
  EXPECT_EQ(berthctl.Wait(), 1);
  EXPECT_NE(berthctl.err().find("PodSandboxStatus"), std::string::npos) << berthctl.err();
}

}  // namespace
}  // namespace berth::cli
