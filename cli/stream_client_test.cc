// RunRemoteCommand and ForwardConnection end to end against a small WebSocket server in
// the test (ws_test_server.h) that speaks the channel protocols as the streaming server
// does: no berthd, no root.
#include "cli/stream_client.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cli/stream_protocol.h"
#include "cli/ws_test_server.h"
#include "runtime/base/unique_fd.h"
#include "server/streaming/remotecommand.h"
#include "server/streaming/ws_channel.h"

namespace berth::cli {
namespace {

namespace remotecommand = ::berth::streaming::remotecommand;
namespace http = wstest::http;
namespace net = wstest::net;
using wstest::ServerSession;
using wstest::tcp;
using wstest::TestServer;

UniqueFd MemFile(const char* name) { return UniqueFd(memfd_create(name, MFD_CLOEXEC)); }

std::string Contents(const UniqueFd& fd) {
  std::string out;
  char buffer[4096];
  off_t offset = 0;
  while (true) {
    ssize_t n = pread(fd.get(), buffer, sizeof(buffer), offset);
    if (n <= 0) return out;
    out.append(buffer, n);
    offset += n;
  }
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// --- exec and attach

TEST(RunRemoteCommandTest, EchoesStdinAndReturnsTheExitCode) {
  TestServer server([](ServerSession& session) {
    EXPECT_EQ(session.target(), "/exec/token1");
    EXPECT_EQ(session.offered(), "v5.channel.k8s.io, v4.channel.k8s.io");
    session.Accept(ws::Purpose::kRemoteCommand);
    session.SendRaw("");  // "streams ready"
    while (std::optional<ws::Message> message = session.Read()) {
      if (message->kind == ws::Message::Kind::kClose) {
        EXPECT_EQ(message->channel, ws::kStdinChannel);
        break;
      }
      EXPECT_EQ(message->channel, ws::kStdinChannel);
      session.Send(ws::kStdoutChannel, message->data);
      session.Send(ws::kStderrChannel, Upper(message->data));
    }
    session.Send(ws::kErrorChannel, remotecommand::NonZeroExitStatusJson(3, {"cat"}));
    session.Close();
  });
  Pipe in;
  ASSERT_EQ(write(in.write.get(), "hello\nworld", 11), 11);
  in.write.reset();
  UniqueFd out = MemFile("out"), err = MemFile("err");
  absl::StatusOr<int> code =
      RunRemoteCommand(server.Url("/exec/token1"),
                       {.in_fd = in.read.get(), .out_fd = out.get(), .err_fd = err.get()});
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 3);
  EXPECT_EQ(Contents(out), "hello\nworld");
  EXPECT_EQ(Contents(err), "HELLO\nWORLD");
}

TEST(RunRemoteCommandTest, MuchStdinArrivesWholeBeforeTheCloseSignal) {
  constexpr size_t kBytes = 3 << 20;  // more than the client lets queue
  TestServer server([&](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand);
    size_t received = 0;
    bool in_order = true;
    while (std::optional<ws::Message> message = session.Read()) {
      if (message->kind == ws::Message::Kind::kClose) break;
      for (size_t i = 0; i < message->data.size(); ++i) {
        if (message->data[i] != static_cast<char>('a' + (received + i) % 26)) in_order = false;
      }
      received += message->data.size();
    }
    session.Send(ws::kStdoutChannel, std::to_string(received) + (in_order ? " in order" : ""));
    session.Send(ws::kErrorChannel, remotecommand::SuccessStatusJson());
    session.Close();
  });
  Pipe in;
  std::thread writer([&] {
    std::string data(kBytes, 0);
    for (size_t i = 0; i < kBytes; ++i) data[i] = static_cast<char>('a' + i % 26);
    std::string_view rest = data;
    while (!rest.empty()) {
      ssize_t n = write(in.write.get(), rest.data(), rest.size());
      ASSERT_GT(n, 0);
      rest.remove_prefix(n);
    }
    in.write.reset();
  });
  UniqueFd out = MemFile("out");
  absl::StatusOr<int> code =
      RunRemoteCommand(server.Url("/exec/t"), {.in_fd = in.read.get(), .out_fd = out.get()});
  writer.join();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(Contents(out), std::to_string(kBytes) + " in order");
}

TEST(RunRemoteCommandTest, V4ServerWithoutStdin) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand, "v4.channel.k8s.io");
    session.Send(ws::kStdoutChannel, "output");
    session.Send(ws::kErrorChannel, remotecommand::SuccessStatusJson());
    session.Close();
  });
  UniqueFd out = MemFile("out");
  absl::StatusOr<int> code = RunRemoteCommand(server.Url("/attach/t"), {.out_fd = out.get()});
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(Contents(out), "output");
}

TEST(RunRemoteCommandTest, TtySendsTheSizeFirstAndOnEachChange) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand);
    remotecommand::TerminalSizeDecoder decoder;
    std::string seen;
    int sizes = 0;
    while (sizes < 2) {
      std::optional<ws::Message> message = session.Read();
      ASSERT_TRUE(message.has_value());
      ASSERT_EQ(message->channel, ws::kResizeChannel);
      absl::StatusOr<std::vector<remotecommand::TerminalSize>> decoded =
          decoder.Feed(message->data);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      for (const auto& size : *decoded) {
        seen += std::to_string(size.width) + "x" + std::to_string(size.height) + " ";
        ++sizes;
      }
    }
    session.Send(ws::kStdoutChannel, seen);
    session.Send(ws::kErrorChannel, remotecommand::SuccessStatusJson());
    session.Close();
  });
  Pipe wake;
  std::atomic<int> calls = 0;
  TerminalSizeSource resize{.wake_fd = wake.read.get(),
                            .size = [&]() -> std::optional<remotecommand::TerminalSize> {
                              // The first two calls see the same size: it goes once.
                              return ++calls <= 2 ? remotecommand::TerminalSize{80, 24}
                                                  : remotecommand::TerminalSize{120, 40};
                            }};
  // Two SIGWINCHs, as the handler would write them.
  std::thread resizer([&] {
    ASSERT_EQ(write(wake.write.get(), "w", 1), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_EQ(write(wake.write.get(), "w", 1), 1);
  });
  UniqueFd out = MemFile("out");
  absl::StatusOr<int> code = RunRemoteCommand(
      server.Url("/exec/t"), {.out_fd = out.get(), .tty = true, .resize = &resize});
  resizer.join();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(Contents(out), "80x24 120x40 ");
}

TEST(RunRemoteCommandTest, NoResizesWithoutTty) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand);
    std::optional<ws::Message> message = session.Read();
    ASSERT_TRUE(message.has_value());
    EXPECT_EQ(message->kind, ws::Message::Kind::kClose);  // stdin's EOF, no resize first
    session.Send(ws::kErrorChannel, remotecommand::SuccessStatusJson());
    session.Close();
  });
  Pipe in;
  in.write.reset();
  TerminalSizeSource resize{.size = [] { return remotecommand::TerminalSize{80, 24}; }};
  absl::StatusOr<int> code =
      RunRemoteCommand(server.Url("/exec/t"), {.in_fd = in.read.get(), .resize = &resize});
  ASSERT_TRUE(code.ok()) << code.status();
}

TEST(RunRemoteCommandTest, CommandThatCouldNotRun) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand);
    session.Send(ws::kErrorChannel,
                 remotecommand::InternalErrorStatusJson(
                     "error executing command in container: exec: \"nope\": not found"));
    session.Close();
  });
  absl::StatusOr<int> code = RunRemoteCommand(server.Url("/exec/t"), {});
  EXPECT_TRUE(absl::IsUnknown(code.status())) << code.status();
  EXPECT_NE(code.status().message().find("\"nope\": not found"), std::string::npos);
}

TEST(RunRemoteCommandTest, ClosedWithoutStatus) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand);
    session.Close();
  });
  absl::StatusOr<int> code = RunRemoteCommand(server.Url("/exec/t"), {});
  EXPECT_TRUE(absl::IsUnavailable(code.status())) << code.status();
  EXPECT_NE(code.status().message().find("before the command's exit status"), std::string::npos);
}

TEST(RunRemoteCommandTest, ClosesItselfWhenTheServerLingersAfterTheStatus) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand);
    session.Send(ws::kErrorChannel, remotecommand::NonZeroExitStatusJson(1, {"false"}));
    EXPECT_FALSE(session.Read().has_value());
    EXPECT_TRUE(session.closed_cleanly());
  });
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<int> code = RunRemoteCommand(server.Url("/exec/t"), {});
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 1);
  EXPECT_GE(std::chrono::steady_clock::now() - start, kStatusCloseGrace);
}

TEST(RunRemoteCommandTest, RefusedUpgradeShowsTheAnswer) {
  TestServer server([](ServerSession& session) {
    session.Refuse(http::status::not_found, "unknown or expired token\n");
  });
  absl::StatusOr<int> code = RunRemoteCommand(server.Url("/exec/used"), {});
  EXPECT_TRUE(absl::IsNotFound(code.status())) << code.status();
  EXPECT_NE(code.status().message().find("404 Not Found: unknown or expired token"),
            std::string::npos)
      << code.status();
}

TEST(RunRemoteCommandTest, NothingListening) {
  std::string url;
  {
    net::io_context ioc;
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    url = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/exec/t";
  }
  absl::StatusOr<int> code = RunRemoteCommand(url, {});
  EXPECT_TRUE(absl::IsUnavailable(code.status())) << code.status();
  EXPECT_NE(code.status().message().find("connect"), std::string::npos) << code.status();
}

TEST(RunRemoteCommandTest, InterruptClosesTheConnection) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kRemoteCommand);
    session.Send(ws::kStdoutChannel, "running");
    EXPECT_FALSE(session.Read().has_value());
    EXPECT_TRUE(session.closed_cleanly());
  });
  Pipe interrupt;
  ASSERT_EQ(write(interrupt.write.get(), "i", 1), 1);
  absl::StatusOr<int> code =
      RunRemoteCommand(server.Url("/attach/t"), {.interrupt_fd = interrupt.read.get()});
  EXPECT_TRUE(absl::IsCancelled(code.status())) << code.status();
}

// --- port-forward

// The local end of a forwarded connection: `local` goes to ForwardConnection, the test
// plays the local client on `peer`.
struct LocalConnection {
  UniqueFd local;
  UniqueFd peer;
  LocalConnection() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    local.reset(fds[0]);
    peer.reset(fds[1]);
  }
  std::string ReadToEnd() {
    std::string out;
    char buffer[4096];
    ssize_t n;
    while ((n = read(peer.get(), buffer, sizeof(buffer))) > 0) out.append(buffer, n);
    return out;
  }
};

TEST(ForwardConnectionTest, RelaysBothWaysUntilTheLocalClientIsDone) {
  TestServer server([](ServerSession& session) {
    EXPECT_EQ(session.target(), "/portforward/tok?port=80");
    EXPECT_EQ(session.offered(), "v4.channel.k8s.io");
    session.Accept(ws::Purpose::kPortForward);
    session.Send(0, ws::EncodePortPrefix(80));
    session.Send(1, ws::EncodePortPrefix(80));
    while (std::optional<ws::Message> message = session.Read()) {
      EXPECT_EQ(message->channel, 0);
      session.Send(0, Upper(message->data));
    }
    EXPECT_TRUE(session.closed_cleanly());
  });
  LocalConnection conn;
  absl::Status status;
  std::thread forward([&] {
    status = ForwardConnection(server.Url("/portforward/tok"), 80, std::move(conn.local));
  });
  ASSERT_EQ(write(conn.peer.get(), "ping", 4), 4);
  char reply[4];
  ASSERT_EQ(read(conn.peer.get(), reply, 4), 4);
  EXPECT_EQ(std::string(reply, 4), "PING");
  shutdown(conn.peer.get(), SHUT_WR);
  EXPECT_EQ(conn.ReadToEnd(), "");
  forward.join();
  EXPECT_TRUE(status.ok()) << status;
}

TEST(ForwardConnectionTest, ThePodClosingEndsTheLocalConnection) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kPortForward);
    session.Send(0, ws::EncodePortPrefix(8080) + "hello");
    session.Send(1, ws::EncodePortPrefix(8080));
    session.Send(0, " bye");
    session.Close();
  });
  LocalConnection conn;
  absl::Status status =
      ForwardConnection(server.Url("/portforward/t"), 8080, std::move(conn.local));
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(conn.ReadToEnd(), "hello bye");
}

TEST(ForwardConnectionTest, TheServersErrorIsReported) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kPortForward);
    session.Send(0, ws::EncodePortPrefix(5432));
    session.Send(1, ws::EncodePortPrefix(5432));
    session.Send(1, "failed to connect to localhost:5432 inside namespace: connection refused");
    EXPECT_FALSE(session.Read().has_value());  // the client closes
  });
  LocalConnection conn;
  absl::Status status =
      ForwardConnection(server.Url("/portforward/t"), 5432, std::move(conn.local));
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_NE(status.message().find("port 5432: failed to connect"), std::string::npos) << status;
  EXPECT_EQ(conn.ReadToEnd(), "");
}

TEST(ForwardConnectionTest, AWrongPortPrefixIsAnError) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kPortForward);
    session.Send(0, ws::EncodePortPrefix(81));
    session.Read();
  });
  LocalConnection conn;
  absl::Status status = ForwardConnection(server.Url("/portforward/t"), 80, std::move(conn.local));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
}

TEST(ForwardConnectionTest, StopsWhenAsked) {
  TestServer server([](ServerSession& session) {
    session.Accept(ws::Purpose::kPortForward);
    session.Send(0, ws::EncodePortPrefix(80));
    session.Send(1, ws::EncodePortPrefix(80));
    EXPECT_FALSE(session.Read().has_value());
    EXPECT_TRUE(session.closed_cleanly());
  });
  LocalConnection conn;
  std::stop_source stop;
  absl::Status status;
  std::thread forward([&] {
    status = ForwardConnection(server.Url("/portforward/t"), 80, std::move(conn.local),
                               stop.get_token());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop.request_stop();
  forward.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(conn.ReadToEnd(), "");
}

}  // namespace
}  // namespace berth::cli
