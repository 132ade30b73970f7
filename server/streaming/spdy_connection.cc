#include "server/streaming/spdy_connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::streaming {

namespace {
constexpr size_t kMaxDataFrame = 32 * 1024;
}

SpdyConnection::SpdyConnection(int fd, std::string already_read,
                               std::function<void()> on_activity)
    : fd_(fd), on_activity_(std::move(on_activity)) {
  decoder_.Feed(already_read);
}

bool SpdyConnection::WaitReadable(absl::Duration timeout) {
  if (decoder_.buffered() > 0) return true;
  pollfd pfd{fd_, POLLIN, 0};
  int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  return poll(&pfd, 1, ms < 0 ? 0 : ms) > 0;
}

std::optional<spdy::ReceivedFrame> SpdyConnection::Next() {
  char buffer[64 * 1024];
  while (true) {
    absl::StatusOr<std::optional<spdy::ReceivedFrame>> next = decoder_.Next();
    if (!next.ok()) {
      (void)GoAway(spdy::GoAwayStatus::kProtocolError);
      return std::nullopt;
    }
    if (!next->has_value()) {
      ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      if (on_activity_) on_activity_();
      decoder_.Feed(std::string_view(buffer, static_cast<size_t>(n)));
      continue;
    }
    spdy::ReceivedFrame frame = std::move(**next);
    if (auto* ping = std::get_if<spdy::Ping>(&frame)) {
      (void)Write(*ping);  // the same id back
      continue;
    }
    if (auto* error = std::get_if<spdy::StreamError>(&frame)) {
      (void)Reset(error->stream_id, error->status);
      continue;
    }
    // SETTINGS, WINDOW_UPDATE and DATA go through flow control first: a session error
    // ends the session (GOAWAY), a stream error resets that stream.
    auto* data = std::get_if<spdy::Data>(&frame);
    const bool flow_only = std::holds_alternative<spdy::Settings>(frame) ||
                           std::holds_alternative<spdy::WindowUpdate>(frame);
    if (flow_only || data != nullptr) {
      absl::MutexLock lock(&mu_);
      absl::StatusOr<std::vector<spdy::StreamError>> resets = ApplyFlowLocked(frame);
      if (!resets.ok()) {
        (void)WriteLocked(spdy::GoAway{.status = spdy::GoAwayStatus::kProtocolError});
        return std::nullopt;
      }
      for (const spdy::StreamError& reset : *resets) {
        (void)WriteLocked(spdy::RstStream{reset.stream_id, reset.status});
      }
      if (flow_only || !resets->empty()) continue;
    }
    if (std::holds_alternative<spdy::SynReply>(frame)) continue;  // we open no streams
    return frame;
  }
}

absl::StatusOr<std::vector<spdy::StreamError>> SpdyConnection::ApplyFlowLocked(
    const spdy::ReceivedFrame& frame) {
  auto as_list = [](absl::StatusOr<std::optional<spdy::StreamError>> one)
      -> absl::StatusOr<std::vector<spdy::StreamError>> {
    if (!one.ok()) return one.status();
    if (!one->has_value()) return std::vector<spdy::StreamError>{};
    return std::vector<spdy::StreamError>{**one};
  };
  if (auto* settings = std::get_if<spdy::Settings>(&frame)) return flow_.OnSettings(*settings);
  if (auto* update = std::get_if<spdy::WindowUpdate>(&frame)) {
    return as_list(flow_.OnWindowUpdate(*update));
  }
  const auto& data = std::get<spdy::Data>(frame);
  return as_list(flow_.OnDataReceived(data.stream_id, static_cast<int64_t>(data.data.size())));
}

absl::Status SpdyConnection::Reply(uint32_t stream_id) {
  return Write(spdy::SynReply{.stream_id = stream_id});
}

absl::Status SpdyConnection::Reset(uint32_t stream_id, spdy::RstStatus status) {
  {
    absl::MutexLock lock(&mu_);
    flow_.CloseStream(stream_id);
  }
  return Write(spdy::RstStream{stream_id, status});
}

absl::Status SpdyConnection::SendData(uint32_t stream_id, std::string_view data) {
  absl::MutexLock lock(&mu_);
  while (!data.empty()) {
    auto can_send = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return broken_ || !flow_.send_stream_window(stream_id).has_value() ||
             flow_.SendableBytes(stream_id) > 0;
    };
    mu_.Await(absl::Condition(&can_send));
    if (broken_) return absl::UnavailableError("streaming: the connection is closed");
    if (!flow_.send_stream_window(stream_id).has_value()) {
      return absl::FailedPreconditionError(StrCat("streaming: stream ", stream_id, " is closed"));
    }
    size_t n = std::min<size_t>(
        {data.size(), kMaxDataFrame, static_cast<size_t>(flow_.SendableBytes(stream_id))});
    RETURN_IF_ERROR(WriteLocked(spdy::Data{.stream_id = stream_id, .data = std::string(data.substr(0, n))}));
    (void)flow_.OnDataSent(stream_id, static_cast<int64_t>(n));
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status SpdyConnection::Finish(uint32_t stream_id) {
  return Write(spdy::Data{.stream_id = stream_id, .fin = true});
}

absl::Status SpdyConnection::GoAway(spdy::GoAwayStatus status) {
  return Write(spdy::GoAway{.status = status});
}

void SpdyConnection::Consumed(uint32_t stream_id, size_t bytes) {
  absl::MutexLock lock(&mu_);
  for (const spdy::WindowUpdate& update :
       flow_.OnDataConsumed(stream_id, static_cast<int64_t>(bytes))) {
    (void)WriteLocked(update);
  }
}

void SpdyConnection::OpenStream(uint32_t stream_id) {
  absl::MutexLock lock(&mu_);
  (void)flow_.OpenStream(stream_id);
}

void SpdyConnection::ShutdownWrite() { shutdown(fd_, SHUT_WR); }

void SpdyConnection::Abort() {
  absl::MutexLock lock(&mu_);
  broken_ = true;
  shutdown(fd_, SHUT_RDWR);
}

absl::Status SpdyConnection::Write(const spdy::Frame& frame) {
  absl::MutexLock lock(&mu_);
  return WriteLocked(frame);
}

absl::Status SpdyConnection::WriteLocked(const spdy::Frame& frame) {
  if (broken_) return absl::UnavailableError("streaming: the connection is closed");
  std::string bytes;
  absl::Status encoded = encoder_.EncodeTo(frame, bytes);
  if (!encoded.ok()) return encoded;
  std::string_view rest = bytes;
  while (!rest.empty()) {
    ssize_t n = send(fd_, rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      broken_ = true;
      return ErrnoStatus(errno, "streaming: write to the client");
    }
    rest.remove_prefix(static_cast<size_t>(n));
    if (on_activity_) on_activity_();
  }
  return absl::OkStatus();
}

}  // namespace berth::streaming
