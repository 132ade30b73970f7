// Kubernetes' remotecommand (exec, attach) and portforward protocols over SPDY/3.1, as the
// kubelet's streaming server serves them to client-go (kubectl, crictl, critest).
//
// remotecommand: the client opens one stream per stdio stream it wants, each named by its
// "streamType" header (error, stdin, stdout, stderr, resize); once all that the request
// calls for are open, the process starts. stdout/stderr DATA carries output, stdin DATA
// input (FIN closes stdin), resize DATA carries {"Width":..,"Height":..} objects. At the
// end the error stream carries the status (v4: JSON with the exit code; v2/v3: a message,
// only on failure) and every stream we write on gets FIN.
//
// portforward: per connection to forward, the client opens an "error" and a "data" stream
// with the same "requestID" and "port" headers; data flows both ways on the data stream,
// a dial failure is written on the error stream.
#ifndef BERTH_SERVER_STREAMING_SPDY_SESSIONS_H_
#define BERTH_SERVER_STREAMING_SPDY_SESSIONS_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/streaming/backend.h"
#include "server/streaming/spdy_connection.h"

namespace berth::streaming {

// The remotecommand versions berth serves over SPDY, best first.
inline constexpr std::string_view kRemoteCommandV4 = "v4.channel.k8s.io";
inline constexpr std::string_view kRemoteCommandV3 = "v3.channel.k8s.io";
inline constexpr std::string_view kRemoteCommandV2 = "v2.channel.k8s.io";
inline constexpr std::string_view kPortForwardV1 = "portforward.k8s.io";

// How long a tty session waits for the client's first terminal size before it starts
// the process anyway.
inline constexpr absl::Duration kFirstSizeWait = absl::Milliseconds(500);

struct RemoteCommandSession {
  std::string_view protocol;  // one of the kRemoteCommand* versions
  bool tty = false, stdin = false, stdout = false, stderr = false;
  std::vector<std::string> command;  // for the exit message; empty for attach
  // Starts the process; with a tty, the client's terminal size when it sent one in time
  // (0, 0 otherwise).
  std::function<absl::StatusOr<std::unique_ptr<RemoteProcess>>(uint16_t width, uint16_t height)>
      start;
  // Called whenever bytes move on a WebSocket session (SPDY has its own hook).
  std::function<void()> on_activity;
  // Called once the streams are open and the command starts (the idle timer takes over).
  std::function<void()> on_started;
  // Called once the command is over and everything is sent: the connection may close.
  std::function<void()> on_finished;
};

// Runs the session to its end (the command finished and the client closed, or the client
// went away: then the process is cancelled).
void ServeRemoteCommandSpdy(SpdyConnection& connection, const RemoteCommandSession& session);

// Forwards connections into the pod until the client closes the connection.
void ServePortForwardSpdy(SpdyConnection& connection, Backend& backend, const std::string& pod_id);

// What the error stream carries when the command ended with `exit` (empty: nothing).
std::string RemoteCommandStatus(std::string_view protocol, const absl::StatusOr<int>& exit,
                                const std::vector<std::string>& command);

}  // namespace berth::streaming

#endif  // BERTH_SERVER_STREAMING_SPDY_SESSIONS_H_
