#include "server/streaming/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <variant>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "absl/strings/ascii.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "server/streaming/spdy_connection.h"
#include "server/streaming/spdy_sessions.h"
#include "server/streaming/ws_channel.h"
#include "server/streaming/ws_sessions.h"
#include "spdlog/spdlog.h"

namespace berth::streaming {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct StreamingServer::Connection {
  explicit Connection(int fd) : fd(fd) {}
  const int fd;
  absl::Mutex mu;
  bool open ABSL_GUARDED_BY(mu) = true;       // fd not closed yet
  bool started ABSL_GUARDED_BY(mu) = false;   // session running: the idle deadline applies
  bool closing ABSL_GUARDED_BY(mu) = false;   // session over: the deadline stays short
  absl::Time deadline ABSL_GUARDED_BY(mu);
  std::atomic<bool> done = false;
  std::thread thread;
};

namespace {

std::vector<std::string_view> SplitTrimmed(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view part = text.substr(start, end - start);
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
    while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
    if (!part.empty()) parts.push_back(part);
    start = end + 1;
  }
  return parts;
}

void WriteSimpleResponse(tcp::socket& socket, http::status status, std::string_view body) {
  http::response<http::string_body> response{status, 11};
  response.set(http::field::server, "berth");
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  response.set(http::field::connection, "close");
  response.body() = std::string(body) + "\n";
  response.prepare_payload();
  beast::error_code ignored;
  http::write(socket, response, ignored);
}

// Query parameter values of `name` in a request target ("/portforward/x?port=80&port=81").
std::vector<std::string_view> QueryValues(std::string_view target, std::string_view name) {
  std::vector<std::string_view> values;
  size_t q = target.find('?');
  if (q == std::string_view::npos) return values;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
      values.push_back(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return values;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StreamingServer>> StreamingServer::Start(
    StreamingServerOptions options, Backend& backend) {
  std::unique_ptr<StreamingServer> server(new StreamingServer(std::move(options), backend));
  const StreamingServerOptions& o = server->options_;
  sockaddr_storage storage{};
  socklen_t length = 0;
  bool v6 = o.address.find(':') != std::string::npos;
  if (v6) {
    auto* address = reinterpret_cast<sockaddr_in6*>(&storage);
    address->sin6_family = AF_INET6;
    address->sin6_port = htons(o.port);
    if (inet_pton(AF_INET6, o.address.c_str(), &address->sin6_addr) != 1) {
      return absl::InvalidArgumentError(StrCat("streaming: bad address ", o.address));
    }
    length = sizeof(sockaddr_in6);
  } else {
    auto* address = reinterpret_cast<sockaddr_in*>(&storage);
    address->sin_family = AF_INET;
    address->sin_port = htons(o.port);
    if (inet_pton(AF_INET, o.address.c_str(), &address->sin_addr) != 1) {
      return absl::InvalidArgumentError(StrCat("streaming: bad address ", o.address));
    }
    length = sizeof(sockaddr_in);
  }
  UniqueFd listener(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.valid()) return ErrnoStatus(errno, "streaming: socket");
  int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const std::string where = StrCat(o.address, ":", o.port);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    return ErrnoStatus(errno, StrCat("streaming: bind ", where));
  }
  if (listen(listener.get(), 128) != 0) return ErrnoStatus(errno, StrCat("streaming: listen ", where));
  if (getsockname(listener.get(), reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    return ErrnoStatus(errno, "streaming: getsockname");
  }
  uint16_t port = v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port)
                     : ntohs(reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  server->base_url_ = v6 ? StrCat("http://[", o.address, "]:", port)
                         : StrCat("http://", o.address, ":", port);
  server->listener_ = std::move(listener);
  server->stop_event_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!server->stop_event_.valid()) return ErrnoStatus(errno, "streaming: eventfd");
  StreamingServer* raw = server.get();
  server->accept_thread_ = std::thread([raw] { raw->AcceptLoop(); });
  server->watch_thread_ = std::thread([raw] { raw->WatchLoop(); });
  return server;
}

StreamingServer::StreamingServer(StreamingServerOptions options, Backend& backend)
    : options_(std::move(options)),
      backend_(backend),
      tokens_(TokenCache::Options{.ttl = options_.token_ttl}) {}

StreamingServer::~StreamingServer() { Stop(); }

void StreamingServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  uint64_t one = 1;
  (void)!write(stop_event_.get(), &one, sizeof one);
  if (accept_thread_.joinable()) accept_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
  std::list<std::shared_ptr<Connection>> connections;
  {
    absl::MutexLock lock(&mu_);
    connections.swap(connections_);
  }
  for (auto& connection : connections) {
    absl::MutexLock lock(&connection->mu);
    if (connection->open) shutdown(connection->fd, SHUT_RDWR);
  }
  for (auto& connection : connections) {
    if (connection->thread.joinable()) connection->thread.join();
  }
}

absl::StatusOr<std::string> StreamingServer::Url(StreamRequest request) {
  const char* kind = std::holds_alternative<ExecRequest>(request)     ? "exec"
                     : std::holds_alternative<AttachRequest>(request) ? "attach"
                                                                      : "portforward";
  ASSIGN_OR_RETURN(std::string token, tokens_.Insert(std::move(request)));
  return StrCat(base_url_, "/", kind, "/", token);
}

size_t StreamingServer::active_connections() {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (auto& connection : connections_) n += !connection->done;
  return n;
}

void StreamingServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("streaming: poll: {}", strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    auto connection = std::make_shared<Connection>(fd);
    {
      absl::MutexLock lock(&connection->mu);
      connection->deadline = absl::Now() + options_.handshake_timeout;
    }
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    size_t active = 0;
    for (auto& other : connections_) active += !other->done;
    if (active >= options_.max_sessions) {
      static constexpr char kBusy[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n"
          "Content-Length: 33\r\n\r\ntoo many streaming sessions open\n";
      (void)!send(fd, kBusy, sizeof kBusy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    connections_.push_back(connection);
    Connection* raw = connection.get();
    connection->thread = std::thread([this, raw] {
      Serve(*raw);  // closes the socket (and clears `open`) on every way out
      raw->done = true;
    });
  }
}

void StreamingServer::WatchLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), absl::Seconds(1))) return;
      const absl::Time now = absl::Now();
      for (auto it = connections_.begin(); it != connections_.end();) {
        Connection& connection = **it;
        if (connection.done) {
          connection.thread.join();
          it = connections_.erase(it);
          continue;
        }
        absl::MutexLock connection_lock(&connection.mu);
        if (connection.open && now > connection.deadline) {
          spdlog::debug("streaming: closing a connection idle past its deadline");
          shutdown(connection.fd, SHUT_RDWR);
        }
        ++it;
      }
    }
  }
}

void StreamingServer::Touch(Connection& connection) {
  absl::MutexLock lock(&connection.mu);
  // Until its streams are open a connection lives on the handshake deadline, however
  // chatty it is; after, on the idle deadline.
  if (connection.started && !connection.closing) {
    connection.deadline = absl::Now() + options_.idle_timeout;
  }
}

void StreamingServer::Serve(Connection& connection) {
  asio::io_context io;
  tcp::socket socket(io);
  {
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    getsockname(connection.fd, reinterpret_cast<sockaddr*>(&local), &length);
    beast::error_code ec;
    socket.assign(local.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), connection.fd, ec);
    if (ec) {
      absl::MutexLock lock(&connection.mu);
      connection.open = false;
      close(connection.fd);
      return;
    }
  }
  // From here the socket owns the fd. `open` is cleared under the lock as the socket
  // closes, so the watcher never shuts down a reused fd.
  struct CloseGuard {
    Connection& connection;
    tcp::socket& socket;
    ~CloseGuard() {
      absl::MutexLock lock(&connection.mu);
      connection.open = false;
      beast::error_code ignored;
      socket.close(ignored);
    }
  } close_guard{connection, socket};

  beast::flat_buffer buffer;
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  beast::error_code ec;
  http::read(socket, buffer, parser, ec);
  if (ec) return;
  HttpRequest request = parser.release();
  auto on_started = [this, &connection] {
    {
      absl::MutexLock lock(&connection.mu);
      connection.started = true;
    }
    Touch(connection);
  };
  auto on_finished = [&connection] {
    absl::MutexLock lock(&connection.mu);
    connection.closing = true;
    connection.deadline = absl::Now() + absl::Seconds(10);
  };

  std::string_view target(request.target().data(), request.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view kind, token;
  for (std::string_view prefix : {"/exec/", "/attach/", "/portforward/"}) {
    if (path.substr(0, prefix.size()) == prefix) {
      kind = prefix.substr(1, prefix.size() - 2);
      token = path.substr(prefix.size());
    }
  }
  if (kind.empty() || token.empty() || token.find('/') != std::string_view::npos) {
    WriteSimpleResponse(socket, http::status::not_found, "404 page not found");
    return;
  }
  std::optional<StreamRequest> stored = tokens_.Consume(std::string(token));
  const bool kind_matches =
      stored.has_value() &&
      ((kind == "exec" && std::holds_alternative<ExecRequest>(*stored)) ||
       (kind == "attach" && std::holds_alternative<AttachRequest>(*stored)) ||
       (kind == "portforward" && std::holds_alternative<PortForwardRequest>(*stored)));
  if (!kind_matches) {
    WriteSimpleResponse(socket, http::status::not_found,
                        "streaming: unknown, expired or already used token");
    return;
  }

  RemoteCommandSession session;
  if (auto* exec = std::get_if<ExecRequest>(&*stored)) {
    session = {.tty = exec->tty, .stdin = exec->stdin, .stdout = exec->stdout,
               .stderr = exec->stderr, .command = exec->command,
               .start = [this, exec](uint16_t width, uint16_t height) {
                 ExecRequest sized = *exec;
                 sized.width = width;
                 sized.height = height;
                 return backend_.StartExec(sized);
               }};
  } else if (auto* attach = std::get_if<AttachRequest>(&*stored)) {
    session = {.tty = attach->tty, .stdin = attach->stdin, .stdout = attach->stdout,
               .stderr = attach->stderr,
               .start = [this, attach](uint16_t width, uint16_t height)
                   -> absl::StatusOr<std::unique_ptr<RemoteProcess>> {
                 ASSIGN_OR_RETURN(std::unique_ptr<RemoteProcess> process,
                                  backend_.Attach(*attach));
                 if (width > 0 && height > 0) process->Resize(width, height);
                 return process;
               }};
  }
  session.on_started = on_started;
  session.on_activity = [this, &connection] { Touch(connection); };
  session.on_finished = on_finished;
  const bool port_forward = kind == "portforward";

  if (beast::websocket::is_upgrade(request)) {
    std::string offered;
    for (auto it = request.find(http::field::sec_websocket_protocol);
         it != request.end() && it->name() == http::field::sec_websocket_protocol; ++it) {
      if (!offered.empty()) offered += ",";
      offered.append(it->value().data(), it->value().size());
    }
    std::optional<ws::Protocol> protocol = ws::NegotiateProtocol(
        offered, port_forward ? ws::Purpose::kPortForward : ws::Purpose::kRemoteCommand);
    if (!protocol) {
      WriteSimpleResponse(socket, http::status::bad_request,
                          StrCat("streaming: no supported websocket subprotocol in [", offered, "]"));
      return;
    }
    if (port_forward) {
      on_started();
      absl::StatusOr<std::vector<uint16_t>> ports =
          ws::ParsePortForwardPorts(QueryValues(target, "port"));
      if (!ports.ok()) {
        WriteSimpleResponse(socket, http::status::bad_request, std::string(ports.status().message()));
        return;
      }
      ServePortForwardWebSocket(io, socket, request, *protocol, backend_,
                                std::get<PortForwardRequest>(*stored).pod_id, *ports,
                                session.on_activity);
    } else {
      ServeRemoteCommandWebSocket(io, socket, request, *protocol, session);
    }
    return;
  }

  std::string upgrade(request[http::field::upgrade]);
  if (absl::AsciiStrToLower(upgrade).find("spdy/3.1") == std::string::npos) {
    WriteSimpleResponse(socket, http::status::bad_request,
                        "streaming: this URL needs an upgrade to SPDY/3.1 or websocket");
    return;
  }
  std::vector<std::string_view> offered;
  for (auto it = request.find("X-Stream-Protocol-Version");
       it != request.end() && beast::iequals(it->name_string(), "X-Stream-Protocol-Version");
       ++it) {
    for (std::string_view v : SplitTrimmed(std::string_view(it->value().data(), it->value().size()))) {
      offered.push_back(v);
    }
  }
  std::string_view chosen;
  for (std::string_view candidate : offered) {
    if (port_forward ? candidate == kPortForwardV1
                     : (candidate == kRemoteCommandV4 || candidate == kRemoteCommandV3 ||
                        candidate == kRemoteCommandV2)) {
      chosen = candidate;
      break;
    }
  }
  if (chosen.empty()) {
    std::string list;
    for (std::string_view v : offered) list += StrCat(list.empty() ? "" : ", ", v);
    WriteSimpleResponse(socket, http::status::forbidden,
                        StrCat("unable to upgrade: unable to negotiate protocol: client supports [",
                               list, "], server supports [",
                               port_forward ? std::string(kPortForwardV1)
                                            : StrCat(kRemoteCommandV4, ", ", kRemoteCommandV3, ", ",
                                                     kRemoteCommandV2),
                               "]"));
    return;
  }
  // The kubelet's answer, byte for byte what client-go's SPDY round tripper checks.
  const std::string upgraded = StrCat(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
      "X-Stream-Protocol-Version: ",
      chosen, "\r\n\r\n");
  asio::write(socket, asio::buffer(upgraded), ec);
  if (ec) return;
  std::string already_read = beast::buffers_to_string(buffer.data());
  SpdyConnection spdy(connection.fd, std::move(already_read), [this, &connection] { Touch(connection); });
  if (port_forward) {
    on_started();  // port-forward streams come and go for the session's whole life
    ServePortForwardSpdy(spdy, backend_, std::get<PortForwardRequest>(*stored).pod_id);
  } else {
    // `chosen` points into the request, which outlives the session.
    session.protocol = chosen == kRemoteCommandV4   ? kRemoteCommandV4
                       : chosen == kRemoteCommandV3 ? kRemoteCommandV3
                                                    : kRemoteCommandV2;
    ServeRemoteCommandSpdy(spdy, session);
  }
}

}  // namespace berth::streaming
