// berthctl's streaming client: the WebSocket side of exec -it, attach and port-forward,
// speaking Kubernetes' channel protocols (server/streaming/ws_channel.h) to the URL a CRI
// Exec, Attach or PortForward call returned. Plain http only; no SPDY.
//
//   // exec / attach: blocks until the server closes; the remote exit code.
//   ASSIGN_OR_RETURN(int code, RunRemoteCommand(response.url(),
//                                               {.in_fd = STDIN_FILENO, .tty = true}));
//
//   // port-forward: one accepted local connection, relayed until either side ends.
//   absl::Status done = ForwardConnection(response.url(), 80, std::move(accepted_fd), stop);
//
// What goes on the wire:
//   GET <path>[?port=N] HTTP/1.1, Upgrade: websocket, Sec-WebSocket-Protocol:
//   "v5.channel.k8s.io, v4.channel.k8s.io" (exec, attach) or "v4.channel.k8s.io"
//   (port-forward); the 101 answer must name one of them. Binary messages only.
//   Exec/attach: stdin on channel 0 (v5: {255, 0} at EOF), resizes on channel 4 as
//   {"Width":W,"Height":H} (tty only: first at once, then on each change). The v4 JSON
//   status on channel 3 gives the exit code; the server then closes the WebSocket (if it
//   has not within kStatusCloseGrace, berthctl closes it).
//   Port-forward: the server opens channels 0 and 1 with the port, 2 bytes little-endian;
//   data flows on channel 0 both ways (berthctl sends no prefix); text on channel 1 is
//   the server's error. The connection ends when either side closes: v4 has no half-close.
#ifndef BERTH_CLI_STREAM_CLIENT_H_
#define BERTH_CLI_STREAM_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>

#include "absl/status/statusor.h"
#include "cli/stream_io.h"
#include "runtime/base/unique_fd.h"
#include "server/streaming/remotecommand.h"

namespace berth::cli {

// How long the client waits for the server to close after the exit status arrived
// (SPDY: for the output streams to end after the error stream did).
inline constexpr std::chrono::seconds kStatusCloseGrace(5);
// Limit on connecting and on the WebSocket opening and closing handshakes (SPDY: on
// connecting, the upgrade and opening the streams).
inline constexpr std::chrono::seconds kHandshakeTimeout(10);

// Runs one exec or attach session on `url` until the server closes it. The remote exit
// code (attach: the container's status as the server reports it); Unknown with the
// server's message when the command could not run; Cancelled on interrupt_fd;
// Unavailable and the like when the streaming server cannot be reached or misbehaves.
absl::StatusOr<int> RunRemoteCommand(const std::string& url, const RemoteCommandIo& io);

// Relays one local stream connection (`local`, a socket: taken, closed on return) over
// a port-forward WebSocket on `url` to the pod's `remote_port` (added to the URL's query
// as port=N). Returns when either side ends the connection, or promptly once `stop` is
// requested (then OK). An error names what failed, the server's error text included.
absl::Status ForwardConnection(const std::string& url, uint16_t remote_port, UniqueFd local,
                               std::stop_token stop = {});

}  // namespace berth::cli

#endif  // BERTH_CLI_STREAM_CLIENT_H_
