// A SPDY/3.1 server for berthctl's streaming tests: plain sockets and berth's frame codec
// (server/streaming/spdy_frame.h), one thread, the runtime's streaming server as far as
// each test scripts it:
//
//   SpdyTestServer server([](SpdySession& session) {
//     session.Accept("v4.channel.k8s.io");               // or Refuse(404, ...)
//     spdy::SynStream error = *session.AcceptStream();   // SYN_STREAM in, SYN_REPLY out
//     ...
//     session.Send(error.stream_id, remotecommand::SuccessStatusJson(), /*fin=*/true);
//     EXPECT_FALSE(session.Next().has_value());          // the client closes
//   });
//   RunRemoteCommandSpdy(server.Url("/exec/token1"), io);
#ifndef BERTH_CLI_SPDY_TEST_SERVER_H_
#define BERTH_CLI_SPDY_TEST_SERVER_H_

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "runtime/base/unique_fd.h"
#include "server/streaming/spdy_frame.h"

namespace berth::cli::spdytest {

namespace spdy = ::berth::streaming::spdy;

// One connection as the test server sees it. The request head is read on construction;
// the handler then calls Accept (or Refuse) and goes on with frames.
class SpdySession {
 public:
  explicit SpdySession(UniqueFd fd) : fd_(std::move(fd)) {
    std::string received;
    char buffer[4096];
    size_t end;
    while ((end = received.find("\r\n\r\n")) == std::string::npos) {
      if (!WaitReadable(fd_.get(), 10000)) {
        ADD_FAILURE() << "no request head";
        return;
      }
      ssize_t n = recv(fd_.get(), buffer, sizeof buffer, 0);
      if (n <= 0) return;
      received.append(buffer, static_cast<size_t>(n));
    }
    head_ = received.substr(0, end);
    decoder_.Feed(std::string_view(received).substr(end + 4));
  }

  // "POST /exec/token1 HTTP/1.1\r\nHost: ...", without the blank line.
  const std::string& head() const { return head_; }
  std::string request_line() const { return head_.substr(0, head_.find("\r\n")); }
  // The request target, from the request line.
  std::string target() const {
    std::string line = request_line();
    size_t first = line.find(' ');
    size_t second = line.find(' ', first + 1);
    return line.substr(first + 1, second - first - 1);
  }
  // Whether the head has this exact header line.
  bool HasHeaderLine(std::string_view line) const {
    return (head_ + "\r\n").find("\r\n" + std::string(line) + "\r\n") != std::string::npos;
  }

  void Accept(std::string_view protocol) {
    WriteRaw("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
             (protocol.empty() ? std::string()
                               : "X-Stream-Protocol-Version: " + std::string(protocol) + "\r\n") +
             "\r\n");
  }
  void Refuse(int status, std::string_view reason, std::string_view body) {
    WriteRaw("HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
             "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + std::string(body));
  }

  // The next frame from the client; nullopt once it has closed the connection (or after
  // `timeout_ms` of silence: then the test fails unless `quiet_ok`).
  std::optional<spdy::ReceivedFrame> Next(int timeout_ms = 20000, bool quiet_ok = false) {
    char buffer[64 * 1024];
    while (true) {
      absl::StatusOr<std::optional<spdy::ReceivedFrame>> next = decoder_.Next();
      if (!next.ok()) {
        ADD_FAILURE() << next.status();
        return std::nullopt;
      }
      if (next->has_value()) return std::move(**next);
      if (closed_) return std::nullopt;
      if (!WaitReadable(fd_.get(), timeout_ms)) {
        if (!quiet_ok) ADD_FAILURE() << "the client sent nothing for " << timeout_ms << " ms";
        timed_out_ = true;
        return std::nullopt;
      }
      ssize_t n = recv(fd_.get(), buffer, sizeof buffer, 0);
      if (n <= 0) {
        closed_ = true;
        continue;
      }
      decoder_.Feed(std::string_view(buffer, static_cast<size_t>(n)));
    }
  }
  bool closed() const { return closed_; }
  bool timed_out() const { return timed_out_; }

  // Reads up to the next SYN_STREAM and answers it with SYN_REPLY. Other frames before
  // it fail the test.
  std::optional<spdy::SynStream> AcceptStream() {
    std::optional<spdy::ReceivedFrame> frame = Next();
    if (!frame) {
      ADD_FAILURE() << "no SYN_STREAM";
      return std::nullopt;
    }
    auto* syn = std::get_if<spdy::SynStream>(&*frame);
    if (syn == nullptr) {
      ADD_FAILURE() << "a frame other than SYN_STREAM (index " << frame->index() << ")";
      return std::nullopt;
    }
    Write(spdy::SynReply{.stream_id = syn->stream_id});
    return *syn;
  }

  void Write(const spdy::Frame& frame) {
    absl::StatusOr<std::string> bytes = encoder_.Encode(frame);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    WriteRaw(*bytes);
  }
  void Send(uint32_t stream_id, std::string_view data, bool fin = false) {
    Write(spdy::Data{.stream_id = stream_id, .fin = fin, .data = std::string(data)});
  }
  void Finish(uint32_t stream_id) { Send(stream_id, "", /*fin=*/true); }
  // Closes the connection.
  void Close() { fd_.reset(); }

 private:
  static bool WaitReadable(int fd, int timeout_ms) {
    pollfd pfd{fd, POLLIN, 0};
    return poll(&pfd, 1, timeout_ms) > 0;
  }
  void WriteRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;  // the client is gone; the test sees it elsewhere
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }

  UniqueFd fd_;
  std::string head_;
  spdy::FrameEncoder encoder_;
  spdy::FrameDecoder decoder_;
  bool closed_ = false;
  bool timed_out_ = false;
};

// Serves `connections` connections one after the other on 127.0.0.1, port 0.
class SpdyTestServer {
 public:
  explicit SpdyTestServer(std::function<void(SpdySession&)> handler, int connections = 1) {
    listener_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(listen(listener_.get(), 16), 0);
    socklen_t length = sizeof address;
    getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this, handler = std::move(handler), connections] {
      for (int i = 0; i < connections; ++i) {
        UniqueFd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!fd.valid()) {
          ADD_FAILURE() << "accept";
          return;
        }
        SpdySession session(std::move(fd));
        handler(session);
      }
    });
  }
  ~SpdyTestServer() { thread_.join(); }

  std::string Url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }

 private:
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace berth::cli::spdytest

#endif  // BERTH_CLI_SPDY_TEST_SERVER_H_
