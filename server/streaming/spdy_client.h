// The client end of a Kubernetes streaming connection over SPDY/3.1, as client-go (kubectl,
// crictl) opens one: an HTTP upgrade, then streams the client opens by SYN_STREAM, on
// berth's own frame codec (spdy_frame.h). Blocking sockets; no flow control of its own
// (as moby/spdystream: no SETTINGS or WINDOW_UPDATE sent, the peer's ignored), so TCP is
// the only backpressure. Used by berthctl (`--spdy`) and by tests (spdy_test_client.h).
//
//   ASSIGN_OR_RETURN(SpdyUpgrade upgrade,
//                    UpgradeToSpdy({.host = "127.0.0.1", .port = 41405, .target = "/exec/tok"},
//                                  {"v4.channel.k8s.io"}));
//   if (upgrade.answer.status != 101) ...;            // upgrade.connection is null then
//   SpdyClientConnection& c = *upgrade.connection;
//   ASSIGN_OR_RETURN(uint32_t error, c.Open({{"streamtype", "error"}}));
//   // ... wait in Next() for its SYN_REPLY, open the others, then:
//   RETURN_IF_ERROR(c.Send(stdin_id, "input", /*fin=*/true));       // any thread
//   while (true) {                                                    // one reader thread
//     ASSIGN_OR_RETURN(std::optional<spdy::ReceivedFrame> frame, c.Next());
//     if (!frame) break;                                              // the peer closed
//   }
//
// Threads: one thread reads (Next); any thread may write (Open, Send, Reset), and writes
// are serialized under a mutex, so that the frames carrying headers are compressed in
// the order they go out. Shutdown() from any thread ends the connection: a blocked Next
// returns, and so do blocked writes (with an error).
#ifndef BERTH_SERVER_STREAMING_SPDY_CLIENT_H_
#define BERTH_SERVER_STREAMING_SPDY_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "runtime/base/unique_fd.h"
#include "server/streaming/spdy_frame.h"

namespace berth::streaming {

// Where the streaming URL points.
struct SpdyTarget {
  std::string host;  // a name or an address literal (IPv6 without brackets)
  uint16_t port = 80;
  std::string target;  // the request target: path and query
};

struct SpdyDialOptions {
  // For connecting and for the whole HTTP exchange.
  absl::Duration timeout = absl::Seconds(10);
  // Readable: give up at once (Cancelled). -1: none.
  int cancel_fd = -1;
  // The User-Agent header; none when empty.
  std::string user_agent;
};

// The server's answer to the upgrade request.
struct SpdyUpgradeAnswer {
  int status = 0;      // 101 when upgraded
  std::string reason;  // "Switching Protocols", "Not Found"
  std::string head;    // the status line and the header lines, without the blank line
  std::string body;    // not upgraded: the body, as much as came (up to 64 KiB)

  // The first value of a header (the name matched case-insensitively), trimmed.
  std::optional<std::string> Header(std::string_view name) const;
};

class SpdyClientConnection;

struct SpdyUpgrade {
  SpdyUpgradeAnswer answer;
  // The SPDY session when the answer is 101; null otherwise (the socket is closed).
  std::unique_ptr<SpdyClientConnection> connection;
};

// Connects to `target` and asks for an upgrade to SPDY/3.1: `POST <target> HTTP/1.1` with
// `Connection: Upgrade`, `Upgrade: SPDY/3.1` and an `X-Stream-Protocol-Version` header
// per protocol, in order. Any answer is returned; errors are for the transport only:
// Unavailable when nothing could be reached or the connection broke, DeadlineExceeded
// past the timeout, Cancelled on cancel_fd, InvalidArgument for an answer that is not
// HTTP.
absl::StatusOr<SpdyUpgrade> UpgradeToSpdy(const SpdyTarget& target,
                                          const std::vector<std::string>& protocols,
                                          const SpdyDialOptions& options = {});

class SpdyClientConnection {
 public:
  // `already_read`: bytes that came after the 101 answer's head.
  SpdyClientConnection(UniqueFd fd, std::string_view already_read);
  SpdyClientConnection(const SpdyClientConnection&) = delete;
  SpdyClientConnection& operator=(const SpdyClientConnection&) = delete;

  // Any thread. SYN_STREAM with `headers` on the next odd stream id; returns the id.
  // The server answers with SYN_REPLY, or RST_STREAM when it refuses the stream.
  absl::StatusOr<uint32_t> Open(const spdy::HeaderBlock& headers, bool fin = false);
  // Any thread. DATA on the stream (in frames of at most 32 KiB); `fin` ends our half of
  // it (an empty `data` with `fin` is a bare FIN). Unavailable once the connection broke.
  absl::Status Send(uint32_t stream_id, std::string_view data, bool fin = false);
  absl::Status Reset(uint32_t stream_id, spdy::RstStatus status = spdy::RstStatus::kCancel);

  // The reader thread only. The next frame that concerns the caller: Data, SynReply,
  // RstStream, SynStream, Headers, GoAway, or StreamError (a frame whose headers broke
  // the rules; RST_STREAM has been sent for it). PING is answered and SETTINGS and
  // WINDOW_UPDATE are dropped here. nullopt once the connection is closed (by the peer
  // or Shutdown). DeadlineExceeded past `deadline` (the connection is still usable);
  // a decoding error is a session error: GOAWAY has been sent, the connection is done.
  absl::StatusOr<std::optional<spdy::ReceivedFrame>> Next(
      absl::Time deadline = absl::InfiniteFuture());

  // Any thread: ends the connection both ways (the socket stays open until destruction,
  // so a concurrent call never meets a reused descriptor).
  void Shutdown();

 private:
  absl::Status WriteLocked(const spdy::Frame& frame) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const UniqueFd fd_;
  spdy::FrameDecoder decoder_;  // reader thread only
  bool closed_ = false;         // reader thread only: EOF seen

  absl::Mutex mu_;
  spdy::FrameEncoder encoder_ ABSL_GUARDED_BY(mu_);
  uint32_t next_stream_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // a write failed: no more writes
};

}  // namespace berth::streaming

#endif  // BERTH_SERVER_STREAMING_SPDY_CLIENT_H_
