#include "server/streaming/spdy_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::testing {

namespace spdy = streaming::spdy;

namespace {

struct Target {
  std::string host;
  uint16_t port = 0;
  std::string path;
};

absl::StatusOr<Target> ParseUrl(const std::string& url) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) return absl::InvalidArgumentError("not an http URL: " + url);
  std::string rest = url.substr(prefix.size());
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError("no port in " + url);
  return Target{hostport.substr(0, colon), static_cast<uint16_t>(std::stoi(hostport.substr(colon + 1))),
                slash == std::string::npos ? "/" : rest.substr(slash)};
}

// Connects, sends the upgrade request, and reads the response head. Returns the socket,
// the status code and the bytes read past the head.
struct Upgraded {
  UniqueFd fd;
  int status = 0;
  std::string head, rest;
};

absl::StatusOr<Upgraded> Upgrade(const std::string& url, const std::vector<std::string>& protocols) {
  ASSIGN_OR_RETURN(Target target, ParseUrl(url));
  Upgraded result;
  result.fd = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{.sin_family = AF_INET, .sin_port = htons(target.port)};
  inet_pton(AF_INET, target.host.c_str(), &address.sin_addr);
  if (connect(result.fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return ErrnoStatus(errno, "connect " + url);
  }
  std::string request = StrCat("POST ", target.path, " HTTP/1.1\r\nHost: ", target.host, ":",
                               target.port, "\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n");
  for (const std::string& p : protocols) request += StrCat("X-Stream-Protocol-Version: ", p, "\r\n");
  request += "Content-Length: 0\r\n\r\n";
  if (send(result.fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return ErrnoStatus(errno, "send");
  }
  std::string received;
  char buffer[4096];
  while (received.find("\r\n\r\n") == std::string::npos) {
    pollfd pfd{result.fd.get(), POLLIN, 0};
    if (poll(&pfd, 1, 10000) <= 0) return absl::DeadlineExceededError("no HTTP response");
    ssize_t n = recv(result.fd.get(), buffer, sizeof buffer, 0);
    if (n <= 0) break;
    received.append(buffer, n);
  }
  size_t end = received.find("\r\n\r\n");
  if (received.rfind("HTTP/1.1 ", 0) != 0) {
    return absl::InternalError("not an HTTP response: " + received.substr(0, 100));
  }
  result.status = std::stoi(received.substr(9, 3));
  result.head = received.substr(0, end == std::string::npos ? received.size() : end);
  result.rest = end == std::string::npos ? "" : received.substr(end + 4);
  return result;
}

}  // namespace

absl::StatusOr<int> SpdyUpgradeStatus(const std::string& url,
                                      const std::vector<std::string>& protocols) {
  ASSIGN_OR_RETURN(Upgraded upgraded, Upgrade(url, protocols));
  return upgraded.status;
}

absl::StatusOr<std::unique_ptr<SpdyClient>> SpdyClient::Connect(
    const std::string& url, const std::vector<std::string>& protocols) {
  ASSIGN_OR_RETURN(Upgraded upgraded, Upgrade(url, protocols));
  if (upgraded.status != 101) {
    return absl::FailedPreconditionError(
        StrCat("HTTP ", upgraded.status, " from ", url, ": ", upgraded.head, "\n", upgraded.rest));
  }
  std::unique_ptr<SpdyClient> client(new SpdyClient());
  client->fd_ = std::move(upgraded.fd);
  const std::string key = "X-Stream-Protocol-Version: ";
  size_t at = upgraded.head.find(key);
  if (at != std::string::npos) {
    size_t eol = upgraded.head.find("\r\n", at);
    client->negotiated = upgraded.head.substr(at + key.size(), eol - at - key.size());
  }
  client->decoder_.Feed(upgraded.rest);
  return client;
}

absl::Status SpdyClient::Write(const spdy::Frame& frame) {
  ASSIGN_OR_RETURN(std::string bytes, encoder_.Encode(frame));
  std::string_view rest = bytes;
  while (!rest.empty()) {
    ssize_t n = send(fd_.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n <= 0) return ErrnoStatus(errno, "send");
    rest.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> SpdyClient::Open(
    std::initializer_list<std::pair<std::string_view, std::string_view>> headers) {
  uint32_t id = next_id_;
  next_id_ += 2;
  RETURN_IF_ERROR(Write(spdy::SynStream{.stream_id = id, .headers = spdy::HeaderBlock(headers)}));
  return id;
}

absl::Status SpdyClient::Send(uint32_t stream_id, std::string_view bytes, bool fin) {
  return Write(spdy::Data{.stream_id = stream_id, .fin = fin, .data = std::string(bytes)});
}

absl::Status SpdyClient::ReadUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char buffer[64 * 1024];
  while (!done()) {
    ASSIGN_OR_RETURN(std::optional<spdy::ReceivedFrame> frame, decoder_.Next());
    if (frame.has_value()) {
      if (auto* d = std::get_if<spdy::Data>(&*frame)) {
        data[d->stream_id] += d->data;
        if (d->fin) finished.insert(d->stream_id);
      } else if (auto* reply = std::get_if<spdy::SynReply>(&*frame)) {
        replied.insert(reply->stream_id);
      } else if (auto* reset = std::get_if<spdy::RstStream>(&*frame)) {
        finished.insert(reset->stream_id);
      } else if (auto* ping = std::get_if<spdy::Ping>(&*frame)) {
        RETURN_IF_ERROR(Write(*ping));
      }
      continue;
    }
    if (closed) return absl::OkStatus();
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("SPDY read timed out");
    pollfd pfd{fd_.get(), POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) continue;
    ssize_t n = recv(fd_.get(), buffer, sizeof buffer, 0);
    if (n <= 0) {
      closed = true;
      return absl::OkStatus();
    }
    decoder_.Feed(std::string_view(buffer, n));
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
