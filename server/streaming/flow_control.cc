#include "server/streaming/flow_control.h"

#include <algorithm>

#include "runtime/base/strings.h"

namespace berth::streaming::spdy {

FlowController::FlowController(Options options) : options_(options) {
  options_.receive_stream_window =
      std::clamp(options_.receive_stream_window, kDefaultWindowSize, kMaxWindowSize);
  options_.receive_session_window =
      std::clamp(options_.receive_session_window, kDefaultWindowSize, kMaxWindowSize);
  receive_session_window_ = options_.receive_session_window;
}

std::vector<Frame> FlowController::AnnouncementFrames() const {
  std::vector<Frame> frames;
  if (options_.receive_stream_window != kDefaultWindowSize) {
    frames.push_back(
        Settings{.entries = {{static_cast<uint32_t>(SettingId::kInitialWindowSize),
                              static_cast<uint32_t>(options_.receive_stream_window), 0}}});
  }
  if (options_.receive_session_window != kDefaultWindowSize) {
    // The session window has no setting: it starts at 64 KiB and only grows by updates.
    frames.push_back(WindowUpdate{
        0, static_cast<uint32_t>(options_.receive_session_window - kDefaultWindowSize)});
  }
  return frames;
}

bool FlowController::windows_bind() const {
  return options_.enforcement == Enforcement::kAlways || peer_participates_;
}

absl::Status FlowController::OpenStream(uint32_t stream_id) {
  if (stream_id == 0 || stream_id > kMaxStreamId) {
    return absl::InvalidArgumentError(StrCat("flow control: stream id ", stream_id));
  }
  auto [it, inserted] = streams_.try_emplace(
      stream_id,
      StreamWindows{.send = send_initial_window_, .receive = options_.receive_stream_window});
  if (!inserted) {
    return absl::AlreadyExistsError(StrCat("flow control: stream ", stream_id, " is already open"));
  }
  return absl::OkStatus();
}

void FlowController::CloseStream(uint32_t stream_id) { streams_.erase(stream_id); }

int64_t FlowController::SendableBytes(uint32_t stream_id) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return 0;
  if (!windows_bind()) return kMaxWindowSize;
  return std::max<int64_t>(0, std::min(it->second.send, send_session_window_));
}

absl::Status FlowController::OnDataSent(uint32_t stream_id, int64_t bytes) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) {
    return absl::FailedPreconditionError(
        StrCat("flow control: DATA sent on stream ", stream_id, ", which is not open"));
  }
  if (bytes < 0) {
    return absl::FailedPreconditionError(StrCat("flow control: negative DATA size ", bytes));
  }
  if (windows_bind() && bytes > SendableBytes(stream_id)) {
    return absl::FailedPreconditionError(StrCat("flow control: ", bytes, " bytes sent on stream ",
                                                stream_id, " with only ", SendableBytes(stream_id),
                                                " allowed"));
  }
  it->second.send -= bytes;
  send_session_window_ -= bytes;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<StreamError>> FlowController::OnWindowUpdate(
    const WindowUpdate& frame) {
  peer_participates_ = true;
  const int64_t delta = frame.delta_window_size;
  if (frame.stream_id == 0) {
    if (delta < 1 || delta > kMaxWindowSize) {
      return absl::InvalidArgumentError(
          StrCat("flow control: session WINDOW_UPDATE delta ", delta, " is outside 1..2^31-1"));
    }
    if (send_session_window_ + delta > kMaxWindowSize) {
      return absl::ResourceExhaustedError(StrCat("flow control: session WINDOW_UPDATE of ", delta,
                                                 " pushes the window from ", send_session_window_,
                                                 " above 2^31-1"));
    }
    send_session_window_ += delta;
    return std::nullopt;
  }
  auto it = streams_.find(frame.stream_id);
  if (it == streams_.end()) return std::nullopt;
  if (delta < 1 || delta > kMaxWindowSize) {
    return StreamError{frame.stream_id, RstStatus::kProtocolError,
                       StrCat("WINDOW_UPDATE delta ", delta, " is outside 1..2^31-1")};
  }
  if (it->second.send + delta > kMaxWindowSize) {
    return StreamError{frame.stream_id, RstStatus::kFlowControlError,
                       StrCat("WINDOW_UPDATE of ", delta, " pushes the window from ",
                              it->second.send, " above 2^31-1")};
  }
  it->second.send += delta;
  return std::nullopt;
}

absl::StatusOr<std::vector<StreamError>> FlowController::OnSettings(const Settings& frame) {
  peer_participates_ = true;
  std::vector<StreamError> errors;
  std::optional<uint32_t> initial = frame.Find(SettingId::kInitialWindowSize);
  if (!initial) return errors;
  if (*initial > kMaxWindowSize) {
    return absl::InvalidArgumentError(
        StrCat("flow control: SETTINGS_INITIAL_WINDOW_SIZE ", *initial, " is above 2^31-1"));
  }
  const int64_t difference = static_cast<int64_t>(*initial) - send_initial_window_;
  send_initial_window_ = *initial;
  for (auto& [stream_id, windows] : streams_) {
    if (windows.send + difference > kMaxWindowSize) {
      errors.push_back(
          StreamError{stream_id, RstStatus::kFlowControlError,
                      StrCat("SETTINGS_INITIAL_WINDOW_SIZE ", *initial, " pushes the window from ",
                             windows.send, " above 2^31-1")});
      continue;
    }
    windows.send += difference;
  }
  // Deterministic order for the caller's RST_STREAMs (and for tests).
  std::sort(errors.begin(), errors.end(),
            [](const StreamError& a, const StreamError& b) { return a.stream_id < b.stream_id; });
  return errors;
}

absl::StatusOr<std::optional<StreamError>> FlowController::OnDataReceived(uint32_t stream_id,
                                                                          int64_t bytes) {
  if (bytes < 0) {
    return absl::FailedPreconditionError(StrCat("flow control: negative DATA size ", bytes));
  }
  receive_session_window_ -= bytes;
  if (receive_session_window_ < 0 && windows_bind()) {
    return absl::ResourceExhaustedError(
        StrCat("flow control: the peer overran the session window by ", -receive_session_window_,
               " bytes"));
  }
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return std::nullopt;
  it->second.receive -= bytes;
  if (it->second.receive < 0 && windows_bind()) {
    return StreamError{
        stream_id, RstStatus::kFlowControlError,
        StrCat("the peer overran the stream window by ", -it->second.receive, " bytes")};
  }
  return std::nullopt;
}

std::vector<WindowUpdate> FlowController::OnDataConsumed(uint32_t stream_id, int64_t bytes) {
  std::vector<WindowUpdate> updates;
  if (bytes <= 0) return updates;
  // Never give back more than was taken: a window must not grow past its size (and a
  // delta must fit in 31 bits), even if the caller over-counts.
  auto give_back = [&](uint32_t id, int64_t size, int64_t& window, int64_t& unannounced) {
    unannounced = std::min(unannounced + bytes, std::max<int64_t>(0, size - window));
    if (unannounced > 0 && unannounced >= size / 2) {
      int64_t delta = std::min(unannounced, kMaxWindowSize);
      updates.push_back({id, static_cast<uint32_t>(delta)});
      window += delta;
      unannounced -= delta;
    }
  };
  auto it = streams_.find(stream_id);
  if (it != streams_.end()) {
    give_back(stream_id, options_.receive_stream_window, it->second.receive,
              it->second.receive_unannounced);
  }
  give_back(0, options_.receive_session_window, receive_session_window_,
            receive_session_unannounced_);
  return updates;
}

std::optional<int64_t> FlowController::send_stream_window(uint32_t stream_id) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return std::nullopt;
  return it->second.send;
}

std::optional<int64_t> FlowController::receive_stream_window(uint32_t stream_id) const {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return std::nullopt;
  return it->second.receive;
}

}  // namespace berth::streaming::spdy
