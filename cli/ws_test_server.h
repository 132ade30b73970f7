// A WebSocket server for berthctl's streaming tests: Boost.Beast, sync, one thread,
// speaking the channel protocols (server/streaming/ws_channel.h) as the runtime's
// streaming server does. Each test scripts the server's side of its scenario:
//
//   TestServer server([](ServerSession& session) {
//     session.Accept(ws::Purpose::kRemoteCommand);   // or Refuse(status, body)
//     while (std::optional<ws::Message> in = session.Read()) session.Send(1, in->data);
//     session.Send(ws::kErrorChannel, remotecommand::SuccessStatusJson());
//     session.Close();
//   });
//   RunRemoteCommand(server.Url("/exec/token"), io);
#ifndef BERTH_CLI_WS_TEST_SERVER_H_
#define BERTH_CLI_WS_TEST_SERVER_H_

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "server/streaming/ws_channel.h"

namespace berth::cli::wstest {

namespace ws = ::berth::streaming::ws;

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

// One connection as the test server sees it. A handler first calls Accept (or Refuse),
// then reads and writes in whatever order its scenario needs.
class ServerSession {
 public:
  explicit ServerSession(tcp::socket socket) : socket_(std::move(socket)) {
    http::read(socket_, buffer_, request_);
  }

  const http::request<http::string_body>& request() const { return request_; }
  std::string offered() const {
    auto offer = request_[http::field::sec_websocket_protocol];
    return std::string(offer.data(), offer.size());
  }
  std::string target() const {
    return std::string(request_.target().data(), request_.target().size());
  }

  // Upgrades, choosing as the streaming server does (or `force` regardless).
  void Accept(ws::Purpose purpose, std::string_view force = "") {
    std::optional<ws::Protocol> protocol =
        ws::NegotiateProtocol(force.empty() ? offered() : std::string(force), purpose);
    ASSERT_TRUE(protocol.has_value()) << offered();
    protocol_ = *protocol;
    ws_.emplace(std::move(socket_));
    ws_->set_option(websocket::stream_base::decorator(
        [name = std::string(protocol_.name)](websocket::response_type& response) {
          if (!name.empty()) response.set(http::field::sec_websocket_protocol, name);
        }));
    ws_->accept(request_);
    ws_->binary(true);
  }

  void Refuse(http::status status, std::string body) {
    http::response<http::string_body> response(status, 11);
    response.body() = std::move(body);
    response.prepare_payload();
    http::write(socket_, response);
  }

  void SendRaw(std::string_view message) { ws_->write(net::buffer(message)); }
  void Send(uint8_t channel, std::string_view data) {
    SendRaw(ws::EncodeMessage(protocol_, channel, data));
  }

  // The next non-empty message; nullopt once the client has closed (or the connection
  // broke: then closed_cleanly() is false).
  std::optional<ws::Message> Read() {
    while (true) {
      beast::flat_buffer buffer;
      beast::error_code ec;
      ws_->read(buffer, ec);
      if (ec) {
        closed_cleanly_ = ec == websocket::error::closed;
        return std::nullopt;
      }
      absl::StatusOr<std::optional<ws::Message>> message =
          ws::DecodeMessage(protocol_, beast::buffers_to_string(buffer.data()));
      EXPECT_TRUE(message.ok()) << message.status();
      if (message.ok() && message->has_value()) return **message;
    }
  }
  bool closed_cleanly() const { return closed_cleanly_; }

  void Close() {
    beast::error_code ignored;
    ws_->close(websocket::close_code::normal, ignored);
  }

 private:
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  std::optional<websocket::stream<tcp::socket>> ws_;
  ws::Protocol protocol_;
  bool closed_cleanly_ = false;
};

// Serves `connections` connections one after the other on 127.0.0.1, port 0.
class TestServer {
 public:
  explicit TestServer(std::function<void(ServerSession&)> handler, int connections = 1)
      : acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this, handler = std::move(handler), connections] {
      for (int i = 0; i < connections; ++i) {
        try {
          ServerSession session(acceptor_.accept());
          handler(session);
        } catch (const std::exception& e) {
          ADD_FAILURE() << "test server: " << e.what();
        }
      }
    });
  }
  ~TestServer() { thread_.join(); }

  std::string Url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) +
           std::string(path);
  }

 private:
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

}  // namespace berth::cli::wstest

#endif  // BERTH_CLI_WS_TEST_SERVER_H_
