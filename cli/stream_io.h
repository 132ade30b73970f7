// The local end of an exec or attach session, whatever carries it (WebSocket in
// stream_client.h, SPDY in spdy_stream_client.h): the fds and terminal-size source the
// session uses, and the input pump, a thread that turns stdin, SIGWINCH and interrupts
// into calls on the transport.
//
//   InputPump pump(io, {.stdin_data = [&](std::string_view d) { return Send(0, d); },
//                       .stdin_eof = [&] { return SendEof(); },
//                       .resize = [&](TerminalSize s) { return Send(4, Encode(s)); },
//                       .interrupt = [&] { Close(); }});
//   RETURN_IF_ERROR(pump.Start());
//   ... read the output until the session ends ...
//   transport.Shutdown();   // so that a blocked send returns false
//   pump.Stop();
#ifndef BERTH_CLI_STREAM_IO_H_
#define BERTH_CLI_STREAM_IO_H_

#include <functional>
#include <optional>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "runtime/base/unique_fd.h"
#include "server/streaming/remotecommand.h"

namespace berth::cli {

// Where a tty session's terminal size comes from.
struct TerminalSizeSource {
  // Readable when the size may have changed (a SIGWINCH self-pipe); the client drains it.
  int wake_fd = -1;
  // The current size; nullopt when unknown (nothing is sent).
  std::function<std::optional<streaming::remotecommand::TerminalSize>()> size;
};

// The local end of an exec or attach session. The fds are borrowed, never closed.
struct RemoteCommandIo {
  // Sent on stdin until EOF; -1 when the session has no stdin.
  int in_fd = -1;
  int out_fd = 1;
  int err_fd = 2;
  // The session has a tty: the size source, if any, feeds the resize channel.
  bool tty = false;
  const TerminalSizeSource* resize = nullptr;
  // Readable when the user wants out (a SIGINT/SIGTERM self-pipe; not drained): the
  // client closes the connection and returns Cancelled. -1: none. Watched once the
  // session runs (SPDY: during the connect and upgrade too); the rest of the setup is
  // bounded by kHandshakeTimeout instead.
  int interrupt_fd = -1;
};

// Writes all of data to a borrowed fd, waiting out EAGAIN on a non-blocking one (a
// terminal shared with a shell may have been left so). `what` names it in the error.
absl::Status WriteToFd(int fd, std::string_view data, std::string_view what);

// The stdin and resize side of a session: a thread that waits on the input fds and hands
// what it reads to the transport, so a blocking read never holds up output. (A regular
// file on stdin cannot be waited on through epoll, which rules out asio.)
class InputPump {
 public:
  // Called on the pump's thread. Those returning bool return false once the session is
  // over: the pump then stops.
  struct Sink {
    std::function<bool(std::string_view)> stdin_data;  // bytes read from io.in_fd
    std::function<bool()> stdin_eof;                   // io.in_fd at EOF (or failing)
    // The terminal size, first before any input, then each time it changes. Only for
    // a tty session with a size source.
    std::function<bool(const streaming::remotecommand::TerminalSize&)> resize;
    std::function<void()> interrupt;  // io.interrupt_fd became readable; the pump stops
  };

  InputPump(const RemoteCommandIo& io, Sink sink) : io_(io), sink_(std::move(sink)) {}
  InputPump(const InputPump&) = delete;
  InputPump& operator=(const InputPump&) = delete;
  ~InputPump() { Stop(); }

  absl::Status Start();
  // Ends the thread. A sink call that blocks must have been unblocked first (the
  // transport shut down), or this waits for it.
  void Stop();

 private:
  void Run();

  RemoteCommandIo io_;
  Sink sink_;
  UniqueFd cancel_read_;
  UniqueFd cancel_write_;
  std::thread thread_;
};

}  // namespace berth::cli

#endif  // BERTH_CLI_STREAM_IO_H_
