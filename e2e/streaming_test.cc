// Exec, Attach and PortForward through berth's streaming server, as client-go speaks to it
// (SPDY/3.1, server/streaming/spdy_test_client.h) and as newer clients do (WebSocket v5): output and exit
// codes, stdin, a tty with resize, attach and detach, port-forward into a pod's own
// loopback, one-time expiring tokens, a client that vanishes mid-command, and 200 exec
// sessions that leave no descriptor or process behind.
#include <dirent.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "e2e/berthd_fixture.h"
#include "e2e/busybox_node.h"
#include "server/streaming/spdy_test_client.h"
#include "gtest/gtest.h"
#include "server/streaming/remotecommand.h"
#include "server/streaming/ws_channel.h"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;
using streaming::remotecommand::ExitCodeFromStatusJson;

const std::vector<std::string> kV4 = {"v4.channel.k8s.io", "v3.channel.k8s.io"};

int CountFds(pid_t pid) {
  int n = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    (void)entry;
    ++n;
  }
  return n;
}

// Processes whose command line contains `needle` (and `also`, when given: other tests
// may run their own execs at the same time, under their own directories).
int CountProcesses(const std::string& needle, const std::string& also = "") {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(needle) != std::string::npos &&
        (also.empty() || cmdline.find(also) != std::string::npos)) {
      ++n;
    }
  }
  return n;
}

class StreamingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: containers run through runc";
    // Short-lived tokens, so that expiry can be seen in a test.
    absl::StatusOr<BusyboxNode> node = StartBusyboxNode("[streaming]\ntoken_ttl_seconds = 3\n");
    ASSERT_TRUE(node.ok()) << node.status();
    registry_ = std::move(node->registry);
    berthd_ = std::move(node->berthd);

    v1::PodSandboxConfig config;
    config.mutable_metadata()->set_name("stream-pod");
    config.mutable_metadata()->set_uid("stream-uid");
    config.mutable_metadata()->set_namespace_("default");
    config.set_hostname("stream-pod");
    config.set_log_directory(berthd_->dir() + "/logs");
    config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        v1::CONTAINER);
    pod_config_ = config;
    grpc::ClientContext ctx;
    v1::RunPodSandboxRequest run;
    *run.mutable_config() = config;
    v1::RunPodSandboxResponse ran;
    grpc::Status s = berthd_->runtime().RunPodSandbox(&ctx, run, &ran);
    ASSERT_TRUE(s.ok()) << s.error_message();
    pod_ = ran.pod_sandbox_id();
  }

  void TearDown() override {
    if (berthd_ == nullptr || pod_.empty()) return;
    grpc::ClientContext ctx;
    v1::RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(pod_);
    v1::RemovePodSandboxResponse response;
    grpc::Status s = berthd_->runtime().RemovePodSandbox(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(LeakCensus(berthd_->dir()), std::vector<std::string>{});
  }

  std::string Run(const std::string& name, const std::vector<std::string>& command,
                  bool stdin = false, bool tty = false) {
    grpc::ClientContext ctx;
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(pod_);
    *request.mutable_sandbox_config() = pod_config_;
    v1::ContainerConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(name);
    config->mutable_image()->set_image("busybox:1.36");
    for (const std::string& arg : command) config->add_command(arg);
    config->set_log_path(name + ".log");
    config->set_stdin(stdin);
    config->set_tty(tty);
    config->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        v1::CONTAINER);
    v1::CreateContainerResponse created;
    grpc::Status s = berthd_->runtime().CreateContainer(&ctx, request, &created);
    EXPECT_TRUE(s.ok()) << s.error_message();
    grpc::ClientContext start_ctx;
    v1::StartContainerRequest start;
    start.set_container_id(created.container_id());
    v1::StartContainerResponse started;
    s = berthd_->runtime().StartContainer(&start_ctx, start, &started);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return created.container_id();
  }

  absl::StatusOr<std::string> ExecUrl(const std::string& id, const std::vector<std::string>& cmd,
                                      bool in, bool out, bool err, bool tty) {
    grpc::ClientContext ctx;
    v1::ExecRequest request;
    request.set_container_id(id);
    for (const std::string& arg : cmd) request.add_cmd(arg);
    request.set_stdin(in);
    request.set_stdout(out);
    request.set_stderr(err);
    request.set_tty(tty);
    v1::ExecResponse response;
    grpc::Status s = berthd_->runtime().Exec(&ctx, request, &response);
    if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    return response.url();
  }

  v1::ContainerState State(const std::string& id) {
    grpc::ClientContext ctx;
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    v1::ContainerStatusResponse response;
    EXPECT_TRUE(berthd_->runtime().ContainerStatus(&ctx, request, &response).ok());
    return response.status().state();
  }

  struct Outcome {
    std::string out, err;
    int exit_code = -1;
  };
  // Runs an exec over SPDY as client-go does: error, stdout, stderr streams.
  Outcome ExecSpdy(const std::string& id, const std::vector<std::string>& cmd) {
    Outcome outcome;
    absl::StatusOr<std::string> url = ExecUrl(id, cmd, false, true, true, false);
    EXPECT_TRUE(url.ok()) << url.status();
    if (!url.ok()) return outcome;
    absl::StatusOr<std::unique_ptr<SpdyClient>> client = SpdyClient::Connect(*url, kV4);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return outcome;
    SpdyClient& c = **client;
    EXPECT_EQ(c.negotiated, "v4.channel.k8s.io");
    uint32_t error = *c.Open({{"streamtype", "error"}});
    uint32_t out = *c.Open({{"streamtype", "stdout"}});
    uint32_t err = *c.Open({{"streamtype", "stderr"}});
    absl::Status read = c.ReadUntilFinished({error, out, err}, absl::Seconds(60));
    EXPECT_TRUE(read.ok()) << read;
    outcome.out = c.data[out];
    outcome.err = c.data[err];
    absl::StatusOr<int> code = ExitCodeFromStatusJson(c.data[error]);
    EXPECT_TRUE(code.ok()) << code.status() << " in " << c.data[error];
    outcome.exit_code = code.value_or(-1);
    return outcome;
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<BerthdFixture> berthd_;
  v1::PodSandboxConfig pod_config_;
  std::string pod_;
};

TEST_F(StreamingTest, ExecOutputAndExitCodes) {
  std::string id = Run("sleeper", {"sleep", "3600"});
  Outcome hello = ExecSpdy(id, {"echo", "hello"});
  EXPECT_EQ(hello.out, "hello\n");
  EXPECT_EQ(hello.err, "");
  EXPECT_EQ(hello.exit_code, 0);

  Outcome failing = ExecSpdy(id, {"sh", "-c", "echo to-out; echo to-err >&2; exit 7"});
  EXPECT_EQ(failing.out, "to-out\n");
  EXPECT_EQ(failing.err, "to-err\n");
  EXPECT_EQ(failing.exit_code, 7);

  // A command that does not exist: the error stream says why, as a failure.
  absl::StatusOr<std::string> url = ExecUrl(id, {"/no/such/binary"}, false, true, true, false);
  ASSERT_TRUE(url.ok()) << url.status();
  auto client = SpdyClient::Connect(*url, kV4);
  ASSERT_TRUE(client.ok()) << client.status();
  uint32_t error = *(*client)->Open({{"streamtype", "error"}});
  uint32_t out = *(*client)->Open({{"streamtype", "stdout"}});
  uint32_t err = *(*client)->Open({{"streamtype", "stderr"}});
  ASSERT_TRUE((*client)->ReadUntilFinished({error, out, err}, absl::Seconds(60)).ok());
  EXPECT_NE((*client)->data[error].find("Failure"), std::string::npos) << (*client)->data[error];
}

TEST_F(StreamingTest, ExecWithStdinAndWithTty) {
  std::string id = Run("sleeper", {"sleep", "3600"});
  {
    absl::StatusOr<std::string> url = ExecUrl(id, {"cat"}, true, true, true, false);
    ASSERT_TRUE(url.ok()) << url.status();
    auto client = SpdyClient::Connect(*url, kV4);
    ASSERT_TRUE(client.ok()) << client.status();
    SpdyClient& c = **client;
    uint32_t error = *c.Open({{"streamtype", "error"}});
    uint32_t in = *c.Open({{"streamtype", "stdin"}});
    uint32_t out = *c.Open({{"streamtype", "stdout"}});
    uint32_t err = *c.Open({{"streamtype", "stderr"}});
    ASSERT_TRUE(c.ReadUntil([&] { return c.replied.size() == 4; }, absl::Seconds(30)).ok());
    ASSERT_TRUE(c.Send(in, "line one\n").ok());
    ASSERT_TRUE(c.Send(in, "line two\n", /*fin=*/true).ok());  // EOF ends cat
    ASSERT_TRUE(c.ReadUntilFinished({error, out, err}, absl::Seconds(60)).ok());
    EXPECT_EQ(c.data[out], "line one\nline two\n");
    EXPECT_EQ(*ExitCodeFromStatusJson(c.data[error]), 0);
  }
  {
    // A terminal: stdout and stderr merged, a pty inside, and the size the client sends.
    absl::StatusOr<std::string> url =
        ExecUrl(id, {"sh", "-c", "sleep 1; tty; stty size; echo oops >&2"}, false, true, false, true);
    ASSERT_TRUE(url.ok()) << url.status();
    auto client = SpdyClient::Connect(*url, kV4);
    ASSERT_TRUE(client.ok()) << client.status();
    SpdyClient& c = **client;
    uint32_t error = *c.Open({{"streamtype", "error"}});
    uint32_t out = *c.Open({{"streamtype", "stdout"}});
    uint32_t resize = *c.Open({{"streamtype", "resize"}});
    ASSERT_TRUE(c.ReadUntil([&] { return c.replied.size() == 3; }, absl::Seconds(30)).ok());
    ASSERT_TRUE(c.Send(resize, streaming::remotecommand::EncodeTerminalSize({132, 43})).ok());
    ASSERT_TRUE(c.ReadUntilFinished({error, out}, absl::Seconds(60)).ok());
    EXPECT_EQ(c.data[out].rfind("/dev/pts/", 0), 0u) << c.data[out];
    EXPECT_NE(c.data[out].find("43 132\r\n"), std::string::npos) << c.data[out];
    EXPECT_NE(c.data[out].find("oops\r\n"), std::string::npos) << c.data[out];
    EXPECT_EQ(*ExitCodeFromStatusJson(c.data[error]), 0);
  }
}

TEST_F(StreamingTest, TokensWorkOnceAndExpire) {
  std::string id = Run("sleeper", {"sleep", "3600"});
  absl::StatusOr<std::string> url = ExecUrl(id, {"true"}, false, true, false, false);
  ASSERT_TRUE(url.ok()) << url.status();
  {
    auto client = SpdyClient::Connect(*url, kV4);
    ASSERT_TRUE(client.ok()) << client.status();
    uint32_t error = *(*client)->Open({{"streamtype", "error"}});
    uint32_t out = *(*client)->Open({{"streamtype", "stdout"}});
    ASSERT_TRUE((*client)->ReadUntilFinished({error, out}, absl::Seconds(60)).ok());
  }
  EXPECT_EQ(*SpdyUpgradeStatus(*url, kV4), 404) << "a used token must be refused";

  absl::StatusOr<std::string> late = ExecUrl(id, {"true"}, false, true, false, false);
  ASSERT_TRUE(late.ok()) << late.status();
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // past token_ttl_seconds
  EXPECT_EQ(*SpdyUpgradeStatus(*late, kV4), 404) << "an expired token must be refused";

  std::string forged = url->substr(0, url->rfind('/') + 1) + std::string(64, 'a');
  EXPECT_EQ(*SpdyUpgradeStatus(forged, kV4), 404);

  // A protocol the server does not speak is refused before anything runs.
  absl::StatusOr<std::string> fresh = ExecUrl(id, {"true"}, false, true, false, false);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(*SpdyUpgradeStatus(*fresh, {"v9.channel.k8s.io"}), 403);

  // Requests the CRI rules out fail on the RPC.
  EXPECT_EQ(ExecUrl(id, {"true"}, false, true, true, true).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExecUrl("no-such-container", {"true"}, false, true, false, false).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(StreamingTest, AttachSeesOutputTakesInputAndDetaches) {
  std::string printer =
      Run("printer", {"sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done"});
  std::string echoer = Run("echoer", {"cat"}, /*stdin=*/true);
  auto attach_url = [&](const std::string& id, bool in) {
    grpc::ClientContext ctx;
    v1::AttachRequest request;
    request.set_container_id(id);
    request.set_stdin(in);
    request.set_stdout(true);
    request.set_stderr(true);
    v1::AttachResponse response;
    grpc::Status s = berthd_->runtime().Attach(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.url();
  };
  {
    auto client = SpdyClient::Connect(attach_url(printer, false), kV4);
    ASSERT_TRUE(client.ok()) << client.status();
    SpdyClient& c = **client;
    (void)*c.Open({{"streamtype", "error"}});
    uint32_t out = *c.Open({{"streamtype", "stdout"}});
    (void)*c.Open({{"streamtype", "stderr"}});
    ASSERT_TRUE(c.ReadUntil([&] { return c.data[out].find("\nline") != std::string::npos; },
                            absl::Seconds(30))
                    .ok())
        << c.data[out];
    c.Close();  // detach by going away
  }
  {
    auto client = SpdyClient::Connect(attach_url(echoer, true), kV4);
    ASSERT_TRUE(client.ok()) << client.status();
    SpdyClient& c = **client;
    (void)*c.Open({{"streamtype", "error"}});
    uint32_t in = *c.Open({{"streamtype", "stdin"}});
    uint32_t out = *c.Open({{"streamtype", "stdout"}});
    (void)*c.Open({{"streamtype", "stderr"}});
    ASSERT_TRUE(c.ReadUntil([&] { return c.replied.size() == 4; }, absl::Seconds(30)).ok());
    ASSERT_TRUE(c.Send(in, "ping\n").ok());
    ASSERT_TRUE(c.ReadUntil([&] { return c.data[out] == "ping\n"; }, absl::Seconds(30)).ok())
        << c.data[out];
    c.Close();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(State(printer), v1::CONTAINER_RUNNING) << "detaching must leave the container running";
  EXPECT_EQ(State(echoer), v1::CONTAINER_RUNNING);
}

TEST_F(StreamingTest, PortForwardIntoThePod) {
  Run("web", {"sh", "-c",
              "mkdir -p /www && echo served-from-the-pod > /www/index.html && "
              "httpd -f -p 8080 -h /www"});
  auto forward_url = [&] {
    grpc::ClientContext ctx;
    v1::PortForwardRequest request;
    request.set_pod_sandbox_id(pod_);
    v1::PortForwardResponse response;
    grpc::Status s = berthd_->runtime().PortForward(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.url();
  };
  // Two connections at once on one session, then one to a port nobody listens on.
  std::string body;
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto client = SpdyClient::Connect(forward_url(), {"portforward.k8s.io"});
    ASSERT_TRUE(client.ok()) << client.status();
    SpdyClient& c = **client;
    uint32_t error0 = *c.Open({{"streamtype", "error"}, {"port", "8080"}, {"requestid", "0"}});
    uint32_t data0 = *c.Open({{"streamtype", "data"}, {"port", "8080"}, {"requestid", "0"}});
    uint32_t error1 = *c.Open({{"streamtype", "error"}, {"port", "8080"}, {"requestid", "1"}});
    uint32_t data1 = *c.Open({{"streamtype", "data"}, {"port", "8080"}, {"requestid", "1"}});
    ASSERT_TRUE(c.ReadUntil([&] { return c.replied.size() == 4; }, absl::Seconds(30)).ok());
    const std::string get = "GET /index.html HTTP/1.0\r\n\r\n";
    ASSERT_TRUE(c.Send(data0, get, true).ok());
    ASSERT_TRUE(c.Send(data1, get, true).ok());
    ASSERT_TRUE(c.ReadUntilFinished({error0, data0, error1, data1}, absl::Seconds(30)).ok());
    if (!c.data[error0].empty()) {  // httpd not listening yet
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    EXPECT_NE(c.data[data1].find("served-from-the-pod"), std::string::npos) << c.data[data1];
    body = c.data[data0];
    break;
  }
  EXPECT_NE(body.find("200 OK"), std::string::npos) << body;
  EXPECT_NE(body.find("served-from-the-pod"), std::string::npos) << body;

  auto client = SpdyClient::Connect(forward_url(), {"portforward.k8s.io"});
  ASSERT_TRUE(client.ok()) << client.status();
  uint32_t error = *(*client)->Open({{"streamtype", "error"}, {"port", "9"}, {"requestid", "0"}});
  uint32_t data = *(*client)->Open({{"streamtype", "data"}, {"port", "9"}, {"requestid", "0"}});
  ASSERT_TRUE((*client)->ReadUntilFinished({error, data}, absl::Seconds(30)).ok());
  EXPECT_NE((*client)->data[error].find("error forwarding port 9"), std::string::npos)
      << (*client)->data[error];
}

TEST_F(StreamingTest, ExecOverWebSocketV5) {
  namespace beast = boost::beast;
  namespace websocket = boost::beast::websocket;
  using tcp = boost::asio::ip::tcp;
  std::string id = Run("sleeper", {"sleep", "3600"});
  absl::StatusOr<std::string> url =
      ExecUrl(id, {"sh", "-c", "read line; echo got:$line; exit 4"}, true, true, true, false);
  ASSERT_TRUE(url.ok()) << url.status();
  // http://127.0.0.1:PORT/exec/TOKEN
  std::string rest = url->substr(7);
  std::string hostport = rest.substr(0, rest.find('/'));
  std::string path = rest.substr(rest.find('/'));
  boost::asio::io_context io;
  tcp::resolver resolver(io);
  websocket::stream<tcp::socket> ws(io);
  boost::asio::connect(ws.next_layer(),
                       resolver.resolve(hostport.substr(0, hostport.find(':')),
                                        hostport.substr(hostport.find(':') + 1)));
  ws.set_option(websocket::stream_base::decorator([](websocket::request_type& request) {
    request.set(beast::http::field::sec_websocket_protocol, "v5.channel.k8s.io, v4.channel.k8s.io");
  }));
  websocket::response_type response;
  ws.handshake(response, hostport, path);
  ASSERT_EQ(response[beast::http::field::sec_websocket_protocol], "v5.channel.k8s.io");
  ws.binary(true);
  ws.write(boost::asio::buffer(std::string("\x00", 1) + "over-websocket\n"));
  ws.write(boost::asio::buffer(std::string("\xff\x00", 2)));  // v5: close stdin
  std::map<int, std::string> channels;
  beast::error_code ec;
  while (true) {
    beast::flat_buffer buffer;
    ws.read(buffer, ec);
    if (ec) break;
    std::string message = beast::buffers_to_string(buffer.data());
    if (message.empty()) continue;
    channels[static_cast<unsigned char>(message[0])] += message.substr(1);
  }
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  EXPECT_EQ(channels[1], "got:over-websocket\n");
  EXPECT_EQ(*ExitCodeFromStatusJson(channels[3]), 4) << channels[3];
}

TEST_F(StreamingTest, VanishedClientAndManySessionsLeaveNothing) {
  std::string id = Run("sleeper", {"sleep", "3600"});
  (void)ExecSpdy(id, {"true"});  // warm up: threads and pools berthd keeps
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const int fds_before = CountFds(berthd_->pid());

  // A client that goes away while its command runs: the command is killed.
  absl::StatusOr<std::string> url = ExecUrl(id, {"sleep", "424242"}, false, true, true, false);
  ASSERT_TRUE(url.ok()) << url.status();
  {
    auto client = SpdyClient::Connect(*url, kV4);
    ASSERT_TRUE(client.ok()) << client.status();
    SpdyClient& c = **client;
    (void)*c.Open({{"streamtype", "error"}});
    (void)*c.Open({{"streamtype", "stdout"}});
    (void)*c.Open({{"streamtype", "stderr"}});
    for (int i = 0; i < 100 && CountProcesses("sleep 424242") == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(CountProcesses("sleep 424242"), 1);
    c.Close();
  }
  for (int i = 0; i < 100 && CountProcesses("sleep 424242") > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(CountProcesses("sleep 424242"), 0) << "the exec'd process outlived its client";

  for (int i = 0; i < 200; ++i) {
    Outcome outcome = ExecSpdy(id, {"echo", std::to_string(i)});
    ASSERT_EQ(outcome.out, std::to_string(i) + "\n");
    ASSERT_EQ(outcome.exit_code, 0);
  }
  // Connection threads finish once the client hangs up; give the watcher a moment.
  int fds_after = 0;
  for (int i = 0; i < 50; ++i) {
    fds_after = CountFds(berthd_->pid());
    if (fds_after <= fds_before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_LE(fds_after, fds_before) << "descriptors leaked over 200 exec sessions";
  // This berthd's exec wrappers name its state dir (runc --root <state>/runtimes/runc).
  EXPECT_EQ(CountProcesses("berth-shim --reap", berthd_->state()), 0);
  EXPECT_TRUE(std::filesystem::is_empty(berthd_->state() + "/tmp"))
      << "exec scratch directories left behind";
}

}  // namespace
}  // namespace berth::testing
