// Kubernetes' channel protocols over WebSocket: how exec, attach and port-forward streams
// share one WebSocket connection (k8s.io/apimachinery wsstream, as the kubelet serves it).
// The WebSocket transport itself is Boost.Beast's; this is only what goes inside a message.
//
//   std::optional<Protocol> protocol =
//       NegotiateProtocol(request[http::field::sec_websocket_protocol], Purpose::kRemoteCommand);
//   if (!protocol) { /* 400: nothing we speak */ }
//   // Answer with Sec-WebSocket-Protocol: protocol->name (omit it when the name is empty).
//   ws.text(protocol->base64);                       // base64 protocols use text messages
//   ws.write(EncodeMessage(*protocol, kStdoutChannel, output));
//   ASSIGN_OR_RETURN(std::optional<Message> in, DecodeMessage(*protocol, received));
//
// Message layouts:
//  - channel.k8s.io, v4.channel.k8s.io, v5.channel.k8s.io: a binary message whose first
//    byte is the channel number, the rest the data.
//  - base64.channel.k8s.io, v4.base64.channel.k8s.io: a text message whose first byte is
//    '0' + channel, the rest the data in standard padded base64.
//  - v5.channel.k8s.io adds the close signal: the two bytes {255, channel} half-close that
//    channel (the client's way to send EOF on stdin).
// Remote command channels: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. The error
// channel carries the v4 JSON Status for v4 and v5 (remotecommand.h), plain text before.
// Port-forward gives the i-th requested port a data channel 2*i and an error channel
// 2*i+1; the server's first message on each is the port, 2 bytes little-endian.
#ifndef BERTH_SERVER_STREAMING_WS_CHANNEL_H_
#define BERTH_SERVER_STREAMING_WS_CHANNEL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::streaming::ws {

inline constexpr std::string_view kV5ChannelProtocol = "v5.channel.k8s.io";
inline constexpr std::string_view kV4ChannelProtocol = "v4.channel.k8s.io";
inline constexpr std::string_view kV4Base64ChannelProtocol = "v4.base64.channel.k8s.io";
inline constexpr std::string_view kChannelProtocol = "channel.k8s.io";
inline constexpr std::string_view kBase64ChannelProtocol = "base64.channel.k8s.io";

inline constexpr uint8_t kStdinChannel = 0;
inline constexpr uint8_t kStdoutChannel = 1;
inline constexpr uint8_t kStderrChannel = 2;
inline constexpr uint8_t kErrorChannel = 3;
inline constexpr uint8_t kResizeChannel = 4;
// v5: a message {kCloseSignal, channel} half-closes the channel.
inline constexpr uint8_t kCloseSignal = 255;

// A negotiated channel protocol and what it implies.
struct Protocol {
  std::string_view name;      // for Sec-WebSocket-Protocol; empty if the client offered none
  bool base64 = false;        // text messages, '0'+channel, base64 data
  bool close_signal = false;  // v5's {255, channel}
  bool json_status = false;   // error channel: v4 JSON Status (else plain text, pre-v4)
  bool operator==(const Protocol&) const = default;
};

enum class Purpose {
  kRemoteCommand,  // exec and attach: v5, v4, v4 base64, and the pre-v4 pair
  kPortForward,    // v4 and v4 base64, as the kubelet serves port-forward
};

// Picks the protocol from the client's Sec-WebSocket-Protocol offer: a comma-separated
// list in the client's order of preference (join several header lines with ","). As the
// kubelet does (and RFC 6455 intends), the client's first choice that berth speaks wins,
// so kubectl's "v5.channel.k8s.io, v4.channel.k8s.io, ..." gets v5. An empty offer gets
// the unnamed binary protocol with pre-v4 semantics (the kubelet's "" entry); nullopt when
// nothing offered is spoken (answer 400).
std::optional<Protocol> NegotiateProtocol(std::string_view offered, Purpose purpose);

// One WebSocket message carrying `data` on `channel`: binary, or text when
// protocol.base64. Data may be empty: the kubelet sends an empty message on the first
// writable channel to tell the client the streams are ready.
std::string EncodeMessage(const Protocol& protocol, uint8_t channel, std::string_view data);

// v5's half-close of `channel`. FailedPrecondition if the protocol has no close signal.
absl::StatusOr<std::string> EncodeCloseSignal(const Protocol& protocol, uint8_t channel);

struct Message {
  enum class Kind { kData, kClose };
  Kind kind = Kind::kData;
  uint8_t channel = 0;
  std::string data;  // kData only
  bool operator==(const Message&) const = default;
};

// Decodes one received message (text or binary alike). nullopt for an empty message,
// which the kubelet ignores. The channel is not checked against the session's channels:
// the kubelet drops data for channels it does not have, and so should the caller.
// InvalidArgument for invalid base64 or a v5 close signal that is not exactly 2 bytes.
absl::StatusOr<std::optional<Message>> DecodeMessage(const Protocol& protocol,
                                                     std::string_view message);

// --- Port-forward.

// Two channels per port, channel 255 reserved: at most 127 ports on one connection.
inline constexpr size_t kMaxForwardedPorts = 127;

constexpr uint8_t PortForwardDataChannel(size_t port_index) {
  return static_cast<uint8_t>(2 * port_index);
}
constexpr uint8_t PortForwardErrorChannel(size_t port_index) {
  return static_cast<uint8_t>(2 * port_index + 1);
}
// The port index a channel belongs to, and whether it is that port's error channel.
struct PortChannel {
  size_t port_index = 0;
  bool error = false;
  bool operator==(const PortChannel&) const = default;
};
constexpr PortChannel PortForwardChannelOf(uint8_t channel) {
  return {static_cast<size_t>(channel / 2), channel % 2 == 1};
}

// The data of the server's first message on each of a port's two channels.
std::string EncodePortPrefix(uint16_t port);
// Client side: the port and the rest of the first data read on a channel.
// InvalidArgument for fewer than 2 bytes.
absl::StatusOr<std::pair<uint16_t, std::string_view>> SplitPortPrefix(std::string_view data);

// The ports of a WebSocket port-forward request, from its `port` query parameters (each
// value a port or a comma-separated list), as the kubelet parses them: decimal 1..65535,
// in order, repeats allowed. InvalidArgument for no ports, an empty value, a bad number,
// or more than kMaxForwardedPorts.
absl::StatusOr<std::vector<uint16_t>> ParsePortForwardPorts(
    const std::vector<std::string_view>& port_parameters);

}  // namespace berth::streaming::ws

#endif  // BERTH_SERVER_STREAMING_WS_CHANNEL_H_
