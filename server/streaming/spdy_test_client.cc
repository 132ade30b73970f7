#include "server/streaming/spdy_test_client.h"

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::testing {

namespace spdy = streaming::spdy;

namespace {

// "http://host:port/path" (the test servers' URLs: an address literal and a port).
absl::StatusOr<streaming::SpdyTarget> ParseUrl(const std::string& url) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) return absl::InvalidArgumentError("not an http URL: " + url);
  std::string rest = url.substr(prefix.size());
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError("no port in " + url);
  std::string host = hostport.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return streaming::SpdyTarget{host, static_cast<uint16_t>(std::stoi(hostport.substr(colon + 1))),
                               slash == std::string::npos ? "/" : rest.substr(slash)};
}

absl::StatusOr<streaming::SpdyUpgrade> Upgrade(const std::string& url,
                                               const std::vector<std::string>& protocols) {
  ASSIGN_OR_RETURN(streaming::SpdyTarget target, ParseUrl(url));
  return streaming::UpgradeToSpdy(target, protocols);
}

}  // namespace

absl::StatusOr<int> SpdyUpgradeStatus(const std::string& url,
                                      const std::vector<std::string>& protocols) {
  ASSIGN_OR_RETURN(streaming::SpdyUpgrade upgrade, Upgrade(url, protocols));
  return upgrade.answer.status;
}

absl::StatusOr<std::unique_ptr<SpdyClient>> SpdyClient::Connect(
    const std::string& url, const std::vector<std::string>& protocols) {
  ASSIGN_OR_RETURN(streaming::SpdyUpgrade upgrade, Upgrade(url, protocols));
  if (upgrade.answer.status != 101) {
    return absl::FailedPreconditionError(StrCat("HTTP ", upgrade.answer.status, " from ", url, ": ",
                                                upgrade.answer.head, "\n", upgrade.answer.body));
  }
  std::unique_ptr<SpdyClient> client(new SpdyClient());
  client->connection_ = std::move(upgrade.connection);
  client->negotiated = upgrade.answer.Header("X-Stream-Protocol-Version").value_or("");
  return client;
}

absl::StatusOr<uint32_t> SpdyClient::Open(
    std::initializer_list<std::pair<std::string_view, std::string_view>> headers) {
  if (!connection_) return absl::FailedPreconditionError("closed");
  return connection_->Open(spdy::HeaderBlock(headers));
}

absl::Status SpdyClient::Send(uint32_t stream_id, std::string_view bytes, bool fin) {
  if (!connection_) return absl::FailedPreconditionError("closed");
  return connection_->Send(stream_id, bytes, fin);
}

absl::Status SpdyClient::ReadUntil(const std::function<bool()>& done, absl::Duration timeout) {
  if (!connection_) return absl::FailedPreconditionError("closed");
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (closed) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::optional<spdy::ReceivedFrame> frame, connection_->Next(deadline));
    if (!frame.has_value()) {
      closed = true;
      return absl::OkStatus();
    }
    if (auto* d = std::get_if<spdy::Data>(&*frame)) {
      data[d->stream_id] += d->data;
      if (d->fin) finished.insert(d->stream_id);
    } else if (auto* reply = std::get_if<spdy::SynReply>(&*frame)) {
      replied.insert(reply->stream_id);
    } else if (auto* reset = std::get_if<spdy::RstStream>(&*frame)) {
      finished.insert(reset->stream_id);
    }
  }
  return absl::OkStatus();
}

absl::Status SpdyClient::ReadUntilFinished(const std::set<uint32_t>& streams,
                                           absl::Duration timeout) {
  RETURN_IF_ERROR(ReadUntil(
      [&] {
        for (uint32_t id : streams) {
          if (!finished.count(id)) return false;
        }
        return true;
      },
      timeout));
  for (uint32_t id : streams) {
    if (!finished.count(id)) {
      return absl::UnavailableError(StrCat("connection closed before stream ", id, " finished"));
    }
  }
  return absl::OkStatus();
}

}  // namespace berth::testing
