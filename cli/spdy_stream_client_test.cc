// RunRemoteCommandSpdy and ForwardConnectionSpdy end to end against a scripted SPDY/3.1
// server in the test (spdy_test_server.h) that answers as the streaming server does: no
// berthd, no root.
#include "cli/spdy_stream_client.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "cli/spdy_test_server.h"
#include "cli/stream_io.h"
#include "runtime/base/unique_fd.h"
#include "server/streaming/remotecommand.h"
#include "server/streaming/spdy_frame.h"

namespace berth::cli {
namespace {

namespace remotecommand = ::berth::streaming::remotecommand;
namespace spdy = ::berth::streaming::spdy;
using spdytest::SpdySession;
using spdytest::SpdyTestServer;

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

std::string StreamType(const std::optional<spdy::SynStream>& syn) {
  if (!syn) return "<none>";
  return std::string(syn->headers.Get("streamtype").value_or("<no streamtype>"));
}

// --- exec and attach

TEST(RunRemoteCommandSpdyTest, OpensTheStreamsEchoesStdinAndReturnsTheExitCode) {
  SpdyTestServer server([](SpdySession& session) {
    EXPECT_EQ(session.request_line(), "POST /exec/token1 HTTP/1.1");
    EXPECT_TRUE(session.HasHeaderLine("Upgrade: SPDY/3.1")) << session.head();
    EXPECT_TRUE(session.HasHeaderLine("Connection: Upgrade")) << session.head();
    EXPECT_TRUE(session.HasHeaderLine("X-Stream-Protocol-Version: v4.channel.k8s.io"))
        << session.head();
    session.Accept("v4.channel.k8s.io");
    // The first SYN_STREAM, then nothing until it is answered.
    std::optional<spdy::ReceivedFrame> first = session.Next();
    ASSERT_TRUE(first.has_value());
    auto* error = std::get_if<spdy::SynStream>(&*first);
    ASSERT_NE(error, nullptr);
    EXPECT_EQ(error->headers.Get("streamtype"), "error");
    EXPECT_EQ(error->stream_id, 1u);
    EXPECT_FALSE(session.Next(/*timeout_ms=*/150, /*quiet_ok=*/true).has_value());
    EXPECT_TRUE(session.timed_out());
    session.Write(spdy::SynReply{.stream_id = error->stream_id});
    std::optional<spdy::SynStream> in = session.AcceptStream();
    std::optional<spdy::SynStream> out = session.AcceptStream();
    std::optional<spdy::SynStream> err = session.AcceptStream();
    ASSERT_EQ(StreamType(in), "stdin");
    ASSERT_EQ(StreamType(out), "stdout");
    ASSERT_EQ(StreamType(err), "stderr");
    EXPECT_EQ(in->stream_id, 3u);
    // stdin comes back on stdout and, upper case, on stderr, until its FIN.
    bool stdin_done = false;
    while (!stdin_done) {
      std::optional<spdy::ReceivedFrame> frame = session.Next();
      ASSERT_TRUE(frame.has_value());
      auto* data = std::get_if<spdy::Data>(&*frame);
      ASSERT_NE(data, nullptr);
      ASSERT_EQ(data->stream_id, in->stream_id);
      if (!data->data.empty()) {
        session.Send(out->stream_id, data->data);
        session.Send(err->stream_id, Upper(data->data));
      }
      stdin_done = data->fin;
    }
    session.Send(error->stream_id, remotecommand::NonZeroExitStatusJson(3, {"cat"}));
    for (uint32_t id : {out->stream_id, err->stream_id, error->stream_id}) session.Finish(id);
    // The client closes the connection once every stream has ended.
    EXPECT_FALSE(session.Next().has_value());
    EXPECT_TRUE(session.closed());
  });
  Pipe in;
  ASSERT_EQ(write(in.write.get(), "hello\nworld", 11), 11);
  in.write.reset();
  UniqueFd out = MemFile("out"), err = MemFile("err");
  absl::StatusOr<int> code =
      RunRemoteCommandSpdy(server.Url("/exec/token1"),
                           {.in_fd = in.read.get(), .out_fd = out.get(), .err_fd = err.get()});
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 3);
  EXPECT_EQ(Contents(out), "hello\nworld");
  EXPECT_EQ(Contents(err), "HELLO\nWORLD");
}

TEST(RunRemoteCommandSpdyTest, TtySendsTheSizeFirstAndOnEachChange) {
  std::promise<void> first_size;
  SpdyTestServer server([&](SpdySession& session) {
    session.Accept("v4.channel.k8s.io");
    // A tty: no stderr stream, a resize stream; no stdin without -i.
    std::optional<spdy::SynStream> error = session.AcceptStream();
    std::optional<spdy::SynStream> out = session.AcceptStream();
    std::optional<spdy::SynStream> resize = session.AcceptStream();
    ASSERT_EQ(StreamType(error), "error");
    ASSERT_EQ(StreamType(out), "stdout");
    ASSERT_EQ(StreamType(resize), "resize");
    remotecommand::TerminalSizeDecoder decoder;
    std::string seen;
    int sizes = 0;
    while (sizes < 2) {
      std::optional<spdy::ReceivedFrame> frame = session.Next();
      ASSERT_TRUE(frame.has_value());
      auto* data = std::get_if<spdy::Data>(&*frame);
      ASSERT_NE(data, nullptr);
      ASSERT_EQ(data->stream_id, resize->stream_id);
      EXPECT_EQ(data->data.back(), '\n');  // {"Width":W,"Height":H}\n, as client-go
      absl::StatusOr<std::vector<remotecommand::TerminalSize>> decoded = decoder.Feed(data->data);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      for (const auto& size : *decoded) {
        seen += std::to_string(size.width) + "x" + std::to_string(size.height) + " ";
        if (++sizes == 1) first_size.set_value();
      }
    }
    session.Send(out->stream_id, seen);
    session.Send(error->stream_id, remotecommand::SuccessStatusJson());
    for (uint32_t id : {out->stream_id, error->stream_id}) session.Finish(id);
    EXPECT_FALSE(session.Next().has_value());
  });
  Pipe wake;
  std::atomic<bool> grown = false;
  TerminalSizeSource resize{
      .wake_fd = wake.read.get(), .size = [&]() -> std::optional<remotecommand::TerminalSize> {
        return grown ? remotecommand::TerminalSize{120, 40} : remotecommand::TerminalSize{80, 24};
      }};
  UniqueFd out = MemFile("out");
  std::future<absl::StatusOr<int>> code = std::async(std::launch::async, [&] {
    return RunRemoteCommandSpdy(server.Url("/exec/t"),
                                {.out_fd = out.get(), .tty = true, .resize = &resize});
  });
  ASSERT_EQ(first_size.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  grown = true;
  ASSERT_EQ(write(wake.write.get(), "w", 1), 1);  // SIGWINCH, as the handler writes it
  ASSERT_TRUE(code.get().ok());
  EXPECT_EQ(Contents(out), "80x24 120x40 ");
}

TEST(RunRemoteCommandSpdyTest, ACommandThatCouldNotRun) {
  SpdyTestServer server([](SpdySession& session) {
    session.Accept("v4.channel.k8s.io");
    std::optional<spdy::SynStream> error = session.AcceptStream();
    std::optional<spdy::SynStream> out = session.AcceptStream();
    std::optional<spdy::SynStream> err = session.AcceptStream();
    ASSERT_TRUE(error && out && err);
    session.Send(error->stream_id,
                 remotecommand::InternalErrorStatusJson(
                     "error executing command in container: no such file: nosuch"));
    for (uint32_t id : {out->stream_id, err->stream_id, error->stream_id}) session.Finish(id);
    EXPECT_FALSE(session.Next().has_value());
  });
  absl::StatusOr<int> code = RunRemoteCommandSpdy(server.Url("/exec/t"), {});
  EXPECT_TRUE(absl::IsUnknown(code.status())) << code.status();
  EXPECT_NE(code.status().message().find("no such file: nosuch"), std::string::npos)
      << code.status();
}

TEST(RunRemoteCommandSpdyTest, ClosedBeforeTheStatus) {
  SpdyTestServer server([](SpdySession& session) {
    session.Accept("v4.channel.k8s.io");
    std::optional<spdy::SynStream> error = session.AcceptStream();
    std::optional<spdy::SynStream> out = session.AcceptStream();
    std::optional<spdy::SynStream> err = session.AcceptStream();
    ASSERT_TRUE(error && out && err);
    session.Send(out->stream_id, "partial");
    session.Close();
  });
  UniqueFd out = MemFile("out");
  absl::StatusOr<int> code = RunRemoteCommandSpdy(server.Url("/exec/t"), {.out_fd = out.get()});
  EXPECT_TRUE(absl::IsUnavailable(code.status())) << code.status();
  EXPECT_NE(code.status().message().find("ended before the command's exit status"),
            std::string::npos)
      << code.status();
  EXPECT_EQ(Contents(out), "partial");
}

TEST(RunRemoteCommandSpdyTest, RefusedUpgradeShowsTheAnswer) {
  SpdyTestServer server([](SpdySession& session) {
    session.Refuse(404, "Not Found", "streaming: unknown, expired or already used token\n");
  });
  absl::StatusOr<int> code = RunRemoteCommandSpdy(server.Url("/exec/used"), {});
  EXPECT_TRUE(absl::IsNotFound(code.status())) << code.status();
  EXPECT_NE(code.status().message().find(
                "404 Not Found: streaming: unknown, expired or already used token"),
            std::string::npos)
      << code.status();
}

TEST(RunRemoteCommandSpdyTest, AnotherProtocolIsRefused) {
  SpdyTestServer server([](SpdySession& session) { session.Accept("v2.channel.k8s.io"); });
  absl::StatusOr<int> code = RunRemoteCommandSpdy(server.Url("/exec/t"), {});
  EXPECT_TRUE(absl::IsFailedPrecondition(code.status())) << code.status();
}

TEST(RunRemoteCommandSpdyTest, ARefusedStreamFails) {
  SpdyTestServer server([](SpdySession& session) {
    session.Accept("v4.channel.k8s.io");
    ASSERT_TRUE(session.AcceptStream().has_value());  // error
    std::optional<spdy::ReceivedFrame> frame = session.Next();
    ASSERT_TRUE(frame.has_value());
    auto* syn = std::get_if<spdy::SynStream>(&*frame);
    ASSERT_NE(syn, nullptr);
    session.Write(spdy::RstStream{syn->stream_id, spdy::RstStatus::kRefusedStream});
    EXPECT_FALSE(session.Next().has_value());
  });
  absl::StatusOr<int> code = RunRemoteCommandSpdy(server.Url("/exec/t"), {});
  EXPECT_TRUE(absl::IsFailedPrecondition(code.status())) << code.status();
  EXPECT_NE(code.status().message().find("refused the stdout stream"), std::string::npos)
      << code.status();
}

TEST(RunRemoteCommandSpdyTest, InterruptClosesTheConnection) {
  std::promise<void> open;
  SpdyTestServer server([&](SpdySession& session) {
    session.Accept("v4.channel.k8s.io");
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(session.AcceptStream().has_value());
    session.Send(3, "running\n");
    open.set_value();
    EXPECT_FALSE(session.Next().has_value());
    EXPECT_TRUE(session.closed());
  });
  Pipe interrupt;
  UniqueFd out = MemFile("out");
  std::future<absl::StatusOr<int>> code = std::async(std::launch::async, [&] {
    return RunRemoteCommandSpdy(server.Url("/attach/t"),
                                {.out_fd = out.get(), .interrupt_fd = interrupt.read.get()});
  });
  ASSERT_EQ(open.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  // Interrupted once the output has come through.
  for (int i = 0; i < 2000 && Contents(out).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Contents(out), "running\n");
  ASSERT_EQ(write(interrupt.write.get(), "\2", 1), 1);
  ASSERT_EQ(code.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_TRUE(absl::IsCancelled(code.get().status()));
}

// --- port-forward

struct SocketPair {
  UniqueFd ours;    // the local client's end
  UniqueFd theirs;  // what berthctl accepted
  SocketPair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ours.reset(fds[0]);
    theirs.reset(fds[1]);
  }
};

std::string ReadToEnd(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  return out;
}

// Accepts a port-forward session's two streams as the streaming server does; checks the
// headers and that berthctl ends its half of the error stream at once.
void AcceptForward(SpdySession& session, uint16_t port, uint32_t& error_id, uint32_t& data_id) {
  EXPECT_TRUE(session.HasHeaderLine("X-Stream-Protocol-Version: portforward.k8s.io"))
      << session.head();
  EXPECT_EQ(session.target(), "/portforward/t");  // no ?port= over SPDY: headers carry it
  session.Accept("portforward.k8s.io");
  std::optional<spdy::SynStream> error = session.AcceptStream();
  ASSERT_EQ(StreamType(error), "error");
  EXPECT_EQ(error->headers.Get("port"), std::to_string(port));
  EXPECT_EQ(error->headers.Get("requestid"), "0");
  std::optional<spdy::ReceivedFrame> fin = session.Next();
  ASSERT_TRUE(fin.has_value());
  auto* data = std::get_if<spdy::Data>(&*fin);
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->stream_id, error->stream_id);
  EXPECT_TRUE(data->fin);
  EXPECT_TRUE(data->data.empty());
  std::optional<spdy::SynStream> stream = session.AcceptStream();
  ASSERT_EQ(StreamType(stream), "data");
  EXPECT_EQ(stream->headers.Get("port"), std::to_string(port));
  EXPECT_EQ(stream->headers.Get("requestid"), "0");
  error_id = error->stream_id;
  data_id = stream->stream_id;
}

TEST(ForwardConnectionSpdyTest, RelaysBothWaysAndHalfClosesAtTheLocalEof) {
  SpdyTestServer server([](SpdySession& session) {
    uint32_t error_id = 0, data_id = 0;
    AcceptForward(session, 80, error_id, data_id);
    ASSERT_NE(data_id, 0u);
    session.Send(data_id, "hello from the pod\n");
    // Echo, then answer the client's FIN with the rest and our FINs (the pod closed).
    std::string received;
    while (true) {
      std::optional<spdy::ReceivedFrame> frame = session.Next();
      ASSERT_TRUE(frame.has_value());
      auto* data = std::get_if<spdy::Data>(&*frame);
      ASSERT_NE(data, nullptr);
      ASSERT_EQ(data->stream_id, data_id);
      received += data->data;
      if (!data->data.empty()) session.Send(data_id, "echo:" + data->data);
      if (data->fin) break;
    }
    session.Send(data_id, "bye after " + std::to_string(received.size()));
    session.Finish(data_id);
    session.Finish(error_id);
    EXPECT_FALSE(session.Next().has_value());
  });
  SocketPair pair;
  std::future<absl::Status> done = std::async(std::launch::async, [&] {
    return ForwardConnectionSpdy(server.Url("/portforward/t"), 80, std::move(pair.theirs));
  });
  std::string greeting(19, '\0');
  ASSERT_EQ(read(pair.ours.get(), greeting.data(), greeting.size()), 19);
  EXPECT_EQ(greeting, "hello from the pod\n");
  ASSERT_EQ(write(pair.ours.get(), "ping", 4), 4);
  std::string echo(9, '\0');
  ASSERT_EQ(read(pair.ours.get(), echo.data(), echo.size()), 9);
  EXPECT_EQ(echo, "echo:ping");
  shutdown(pair.ours.get(), SHUT_WR);
  // After our EOF the pod still answers, then the end comes back.
  EXPECT_EQ(ReadToEnd(pair.ours.get()), "bye after 4");
  ASSERT_EQ(done.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  absl::Status status = done.get();
  EXPECT_TRUE(status.ok()) << status;
}

TEST(ForwardConnectionSpdyTest, TheServersErrorIsReported) {
  SpdyTestServer server([](SpdySession& session) {
    uint32_t error_id = 0, data_id = 0;
    AcceptForward(session, 9, error_id, data_id);
    ASSERT_NE(data_id, 0u);
    session.Send(error_id, "error forwarding port 9 to pod p: connection refused");
    session.Finish(data_id);
    session.Finish(error_id);
    EXPECT_FALSE(session.Next().has_value());
  });
  SocketPair pair;
  absl::Status status =
      ForwardConnectionSpdy(server.Url("/portforward/t"), 9, std::move(pair.theirs));
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_EQ(status.message(),
            "port-forward to port 9: error forwarding port 9 to pod p: connection refused");
  EXPECT_EQ(ReadToEnd(pair.ours.get()), "");  // the local connection is closed
}

TEST(ForwardConnectionSpdyTest, StopsWhenAsked) {
  std::promise<void> open;
  SpdyTestServer server([&](SpdySession& session) {
    uint32_t error_id = 0, data_id = 0;
    AcceptForward(session, 80, error_id, data_id);
    open.set_value();
    // The client goes away; whatever came first (our FIN or nothing) is fine.
    while (session.Next().has_value()) {
    }
    EXPECT_TRUE(session.closed());
  });
  SocketPair pair;
  std::stop_source stop;
  std::future<absl::Status> done = std::async(std::launch::async, [&] {
    return ForwardConnectionSpdy(server.Url("/portforward/t"), 80, std::move(pair.theirs),
                                 stop.get_token());
  });
  ASSERT_EQ(open.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  stop.request_stop();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  absl::Status status = done.get();
  EXPECT_TRUE(status.ok()) << status;
}

TEST(ForwardConnectionSpdyTest, NothingListening) {
  SocketPair pair;
  // A port that was just free: connecting is refused.
  UniqueFd probe(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  getsockname(probe.get(), reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);
  probe.reset();
  absl::Status status = ForwardConnectionSpdy(
      "http://127.0.0.1:" + std::to_string(port) + "/portforward/t", 80, std::move(pair.theirs));
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_NE(status.message().find("Connection refused"), std::string::npos) << status;
}

}  // namespace
}  // namespace berth::cli
