// The streaming server's own rules, against a backend of the test's: sessions run and end,
// tokens, the session limit, the handshake and idle deadlines, and Stop with sessions open.
#include "server/streaming/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/streaming/remotecommand.h"
#include "server/streaming/spdy_test_client.h"

namespace berth::streaming {
namespace {

using testing::SpdyClient;
using testing::SpdyUpgradeStatus;

const std::vector<std::string> kV4 = {"v4.channel.k8s.io"};

// "echo" prints its arguments and exits 0; "cat" copies stdin to stdout until stdin closes;
// "exit N" exits N; "hang" runs until cancelled.
class FakeProcess : public RemoteProcess {
 public:
  FakeProcess(std::vector<std::string> command, std::atomic<int>& cancelled)
      : command_(std::move(command)), cancelled_(cancelled) {}
  void WriteStdin(std::string_view data) override {
    absl::MutexLock lock(&mu_);
    input_ += data;
  }
  void CloseStdin() override {
    absl::MutexLock lock(&mu_);
    stdin_closed_ = true;
  }
  void Resize(uint16_t, uint16_t) override {}
  void Cancel() override {
    absl::MutexLock lock(&mu_);
    if (!cancel_) ++cancelled_;
    cancel_ = true;
  }
  absl::StatusOr<int> Wait(const OutputFn& out) override {
    const std::string& verb = command_.front();
    if (verb == "echo") {
      out(OutputStream::kStdout, command_.size() > 1 ? command_[1] + "\n" : "\n");
      return 0;
    }
    if (verb == "exit") return std::stoi(command_.at(1));
    if (verb == "cat") {
      while (true) {
        std::string chunk;
        bool closed;
        {
          absl::MutexLock lock(&mu_);
          auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            return !input_.empty() || stdin_closed_ || cancel_;
          };
          mu_.Await(absl::Condition(&ready));
          chunk.swap(input_);
          closed = stdin_closed_ || cancel_;
        }
        if (!chunk.empty()) out(OutputStream::kStdout, chunk);
        if (closed) return 0;
      }
    }
    absl::MutexLock lock(&mu_);  // hang
    mu_.Await(absl::Condition(&cancel_));
    return 137;
  }

 private:
  std::vector<std::string> command_;
  std::atomic<int>& cancelled_;
  absl::Mutex mu_;
  std::string input_ ABSL_GUARDED_BY(mu_);
  bool stdin_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_ ABSL_GUARDED_BY(mu_) = false;
};

class FakeBackend : public Backend {
 public:
  absl::StatusOr<std::unique_ptr<RemoteProcess>> StartExec(const ExecRequest& request) override {
    return std::make_unique<FakeProcess>(request.command, cancelled);
  }
  absl::StatusOr<std::unique_ptr<RemoteProcess>> Attach(const AttachRequest&) override {
    return absl::FailedPreconditionError("container has gone away");
  }
  absl::StatusOr<UniqueFd> DialPort(const std::string&, uint16_t port) override {
    return absl::UnavailableError("connection refused on port " + std::to_string(port));
  }
  std::atomic<int> cancelled = 0;
};

struct Exec {
  std::unique_ptr<SpdyClient> client;
  uint32_t error = 0, in = 0, out = 0;
};

Exec StartExec(StreamingServer& server, std::vector<std::string> command, bool stdin = false) {
  Exec exec;
  absl::StatusOr<std::string> url = server.Url(
      ExecRequest{.container_id = "c", .command = std::move(command), .stdin = stdin, .stdout = true});
  EXPECT_TRUE(url.ok()) << url.status();
  absl::StatusOr<std::unique_ptr<SpdyClient>> client = SpdyClient::Connect(*url, kV4);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return exec;
  exec.client = *std::move(client);
  exec.error = *exec.client->Open({{"streamtype", "error"}});
  if (stdin) exec.in = *exec.client->Open({{"streamtype", "stdin"}});
  exec.out = *exec.client->Open({{"streamtype", "stdout"}});
  return exec;
}

TEST(StreamingServerTest, ExecRunsToItsExitCode) {
  FakeBackend backend;
  auto server = StreamingServer::Start({}, backend);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->base_url().rfind("http://127.0.0.1:", 0), 0u);

  Exec echo = StartExec(**server, {"echo", "hi"});
  ASSERT_TRUE(echo.client->ReadUntilFinished({echo.error, echo.out}, absl::Seconds(10)).ok());
  EXPECT_EQ(echo.client->data[echo.out], "hi\n");
  EXPECT_EQ(echo.client->data[echo.error], remotecommand::SuccessStatusJson());

  Exec failing = StartExec(**server, {"exit", "42"});
  ASSERT_TRUE(failing.client->ReadUntilFinished({failing.error, failing.out}, absl::Seconds(10)).ok());
  EXPECT_EQ(*remotecommand::ExitCodeFromStatusJson(failing.client->data[failing.error]), 42);

  Exec cat = StartExec(**server, {"cat"}, /*stdin=*/true);
  ASSERT_TRUE(cat.client->ReadUntil([&] { return cat.client->replied.size() == 3; },
                                    absl::Seconds(10)).ok());
  ASSERT_TRUE(cat.client->Send(cat.in, "abc", /*fin=*/true).ok());
  ASSERT_TRUE(cat.client->ReadUntilFinished({cat.error, cat.out}, absl::Seconds(10)).ok());
  EXPECT_EQ(cat.client->data[cat.out], "abc");
}

TEST(StreamingServerTest, BackendErrorsReachTheErrorStream) {
  FakeBackend backend;
  auto server = StreamingServer::Start({}, backend);
  ASSERT_TRUE(server.ok());
  absl::StatusOr<std::string> url =
      (*server)->Url(AttachRequest{.container_id = "c", .stdout = true});
  auto client = SpdyClient::Connect(*url, kV4);
  ASSERT_TRUE(client.ok()) << client.status();
  uint32_t error = *(*client)->Open({{"streamtype", "error"}});
  uint32_t out = *(*client)->Open({{"streamtype", "stdout"}});
  ASSERT_TRUE((*client)->ReadUntilFinished({error, out}, absl::Seconds(10)).ok());
  EXPECT_NE((*client)->data[error].find("container has gone away"), std::string::npos)
      << (*client)->data[error];
}

TEST(StreamingServerTest, RefusesBadPathsTokensAndUpgrades) {
  FakeBackend backend;
  auto server = StreamingServer::Start({}, backend);
  ASSERT_TRUE(server.ok());
  const std::string base = (*server)->base_url();
  EXPECT_EQ(*SpdyUpgradeStatus(base + "/elsewhere", kV4), 404);
  EXPECT_EQ(*SpdyUpgradeStatus(base + "/exec/" + std::string(64, '0'), kV4), 404);
  // A token is for one kind of session only, and is spent by the attempt.
  absl::StatusOr<std::string> url = (*server)->Url(PortForwardRequest{.pod_id = "p"});
  std::string token = url->substr(url->rfind('/') + 1);
  EXPECT_EQ(*SpdyUpgradeStatus(base + "/exec/" + token, kV4), 404);
  EXPECT_EQ(*SpdyUpgradeStatus(*url, {"portforward.k8s.io"}), 404);
  url = (*server)->Url(ExecRequest{.command = {"echo"}, .stdout = true});
  EXPECT_EQ(*SpdyUpgradeStatus(*url, {"v1.channel.k8s.io"}), 403);
}

TEST(StreamingServerTest, LimitsConcurrentSessions) {
  FakeBackend backend;
  auto server = StreamingServer::Start({.max_sessions = 1}, backend);
  ASSERT_TRUE(server.ok());
  Exec hanging = StartExec(**server, {"hang"});
  ASSERT_TRUE(hanging.client->ReadUntil([&] { return hanging.client->replied.size() == 2; },
                                        absl::Seconds(10)).ok());
  absl::StatusOr<std::string> url = (*server)->Url(ExecRequest{.command = {"echo"}, .stdout = true});
  EXPECT_EQ(*SpdyUpgradeStatus(*url, kV4), 503);
  hanging.client->Close();
  for (int i = 0; i < 100 && (*server)->active_connections() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(backend.cancelled, 1) << "a client that leaves cancels its process";
  Exec again = StartExec(**server, {"echo", "room"});
  ASSERT_TRUE(again.client->ReadUntilFinished({again.error, again.out}, absl::Seconds(10)).ok());
  EXPECT_EQ(again.client->data[again.out], "room\n");
}

TEST(StreamingServerTest, IdleAndSilentConnectionsAreClosed) {
  FakeBackend backend;
  auto server = StreamingServer::Start(
      {.handshake_timeout = absl::Seconds(1), .idle_timeout = absl::Seconds(1)}, backend);
  ASSERT_TRUE(server.ok());
  // A session that never moves a byte after starting.
  Exec hanging = StartExec(**server, {"hang"});
  absl::Status read = hanging.client->ReadUntil([] { return false; }, absl::Seconds(30));
  EXPECT_TRUE(read.ok()) << read;
  EXPECT_TRUE(hanging.client->closed) << "the idle session must be closed by the server";
  for (int i = 0; i < 100 && backend.cancelled == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(backend.cancelled, 1);

  // A connection that never sends its request.
  sockaddr_in address{.sin_family = AF_INET};
  std::string base = (*server)->base_url();
  address.sin_port = htons(std::stoi(base.substr(base.rfind(':') + 1)));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  pollfd pfd{fd.get(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 30000), 1);
  char byte;
  EXPECT_EQ(recv(fd.get(), &byte, 1, 0), 0) << "the silent connection must be closed";
}

TEST(StreamingServerTest, StreamsMustOpenBeforeTheHandshakeDeadline) {
  FakeBackend backend;
  auto server = StreamingServer::Start(
      {.handshake_timeout = absl::Seconds(1), .idle_timeout = absl::Hours(1)}, backend);
  ASSERT_TRUE(server.ok());
  absl::StatusOr<std::string> url =
      (*server)->Url(ExecRequest{.command = {"echo"}, .stdout = true});
  auto client = SpdyClient::Connect(*url, kV4);
  ASSERT_TRUE(client.ok()) << client.status();
  // Upgraded, one stream of the two opened, then nothing: no idle hour for that.
  (void)*(*client)->Open({{"streamtype", "error"}});
  absl::Status read = (*client)->ReadUntil([] { return false; }, absl::Seconds(30));
  EXPECT_TRUE(read.ok()) << read;
  EXPECT_TRUE((*client)->closed);
  EXPECT_EQ(backend.cancelled, 0) << "nothing was started";
}

TEST(StreamingServerTest, StopEndsOpenSessions) {
  FakeBackend backend;
  auto server = StreamingServer::Start({}, backend);
  ASSERT_TRUE(server.ok());
  Exec first = StartExec(**server, {"hang"});
  Exec second = StartExec(**server, {"hang"});
  ASSERT_TRUE(first.client->ReadUntil([&] { return first.client->replied.size() == 2; },
                                      absl::Seconds(10)).ok());
  ASSERT_TRUE(second.client->ReadUntil([&] { return second.client->replied.size() == 2; },
                                       absl::Seconds(10)).ok());
  (*server)->Stop();
  EXPECT_EQ(backend.cancelled, 2);
  EXPECT_EQ((*server)->active_connections(), 0u);
}

}  // namespace
}  // namespace berth::streaming
