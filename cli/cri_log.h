// Reading a container's CRI log, as `berthctl logs` and `berthctl run` print it:
// the stdout lines to one stream and the stderr lines to another, optionally
// only the last N lines, optionally each with its time.
//
//   CriLogFollower log(path, {.tail = 10}, std::cout, std::cerr);
//   RETURN_IF_ERROR(log.ReadExisting());  // what the file holds; --tail keeps its end
//   log.Finish();                         // logs without -f: done
//
//   // logs -f: print what is appended, across rotations, until the writer is done.
//   RETURN_IF_ERROR(log.Follow(/*ended=*/[&] { return ContainerEnded(...); },
//                              std::chrono::milliseconds(200)));
//
// The format (the CRI's, as runtimes write it and the kubelet reads it) is one
// record per line, "<RFC 3339 time> <stdout|stderr> <P|F> <text>": a writer cuts
// a long line into P (partial) records ended by an F record, and the two
// streams' records interleave.
#ifndef BERTH_CLI_CRI_LOG_H_
#define BERTH_CLI_CRI_LOG_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::cli {

enum class LogStream { kStdout = 0, kStderr = 1 };

// One line of the container's output.
struct LogLine {
  std::string timestamp;  // of its first record
  LogStream stream = LogStream::kStdout;
  std::string text;
  // False for text the container never ended with a newline (its stream closed mid-line).
  bool complete = true;
};

// How lines are printed.
struct LogPrintOptions {
  int64_t tail = -1;        // only the last N lines of what the file holds at first; -1 for all
  bool timestamps = false;  // each line's time (of its first record) first
};

// Parses CRI log records into lines, joining each stream's P records with the
// F record that ends them.
class CriLogParser {
 public:
  // Appends the lines `bytes` completes to `out`; a record cut by the end of
  // `bytes` waits for the next call.
  void Feed(std::string_view bytes, std::vector<LogLine>& out);

  // The file being read ends here (it was rotated away): a record it cut off
  // can never be completed. P records already read still wait for their F.
  void EndOfFile();

  // The log is over: hands out the text of P records no F record ended, as
  // lines with complete = false.
  void Flush(std::vector<LogLine>& out);

 private:
  struct Pending {
    LogStream stream;
    bool open = false;
    std::string timestamp;
    std::string text;
  };

  void ParseRecord(std::string_view record, std::vector<LogLine>& out);

  std::string unterminated_;
  Pending pending_[2] = {{.stream = LogStream::kStdout}, {.stream = LogStream::kStderr}};
};

// A log file read as it grows. The kubelet rotates a container's log by
// renaming it away and asking the runtime to reopen the path, so the path can
// come to name a new file, to read from its start once the old one is read to
// its end. logrotate's copytruncate instead truncates the file in place.
class GrowingFile {
 public:
  explicit GrowingFile(std::string path) : path_(std::move(path)) {}
  ~GrowingFile() { Reset(); }
  GrowingFile(const GrowingFile&) = delete;
  GrowingFile& operator=(const GrowingFile&) = delete;

  // Appends up to one buffer of what was written since the last call to
  // `out` (from the start again if the file shrank); nothing at the end of the
  // file. NotFound while the path does not exist.
  absl::Status ReadSome(std::string& out);

  // Whether the path names another file than the one being read. Not while
  // it names none: renamed away and not reopened yet, the old file is still
  // the one written.
  bool Rotated() const;

  // Leaves the current file: the next ReadSome opens the path anew.
  void Reset();

 private:
  const std::string path_;
  int fd_ = -1;
  std::pair<dev_t, ino_t> identity_;
  off_t offset_ = 0;
};

// Prints log lines, stdout ones to `out` and stderr ones to `err`. With a
// tail, holds them back until ReleaseTail, keeping only the last ones.
class LogPrinter {
 public:
  LogPrinter(const LogPrintOptions& options, std::ostream& out, std::ostream& err)
      : timestamps_(options.timestamps),
        tail_(options.tail),
        holding_(options.tail >= 0),
        out_(out),
        err_(err) {}

  // Prints (or holds) the lines and empties `lines`.
  void Add(std::vector<LogLine>& lines);

  // Prints the lines held back; lines added from now on are printed at once.
  void ReleaseTail();

 private:
  void Print(const LogLine& line) const;

  const bool timestamps_;
  const int64_t tail_;
  bool holding_;
  std::deque<LogLine> held_;
  std::ostream& out_;
  std::ostream& err_;
};

// One CRI log file, printed: what it holds, then (to follow it) what is
// appended to it, across rotations and truncations. Not thread-safe.
class CriLogFollower {
 public:
  CriLogFollower(std::string path, const LogPrintOptions& options, std::ostream& out,
                 std::ostream& err);

  // Reads the file to its current end, printing its lines (with a tail, holding
  // them back until Finish or Follow). NotFound if the path names no file (a
  // container that has not written yet may have none).
  absl::Status ReadExisting();

  // One step of following: prints the lines completed since the last read. If
  // the path has come to name a new file, the old one is read to its end first,
  // then the new one from its start; a file that shrank is read from its start.
  // OK while the path names no file.
  absl::Status Poll();

  // Prints what a tail held back, then polls until `ended` (called between
  // polls, every `interval`) says the writer is done, and polls once more: a
  // writer may finish writing just before it reports its end. Then Finish.
  absl::Status Follow(const std::function<absl::StatusOr<bool>()>& ended,
                      std::chrono::milliseconds interval);

  // The log is over: prints the text of P records no F record ended (without a
  // newline), and what a tail held back.
  void Finish();

 private:
  // Reads the file to its current end, printing the lines it completes.
  absl::Status PrintToEnd();

  GrowingFile file_;
  CriLogParser parser_;
  LogPrinter printer_;
  std::ostream& out_;
};

}  // namespace berth::cli

#endif  // BERTH_CLI_CRI_LOG_H_
