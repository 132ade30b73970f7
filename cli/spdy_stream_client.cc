#include "cli/spdy_stream_client.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>

#include "cli/stream_client.h"
#include "cli/stream_protocol.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "server/streaming/remotecommand.h"
#include "server/streaming/spdy_client.h"

namespace berth::cli {
namespace {

namespace spdy = streaming::spdy;
using streaming::SpdyClientConnection;
using streaming::remotecommand::TerminalSize;

constexpr size_t kReadChunk = 32 * 1024;

absl::Duration ToDuration(std::chrono::seconds seconds) { return absl::Seconds(seconds.count()); }

// Connects to `url` and upgrades to SPDY with `protocol`. Cancelled when cancel_fd becomes
// readable first.
absl::StatusOr<std::unique_ptr<SpdyClientConnection>> Connect(const std::string& url,
                                                              std::string_view protocol,
                                                              int cancel_fd) {
  ASSIGN_OR_RETURN(StreamUrl parsed, ParseStreamUrl(url));
  absl::StatusOr<streaming::SpdyUpgrade> upgrade = streaming::UpgradeToSpdy(
      {.host = parsed.host, .port = parsed.port, .target = parsed.target}, {std::string(protocol)},
      {.timeout = ToDuration(kHandshakeTimeout), .cancel_fd = cancel_fd, .user_agent = "berthctl"});
  if (!upgrade.ok()) {
    if (absl::IsCancelled(upgrade.status())) return upgrade.status();
    return absl::UnavailableError(
        StrCat("streaming connection to ", url, ": ", upgrade.status().message()));
  }
  const streaming::SpdyUpgradeAnswer& answer = upgrade->answer;
  if (answer.status != 101)
    return UpgradeRefusedError(url, answer.status, answer.reason, answer.body);
  if (absl::Status accepted =
          AcceptSpdyProtocol(answer.Header("X-Stream-Protocol-Version"), protocol);
      !accepted.ok()) {
    return absl::Status(accepted.code(), StrCat(url, ": ", accepted.message()));
  }
  return std::move(upgrade->connection);
}

// Opens a stream and waits for the server's SYN_REPLY (client-go waits for each in turn).
absl::StatusOr<uint32_t> OpenStream(SpdyClientConnection& connection, const std::string& url,
                                    const spdy::HeaderBlock& headers) {
  const std::string type(headers.Get("streamtype").value_or("?"));
  ASSIGN_OR_RETURN(uint32_t id, connection.Open(headers));
  const absl::Time deadline = absl::Now() + ToDuration(kHandshakeTimeout);
  while (true) {
    absl::StatusOr<std::optional<spdy::ReceivedFrame>> frame = connection.Next(deadline);
    if (absl::IsDeadlineExceeded(frame.status())) {
      return absl::UnavailableError(
          StrCat(url, ": the server did not answer the ", type, " stream in time"));
    }
    if (!frame.ok()) return absl::UnavailableError(StrCat(url, ": ", frame.status().message()));
    if (!frame->has_value()) {
      return absl::UnavailableError(
          StrCat(url, ": the connection closed while the ", type, " stream was being opened"));
    }
    if (auto* reply = std::get_if<spdy::SynReply>(&**frame); reply && reply->stream_id == id) {
      return id;
    }
    if (auto* reset = std::get_if<spdy::RstStream>(&**frame); reset && reset->stream_id == id) {
      return absl::FailedPreconditionError(StrCat(url, ": the server refused the ", type,
                                                  " stream (", spdy::ToString(reset->status), ")"));
    }
    if (auto* syn = std::get_if<spdy::SynStream>(&**frame)) {
      (void)connection.Reset(syn->stream_id, spdy::RstStatus::kRefusedStream);
    }
    // Anything else (data racing ahead, a GOAWAY) waits for the session proper.
  }
}

}  // namespace

absl::StatusOr<int> RunRemoteCommandSpdy(const std::string& url, const RemoteCommandIo& io) {
  absl::StatusOr<std::unique_ptr<SpdyClientConnection>> connection =
      Connect(url, kSpdyRemoteCommandProtocol, io.interrupt_fd);
  if (absl::IsCancelled(connection.status())) {
    return absl::CancelledError(StrCat("interrupted; left ", url));
  }
  if (!connection.ok()) return connection.status();
  SpdyClientConnection& c = **connection;
  auto open = [&](std::string_view type) {
    return OpenStream(c, url, spdy::HeaderBlock{{"streamtype", type}});
  };
  // client-go's order (remotecommand v2..v4): error, stdin, stdout, stderr, resize.
  // 0: a stream the session does not have.
  uint32_t error_id = 0, stdin_id = 0, stdout_id = 0, stderr_id = 0, resize_id = 0;
  ASSIGN_OR_RETURN(error_id, open("error"));
  if (io.in_fd >= 0) {
    ASSIGN_OR_RETURN(stdin_id, open("stdin"));
  }
  ASSIGN_OR_RETURN(stdout_id, open("stdout"));
  if (!io.tty) {
    ASSIGN_OR_RETURN(stderr_id, open("stderr"));
  } else {
    ASSIGN_OR_RETURN(resize_id, open("resize"));
  }

  std::atomic<bool> interrupted = false;
  InputPump pump(
      io, {.stdin_data = [&](std::string_view data) { return c.Send(stdin_id, data).ok(); },
           .stdin_eof = [&] { return c.Send(stdin_id, "", /*fin=*/true).ok(); },
           .resize =
               [&](const TerminalSize& size) {
                 return c.Send(resize_id, streaming::remotecommand::EncodeTerminalSize(size)).ok();
               },
           .interrupt =
               [&] {
                 interrupted = true;
                 c.Shutdown();
               }});
  RETURN_IF_ERROR(pump.Start());

  std::string error_data;
  bool error_ended = false, stdout_ended = false, stderr_ended = stderr_id == 0;
  absl::Status failure;
  absl::Time deadline = absl::InfiniteFuture();
  auto end_stream = [&](uint32_t id) {
    if (id == error_id) error_ended = true;
    if (id == stdout_id) stdout_ended = true;
    if (id == stderr_id) stderr_ended = true;
  };
  while (!(error_ended && stdout_ended && stderr_ended)) {
    // The status is in: the output streams end next; a server that lingers gets closed.
    if (error_ended && deadline == absl::InfiniteFuture()) {
      deadline = absl::Now() + ToDuration(kStatusCloseGrace);
    }
    absl::StatusOr<std::optional<spdy::ReceivedFrame>> next = c.Next(deadline);
    if (absl::IsDeadlineExceeded(next.status())) break;
    if (!next.ok()) {
      failure = absl::UnavailableError(StrCat("from ", url, ": ", next.status().message()));
      break;
    }
    if (!next->has_value()) break;  // the connection is closed
    spdy::ReceivedFrame& frame = **next;
    if (auto* data = std::get_if<spdy::Data>(&frame)) {
      absl::Status written;
      if (data->stream_id == stdout_id) {
        written = WriteToFd(io.out_fd, data->data, "stdout");
      } else if (data->stream_id == stderr_id && stderr_id != 0) {
        written = WriteToFd(io.err_fd, data->data, "stderr");
      } else if (data->stream_id == error_id) {
        error_data += data->data;
      }
      if (!written.ok()) {
        failure = written;
        break;
      }
      if (data->fin) end_stream(data->stream_id);
    } else if (auto* reset = std::get_if<spdy::RstStream>(&frame)) {
      end_stream(reset->stream_id);
    } else if (auto* syn = std::get_if<spdy::SynStream>(&frame)) {
      (void)c.Reset(syn->stream_id, spdy::RstStatus::kRefusedStream);
    }
  }
  c.Shutdown();
  pump.Stop();

  if (interrupted) return absl::CancelledError(StrCat("interrupted; left ", url));
  if (!failure.ok()) return failure;
  absl::StatusOr<int> exit_code = SpdyRemoteCommandOutcome(error_data, error_ended);
  if (absl::IsUnavailable(exit_code.status())) {
    return absl::UnavailableError(StrCat(url, ": ", exit_code.status().message()));
  }
  return exit_code;
}

absl::Status ForwardConnectionSpdy(const std::string& url, uint16_t remote_port, UniqueFd local,
                                   std::stop_token stop) {
  const std::string what = StrCat("port-forward to port ", remote_port);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd cancel_read(fds[0]), cancel_write(fds[1]);

  // Declared before the stop callback, so that it outlives it.
  std::unique_ptr<SpdyClientConnection> connection;
  std::mutex mu;
  bool stopped = false;  // guarded by mu
  std::stop_callback on_stop(stop, [&] {
    std::lock_guard lock(mu);
    stopped = true;
    char byte = 0;
    (void)!write(cancel_write.get(), &byte, 1);
    if (connection) connection->Shutdown();
    shutdown(local.get(), SHUT_RDWR);
  });
  auto was_stopped = [&] {
    std::lock_guard lock(mu);
    return stopped;
  };

  absl::StatusOr<std::unique_ptr<SpdyClientConnection>> connected =
      Connect(url, kSpdyPortForwardProtocol, cancel_read.get());
  if (was_stopped()) return absl::OkStatus();
  if (!connected.ok())
    return absl::Status(connected.status().code(),
                        StrCat(what, ": ", connected.status().message()));
  {
    std::lock_guard lock(mu);
    connection = *std::move(connected);
    if (stopped) connection->Shutdown();
  }
  SpdyClientConnection& c = *connection;
  const std::string port = std::to_string(remote_port);
  auto open = [&](std::string_view type) {
    return OpenStream(c, url, {{"streamtype", type}, {"port", port}, {"requestid", "0"}});
  };
  absl::StatusOr<uint32_t> error_id = open("error");
  if (error_id.ok()) (void)c.Send(*error_id, "", /*fin=*/true);  // berthctl never writes there
  absl::StatusOr<uint32_t> data_id = error_id.ok() ? open("data") : error_id;
  if (!data_id.ok()) {
    if (was_stopped()) return absl::OkStatus();
    return absl::Status(data_id.status().code(), StrCat(what, ": ", data_id.status().message()));
  }

  // Local to pod on a thread of its own; FIN at the local client's EOF.
  std::atomic<bool> local_gone = false;
  std::atomic<bool> relay_over = false;  // the EOF to_pod reads next is ours, not the client's
  std::thread to_pod([&] {
    char buffer[kReadChunk];
    while (true) {
      ssize_t n = recv(local.get(), buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) {
        if (!c.Send(*data_id, std::string_view(buffer, static_cast<size_t>(n))).ok()) return;
        continue;
      }
      if (n == 0) {
        if (!relay_over) (void)c.Send(*data_id, "", /*fin=*/true);
      } else {
        // The local client reset: nothing more can reach it either.
        local_gone = true;
        c.Shutdown();
      }
      return;
    }
  });

  // Pod to local, until the server has ended the data stream (and the error stream).
  std::string error_text;
  bool data_ended = false, error_ended = false, closed = false;
  absl::Status failure;
  absl::Time deadline = absl::InfiniteFuture();
  while (!(data_ended && error_ended)) {
    if (data_ended && deadline == absl::InfiniteFuture()) {
      deadline = absl::Now() + ToDuration(kStatusCloseGrace);
    }
    absl::StatusOr<std::optional<spdy::ReceivedFrame>> next = c.Next(deadline);
    if (absl::IsDeadlineExceeded(next.status())) break;
    if (!next.ok()) {
      failure = absl::UnavailableError(StrCat(what, ": from ", url, ": ", next.status().message()));
      break;
    }
    if (!next->has_value()) {
      closed = true;
      break;
    }
    spdy::ReceivedFrame& frame = **next;
    if (auto* data = std::get_if<spdy::Data>(&frame)) {
      if (data->stream_id == *data_id) {
        std::string_view rest = data->data;
        while (!rest.empty()) {
          ssize_t n = send(local.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          rest.remove_prefix(static_cast<size_t>(n));
        }
        if (!rest.empty()) {
          local_gone = true;  // the local client went away: the end, not an error
          break;
        }
        if (data->fin) data_ended = true;
      } else if (data->stream_id == *error_id) {
        error_text += data->data;
        if (data->fin) error_ended = true;
      }
    } else if (auto* reset = std::get_if<spdy::RstStream>(&frame)) {
      if (reset->stream_id == *data_id) data_ended = true;
      if (reset->stream_id == *error_id) error_ended = true;
    } else if (auto* syn = std::get_if<spdy::SynStream>(&frame)) {
      (void)c.Reset(syn->stream_id, spdy::RstStatus::kRefusedStream);
    }
  }
  // Ends the local side as kubectl does once the remote side is done, and wakes to_pod.
  relay_over = true;
  shutdown(local.get(), SHUT_RDWR);
  c.Shutdown();
  to_pod.join();

  if (was_stopped()) return absl::OkStatus();
  if (!error_text.empty()) return absl::UnavailableError(StrCat(what, ": ", error_text));
  if (!failure.ok()) return failure;
  if (closed && !data_ended && !local_gone) {
    return absl::UnavailableError(StrCat(what, ": the streaming connection to ", url,
                                         " closed before the data stream ended"));
  }
  return absl::OkStatus();
}

}  // namespace berth::cli
