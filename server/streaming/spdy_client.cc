#include "server/streaming/spdy_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::streaming {

namespace {

constexpr size_t kMaxDataFrame = 32 * 1024;
constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxBody = 64 * 1024;

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Waits until `fd` has `events`, the deadline passes or cancel_fd is readable.
absl::Status WaitFor(int fd, short events, absl::Time deadline, int cancel_fd,
                     std::string_view what) {
  while (true) {
    pollfd fds[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration())
      return absl::DeadlineExceededError(StrCat(what, ": timed out"));
    int timeout = static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
    int n = poll(fds, cancel_fd >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "poll");
    if (cancel_fd >= 0 && fds[1].revents != 0)
      return absl::CancelledError(StrCat(what, ": cancelled"));
    if (fds[0].revents != 0) return absl::OkStatus();
  }
}

absl::StatusOr<UniqueFd> ConnectTo(const SpdyTarget& target, absl::Time deadline, int cancel_fd) {
  const std::string where = target.host.find(':') != std::string::npos
                                ? StrCat("[", target.host, "]:", target.port)
                                : StrCat(target.host, ":", target.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(target.port);
  if (int rc = getaddrinfo(target.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(StrCat("resolve ", target.host, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
  absl::Status last = absl::UnavailableError(StrCat("connect ", where, ": no address"));
  for (addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    UniqueFd fd(socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
      last = ErrnoStatus(errno, "socket");
      continue;
    }
    if (connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = absl::UnavailableError(StrCat("connect ", where, ": ", strerror(errno)));
        continue;
      }
      absl::Status ready =
          WaitFor(fd.get(), POLLOUT, deadline, cancel_fd, StrCat("connect ", where));
      if (!ready.ok()) return ready;
      int error = 0;
      socklen_t length = sizeof error;
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) {
        last = absl::UnavailableError(StrCat("connect ", where, ": ", strerror(error)));
        continue;
      }
    }
    return fd;
  }
  return last;
}

}  // namespace

std::optional<std::string> SpdyUpgradeAnswer::Header(std::string_view name) const {
  std::string_view rest = head;
  size_t eol = rest.find("\r\n");
  rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);  // status line
  while (!rest.empty()) {
    eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && EqualsIgnoreCase(Trim(line.substr(0, colon)), name)) {
      return std::string(Trim(line.substr(colon + 1)));
    }
  }
  return std::nullopt;
}

absl::StatusOr<SpdyUpgrade> UpgradeToSpdy(const SpdyTarget& target,
                                          const std::vector<std::string>& protocols,
                                          const SpdyDialOptions& options) {
  const absl::Time deadline = absl::Now() + options.timeout;
  ASSIGN_OR_RETURN(UniqueFd fd, ConnectTo(target, deadline, options.cancel_fd));
  const std::string host_header = target.host.find(':') != std::string::npos
                                      ? StrCat("[", target.host, "]:", target.port)
                                      : StrCat(target.host, ":", target.port);
  std::string request = StrCat("POST ", target.target.empty() ? "/" : target.target,
                               " HTTP/1.1\r\nHost: ", host_header, "\r\n");
  if (!options.user_agent.empty()) request += StrCat("User-Agent: ", options.user_agent, "\r\n");
  request += "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n";
  for (const std::string& p : protocols)
    request += StrCat("X-Stream-Protocol-Version: ", p, "\r\n");
  request += "Content-Length: 0\r\n\r\n";

  for (std::string_view rest = request; !rest.empty();) {
    ssize_t n = send(fd.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      RETURN_IF_ERROR(WaitFor(fd.get(), POLLOUT, deadline, options.cancel_fd, "send the upgrade"));
      continue;
    }
    if (n < 0) return absl::UnavailableError(StrCat("send the upgrade request: ", strerror(errno)));
    rest.remove_prefix(static_cast<size_t>(n));
  }

  // Reads more of the answer: false at EOF.
  std::string received;
  auto read_more = [&](std::string_view what) -> absl::StatusOr<bool> {
    char buffer[16 * 1024];
    while (true) {
      ssize_t n = recv(fd.get(), buffer, sizeof buffer, 0);
      if (n > 0) {
        received.append(buffer, static_cast<size_t>(n));
        return true;
      }
      if (n == 0) return false;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        RETURN_IF_ERROR(WaitFor(fd.get(), POLLIN, deadline, options.cancel_fd, what));
        continue;
      }
      if (errno == ECONNRESET) return false;
      return absl::UnavailableError(StrCat(what, ": ", strerror(errno)));
    }
  };
  size_t end;
  while ((end = received.find("\r\n\r\n")) == std::string::npos) {
    if (received.size() > kMaxHead) return absl::InvalidArgumentError("HTTP answer head too long");
    ASSIGN_OR_RETURN(bool more, read_more("read the upgrade answer"));
    if (!more) {
      return absl::UnavailableError(received.empty()
                                        ? "the connection closed before any HTTP answer"
                                        : "the connection closed in the HTTP answer's head");
    }
  }
  SpdyUpgrade result;
  SpdyUpgradeAnswer& answer = result.answer;
  answer.head = received.substr(0, end);
  std::string rest = received.substr(end + 4);
  // "HTTP/1.1 101 Switching Protocols"
  std::string_view status_line = std::string_view(answer.head).substr(0, answer.head.find("\r\n"));
  if (status_line.substr(0, 7) != "HTTP/1." || status_line.size() < 12 || status_line[8] != ' ' ||
      !IsDigit(status_line[9]) || !IsDigit(status_line[10]) || !IsDigit(status_line[11])) {
    return absl::InvalidArgumentError(
        StrCat("not an HTTP answer: \"", status_line.substr(0, 100), "\""));
  }
  answer.status =
      (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
  answer.reason = std::string(Trim(status_line.substr(12)));

  if (answer.status == 101) {
    int flags = fcntl(fd.get(), F_GETFL);
    fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    result.connection = std::make_unique<SpdyClientConnection>(std::move(fd), rest);
    return result;
  }
  // Refused: the body says why. Read what the server sends, within the deadline.
  size_t wanted = kMaxBody;
  if (std::optional<std::string> length = answer.Header("Content-Length")) {
    size_t value = 0;
    bool valid = !length->empty();
    for (char c : *length) {
      if (!IsDigit(c)) valid = false;
      value = std::min<size_t>(value * 10 + (c - '0'), kMaxBody);
    }
    if (valid) wanted = value;
  }
  received = std::move(rest);
  while (received.size() < wanted) {
    absl::StatusOr<bool> more = read_more("read the answer's body");
    if (!more.ok() || !*more) break;  // what came is enough for a message
  }
  answer.body = received.substr(0, wanted);
  return result;
}

SpdyClientConnection::SpdyClientConnection(UniqueFd fd, std::string_view already_read)
    : fd_(std::move(fd)) {
  decoder_.Feed(already_read);
}

absl::Status SpdyClientConnection::WriteLocked(const spdy::Frame& frame) {
  if (broken_) return absl::UnavailableError("the SPDY connection is closed");
  std::string bytes;
  RETURN_IF_ERROR(encoder_.EncodeTo(frame, bytes));
  std::string_view rest = bytes;
  while (!rest.empty()) {
    ssize_t n = send(fd_.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      broken_ = true;
      return absl::UnavailableError(
          StrCat("write to the SPDY connection: ", n < 0 ? strerror(errno) : "closed"));
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> SpdyClientConnection::Open(const spdy::HeaderBlock& headers, bool fin) {
  absl::MutexLock lock(&mu_);
  const uint32_t id = next_stream_id_;
  RETURN_IF_ERROR(WriteLocked(spdy::SynStream{.stream_id = id, .fin = fin, .headers = headers}));
  next_stream_id_ += 2;
  return id;
}

absl::Status SpdyClientConnection::Send(uint32_t stream_id, std::string_view data, bool fin) {
  absl::MutexLock lock(&mu_);
  do {
    const size_t n = std::min(data.size(), kMaxDataFrame);
    const bool last = n == data.size();
    if (n == 0 && !fin) break;
    RETURN_IF_ERROR(WriteLocked(spdy::Data{
        .stream_id = stream_id, .fin = fin && last, .data = std::string(data.substr(0, n))}));
    data.remove_prefix(n);
  } while (!data.empty());
  return absl::OkStatus();
}

absl::Status SpdyClientConnection::Reset(uint32_t stream_id, spdy::RstStatus status) {
  absl::MutexLock lock(&mu_);
  return WriteLocked(spdy::RstStream{stream_id, status});
}

absl::StatusOr<std::optional<spdy::ReceivedFrame>> SpdyClientConnection::Next(absl::Time deadline) {
  char buffer[64 * 1024];
  while (true) {
    absl::StatusOr<std::optional<spdy::ReceivedFrame>> next = decoder_.Next();
    if (!next.ok()) {
      {
        absl::MutexLock lock(&mu_);
        (void)WriteLocked(spdy::GoAway{.status = spdy::GoAwayStatus::kProtocolError});
      }
      Shutdown();
      return next.status();
    }
    if (next->has_value()) {
      spdy::ReceivedFrame frame = std::move(**next);
      if (auto* ping = std::get_if<spdy::Ping>(&frame)) {
        // The server's pings have even ids; we send none, so an odd one is not ours to answer.
        if (ping->id % 2 == 0) {
          absl::MutexLock lock(&mu_);
          (void)WriteLocked(*ping);
        }
        continue;
      }
      if (std::holds_alternative<spdy::Settings>(frame) ||
          std::holds_alternative<spdy::WindowUpdate>(frame)) {
        continue;
      }
      if (auto* error = std::get_if<spdy::StreamError>(&frame)) {
        absl::MutexLock lock(&mu_);
        (void)WriteLocked(spdy::RstStream{error->stream_id, error->status});
      }
      return frame;
    }
    if (closed_) return std::nullopt;
    int timeout = -1;
    if (deadline != absl::InfiniteFuture()) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("SPDY read timed out");
      timeout = static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
    }
    pollfd pfd{fd_.get(), POLLIN, 0};
    int ready = poll(&pfd, 1, timeout);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      closed_ = true;
      continue;
    }
    if (ready == 0) continue;  // the deadline is checked above
    ssize_t n = recv(fd_.get(), buffer, sizeof buffer, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      // EOF, or a reset: either way nothing more comes.
      closed_ = true;
      continue;  // frames still buffered come first
    }
    decoder_.Feed(std::string_view(buffer, static_cast<size_t>(n)));
  }
}

void SpdyClientConnection::Shutdown() { shutdown(fd_.get(), SHUT_RDWR); }

}  // namespace berth::streaming
