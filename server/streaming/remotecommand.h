// Payloads of Kubernetes' remotecommand protocol (exec and attach) that are the same over
// SPDY and WebSocket: the error stream's status (v4 and later) and terminal resize events.
//
//   // Server, when the command ends (error stream / channel 3):
//   write(exit_code == 0 ? SuccessStatusJson() : NonZeroExitStatusJson(exit_code, command));
//   // Server, reading the resize stream / channel 4:
//   ASSIGN_OR_RETURN(std::vector<TerminalSize> sizes, resize_decoder.Feed(bytes));
//
//   // Client (berthctl), reading the error stream:
//   ASSIGN_OR_RETURN(int exit_code, ExitCodeFromStatusJson(error_stream_bytes));
//
// The status JSON is byte for byte what the kubelet's streaming server writes for a CRI
// runtime (json.Marshal of a metav1.Status, with containerd's exit error as the message),
// because kubectl and client-go parse it: client-go's v4 error decoder looks for reason
// "NonZeroExitCode" and a cause of reason "ExitCode" whose message is the code, parsed as
// an unsigned 8-bit number. Pre-v4 protocols carry plain text instead, and nothing on
// success.
#ifndef BERTH_SERVER_STREAMING_REMOTECOMMAND_H_
#define BERTH_SERVER_STREAMING_REMOTECOMMAND_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::streaming::remotecommand {

// {"metadata":{},"status":"Success"}
std::string SuccessStatusJson();

// The Failure status for a command that exited with `exit_code` (1..255: clients parse it
// as a uint8; a shell reports a signal as 128+n):
// {"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code:
// error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode",
// "details":{"causes":[{"reason":"ExitCode","message":"3"}]}}
std::string NonZeroExitStatusJson(int exit_code, const std::vector<std::string>& command);

// The message inside that status, which is also what pre-v4 protocols send as text.
std::string NonZeroExitMessage(int exit_code, const std::vector<std::string>& command);

// The Failure status for anything but an exit code (the command could not start, the
// container is gone), as the kubelet's apierrors.NewInternalError writes it:
// {"metadata":{},"status":"Failure","message":"Internal error occurred: <error>",
// "reason":"InternalError","details":{"causes":[{"message":"<error>"}]},"code":500}
// The kubelet passes "error executing command in container: <cause>" as the error.
std::string InternalErrorStatusJson(std::string_view error);

// Client side: what a v4 status says, read as client-go does. 0 for Success, the code for
// NonZeroExitCode; for any other Failure, Unknown with the status message (what kubectl
// prints); InvalidArgument for a payload that is not a readable status.
absl::StatusOr<int> ExitCodeFromStatusJson(std::string_view json);

// A terminal size from the resize stream: client-go's TerminalSize, {"Width":W,"Height":H}.
struct TerminalSize {
  uint16_t width = 0;
  uint16_t height = 0;
  bool operator==(const TerminalSize&) const = default;
};

// {"Width":80,"Height":24}\n, as client-go's json.Encoder writes it.
std::string EncodeTerminalSize(TerminalSize size);

// Reads the resize stream: JSON objects one after another (client-go writes one per
// resize, newline-terminated), split across DATA frames or WebSocket messages anywhere.
// Field names match case-insensitively and unknown fields are ignored, as with Go's
// decoder. Errors are sticky: the kubelet stops reading resizes after a bad one.
class TerminalSizeDecoder {
 public:
  // An object that is still incomplete after this many bytes is refused.
  static constexpr size_t kMaxObjectBytes = 4096;

  // The sizes completed by `bytes`, in order. InvalidArgument for anything that is not an
  // object with in-range sizes, or an object over kMaxObjectBytes.
  absl::StatusOr<std::vector<TerminalSize>> Feed(std::string_view bytes);

 private:
  std::string pending_;  // the start of an incomplete object
  size_t scanned_ = 0;   // bytes of pending_ already scanned
  int depth_ = 0;        // nesting depth at scanned_
  bool in_string_ = false;
  bool escaped_ = false;
  absl::Status status_;
};

}  // namespace berth::streaming::remotecommand

#endif  // BERTH_SERVER_STREAMING_REMOTECOMMAND_H_
