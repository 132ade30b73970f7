#include "server/streaming/spdy_sessions.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <map>
#include <thread>

#include "runtime/base/strings.h"
#include "server/streaming/remotecommand.h"
#include "spdlog/spdlog.h"

namespace berth::streaming {

namespace {

// Writes all of `data` to a blocking socket; false once the peer is gone.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string StreamType(const spdy::SynStream& syn) {
  std::optional<std::string_view> type = syn.headers.Get("streamtype");
  return type ? std::string(*type) : std::string();
}

}  // namespace

std::string RemoteCommandStatus(std::string_view protocol, const absl::StatusOr<int>& exit,
                                const std::vector<std::string>& command) {
  const bool v4 = protocol == kRemoteCommandV4;
  if (!exit.ok()) {
    std::string error =
        StrCat("error executing command in container: ", exit.status().message());
    return v4 ? remotecommand::InternalErrorStatusJson(error) : error;
  }
  if (*exit == 0) return v4 ? remotecommand::SuccessStatusJson() : std::string();
  return v4 ? remotecommand::NonZeroExitStatusJson(*exit, command)
            : remotecommand::NonZeroExitMessage(*exit, command);
}

void ServeRemoteCommandSpdy(SpdyConnection& connection, const RemoteCommandSession& session) {
  const bool resizable = session.tty && session.protocol != kRemoteCommandV2;
  const int expected = 1 + session.stdin + session.stdout + session.stderr + resizable;
  uint32_t error_id = 0, stdin_id = 0, stdout_id = 0, stderr_id = 0, resize_id = 0;
  int opened = 0;
  std::string early_stdin;  // stdin that raced ahead of the process
  bool early_stdin_closed = false;
  remotecommand::TerminalSizeDecoder sizes;
  remotecommand::TerminalSize first_size;  // the client's terminal, once it said
  // Input that arrives before the process runs is kept for it.
  auto keep_early = [&](const spdy::ReceivedFrame& frame) {
    if (auto* data = std::get_if<spdy::Data>(&frame)) {
      if (data->stream_id == stdin_id && stdin_id != 0) {
        early_stdin += data->data;
        early_stdin_closed |= data->fin;
      } else if (data->stream_id == resize_id && resize_id != 0) {
        absl::StatusOr<std::vector<remotecommand::TerminalSize>> resized = sizes.Feed(data->data);
        if (resized.ok() && !resized->empty()) first_size = resized->back();
      }
      connection.Consumed(data->stream_id, data->data.size());
    } else if (auto* reset = std::get_if<spdy::RstStream>(&frame)) {
      if (reset->stream_id == stdin_id && stdin_id != 0) early_stdin_closed = true;
    }
  };

  // 1. Wait for the streams the request calls for (client-go opens them all first).
  while (opened < expected) {
    std::optional<spdy::ReceivedFrame> frame = connection.Next();
    if (!frame) return;  // the client left before starting
    if (auto* syn = std::get_if<spdy::SynStream>(&*frame)) {
      const std::string type = StreamType(*syn);
      uint32_t* slot = type == "error"                     ? &error_id
                       : type == "stdin" && session.stdin  ? &stdin_id
                       : type == "stdout" && session.stdout ? &stdout_id
                       : type == "stderr" && session.stderr ? &stderr_id
                       : type == "resize" && resizable      ? &resize_id
                                                            : nullptr;
      if (slot == nullptr || *slot != 0) {
        spdlog::debug("streaming: unexpected stream type {:?} refused", type);
        (void)connection.Reset(syn->stream_id, spdy::RstStatus::kRefusedStream);
        continue;
      }
      *slot = syn->stream_id;
      connection.OpenStream(syn->stream_id);
      (void)connection.Reply(syn->stream_id);
      ++opened;
    } else {
      keep_early(*frame);
    }
  }
  // A terminal's first size comes right after the streams (client-go sends it at once).
  // Started before it, the process would see a terminal of the wrong size, so wait a
  // moment for it.
  if (resize_id != 0) {
    const absl::Time deadline = absl::Now() + kFirstSizeWait;
    while (first_size.width == 0) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration() || !connection.WaitReadable(left)) break;
      std::optional<spdy::ReceivedFrame> frame = connection.Next();
      if (!frame) return;
      keep_early(*frame);
    }
  }

  // 2. Start the process; output flows from a second thread while this one reads input.
  if (session.on_started) session.on_started();
  absl::StatusOr<std::unique_ptr<RemoteProcess>> started =
      session.start(first_size.width, first_size.height);
  std::atomic<bool> finished = false;
  auto finish = [&](const absl::StatusOr<int>& exit) {
    std::string status = RemoteCommandStatus(session.protocol, exit, session.command);
    if (!status.empty()) (void)connection.SendData(error_id, status);
    for (uint32_t id : {stdout_id, stderr_id, error_id}) {
      if (id != 0) (void)connection.Finish(id);
    }
    finished = true;
    connection.ShutdownWrite();
    if (session.on_finished) session.on_finished();
  };
  if (!started.ok()) {
    finish(started.status());
  }
  std::unique_ptr<RemoteProcess> process =
      started.ok() ? *std::move(started) : std::unique_ptr<RemoteProcess>();
  std::thread output;
  if (process) {
    if (!early_stdin.empty()) process->WriteStdin(early_stdin);
    if (early_stdin_closed) process->CloseStdin();
    output = std::thread([&] {
      absl::StatusOr<int> exit = process->Wait([&](OutputStream stream, std::string_view bytes) {
        uint32_t id = stream == OutputStream::kStdout ? stdout_id : stderr_id;
        if (id == 0) id = stdout_id;  // a tty merges the two
        if (id != 0) (void)connection.SendData(id, bytes);
      });
      finish(exit);
    });
  }

  while (std::optional<spdy::ReceivedFrame> frame = connection.Next()) {
    if (auto* data = std::get_if<spdy::Data>(&*frame)) {
      if (process && data->stream_id == stdin_id && stdin_id != 0) {
        if (!data->data.empty()) process->WriteStdin(data->data);
        if (data->fin) process->CloseStdin();
      } else if (process && data->stream_id == resize_id && resize_id != 0) {
        absl::StatusOr<std::vector<remotecommand::TerminalSize>> resized = sizes.Feed(data->data);
        if (resized.ok()) {
          for (const remotecommand::TerminalSize& size : *resized) {
            process->Resize(size.width, size.height);
          }
        }
      }
      connection.Consumed(data->stream_id, data->data.size());
    } else if (auto* reset = std::get_if<spdy::RstStream>(&*frame)) {
      if (process && reset->stream_id == stdin_id) process->CloseStdin();
    } else if (auto* syn = std::get_if<spdy::SynStream>(&*frame)) {
      (void)connection.Reset(syn->stream_id, spdy::RstStatus::kRefusedStream);
    }
  }
  // The client closed the connection (normally after reading everything).
  if (process && !finished) process->Cancel();
  if (output.joinable()) output.join();
  connection.Abort();
}

namespace {

// One forwarded TCP connection: the client's data and error streams and the pod socket.
struct Forward {
  uint16_t port = 0;
  uint32_t data_id = 0, error_id = 0;
  UniqueFd socket;
  std::thread from_pod;
  std::atomic<bool> pod_done = false;
  bool client_done = false;
};

}  // namespace

void ServePortForwardSpdy(SpdyConnection& connection, Backend& backend, const std::string& pod_id) {
  std::map<std::string, std::shared_ptr<Forward>> by_request;  // requestID -> forward
  std::map<uint32_t, std::shared_ptr<Forward>> by_stream;      // data stream -> forward

  auto start = [&](const std::shared_ptr<Forward>& forward) {
    absl::StatusOr<UniqueFd> dialed = backend.DialPort(pod_id, forward->port);
    if (!dialed.ok()) {
      (void)connection.SendData(forward->error_id,
                                StrCat("error forwarding port ", forward->port, " to pod ", pod_id,
                                       ": ", dialed.status().message()));
      (void)connection.Finish(forward->error_id);
      (void)connection.Finish(forward->data_id);
      forward->pod_done = true;
      return;
    }
    forward->socket = *std::move(dialed);
    forward->from_pod = std::thread([&connection, forward] {
      char buffer[32 * 1024];
      while (true) {
        ssize_t n = recv(forward->socket.get(), buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (!connection.SendData(forward->data_id, std::string_view(buffer, n)).ok()) break;
      }
      (void)connection.Finish(forward->data_id);
      (void)connection.Finish(forward->error_id);
      forward->pod_done = true;
    });
  };

  auto forget_done = [&] {
    for (auto it = by_stream.begin(); it != by_stream.end();) {
      Forward& forward = *it->second;
      if (forward.pod_done && forward.client_done) {
        if (forward.from_pod.joinable()) forward.from_pod.join();
        it = by_stream.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = by_request.begin(); it != by_request.end();) {
      it = it->second->pod_done && it->second->client_done ? by_request.erase(it) : std::next(it);
    }
  };

  while (std::optional<spdy::ReceivedFrame> frame = connection.Next()) {
    if (auto* syn = std::get_if<spdy::SynStream>(&*frame)) {
      const std::string type = StreamType(*syn);
      std::optional<std::string_view> port_header = syn->headers.Get("port");
      std::optional<std::string_view> request_header = syn->headers.Get("requestid");
      unsigned port = 0;
      bool port_ok = port_header.has_value() &&
                     std::from_chars(port_header->data(), port_header->data() + port_header->size(),
                                     port)
                             .ec == std::errc() &&
                     port >= 1 && port <= 65535;
      if ((type != "data" && type != "error") || !port_ok) {
        (void)connection.Reset(syn->stream_id, spdy::RstStatus::kProtocolError);
        continue;
      }
      // Old clients send no requestID: pair by stream id order, as the kubelet does.
      std::string request_id = request_header ? std::string(*request_header)
                                              : StrCat("stream-", (syn->stream_id + 1) / 4);
      std::shared_ptr<Forward>& forward = by_request[request_id];
      if (!forward) forward = std::make_shared<Forward>();
      uint32_t& slot = type == "data" ? forward->data_id : forward->error_id;
      if (slot != 0) {
        (void)connection.Reset(syn->stream_id, spdy::RstStatus::kProtocolError);
        continue;
      }
      slot = syn->stream_id;
      forward->port = static_cast<uint16_t>(port);
      connection.OpenStream(syn->stream_id);
      (void)connection.Reply(syn->stream_id);
      if (forward->data_id != 0 && forward->error_id != 0) {
        by_stream[forward->data_id] = forward;
        start(forward);
      }
    } else if (auto* data = std::get_if<spdy::Data>(&*frame)) {
      auto it = by_stream.find(data->stream_id);
      if (it != by_stream.end()) {
        Forward& forward = *it->second;
        if (forward.socket.valid() && !data->data.empty()) {
          if (!WriteAll(forward.socket.get(), data->data)) {
            shutdown(forward.socket.get(), SHUT_RDWR);
          }
        }
        if (data->fin) {
          forward.client_done = true;
          if (forward.socket.valid()) shutdown(forward.socket.get(), SHUT_WR);
        }
      }
      connection.Consumed(data->stream_id, data->data.size());
    } else if (auto* reset = std::get_if<spdy::RstStream>(&*frame)) {
      auto it = by_stream.find(reset->stream_id);
      if (it != by_stream.end()) {
        it->second->client_done = true;
        if (it->second->socket.valid()) shutdown(it->second->socket.get(), SHUT_RDWR);
      }
    }
    forget_done();
  }
  // The client closed the connection: end every forward.
  for (auto& [id, forward] : by_stream) {
    if (forward->socket.valid()) shutdown(forward->socket.get(), SHUT_RDWR);
  }
  connection.Abort();
  for (auto& [id, forward] : by_stream) {
    if (forward->from_pod.joinable()) forward->from_pod.join();
  }
}

}  // namespace berth::streaming
