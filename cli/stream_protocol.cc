#include "cli/stream_protocol.h"

#include <nlohmann/json.hpp>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "server/streaming/remotecommand.h"

namespace berth::cli {
namespace {

// Decimal 0..65535, no sign, no spaces.
std::optional<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

}  // namespace

std::string StreamUrl::HostHeader() const {
  if (host.find(':') != std::string::npos) return StrCat("[", host, "]:", port);
  return StrCat(host, ":", port);
}

absl::StatusOr<StreamUrl> ParseStreamUrl(std::string_view url) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("streaming URL \"", url, "\": ", why));
  };
  constexpr std::string_view kHttp = "http://";
  if (url.substr(0, 8) == "https://") {
    return absl::UnimplementedError(
        StrCat("streaming URL \"", url, "\": berthctl speaks plain http only, not https"));
  }
  if (url.substr(0, kHttp.size()) != kHttp) return invalid("not an http:// URL");
  std::string_view rest = url.substr(kHttp.size());
  rest = rest.substr(0, rest.find('#'));
  size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view target =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) return invalid("user info is not supported");

  StreamUrl parsed;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return invalid("unterminated IPv6 address");
    parsed.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid("junk after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) return invalid("empty port");
    }
  } else {
    size_t colon = authority.find(':');
    parsed.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return invalid("empty port");
    }
  }
  if (parsed.host.empty()) return invalid("no host");
  if (!port_text.empty()) {
    std::optional<uint16_t> port = ParsePort(port_text);
    if (!port || *port == 0) return invalid(StrCat("bad port \"", port_text, "\""));
    parsed.port = *port;
  }
  // "http://host?x" has an empty path: the request line still needs its "/".
  parsed.target =
      target.empty() || target.front() != '/' ? StrCat("/", target) : std::string(target);
  return parsed;
}

std::string AddQueryParameter(std::string_view target, std::string_view key,
                              std::string_view value) {
  std::string_view separator = "?";
  if (size_t question = target.find('?'); question != std::string_view::npos) {
    separator = question + 1 == target.size() || target.back() == '&' ? "" : "&";
  }
  return StrCat(target, separator, key, "=", value);
}

absl::StatusOr<ws::Protocol> AcceptProtocol(std::string_view answer, std::string_view offered,
                                            ws::Purpose purpose) {
  std::string_view chosen = answer;
  while (!chosen.empty() && chosen.front() == ' ') chosen.remove_prefix(1);
  while (!chosen.empty() && chosen.back() == ' ') chosen.remove_suffix(1);
  if (chosen.empty()) {
    return absl::FailedPreconditionError(
        StrCat("the streaming server chose no Sec-WebSocket-Protocol (offered: ", offered, ")"));
  }
  bool was_offered = false;
  for (std::string_view rest = offered; !rest.empty();) {
    size_t comma = rest.find(',');
    std::string_view token = rest.substr(0, comma);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (token == chosen) was_offered = true;
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  std::optional<ws::Protocol> protocol = ws::NegotiateProtocol(chosen, purpose);
  if (!was_offered || !protocol) {
    return absl::FailedPreconditionError(StrCat("the streaming server chose protocol \"", chosen,
                                                "\", which berthctl did not offer (", offered,
                                                ")"));
  }
  return *protocol;
}

absl::Status UpgradeRefusedError(std::string_view url, int status, std::string_view reason,
                                 std::string_view body) {
  constexpr size_t kMaxBodyInError = 300;
  body = body.substr(0, kMaxBodyInError);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
  std::string message = StrCat("streaming server refused ", url, ": ", status, " ", reason,
                               body.empty() ? "" : ": ", body);
  switch (status) {
    case 404:
      return absl::NotFoundError(message);
    case 400:
      return absl::InvalidArgumentError(message);
    default:
      return absl::UnavailableError(message);
  }
}

absl::Status AcceptSpdyProtocol(const std::optional<std::string>& answer,
                                std::string_view offered) {
  if (!answer.has_value() || answer->empty()) {
    return absl::FailedPreconditionError(
        StrCat("the streaming server chose no X-Stream-Protocol-Version (offered: ", offered, ")"));
  }
  if (*answer != offered) {
    return absl::FailedPreconditionError(StrCat("the streaming server chose protocol \"", *answer,
                                                "\", which berthctl did not offer (", offered,
                                                ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> SpdyRemoteCommandOutcome(std::string_view error_stream, bool ended) {
  auto missing = [] {
    return absl::UnavailableError(
        "the streaming connection ended before the command's exit status arrived");
  };
  if (error_stream.empty()) return ended ? absl::StatusOr<int>(0) : missing();
  if (!ended && !nlohmann::json::accept(error_stream)) return missing();
  return streaming::remotecommand::ExitCodeFromStatusJson(error_stream);
}

absl::StatusOr<RemoteCommandEvent> RemoteCommandReceiver::Receive(std::string_view message) {
  ASSIGN_OR_RETURN(std::optional<ws::Message> decoded, ws::DecodeMessage(protocol_, message));
  // Empty: the server's "streams are ready". A close signal: that stream has ended,
  // which changes nothing here; the error channel and the connection's close do.
  if (!decoded || decoded->kind == ws::Message::Kind::kClose) return RemoteCommandEvent{};
  switch (decoded->channel) {
    case ws::kStdoutChannel:
      return RemoteCommandEvent{RemoteCommandEvent::Kind::kStdout, std::move(decoded->data)};
    case ws::kStderrChannel:
      return RemoteCommandEvent{RemoteCommandEvent::Kind::kStderr, std::move(decoded->data)};
    case ws::kErrorChannel:
      if (exit_) return RemoteCommandEvent{};  // one status per session; more is noise
      error_data_ += decoded->data;
      // The server writes the status in one message, but nothing promises that: wait
      // until what arrived is a whole JSON document.
      if (!protocol_.json_status || !nlohmann::json::accept(error_data_)) {
        return RemoteCommandEvent{};
      }
      exit_ = streaming::remotecommand::ExitCodeFromStatusJson(error_data_);
      return RemoteCommandEvent{RemoteCommandEvent::Kind::kExit, ""};
    default:
      // stdin and resize are the client's channels; anything else is unknown. The
      // kubelet drops such data, and so does its client.
      return RemoteCommandEvent{};
  }
}

absl::StatusOr<int> RemoteCommandReceiver::Finish() const {
  if (exit_) return *exit_;
  if (!error_data_.empty()) {
    // Pre-v4 protocols send the error as text; berthctl does not offer them, but an
    // incomplete v4 status also ends up here.
    if (!protocol_.json_status) return absl::UnknownError(error_data_);
    return streaming::remotecommand::ExitCodeFromStatusJson(error_data_);
  }
  return absl::UnavailableError(
      "the streaming connection ended before the command's exit status arrived");
}

absl::StatusOr<std::string_view> PortForwardReceiver::StripPrefix(bool& seen,
                                                                  std::string_view data) const {
  if (seen) return data;
  ASSIGN_OR_RETURN(auto split, ws::SplitPortPrefix(data));
  if (split.first != port_) {
    return absl::InvalidArgumentError(
        StrCat("port-forward: the server answered for port ", split.first, ", not ", port_));
  }
  seen = true;
  return split.second;
}

absl::StatusOr<PortForwardEvent> PortForwardReceiver::Receive(std::string_view message) {
  ASSIGN_OR_RETURN(std::optional<ws::Message> decoded, ws::DecodeMessage(protocol_, message));
  if (!decoded || decoded->kind == ws::Message::Kind::kClose) return PortForwardEvent{};
  const ws::PortChannel channel = ws::PortForwardChannelOf(decoded->channel);
  // One port per connection: other ports' channels are none of ours.
  if (channel.port_index != 0) return PortForwardEvent{};
  bool& seen = channel.error ? error_prefix_seen_ : data_prefix_seen_;
  ASSIGN_OR_RETURN(std::string_view data, StripPrefix(seen, decoded->data));
  if (data.empty()) return PortForwardEvent{};
  return PortForwardEvent{
      channel.error ? PortForwardEvent::Kind::kError : PortForwardEvent::Kind::kData,
      std::string(data)};
}

absl::StatusOr<PortMapping> ParsePortMapping(std::string_view text) {
  auto invalid = [&] {
    return absl::InvalidArgumentError(StrCat(
        "port mapping \"", text, "\" is not LOCAL:REMOTE, PORT or :REMOTE (ports 1..65535)"));
  };
  size_t colon = text.find(':');
  std::string_view local_text = text.substr(0, colon);
  std::string_view remote_text = colon == std::string_view::npos ? text : text.substr(colon + 1);
  std::optional<uint16_t> remote = ParsePort(remote_text);
  if (!remote || *remote == 0) return invalid();
  PortMapping mapping{.local = *remote, .remote = *remote};
  if (colon != std::string_view::npos) {
    if (local_text.empty()) {
      mapping.local = 0;
    } else {
      std::optional<uint16_t> local = ParsePort(local_text);
      if (!local || *local == 0) return invalid();
      mapping.local = *local;
    }
  }
  return mapping;
}

}  // namespace berth::cli
