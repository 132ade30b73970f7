#include "server/streaming/ws_sessions.h"

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "runtime/base/strings.h"
#include "server/streaming/remotecommand.h"
#include "spdlog/spdlog.h"

namespace berth::streaming {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

namespace {

// A WebSocket whose every operation runs on the io_context's thread; other threads queue
// messages with Send.
class WsConnection {
 public:
  WsConnection(asio::io_context& io, tcp::socket& socket, const ws::Protocol& protocol,
               std::function<void()> on_activity)
      : io_(io), ws_(socket), protocol_(protocol), on_activity_(std::move(on_activity)) {}

  bool Accept(const HttpRequest& request) {
    const std::string name(protocol_.name);
    ws_.set_option(websocket::stream_base::decorator([name](websocket::response_type& response) {
      response.set(beast::http::field::server, "berth");
      if (!name.empty()) response.set(beast::http::field::sec_websocket_protocol, name);
    }));
    ws_.read_message_max(1 << 20);
    beast::error_code ec;
    ws_.accept(request, ec);
    if (ec) spdlog::debug("streaming: websocket handshake failed: {}", ec.message());
    return !ec;
  }

  // Any thread. Blocks while more than kMaxQueued bytes wait for the client.
  void Send(uint8_t channel, std::string_view data) {
    std::unique_lock lock(mu_);
    drained_.wait(lock, [&] { return queued_bytes_ < kMaxQueued || broken_; });
    if (broken_ || closing_) return;
    queue_.push_back(ws::EncodeMessage(protocol_, channel, data));
    queued_bytes_ += queue_.back().size();
    lock.unlock();
    asio::post(io_, [this] { WriteNext(); });
  }

  // Any thread: close normally once everything queued is written.
  void Close() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    asio::post(io_, [this] { WriteNext(); });
  }

  // io thread: reads until the connection ends; then `on_gone` once.
  void StartReading(std::function<void(const ws::Message&)> on_message,
                    std::function<void()> on_gone) {
    on_message_ = std::move(on_message);
    on_gone_ = std::move(on_gone);
    ReadNext();
  }

 private:
  static constexpr size_t kMaxQueued = 1 << 20;

  void ReadNext() {
    ws_.async_read(buffer_, [this](beast::error_code ec, size_t) {
      if (ec) {
        {
          std::lock_guard lock(mu_);
          broken_ = true;
        }
        drained_.notify_all();
        if (on_gone_) std::exchange(on_gone_, nullptr)();
        return;
      }
      if (on_activity_) on_activity_();
      std::string message = beast::buffers_to_string(buffer_.data());
      buffer_.consume(buffer_.size());
      absl::StatusOr<std::optional<ws::Message>> decoded = ws::DecodeMessage(protocol_, message);
      if (decoded.ok() && decoded->has_value()) on_message_(**decoded);
      ReadNext();
    });
  }

  void WriteNext() {
    std::unique_lock lock(mu_);
    if (writing_ || broken_) return;
    if (queue_.empty()) {
      if (closing_ && !close_sent_) {
        close_sent_ = true;
        lock.unlock();
        ws_.async_close(websocket::close_code::normal, [](beast::error_code) {});
      }
      return;
    }
    writing_ = true;
    const std::string& front = queue_.front();
    lock.unlock();
    ws_.text(protocol_.base64);
    ws_.async_write(asio::buffer(front), [this](beast::error_code ec, size_t) {
      {
        std::lock_guard lock(mu_);
        queued_bytes_ -= queue_.front().size();
        queue_.pop_front();
        writing_ = false;
        if (ec) broken_ = true;
      }
      drained_.notify_all();
      if (!ec && on_activity_) on_activity_();
      if (!ec) WriteNext();
    });
  }

  asio::io_context& io_;
  websocket::stream<tcp::socket&> ws_;
  const ws::Protocol protocol_;
  const std::function<void()> on_activity_;
  beast::flat_buffer buffer_;
  std::function<void(const ws::Message&)> on_message_;
  std::function<void()> on_gone_;

  std::mutex mu_;
  std::condition_variable drained_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool closing_ = false;
  bool close_sent_ = false;
  bool broken_ = false;
};

}  // namespace

void ServeRemoteCommandWebSocket(asio::io_context& io, tcp::socket& socket,
                                 const HttpRequest& request, const ws::Protocol& protocol,
                                 const RemoteCommandSession& session) {
  WsConnection connection(io, socket, protocol, session.on_activity);
  if (!connection.Accept(request)) return;
  if (session.on_started) session.on_started();
  auto guard = asio::make_work_guard(io);
  const std::string_view status_protocol = protocol.json_status ? kRemoteCommandV4 : kRemoteCommandV2;

  std::shared_ptr<RemoteProcess> process;  // set on the io thread, once launched
  bool launched = false;
  std::string early_stdin;  // input that came before the process
  bool early_stdin_closed = false;
  std::atomic<bool> finished = false;
  std::thread output;

  auto finish = [&](const absl::StatusOr<int>& exit) {
    std::string status = RemoteCommandStatus(status_protocol, exit, session.command);
    if (!status.empty()) connection.Send(ws::kErrorChannel, status);
    connection.Close();
    finished = true;
    if (session.on_finished) session.on_finished();
    asio::post(io, [&guard] { guard.reset(); });
  };
  // On the io thread: starts the process, with the client's terminal size when known.
  auto launch = [&](uint16_t width, uint16_t height) {
    if (launched) return;
    launched = true;
    absl::StatusOr<std::unique_ptr<RemoteProcess>> started = session.start(width, height);
    if (!started.ok()) {
      finish(started.status());
      return;
    }
    process = *std::move(started);
    if (!early_stdin.empty()) process->WriteStdin(early_stdin);
    if (early_stdin_closed) process->CloseStdin();
    // The kubelet's way of saying the streams are ready.
    if (session.stdout) connection.Send(ws::kStdoutChannel, "");
    output = std::thread([&] {
      absl::StatusOr<int> exit = process->Wait([&](OutputStream stream, std::string_view bytes) {
        const bool to_stderr = stream == OutputStream::kStderr && session.stderr;
        connection.Send(to_stderr ? ws::kStderrChannel : ws::kStdoutChannel, bytes);
      });
      finish(exit);
    });
  };
  // A terminal's first size follows the handshake at once; a process started before it
  // would see a terminal of the wrong size, so it waits for it a moment.
  asio::steady_timer first_size(io);
  if (session.tty) {
    first_size.expires_after(std::chrono::milliseconds(absl::ToInt64Milliseconds(kFirstSizeWait)));
    first_size.async_wait([&](beast::error_code ec) {
      if (!ec) launch(0, 0);
    });
  } else {
    launch(0, 0);
  }

  remotecommand::TerminalSizeDecoder sizes;
  connection.StartReading(
      [&](const ws::Message& message) {
        if (message.channel == ws::kStdinChannel && session.stdin) {
          const bool close = message.kind == ws::Message::Kind::kClose;
          if (!launched) {
            early_stdin_closed |= close;
            if (!close) early_stdin += message.data;
          } else if (process && close) {
            process->CloseStdin();
          } else if (process && !message.data.empty()) {
            process->WriteStdin(message.data);
          }
        } else if (message.channel == ws::kResizeChannel && session.tty &&
                   message.kind == ws::Message::Kind::kData) {
          absl::StatusOr<std::vector<remotecommand::TerminalSize>> resized =
              sizes.Feed(message.data);
          if (!resized.ok() || resized->empty()) return;
          if (!launched) {
            first_size.cancel();
            launch(resized->back().width, resized->back().height);
          } else if (process) {
            for (const auto& size : *resized) process->Resize(size.width, size.height);
          }
        }
      },
      [&] {
        if (!launched) {  // gone before anything ran
          launched = true;
          first_size.cancel();
          asio::post(io, [&guard] { guard.reset(); });
        }
        if (process && !finished) process->Cancel();
      });
  io.run();
  if (output.joinable()) output.join();
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

void ServePortForwardWebSocket(asio::io_context& io, tcp::socket& socket,
                               const HttpRequest& request, const ws::Protocol& protocol,
                               Backend& backend, const std::string& pod_id,
                               const std::vector<uint16_t>& ports,
                               const std::function<void()>& on_activity) {
  WsConnection connection(io, socket, protocol, on_activity);
  if (!connection.Accept(request)) return;
  auto guard = asio::make_work_guard(io);

  std::vector<UniqueFd> sockets(ports.size());
  std::vector<std::thread> pumps;
  std::atomic<size_t> running = ports.size();
  auto one_done = [&] {
    if (--running == 0) {
      connection.Close();
      asio::post(io, [&guard] { guard.reset(); });
    }
  };
  for (size_t i = 0; i < ports.size(); ++i) {
    const uint8_t data_channel = ws::PortForwardDataChannel(i);
    const uint8_t error_channel = ws::PortForwardErrorChannel(i);
    connection.Send(data_channel, ws::EncodePortPrefix(ports[i]));
    connection.Send(error_channel, ws::EncodePortPrefix(ports[i]));
    absl::StatusOr<UniqueFd> dialed = backend.DialPort(pod_id, ports[i]);
    if (!dialed.ok()) {
      connection.Send(error_channel, StrCat("error forwarding port ", ports[i], " to pod ", pod_id,
                                            ": ", dialed.status().message()));
      one_done();
      continue;
    }
    sockets[i] = *std::move(dialed);
    pumps.emplace_back([&, i, data_channel] {
      char buffer[32 * 1024];
      while (true) {
        ssize_t n = recv(sockets[i].get(), buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        connection.Send(data_channel, std::string_view(buffer, static_cast<size_t>(n)));
      }
      one_done();
    });
  }
  connection.StartReading(
      [&](const ws::Message& message) {
        ws::PortChannel target = ws::PortForwardChannelOf(message.channel);
        if (target.error || target.port_index >= sockets.size()) return;
        int fd = sockets[target.port_index].get();
        if (fd < 0) return;
        if (message.kind == ws::Message::Kind::kClose) {
          shutdown(fd, SHUT_WR);
          return;
        }
        std::string_view data = message.data;
        while (!data.empty()) {
          ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          data.remove_prefix(static_cast<size_t>(n));
        }
      },
      [&] {
        for (UniqueFd& fd : sockets) {
          if (fd.valid()) shutdown(fd.get(), SHUT_RDWR);
        }
      });
  io.run();
  for (UniqueFd& fd : sockets) {
    if (fd.valid()) shutdown(fd.get(), SHUT_RDWR);
  }
  for (std::thread& pump : pumps) pump.join();
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace berth::streaming
