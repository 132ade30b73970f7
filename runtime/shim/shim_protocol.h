// The contract between berthd and berth-shim: the files in a container's state directory
// and the framed protocol of the shim's unix socket. Plain C++ (no Abseil) because the
// shim, which must stay tiny, includes it too.
//
// State directory (one per container, given as --state-dir):
//   shim.pid      the shim's pid (written atomically once it has daemonized)
//   init.pid      the container's init pid in the host PID namespace (written by runc)
//   shim.sock     the attach/control socket (below); removed when the shim exits
//   console.sock  transient: runc sends the pty master here during `runc create` (tty only)
//   exit          the container's exit, written atomically (temp + rename) after its output
//                 is drained; its appearance is the event berthd waits for (inotify):
//                 {"pid":123,"exit_code":137,"signal":9,"exited_at":"2024-...Z","oom_killed":false}
//                 exit_code is 128 + signal when a signal killed it. oom_killed is always
//                 false here: berthd decides it from the cgroup's OOM events.
//   shim.log      the shim's own diagnostics (rarely written)
//
// Start-up handshake: berthd passes the write end of a pipe as --sync-fd. The shim writes
// exactly one line and closes it:
//   "ok <container pid>\n"     runc create succeeded; the container is in state created
//   "error <message>\n"        nothing is running; the message carries runc's own error
//
// Socket protocol (SOCK_STREAM). Every message in both directions is a frame:
//   1 byte type | 4 bytes payload length, big-endian | payload
// Payloads are at most kMaxFramePayload bytes. Any client may connect at any time, and
// any number of clients may be connected.
//
// Client -> shim:
//   kAttach      payload: 1 byte of kAttach* flags. Starts forwarding the chosen output
//                streams to this client from now on (earlier output is only in the log).
//                Reply: kOk, or kError when stdin is asked for and the container has none.
//                With --stdin-once, the container's stdin is closed when the first client
//                that attached with kAttachStdin disconnects (CRI StdinOnce).
//   kStdin       payload: bytes for the container's stdin. No reply. Dropped when the
//                container has no stdin. While the container does not read, the shim
//                buffers up to 64 KiB and then stops reading from clients.
//   kCloseStdin  empty. Closes the container's stdin (EOF). With a tty, sends VEOF (^D).
//   kResize      payload: width (columns) then height (rows), 2 bytes each, big-endian.
//                Sets the pty window size; ignored without a tty. No reply.
//   kReopenLog   empty. Reopens the CRI log file (after kubelet rotated it). Reply: kOk
//                once the new file is open, or kError with the reason.
// Shim -> client:
//   kStdout, kStderr  payload: output bytes (with a tty everything is kStdout).
//   kExit             payload: the exit file's JSON; the last frame before the shim closes.
//   kOk               empty; kError: payload is a message.
// A client that sends an unknown or oversized frame gets kError and is disconnected; one
// that lets more than 1 MiB of output pile up unread is disconnected (the log has it all).
//
// Signals: SIGUSR1 reopens the log (fire and forget). SIGTERM, SIGINT and SIGHUP are
// ignored: the shim must not die while its container lives; it exits by itself after the
// container's exit is recorded. Stop the container (runc kill / delete --force) instead.
// SIGKILL of the shim loses the container's output and exit status: don't.
#ifndef BERTH_RUNTIME_SHIM_SHIM_PROTOCOL_H_
#define BERTH_RUNTIME_SHIM_SHIM_PROTOCOL_H_

#include <cstddef>
#include <cstdint>

namespace berth::shim {

inline constexpr char kShimPidFile[] = "shim.pid";
inline constexpr char kInitPidFile[] = "init.pid";
inline constexpr char kSocketFile[] = "shim.sock";
inline constexpr char kConsoleSocketFile[] = "console.sock";
inline constexpr char kExitFile[] = "exit";
inline constexpr char kShimLogFile[] = "shim.log";

enum class FrameType : uint8_t {
  // client -> shim
  kAttach = 1,
  kStdin = 2,
  kCloseStdin = 3,
  kResize = 4,
  kReopenLog = 5,
  // shim -> client
  kStdout = 17,
  kStderr = 18,
  kExit = 19,
  kOk = 20,
  kError = 21,
};

inline constexpr uint8_t kAttachStdout = 1;
inline constexpr uint8_t kAttachStderr = 2;
inline constexpr uint8_t kAttachStdin = 4;

inline constexpr size_t kFrameHeaderSize = 5;
inline constexpr uint32_t kMaxFramePayload = 1 << 20;

inline void EncodeFrameHeader(FrameType type, uint32_t length, char out[kFrameHeaderSize]) {
  out[0] = static_cast<char>(type);
  out[1] = static_cast<char>(length >> 24);
  out[2] = static_cast<char>(length >> 16);
  out[3] = static_cast<char>(length >> 8);
  out[4] = static_cast<char>(length);
}

inline uint32_t DecodeFrameLength(const char header[kFrameHeaderSize]) {
  auto b = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(header[i])); };
  return b(1) << 24 | b(2) << 16 | b(3) << 8 | b(4);
}

}  // namespace berth::shim

#endif  // BERTH_RUNTIME_SHIM_SHIM_PROTOCOL_H_
