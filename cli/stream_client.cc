#include "cli/stream_client.h"

#include <unistd.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "cli/stream_protocol.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cli {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using streaming::remotecommand::TerminalSize;

// Bytes read from a local connection at a time: one WebSocket message each.
constexpr size_t kReadChunk = 32 * 1024;
// How many bytes the stdin thread lets queue for the WebSocket before it waits, so a
// fast producer (`exec -i ... < big-file`) is held back by the connection.
constexpr size_t kMaxQueuedBytes = 1 << 20;

std::string ToString(beast::string_view text) { return std::string(text.data(), text.size()); }

// A WebSocket client connection speaking a channel protocol. Everything but Send,
// Shutdown and the constructor runs on the one thread that runs `ioc`; Send and
// Shutdown are for other threads.
class ChannelSocket {
 public:
  ChannelSocket(net::io_context& ioc, std::string display_url)
      : ioc_(ioc), ws_(ioc), display_url_(std::move(display_url)) {}
  ChannelSocket(const ChannelSocket&) = delete;
  ChannelSocket& operator=(const ChannelSocket&) = delete;

  // Connects and upgrades, running `ioc` until done (so call it before anything else
  // runs it). The error names the URL and the stage that failed.
  absl::Status Connect(const StreamUrl& url, std::string_view offer, ws::Purpose purpose);

  bool open() const { return open_; }
  const ws::Protocol& protocol() const { return protocol_; }

  // Reads the next message: handler(ec, message). websocket::error::closed is the
  // normal end. One read at a time.
  void Read(std::function<void(beast::error_code, std::string_view)> handler) {
    ws_.async_read(buffer_, [this, handler = std::move(handler)](beast::error_code ec, size_t) {
      std::string message = beast::buffers_to_string(buffer_.data());
      buffer_.consume(buffer_.size());
      if (ec == websocket::error::closed) peer_closed_ = true;
      handler(ec, message);
    });
  }

  // Queues a message; done(ec), if given, once it is written or dropped.
  void Write(std::string message, std::function<void(beast::error_code)> done = {}) {
    if (close_started_ || peer_closed_ || !open_) {
      if (done) done(net::error::operation_aborted);
      return;
    }
    queue_.push_back({std::move(message), std::move(done)});
    if (!writing_) WriteNext();
  }

  // Closes normally once the queued messages are written. Reads go on until the
  // server's close arrives (websocket::error::closed), bounded by kHandshakeTimeout.
  void Close() {
    close_requested_ = true;
    if (!writing_) StartClose();
  }

  // Drops the TCP connection at once: every pending operation fails.
  void Abort() {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  // Why the server closed, for an error message: "" for a normal close.
  std::string CloseReason() const {
    const websocket::close_reason& reason = ws_.reason();
    if (!peer_closed_ || reason.code == websocket::close_code::normal) return "";
    return StrCat(" (closed with code ", static_cast<int>(reason.code),
                  reason.reason.empty() ? "" : ": ",
                  std::string(reason.reason.data(), reason.reason.size()), ")");
  }

  // Any thread: queues a message, first waiting while more than kMaxQueuedBytes wait to
  // be written. False once Shutdown() has been called (the message is dropped).
  bool Send(std::string message) {
    std::unique_lock lock(mu_);
    room_.wait(lock, [&] { return shut_down_ || queued_bytes_ < kMaxQueuedBytes; });
    if (shut_down_) return false;
    const size_t size = message.size();
    queued_bytes_ += size;
    lock.unlock();
    net::post(ioc_, [this, size, message = std::move(message)]() mutable {
      Write(std::move(message), [this, size](beast::error_code) {
        std::lock_guard lock(mu_);
        queued_bytes_ -= size;
        room_.notify_all();
      });
    });
    return true;
  }

  // Any thread: wakes Send's waiters for good. Call once `ioc` has stopped running.
  void Shutdown() {
    std::lock_guard lock(mu_);
    shut_down_ = true;
    room_.notify_all();
  }

 private:
  struct Pending {
    std::string data;
    std::function<void(beast::error_code)> done;
  };

  void WriteNext() {
    if (queue_.empty()) {
      writing_ = false;
      if (close_requested_) StartClose();
      return;
    }
    writing_ = true;
    ws_.async_write(net::buffer(queue_.front().data), [this](beast::error_code ec, size_t) {
      Pending written = std::move(queue_.front());
      queue_.pop_front();
      if (written.done) written.done(ec);
      if (ec) {
        // The connection is broken: what is queued will never go.
        writing_ = false;
        while (!queue_.empty()) {
          Pending dropped = std::move(queue_.front());
          queue_.pop_front();
          if (dropped.done) dropped.done(ec);
        }
        return;
      }
      WriteNext();
    });
  }

  void StartClose() {
    // After the server's close frame Beast has answered it already.
    if (close_started_ || peer_closed_ || !open_) return;
    close_started_ = true;
    ws_.async_close(websocket::close_code::normal, [](beast::error_code) {});
  }

  net::io_context& ioc_;
  websocket::stream<beast::tcp_stream> ws_;
  std::string display_url_;
  ws::Protocol protocol_;
  beast::flat_buffer buffer_;
  bool open_ = false;
  std::deque<Pending> queue_;
  bool writing_ = false;
  bool close_requested_ = false;
  bool close_started_ = false;
  bool peer_closed_ = false;

  std::mutex mu_;
  std::condition_variable room_;
  size_t queued_bytes_ = 0;  // guarded by mu_
  bool shut_down_ = false;   // guarded by mu_
};

absl::Status ChannelSocket::Connect(const StreamUrl& url, std::string_view offer,
                                    ws::Purpose purpose) {
  beast::error_code result;
  bool done = false;
  const char* stage = "resolve";
  websocket::response_type response;
  tcp::resolver resolver(ioc_);
  beast::tcp_stream& tcp_stream = beast::get_lowest_layer(ws_);
  resolver.async_resolve(
      url.host, std::to_string(url.port),
      [&](beast::error_code ec, const tcp::resolver::results_type& endpoints) {
        if (ec) {
          result = ec;
          done = true;
          return;
        }
        stage = "connect";
        tcp_stream.expires_after(kHandshakeTimeout);
        tcp_stream.async_connect(endpoints, [&](beast::error_code ec, const tcp::endpoint&) {
          if (ec) {
            result = ec;
            done = true;
            return;
          }
          // From here the WebSocket's own timeouts apply, not the TCP stream's.
          tcp_stream.expires_never();
          websocket::stream_base::timeout timeouts{};
          timeouts.handshake_timeout = kHandshakeTimeout;          // opening and closing
          timeouts.idle_timeout = websocket::stream_base::none();  // a shell may idle
          timeouts.keep_alive_pings = false;
          ws_.set_option(timeouts);
          ws_.set_option(websocket::stream_base::decorator(
              [offer = std::string(offer)](websocket::request_type& request) {
                request.set(http::field::user_agent, "berthctl");
                request.set(http::field::sec_websocket_protocol, offer);
              }));
          stage = "websocket upgrade";
          ws_.async_handshake(response, url.HostHeader(), url.target, [&](beast::error_code ec) {
            result = ec;
            done = true;
          });
        });
      });
  // Until the handshake is done, not until `ioc` runs out of work: a refused upgrade
  // leaves the WebSocket's handshake timer pending.
  while (!done && ioc_.run_one()) {
  }
  if (ioc_.stopped()) ioc_.restart();
  if (result == websocket::error::upgrade_declined) {
    // The body says why (an unknown or used token, a missing port), so show it.
    return UpgradeRefusedError(display_url_, response.result_int(), ToString(response.reason()),
                               response.body());
  }
  if (result) {
    return absl::UnavailableError(
        StrCat("streaming connection to ", display_url_, ": ", stage, ": ", result.message()));
  }
  absl::StatusOr<ws::Protocol> protocol =
      AcceptProtocol(ToString(response[http::field::sec_websocket_protocol]), offer, purpose);
  if (!protocol.ok()) {
    return absl::Status(protocol.status().code(),
                        StrCat(display_url_, ": ", protocol.status().message()));
  }
  protocol_ = *protocol;
  ws_.binary(true);
  open_ = true;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int> RunRemoteCommand(const std::string& url, const RemoteCommandIo& io) {
  ASSIGN_OR_RETURN(StreamUrl parsed, ParseStreamUrl(url));
  net::io_context ioc;
  ChannelSocket socket(ioc, url);
  RETURN_IF_ERROR(socket.Connect(parsed, kRemoteCommandOffer, ws::Purpose::kRemoteCommand));

  RemoteCommandReceiver receiver(socket.protocol());
  absl::Status failure;  // the first local failure; the session is being closed
  bool interrupted = false;
  net::steady_timer close_grace(ioc);
  auto fail = [&](absl::Status status) {
    if (failure.ok()) failure = std::move(status);
    socket.Close();
  };

  std::function<void()> read_next = [&] {
    socket.Read([&](beast::error_code ec, std::string_view message) {
      if (ec) {
        close_grace.cancel();
        // After the status, how the connection ends does not matter any more.
        if (ec != websocket::error::closed && !receiver.has_exit() && !interrupted) {
          if (failure.ok()) {
            failure =
                absl::UnavailableError(StrCat("streaming connection to ", url, ": ", ec.message()));
          }
        }
        return;
      }
      absl::StatusOr<RemoteCommandEvent> event = receiver.Receive(message);
      if (!event.ok()) {
        fail(absl::Status(event.status().code(),
                          StrCat("from ", url, ": ", event.status().message())));
      } else if (!failure.ok()) {
        // Closing: output that arrives meanwhile has nowhere sensible to go.
      } else if (event->kind == RemoteCommandEvent::Kind::kStdout) {
        if (absl::Status s = WriteToFd(io.out_fd, event->data, "stdout"); !s.ok()) fail(s);
      } else if (event->kind == RemoteCommandEvent::Kind::kStderr) {
        if (absl::Status s = WriteToFd(io.err_fd, event->data, "stderr"); !s.ok()) fail(s);
      } else if (event->kind == RemoteCommandEvent::Kind::kExit) {
        // The server closes after the status; a server that does not gets closed.
        close_grace.expires_after(kStatusCloseGrace);
        close_grace.async_wait([&](beast::error_code ec) {
          if (!ec) socket.Close();
        });
      }
      read_next();
    });
  };
  read_next();

  const ws::Protocol& protocol = socket.protocol();
  InputPump pump(
      io,
      {.stdin_data =
           [&](std::string_view data) {
             return socket.Send(ws::EncodeMessage(protocol, ws::kStdinChannel, data));
           },
       // v5 can tell the server, so that a `cat` in the container ends; v4 has no way to.
       .stdin_eof =
           [&] {
             absl::StatusOr<std::string> close = ws::EncodeCloseSignal(protocol, ws::kStdinChannel);
             return !close.ok() || socket.Send(*std::move(close));
           },
       .resize =
           [&](const TerminalSize& size) {
             return socket.Send(ws::EncodeMessage(
                 protocol, ws::kResizeChannel, streaming::remotecommand::EncodeTerminalSize(size)));
           },
       .interrupt =
           [&] {
             net::post(ioc, [&] {
               interrupted = true;
               socket.Close();
             });
           }});
  RETURN_IF_ERROR(pump.Start());
  ioc.run();
  socket.Shutdown();
  pump.Stop();

  if (interrupted) return absl::CancelledError(StrCat("interrupted; left ", url));
  if (!failure.ok()) return failure;
  absl::StatusOr<int> exit_code = receiver.Finish();
  if (absl::IsUnavailable(exit_code.status())) {
    return absl::UnavailableError(
        StrCat(url, ": ", exit_code.status().message(), socket.CloseReason()));
  }
  return exit_code;
}

absl::Status ForwardConnection(const std::string& url, uint16_t remote_port, UniqueFd local,
                               std::stop_token stop) {
  ASSIGN_OR_RETURN(StreamUrl parsed, ParseStreamUrl(url));
  parsed.target = AddQueryParameter(parsed.target, "port", std::to_string(remote_port));
  const std::string what = StrCat("port-forward to port ", remote_port);
  net::io_context ioc;
  net::posix::stream_descriptor conn(ioc, local.release());
  ChannelSocket socket(ioc, url);
  bool stopped = false;
  // Declared after what it touches, so it is gone before they are.
  std::stop_callback on_stop(stop, [&] {
    net::post(ioc, [&] {
      stopped = true;
      beast::error_code ignored;
      conn.close(ignored);
      if (socket.open()) {
        socket.Close();
      } else {
        socket.Abort();
      }
    });
  });
  absl::Status connected = socket.Connect(parsed, kPortForwardOffer, ws::Purpose::kPortForward);
  if (stop.stop_requested()) return absl::OkStatus();
  RETURN_IF_ERROR(connected);

  PortForwardReceiver receiver(socket.protocol(), remote_port);
  absl::Status failure;
  auto fail = [&](absl::Status status) {
    if (failure.ok() && !stopped) failure = std::move(status);
    socket.Close();
  };
  auto end_local = [&] {
    beast::error_code ignored;
    conn.close(ignored);
  };

  // Local to pod: one message per read, the next read once it is written.
  std::array<char, kReadChunk> buffer;
  std::function<void()> read_local = [&] {
    conn.async_read_some(net::buffer(buffer), [&](beast::error_code ec, size_t n) {
      if (ec) {
        // EOF: the local client is done. v4 cannot half-close, so the whole forwarded
        // connection ends (as with kubectl's WebSocket port-forward).
        if (ec != net::error::eof && ec != net::error::operation_aborted &&
            ec != net::error::connection_reset) {
          fail(absl::UnavailableError(StrCat(what, ": read the local connection: ", ec.message())));
        }
        socket.Close();
        return;
      }
      socket.Write(ws::EncodeMessage(socket.protocol(), ws::PortForwardDataChannel(0),
                                     std::string_view(buffer.data(), n)),
                   [&](beast::error_code ec) {
                     if (!ec) read_local();
                   });
    });
  };

  // Pod to local: the next message once the last is written.
  std::function<void()> read_remote = [&] {
    socket.Read([&](beast::error_code ec, std::string_view message) {
      if (ec) {
        if (ec != websocket::error::closed && ec != net::error::operation_aborted) {
          fail(absl::UnavailableError(
              StrCat(what, ": streaming connection to ", url, ": ", ec.message())));
        }
        end_local();
        return;
      }
      absl::StatusOr<PortForwardEvent> event = receiver.Receive(message);
      if (!event.ok()) {
        fail(absl::Status(event.status().code(), StrCat(what, ": ", event.status().message())));
        end_local();
      } else if (event->kind == PortForwardEvent::Kind::kError) {
        fail(absl::UnavailableError(StrCat(what, ": ", event->data)));
        end_local();
      } else if (event->kind == PortForwardEvent::Kind::kData && conn.is_open()) {
        auto data = std::make_shared<std::string>(std::move(event->data));
        net::async_write(conn, net::buffer(*data), [&, data](beast::error_code ec, size_t) {
          if (ec) {
            // The local client went away: the end of this connection, not an error.
            end_local();
            socket.Close();
          }
          read_remote();
        });
        return;
      }
      read_remote();
    });
  };

  read_local();
  read_remote();
  ioc.run();
  socket.Shutdown();
  return failure;
}

}  // namespace berth::cli
