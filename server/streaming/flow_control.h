// SPDY/3.1 flow control (draft 3.1, section 2.6.8) for one session: the peer's windows
// that bound what we send, and our windows that bound what the peer sends, per stream and
// for the whole session.
//
//   FlowController flow;                              // one per session
//   RETURN_IF_ERROR(flow.OpenStream(1));              // for each SYN_STREAM sent or accepted
//
//   // Sending stdout on stream 1:
//   size_t n = std::min<int64_t>(flow.SendableBytes(1), pending.size());
//   if (n > 0) { write Data{1, false, pending.substr(0, n)}; RETURN_IF_ERROR(flow.OnDataSent(1,
//   n)); }
//
//   // Frames from the peer:
//   ASSIGN_OR_RETURN(std::optional<StreamError> reset, flow.OnWindowUpdate(update));
//   ASSIGN_OR_RETURN(std::vector<StreamError> resets, flow.OnSettings(settings));
//   ASSIGN_OR_RETURN(std::optional<StreamError> reset, flow.OnDataReceived(1, data.size()));
//   // ...and once stdin bytes have been written to the process (or dropped):
//   for (const WindowUpdate& update : flow.OnDataConsumed(1, n)) write update;
//
// Error model, as in spdy_frame.h: a non-OK Status is a session error (GOAWAY, close); a
// StreamError is answered with RST_STREAM{stream_id, FLOW_CONTROL_ERROR} (or
// PROTOCOL_ERROR) and the session goes on. FailedPrecondition marks a bug in the caller.
//
// Windows start at 64 KiB. The peer's SETTINGS_INITIAL_WINDOW_SIZE moves every open
// stream's send window by the difference, so a window can go negative; nothing can be
// sent on it until WINDOW_UPDATEs bring it back above zero. A window pushed above
// 2^31-1 is an error, for the stream or the session as the spec says.
//
// Kubernetes' peers do not do flow control. moby/spdystream (kubectl, the kubelet, crictl,
// critest) never sends WINDOW_UPDATE or SETTINGS, ignores ours, and writes each Write()
// as one DATA frame whatever the windows say. A server that waits for window space from
// such a peer stalls after 64 KiB of output, and one that enforces its receive windows
// resets a `kubectl exec -i` fed faster than the process reads. So by default
// (Enforcement::kOncePeerParticipates) the windows are tracked from the start but only
// bind once the peer shows it does flow control, by sending any SETTINGS or
// WINDOW_UPDATE; before that SendableBytes() is unlimited and overruns are not errors.
// Without flow control the only backpressure is TCP's: stop reading the socket.
//
// Not thread-safe: the session serializes calls.
#ifndef BERTH_SERVER_STREAMING_FLOW_CONTROL_H_
#define BERTH_SERVER_STREAMING_FLOW_CONTROL_H_

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "server/streaming/spdy_frame.h"

namespace berth::streaming::spdy {

inline constexpr int64_t kDefaultWindowSize = 64 * 1024;
inline constexpr int64_t kMaxWindowSize = 0x7fffffff;

class FlowController {
 public:
  enum class Enforcement {
    kAlways,                // the spec
    kOncePeerParticipates,  // see the top of this file
  };

  struct Options {
    Enforcement enforcement = Enforcement::kOncePeerParticipates;
    // The windows we grant the peer, per stream and for the session. The 64 KiB default
    // needs no announcement; larger sizes go out in AnnouncementFrames(). Both are clamped
    // to 64 KiB..2^31-1: SPDY cannot shrink the session window below its initial size,
    // and a smaller stream window would reset streams the peer opened before it saw our
    // SETTINGS.
    int64_t receive_stream_window = kDefaultWindowSize;
    int64_t receive_session_window = kDefaultWindowSize;
  };

  FlowController() : FlowController(Options{}) {}
  explicit FlowController(Options options);

  // What the peer must hear for non-default receive windows: a SETTINGS with
  // INITIAL_WINDOW_SIZE and a session WINDOW_UPDATE, as needed. Send them before any
  // other frame; empty with the defaults.
  std::vector<Frame> AnnouncementFrames() const;

  // Starts tracking a stream (ours or the peer's) with the current initial windows.
  // InvalidArgument for id 0 or above 2^31-1, AlreadyExists if open.
  absl::Status OpenStream(uint32_t stream_id);
  // Forgets a stream. Its unannounced received bytes stay owed to the session window:
  // pass them to OnDataConsumed() as well.
  void CloseStream(uint32_t stream_id);

  // --- Sending: the peer's windows.

  // How many DATA payload bytes may go out on the stream now: the smaller of its window
  // and the session's, 0 if either is exhausted or negative, 0 for an unknown stream.
  // kMaxWindowSize while the windows do not bind.
  int64_t SendableBytes(uint32_t stream_id) const;
  // Records a DATA frame sent. FailedPrecondition for an unknown stream, or (when the
  // windows bind) more than SendableBytes(): both are bugs in the caller.
  absl::Status OnDataSent(uint32_t stream_id, int64_t bytes);
  // A WINDOW_UPDATE from the peer. A delta outside 1..2^31-1 or a window pushed above
  // 2^31-1 is a session error for stream 0 and a StreamError for a stream (the window is
  // then left as it was). Updates for streams no longer open are ignored: they cross
  // our RST_STREAM or FIN on the wire.
  absl::StatusOr<std::optional<StreamError>> OnWindowUpdate(const WindowUpdate& frame);
  // A SETTINGS from the peer: its INITIAL_WINDOW_SIZE, if present, becomes the send
  // window of new streams and moves every open stream's window by the difference.
  // InvalidArgument (session) for a size above 2^31-1; a StreamError for each stream
  // pushed above 2^31-1 (its window is left as it was).
  absl::StatusOr<std::vector<StreamError>> OnSettings(const Settings& frame);

  // --- Receiving: our windows.

  // A DATA frame of `bytes` payload bytes arrived. Always charged to the session window
  // (the spec requires it even for a frame in error, or the two sides' counts drift),
  // and to the stream's if it is open. Overrunning the session window is a session
  // error, overrunning a stream's a StreamError, both only while the windows bind.
  absl::StatusOr<std::optional<StreamError>> OnDataReceived(uint32_t stream_id, int64_t bytes);
  // The application is done with `bytes` received on the stream: written on, or dropped.
  // Returns the WINDOW_UPDATE frames to send now. Updates are batched: a window is topped
  // up once half of it has been consumed, so small reads do not each cost a frame. For
  // a stream no longer open only the session window is topped up.
  std::vector<WindowUpdate> OnDataConsumed(uint32_t stream_id, int64_t bytes);

  // --- State, for the session's decisions and for tests.

  bool windows_bind() const;
  bool peer_participates() const { return peer_participates_; }
  int64_t send_session_window() const { return send_session_window_; }
  int64_t receive_session_window() const { return receive_session_window_; }
  std::optional<int64_t> send_stream_window(uint32_t stream_id) const;
  std::optional<int64_t> receive_stream_window(uint32_t stream_id) const;

 private:
  struct StreamWindows {
    int64_t send = 0;
    int64_t receive = 0;
    int64_t receive_unannounced = 0;  // consumed, not yet returned by WINDOW_UPDATE
  };

  Options options_;
  bool peer_participates_ = false;
  int64_t send_initial_window_ = kDefaultWindowSize;  // the peer's INITIAL_WINDOW_SIZE
  int64_t send_session_window_ = kDefaultWindowSize;
  int64_t receive_session_window_;
  int64_t receive_session_unannounced_ = 0;
  std::unordered_map<uint32_t, StreamWindows> streams_;
};

}  // namespace berth::streaming::spdy

#endif  // BERTH_SERVER_STREAMING_FLOW_CONTROL_H_
