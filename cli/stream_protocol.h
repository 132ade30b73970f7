// What berthctl's streaming commands (exec -it, attach, port-forward) decide without a
// socket: the streaming URL a CRI Exec/Attach/PortForward call returns, the subprotocols
// berthctl offers and accepts, and what each received WebSocket message means. The
// socket side is stream_client.h; the message layout is server/streaming/ws_channel.h.
//
//   ASSIGN_OR_RETURN(StreamUrl url, ParseStreamUrl("http://127.0.0.1:10010/exec/tok"));
//   // ... upgrade offering kRemoteCommandOffer, read the answer's Sec-WebSocket-Protocol:
//   ASSIGN_OR_RETURN(ws::Protocol protocol,
//                    AcceptProtocol(answer, kRemoteCommandOffer, ws::Purpose::kRemoteCommand));
//   RemoteCommandReceiver receiver(protocol);
//   for (each message) {
//     ASSIGN_OR_RETURN(RemoteCommandEvent event, receiver.Receive(message));
//     // kStdout/kStderr: write event.data; kExit: the status arrived, the close follows.
//   }
//   ASSIGN_OR_RETURN(int exit_code, receiver.Finish());  // once the server has closed
#ifndef BERTH_CLI_STREAM_PROTOCOL_H_
#define BERTH_CLI_STREAM_PROTOCOL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/streaming/ws_channel.h"

namespace berth::cli {

namespace ws = ::berth::streaming::ws;

// An http:// URL of the runtime's streaming server, split for a connection.
struct StreamUrl {
  std::string host;    // as written, without the brackets of an IPv6 literal
  uint16_t port = 80;  // 80 when the URL gives none
  std::string target;  // path and query, "/" when the URL has no path
  bool operator==(const StreamUrl&) const = default;

  // The Host header's value: "host:port", brackets put back around an IPv6 literal.
  std::string HostHeader() const;
};

// Splits "http://host[:port][/path][?query][#fragment]" (the fragment is dropped).
// InvalidArgument for anything else; Unimplemented for https://, which berthctl does
// not speak (the runtime's streaming server listens on plain http, usually on loopback).
absl::StatusOr<StreamUrl> ParseStreamUrl(std::string_view url);

// target with key=value added to its query ('?' or '&' as needed); neither is escaped,
// so both must be URL-safe (port-forward's "port=80").
std::string AddQueryParameter(std::string_view target, std::string_view key,
                              std::string_view value);

// Sec-WebSocket-Protocol offers, in berthctl's order of preference. Exec and attach ask
// for v5 (stdin half-close) and settle for v4; port-forward is v4 only, as the kubelet
// serves it. Both binary: berthctl has no use for the base64 variants.
inline constexpr std::string_view kRemoteCommandOffer = "v5.channel.k8s.io, v4.channel.k8s.io";
inline constexpr std::string_view kPortForwardOffer = "v4.channel.k8s.io";

// The protocol the server chose, from the Sec-WebSocket-Protocol of its 101 answer.
// FailedPrecondition when it names none or one that was not in `offered`: berthctl
// needs the v4 JSON status for exit codes, which the unnamed protocol lacks.
absl::StatusOr<ws::Protocol> AcceptProtocol(std::string_view answer, std::string_view offered,
                                            ws::Purpose purpose);

// A refused upgrade (any answer but 101) as the error berthctl reports: "streaming server
// refused URL: 404 Not Found: <the body's first 300 bytes>". 404 is NotFound (an unknown
// or used token), 400 InvalidArgument, anything else Unavailable.
absl::Status UpgradeRefusedError(std::string_view url, int status, std::string_view reason,
                                 std::string_view body);

// --- SPDY/3.1 (`--spdy`): the X-Stream-Protocol-Version berthctl offers. Exec and attach
// need v4 for the JSON status (exit codes); port-forward has one version.
inline constexpr std::string_view kSpdyRemoteCommandProtocol = "v4.channel.k8s.io";
inline constexpr std::string_view kSpdyPortForwardProtocol = "portforward.k8s.io";

// Checks the X-Stream-Protocol-Version of the 101 answer (nullopt: absent) against the
// one offered. FailedPrecondition when it is absent or another.
absl::Status AcceptSpdyProtocol(const std::optional<std::string>& answer, std::string_view offered);

// The outcome of a SPDY exec or attach session from what its error stream carried: the
// v4 status JSON, as ExitCodeFromStatusJson reads it. `ended`: the server finished the
// stream (FIN or RST_STREAM); then an empty stream is a success, as client-go reads it.
// Unavailable when the connection ended before the stream did and before a whole
// status arrived.
absl::StatusOr<int> SpdyRemoteCommandOutcome(std::string_view error_stream, bool ended);

// --- Exec and attach.

// What one received message asks the client to do.
struct RemoteCommandEvent {
  enum class Kind {
    kNone,    // nothing: the readiness message, a half-close, a channel we do not read
    kStdout,  // write data to stdout
    kStderr,  // write data to stderr
    kExit,    // the exit status is complete (Finish() has it); the server closes next
  };
  Kind kind = Kind::kNone;
  std::string data;
  bool operator==(const RemoteCommandEvent&) const = default;
};

// Reads the server's messages of one exec or attach session.
class RemoteCommandReceiver {
 public:
  explicit RemoteCommandReceiver(const ws::Protocol& protocol) : protocol_(protocol) {}

  // One received message. InvalidArgument for a message the protocol cannot decode.
  absl::StatusOr<RemoteCommandEvent> Receive(std::string_view message);

  // Whether the exit status has arrived.
  bool has_exit() const { return exit_.has_value(); }

  // The outcome, once the connection has ended: the remote exit code, or the status'
  // error (Unknown with the server's message, as kubectl prints it, for a command that
  // could not run); Unavailable when the connection ended before any status.
  absl::StatusOr<int> Finish() const;

 private:
  ws::Protocol protocol_;
  std::string error_data_;  // the error channel so far, until it parses
  std::optional<absl::StatusOr<int>> exit_;
};

// --- Port-forward.

// What one received message of a forwarded connection asks the client to do.
struct PortForwardEvent {
  enum class Kind {
    kNone,   // nothing: a port prefix alone, the readiness message
    kData,   // write data to the local connection
    kError,  // the server could not forward (data: its message); end the connection
  };
  Kind kind = Kind::kNone;
  std::string data;
  bool operator==(const PortForwardEvent&) const = default;
};

// Reads the server's messages for one forwarded connection to one port (index 0, so
// channels 0 and 1), checking the port prefix each channel opens with.
class PortForwardReceiver {
 public:
  explicit PortForwardReceiver(const ws::Protocol& protocol, uint16_t port)
      : protocol_(protocol), port_(port) {}

  // InvalidArgument for a message that cannot be decoded, a channel opening without its
  // port prefix, or a prefix naming another port.
  absl::StatusOr<PortForwardEvent> Receive(std::string_view message);

 private:
  absl::StatusOr<std::string_view> StripPrefix(bool& seen, std::string_view data) const;

  ws::Protocol protocol_;
  uint16_t port_;
  bool data_prefix_seen_ = false;
  bool error_prefix_seen_ = false;
};

// `berthctl port-forward`'s LOCAL:REMOTE argument: "8080:80", "80" (the same port
// locally), ":80" (local port 0: one the kernel picks).
struct PortMapping {
  uint16_t local = 0;
  uint16_t remote = 0;
  bool operator==(const PortMapping&) const = default;
};
absl::StatusOr<PortMapping> ParsePortMapping(std::string_view text);

}  // namespace berth::cli

#endif  // BERTH_CLI_STREAM_PROTOCOL_H_
