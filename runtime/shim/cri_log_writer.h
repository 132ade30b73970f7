// CriLogWriter: writes a container's stdout and stderr in the CRI log format that kubelet
// (`kubectl logs`), crictl and log shippers read, byte for byte as containerd's CRI plugin
// writes it (pkg/cri/io/logger.go):
//
//   2024-01-02T03:04:05.123456789Z stdout F hello world
//   2024-01-02T03:04:05.1234568Z stderr P first 16384 bytes of a long line...
//   2024-01-02T03:04:05.1234569Z stderr F ...the rest of it
//
// - One record per line; the line's "\n" (or "\r\n") is not part of the text.
// - A line longer than max_line bytes is cut into records of exactly max_line bytes tagged
//   P, and the rest (1..max_line bytes) tagged F. A line of exactly max_line bytes is one F.
// - Text still without a newline when its stream ends is written tagged P (containerd does
//   the same: the reader knows the container never ended that line).
// - The timestamp is the time the record is written, RFC 3339 in UTC with nanoseconds and
//   trailing zeros dropped (Go's time.RFC3339Nano).
// - Each record is one write(2) to a file opened O_APPEND, so records of the two streams
//   never interleave inside a line.
//
//   CriLogWriter log("/var/log/pods/ns_pod_uid/ctr/0.log");
//   std::string error;
//   if (!log.Open(&error)) ...;
//   log.Write(CriStream::kStdout, buf, n);   // as output arrives, in any chunks
//   log.Finish(CriStream::kStdout);          // at EOF of that stream
//   log.Reopen(&error);                      // after kubelet rotated the file
//
// Plain C++ (no Abseil): it is linked into berth-shim. Not thread-safe.
#ifndef BERTH_RUNTIME_SHIM_CRI_LOG_WRITER_H_
#define BERTH_RUNTIME_SHIM_CRI_LOG_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace berth::shim {

enum class CriStream { kStdout = 0, kStderr = 1 };

inline constexpr size_t kDefaultMaxLogLine = 16 * 1024;  // containerd's default

class CriLogWriter {
 public:
  // Nanoseconds since the Unix epoch; tests pass a fixed clock.
  using Clock = int64_t (*)();

  // An empty `path` makes a writer that discards everything (no log configured).
  explicit CriLogWriter(std::string path, size_t max_line = kDefaultMaxLogLine,
                        Clock clock = nullptr);
  ~CriLogWriter();
  CriLogWriter(const CriLogWriter&) = delete;
  CriLogWriter& operator=(const CriLogWriter&) = delete;

  // Opens (creating, mode 0640) the log file for appending. False with `error` set on
  // failure.
  bool Open(std::string* error);

  // Opens the path anew (kubelet renamed the old file away) and switches to it. On
  // failure the old file stays in use.
  bool Reopen(std::string* error);

  // Feeds output of `stream`; complete lines are written at once.
  void Write(CriStream stream, const char* data, size_t size);

  // The stream ended: writes what is left of its last line, tagged P.
  void Finish(CriStream stream);

  const std::string& path() const { return path_; }

  // Go's time.RFC3339Nano in UTC: "2024-01-02T03:04:05.1Z", no fraction when it is zero.
  static std::string FormatTimestamp(int64_t unix_nanos);
  static int64_t RealtimeNanos();

 private:
  // Writes one record whose text is a (then b), tagged P or F.
  void Emit(CriStream stream, bool partial, const char* a, size_t a_size, const char* b,
            size_t b_size);
  // Writes `line` (pending text followed by `tail`) as records of max_line_ bytes, the last
  // one tagged F unless `eof`.
  void EmitLine(CriStream stream, const char* tail, size_t tail_size, bool eof);

  std::string path_;
  size_t max_line_;
  Clock clock_;
  int fd_ = -1;
  std::string pending_[2];  // per stream: text of the current line not yet written
};

}  // namespace berth::shim

#endif  // BERTH_RUNTIME_SHIM_CRI_LOG_WRITER_H_
