// berthctl's streaming client over SPDY/3.1 (`--spdy`): exec -i/-t, attach and
// port-forward as kubectl, crictl and the kubelet speak them, on the URL a CRI Exec,
// Attach or PortForward call returned. The same calls as stream_client.h (WebSocket),
// with the same local end (stream_io.h); the connection is server/streaming/spdy_client.h.
//
//   ASSIGN_OR_RETURN(int code, RunRemoteCommandSpdy(response.url(), {.in_fd = 0, .tty = true}));
//   absl::Status done = ForwardConnectionSpdy(response.url(), 80, std::move(accepted_fd), stop);
//
// What goes on the wire:
//   POST <path> HTTP/1.1 with Connection: Upgrade, Upgrade: SPDY/3.1,
//   X-Stream-Protocol-Version: v4.channel.k8s.io (exec, attach) or portforward.k8s.io; the
//   101 answer must name it. berthctl opens every stream (SYN_STREAM) and waits for each
//   SYN_REPLY before the next; it sends no SETTINGS, WINDOW_UPDATE or PING (as spdystream).
//   Exec/attach: streams with header streamtype = error, stdin (with -i), stdout, stderr
//   (without a tty) and resize (with a tty), in that order, all before any data. Stdin
//   goes as DATA on stdin and ends with a FIN; sizes go on resize as {"Width":W,"Height":H}
//   (first at once, then on each change). The server ends stdout, stderr and error with
//   FIN, the v4 status JSON on error giving the exit code; then berthctl closes the
//   connection. Interrupted, berthctl just closes it.
//   Port-forward: per local connection one session with two streams, streamtype = error,
//   then data, both with port = REMOTE and requestid = 0. berthctl ends its half of error
//   at once (it never writes there) and of data at the local client's EOF; the relay ends
//   once the server has ended data (and error, within kStatusCloseGrace). Text on error is
//   the server's error.
#ifndef BERTH_CLI_SPDY_STREAM_CLIENT_H_
#define BERTH_CLI_SPDY_STREAM_CLIENT_H_

#include <cstdint>
#include <stop_token>
#include <string>

#include "absl/status/statusor.h"
#include "cli/stream_io.h"
#include "runtime/base/unique_fd.h"

namespace berth::cli {

// Runs one exec or attach session on `url` until the server has ended its output and
// error streams (or closed the connection). The streams follow the request as berthctl
// makes it: stdin when io.in_fd >= 0, stdout always, stderr without io.tty, resize with
// it. Returns as RunRemoteCommand does: the remote exit code; Unknown with the server's
// message when the command could not run; Cancelled on io.interrupt_fd; Unavailable and
// the like when the streaming server cannot be reached or misbehaves.
absl::StatusOr<int> RunRemoteCommandSpdy(const std::string& url, const RemoteCommandIo& io);

// Relays one local stream connection (`local`, a socket: taken, closed on return) over a
// SPDY port-forward session on `url` to the pod's `remote_port`. Returns when the server
// has ended the data stream, the local client went away, or promptly once `stop` is
// requested (then OK). An error names what failed, the server's error text included.
absl::Status ForwardConnectionSpdy(const std::string& url, uint16_t remote_port, UniqueFd local,
                                   std::stop_token stop = {});

}  // namespace berth::cli

#endif  // BERTH_CLI_SPDY_STREAM_CLIENT_H_
