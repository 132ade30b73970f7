#include "server/streaming/ws_channel.h"

#include <algorithm>
#include <array>

#include "runtime/base/base64.h"
#include "runtime/base/strings.h"

namespace berth::streaming::ws {
namespace {

constexpr Protocol kV5{kV5ChannelProtocol, false, true, true};
constexpr Protocol kV4{kV4ChannelProtocol, false, false, true};
constexpr Protocol kV4Base64{kV4Base64ChannelProtocol, true, false, true};
constexpr Protocol kPreV4{kChannelProtocol, false, false, false};
constexpr Protocol kPreV4Base64{kBase64ChannelProtocol, true, false, false};
constexpr Protocol kUnnamed{"", false, false, false};

constexpr std::array kRemoteCommandProtocols = {kV5, kV4, kV4Base64, kPreV4, kPreV4Base64};
constexpr std::array kPortForwardProtocols = {kV4, kV4Base64};

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

std::optional<Protocol> NegotiateProtocol(std::string_view offered, Purpose purpose) {
  bool any_offered = false;
  while (true) {
    size_t comma = offered.find(',');
    std::string_view token = Trim(offered.substr(0, comma));
    if (!token.empty()) {
      any_offered = true;
      auto try_protocols = [&](const auto& protocols) -> std::optional<Protocol> {
        for (const Protocol& protocol : protocols) {
          if (protocol.name == token) return protocol;
        }
        return std::nullopt;
      };
      std::optional<Protocol> match = purpose == Purpose::kRemoteCommand
                                          ? try_protocols(kRemoteCommandProtocols)
                                          : try_protocols(kPortForwardProtocols);
      if (match) return match;
    }
    if (comma == std::string_view::npos) break;
    offered.remove_prefix(comma + 1);
  }
  if (!any_offered) return kUnnamed;
  return std::nullopt;
}

std::string EncodeMessage(const Protocol& protocol, uint8_t channel, std::string_view data) {
  std::string message;
  if (protocol.base64) {
    // The kubelet writes '0'+channel as a byte (wrapping past 255), then base64.
    message.push_back(static_cast<char>(static_cast<uint8_t>('0' + channel)));
    message.append(Base64Encode(data));
  } else {
    message.reserve(1 + data.size());
    message.push_back(static_cast<char>(channel));
    message.append(data);
  }
  return message;
}

absl::StatusOr<std::string> EncodeCloseSignal(const Protocol& protocol, uint8_t channel) {
  if (!protocol.close_signal) {
    return absl::FailedPreconditionError(
        StrCat("websocket protocol '", protocol.name, "' has no close signal (v5 only)"));
  }
  return std::string{static_cast<char>(kCloseSignal), static_cast<char>(channel)};
}

absl::StatusOr<std::optional<Message>> DecodeMessage(const Protocol& protocol,
                                                     std::string_view message) {
  if (message.empty()) return std::nullopt;
  const auto first = static_cast<uint8_t>(message[0]);
  if (protocol.close_signal && first == kCloseSignal) {
    if (message.size() != 2) {
      return absl::InvalidArgumentError(
          StrCat("websocket close signal of ", message.size(), " bytes, expected 2"));
    }
    return Message{Message::Kind::kClose, static_cast<uint8_t>(message[1]), ""};
  }
  std::string_view payload = message.substr(1);
  if (!protocol.base64) {
    return Message{Message::Kind::kData, first, std::string(payload)};
  }
  const auto channel = static_cast<uint8_t>(first - '0');
  std::optional<std::string> data = Base64Decode(payload);
  if (!data) {
    return absl::InvalidArgumentError(
        StrCat("websocket message for channel ", static_cast<int>(channel), ": invalid base64"));
  }
  return Message{Message::Kind::kData, channel, *std::move(data)};
}

std::string EncodePortPrefix(uint16_t port) {
  return std::string{static_cast<char>(port & 0xff), static_cast<char>(port >> 8)};
}

absl::StatusOr<std::pair<uint16_t, std::string_view>> SplitPortPrefix(std::string_view data) {
  if (data.size() < 2) {
    return absl::InvalidArgumentError(
        StrCat("port-forward: first message of ", data.size(), " bytes has no 2-byte port"));
  }
  auto port =
      static_cast<uint16_t>(static_cast<uint8_t>(data[0]) | static_cast<uint8_t>(data[1]) << 8);
  return std::make_pair(port, data.substr(2));
}

absl::StatusOr<std::vector<uint16_t>> ParsePortForwardPorts(
    const std::vector<std::string_view>& port_parameters) {
  if (port_parameters.empty()) {
    return absl::InvalidArgumentError("port-forward: query parameter \"port\" is required");
  }
  std::vector<uint16_t> ports;
  for (std::string_view parameter : port_parameters) {
    if (parameter.empty()) {
      return absl::InvalidArgumentError("port-forward: query parameter \"port\" cannot be empty");
    }
    while (true) {
      size_t comma = parameter.find(',');
      std::string_view text = parameter.substr(0, comma);
      uint32_t port = 0;
      bool valid = !text.empty();
      for (char c : text) {
        if (c < '0' || c > '9') valid = false;
        // Saturate: leading zeros are fine ("0080"), overflow is not.
        port = std::min<uint32_t>(port * 10 + static_cast<uint32_t>(c - '0'), 65536);
      }
      if (!valid || port < 1 || port > 65535) {
        return absl::InvalidArgumentError(
            StrCat("port-forward: unable to parse \"", text, "\" as a port (1..65535)"));
      }
      ports.push_back(static_cast<uint16_t>(port));
      if (comma == std::string_view::npos) break;
      parameter.remove_prefix(comma + 1);
    }
  }
  if (ports.size() > kMaxForwardedPorts) {
    return absl::InvalidArgumentError(StrCat("port-forward: ", ports.size(), " ports, at most ",
                                             kMaxForwardedPorts, " fit on one connection"));
  }
  return ports;
}

}  // namespace berth::streaming::ws
