// One SPDY/3.1 session on an upgraded HTTP connection, server side: frames in and out of a
// socket, PING answered, flow control kept (flow_control.h). The sessions on top
// (spdy_sessions.h) only see the frames that carry streams.
//
// Threads: one thread reads (Next); any thread may write. Writes are serialized, and a
// DATA write waits while the peer's flow-control window is shut (only once the peer has
// shown it does flow control; moby/spdystream never does).
#ifndef BERTH_SERVER_STREAMING_SPDY_CONNECTION_H_
#define BERTH_SERVER_STREAMING_SPDY_CONNECTION_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/streaming/flow_control.h"
#include "server/streaming/spdy_frame.h"

namespace berth::streaming {

class SpdyConnection {
 public:
  // `fd` stays the caller's. `already_read`: bytes read past the HTTP request.
  // `on_activity` is called whenever bytes move (the idle timer).
  SpdyConnection(int fd, std::string already_read, std::function<void()> on_activity);

  // Whether a frame may be ready for Next() within `timeout`: bytes are buffered or the
  // socket is readable (or closed).
  bool WaitReadable(absl::Duration timeout);

  // The next frame that concerns a stream: SynStream, Data, RstStream, Headers, GoAway.
  // PING, SETTINGS and WINDOW_UPDATE are handled here. nullopt once the peer closed the
  // connection, a read failed, or the peer broke the protocol (then GOAWAY was sent).
  std::optional<spdy::ReceivedFrame> Next();

  absl::Status Reply(uint32_t stream_id);  // SYN_REPLY, empty headers (what spdystream sends)
  absl::Status Reset(uint32_t stream_id, spdy::RstStatus status);
  // DATA on the stream, split into frames of at most 32 KiB, waiting for window space.
  absl::Status SendData(uint32_t stream_id, std::string_view data);
  // An empty DATA frame with FLAG_FIN: we will send nothing more on the stream.
  absl::Status Finish(uint32_t stream_id);
  absl::Status GoAway(spdy::GoAwayStatus status = spdy::GoAwayStatus::kOk);
  // `bytes` received on the stream have been used: returns window to the peer.
  void Consumed(uint32_t stream_id, size_t bytes);
  // Starts flow-control accounting for a stream the peer opened.
  void OpenStream(uint32_t stream_id);

  // Ends our sending half (the peer reads EOF); reading goes on.
  void ShutdownWrite();
  // Ends everything now: blocked reads and writes return, writes fail from now on.
  void Abort();

 private:
  // What flow control says of a received SETTINGS, WINDOW_UPDATE or DATA: the streams
  // to reset, or a session error.
  absl::StatusOr<std::vector<spdy::StreamError>> ApplyFlowLocked(const spdy::ReceivedFrame& frame)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Write(const spdy::Frame& frame);
  absl::Status WriteLocked(const spdy::Frame& frame) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int fd_;
  const std::function<void()> on_activity_;
  spdy::FrameDecoder decoder_;  // reader thread only

  absl::Mutex mu_;
  spdy::FrameEncoder encoder_ ABSL_GUARDED_BY(mu_);
  spdy::FlowController flow_ ABSL_GUARDED_BY(mu_);
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // a write failed or Abort: no more writes
};

}  // namespace berth::streaming

#endif  // BERTH_SERVER_STREAMING_SPDY_CONNECTION_H_
