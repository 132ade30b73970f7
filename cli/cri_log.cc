#include "cli/cri_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cli {

// ---------------------------------------------------------------------------
// CriLogParser

void CriLogParser::Feed(std::string_view bytes, std::vector<LogLine>& out) {
  unterminated_.append(bytes);
  size_t start = 0;
  for (size_t end; (end = unterminated_.find('\n', start)) != std::string::npos; start = end + 1) {
    ParseRecord(std::string_view(unterminated_).substr(start, end - start), out);
  }
  unterminated_.erase(0, start);
}

void CriLogParser::EndOfFile() { unterminated_.clear(); }

void CriLogParser::Flush(std::vector<LogLine>& out) {
  for (Pending& pending : pending_) {
    if (!pending.open) continue;
    out.push_back({pending.timestamp, pending.stream, std::move(pending.text), false});
    pending = Pending{.stream = pending.stream};
  }
}

void CriLogParser::ParseRecord(std::string_view record, std::vector<LogLine>& out) {
  // A line that is not a CRI record is skipped, as the kubelet does.
  size_t time_end = record.find(' ');
  if (time_end == std::string_view::npos) return;
  size_t stream_end = record.find(' ', time_end + 1);
  if (stream_end == std::string_view::npos) return;
  std::string_view stream = record.substr(time_end + 1, stream_end - time_end - 1);
  if (stream != "stdout" && stream != "stderr") return;
  // The tag is a ':'-separated list whose first item is P or F; an empty
  // text may lose the space before it.
  size_t tag_end = record.find(' ', stream_end + 1);
  std::string_view tag =
      record.substr(stream_end + 1, tag_end == std::string_view::npos ? std::string_view::npos
                                                                      : tag_end - stream_end - 1);
  std::string_view text =
      tag_end == std::string_view::npos ? std::string_view() : record.substr(tag_end + 1);
  bool partial = tag.substr(0, tag.find(':')) == "P";

  Pending& pending = pending_[stream == "stdout" ? 0 : 1];
  if (!pending.open) pending.timestamp = std::string(record.substr(0, time_end));
  pending.open = true;
  pending.text.append(text);
  if (partial) return;
  out.push_back({std::move(pending.timestamp), pending.stream, std::move(pending.text), true});
  pending = Pending{.stream = pending.stream};
}

// ---------------------------------------------------------------------------
// GrowingFile

absl::Status GrowingFile::ReadSome(std::string& out) {
  if (fd_ < 0) {
    fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      int err = errno;
      return absl::Status(
          err == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition,
          StrCat("open ", path_, ": ", std::strerror(err)));
    }
    offset_ = 0;
  }
  struct stat st;
  if (fstat(fd_, &st) != 0) {
    return absl::InternalError(StrCat("stat ", path_, ": ", std::strerror(errno)));
  }
  identity_ = {st.st_dev, st.st_ino};
  // Truncated in place (logrotate's copytruncate): start over.
  if (st.st_size < offset_) offset_ = 0;
  char buffer[64 * 1024];
  ssize_t n;
  do {
    n = pread(fd_, buffer, sizeof(buffer), offset_);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return absl::InternalError(StrCat("read ", path_, ": ", std::strerror(errno)));
  out.append(buffer, n);
  offset_ += n;
  return absl::OkStatus();
}

bool GrowingFile::Rotated() const {
  struct stat st;
  if (fd_ < 0 || stat(path_.c_str(), &st) != 0) return false;
  return std::make_pair(st.st_dev, st.st_ino) != identity_;
}

void GrowingFile::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

// ---------------------------------------------------------------------------
// LogPrinter

void LogPrinter::Add(std::vector<LogLine>& lines) {
  for (LogLine& line : lines) {
    if (!holding_) {
      Print(line);
      continue;
    }
    held_.push_back(std::move(line));
    if (held_.size() > static_cast<size_t>(tail_)) held_.pop_front();
  }
  lines.clear();
}

void LogPrinter::ReleaseTail() {
  for (const LogLine& line : held_) Print(line);
  held_.clear();
  holding_ = false;
  out_.flush();
}

void LogPrinter::Print(const LogLine& line) const {
  std::ostream& out = line.stream == LogStream::kStderr ? err_ : out_;
  if (timestamps_) out << line.timestamp << ' ';
  out << line.text;
  if (line.complete) out << '\n';
}

// ---------------------------------------------------------------------------
// CriLogFollower

CriLogFollower::CriLogFollower(std::string path, const LogPrintOptions& options, std::ostream& out,
                               std::ostream& err)
    : file_(std::move(path)), printer_(options, out, err), out_(out) {}

absl::Status CriLogFollower::PrintToEnd() {
  std::string bytes;
  std::vector<LogLine> lines;
  do {
    bytes.clear();
    RETURN_IF_ERROR(file_.ReadSome(bytes));
    parser_.Feed(bytes, lines);
    printer_.Add(lines);
  } while (!bytes.empty());
  out_.flush();
  return absl::OkStatus();
}

absl::Status CriLogFollower::ReadExisting() { return PrintToEnd(); }

absl::Status CriLogFollower::Poll() {
  while (true) {
    // Looked at before reading: once the path names a new file, the old one
    // gets no more records, so reading it to its end misses none.
    bool rotated = file_.Rotated();
    absl::Status read = PrintToEnd();
    if (!read.ok() && !absl::IsNotFound(read)) return read;
    if (!rotated) return absl::OkStatus();
    parser_.EndOfFile();
    file_.Reset();
  }
}

absl::Status CriLogFollower::Follow(const std::function<absl::StatusOr<bool>()>& ended,
                                    std::chrono::milliseconds interval) {
  printer_.ReleaseTail();
  bool done = false;
  while (true) {
    RETURN_IF_ERROR(Poll());
    // One more poll after the writer ended: the shim records the exit only
    // after it has written all the output, which may have come since.
    if (done) break;
    ASSIGN_OR_RETURN(done, ended());
    if (!done) std::this_thread::sleep_for(interval);
  }
  Finish();
  return absl::OkStatus();
}

void CriLogFollower::Finish() {
  std::vector<LogLine> unfinished;
  parser_.Flush(unfinished);
  printer_.Add(unfinished);
  printer_.ReleaseTail();
}

}  // namespace berth::cli
