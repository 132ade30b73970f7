#include "runtime/shim/cri_log_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace berth::shim {

CriLogWriter::CriLogWriter(std::string path, size_t max_line, Clock clock)
    : path_(std::move(path)),
      max_line_(max_line),
      clock_(clock != nullptr ? clock : RealtimeNanos) {}

CriLogWriter::~CriLogWriter() {
  if (fd_ >= 0) close(fd_);
}

bool CriLogWriter::Open(std::string* error) {
  if (path_.empty()) return true;
  int fd = open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    *error = "open log " + path_ + ": " + strerrordesc_np(errno);
    return false;
  }
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
  return true;
}

bool CriLogWriter::Reopen(std::string* error) { return Open(error); }

int64_t CriLogWriter::RealtimeNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

namespace {

// Writes `value` as `width` decimal digits, zero-padded.
char* PutDigits(char* out, long value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return out + width;
}

}  // namespace

std::string CriLogWriter::FormatTimestamp(int64_t unix_nanos) {
  int64_t secs = unix_nanos / 1000000000;
  long nanos = static_cast<long>(unix_nanos % 1000000000);
  if (nanos < 0) {
    nanos += 1000000000;
    --secs;
  }
  // Civil date from days since the epoch (Howard Hinnant's algorithm): no strftime, no
  // time zone machinery in the shim, which writes one of these per log line.
  int64_t days = secs / 86400;
  long rem = static_cast<long>(secs % 86400);
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const long doe = static_cast<long>(days - era * 146097);
  const long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const long mp = (5 * doy + 2) / 153;
  const long day = doy - (153 * mp + 2) / 5 + 1;
  const long month = mp < 10 ? mp + 3 : mp - 9;
  const long year = static_cast<long>(yoe + era * 400) + (month <= 2 ? 1 : 0);

  char buf[40];
  char* p = PutDigits(buf, year, 4);
  *p++ = '-';
  p = PutDigits(p, month, 2);
  *p++ = '-';
  p = PutDigits(p, day, 2);
  *p++ = 'T';
  p = PutDigits(p, rem / 3600, 2);
  *p++ = ':';
  p = PutDigits(p, rem / 60 % 60, 2);
  *p++ = ':';
  p = PutDigits(p, rem % 60, 2);
  if (nanos != 0) {
    *p++ = '.';
    char* frac = p;
    p = PutDigits(p, nanos, 9);
    while (p > frac && p[-1] == '0') --p;  // Go drops trailing zeros
  }
  *p++ = 'Z';
  return std::string(buf, p - buf);
}

void CriLogWriter::Emit(CriStream stream, bool partial, const char* a, size_t a_size, const char* b,
                        size_t b_size) {
  if (fd_ < 0) return;
  std::string header = FormatTimestamp(clock_());
  header += stream == CriStream::kStdout ? " stdout " : " stderr ";
  header += partial ? "P " : "F ";
  char newline = '\n';
  iovec iov[4] = {{header.data(), header.size()},
                  {const_cast<char*>(a), a_size},
                  {const_cast<char*>(b), b_size},
                  {&newline, 1}};
  iovec* v = iov;
  int count = 4;
  // A regular file takes the whole record at once; loop only for the odd short write
  // (a full disk), and give up on errors: output must keep draining regardless.
  while (count > 0) {
    ssize_t n = writev(fd_, v, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    while (count > 0 && static_cast<size_t>(n) >= v->iov_len) {
      n -= v->iov_len;
      ++v;
      --count;
    }
    if (count > 0) {
      v->iov_base = static_cast<char*>(v->iov_base) + n;
      v->iov_len -= n;
    }
  }
}

void CriLogWriter::EmitLine(CriStream stream, const char* tail, size_t tail_size, bool eof) {
  std::string& pending = pending_[static_cast<int>(stream)];
  const size_t total = pending.size() + tail_size;
  // The text [off, off + len) of pending + tail, as at most two pieces.
  auto emit = [&](size_t off, size_t len, bool partial) {
    const char* a = nullptr;
    size_t a_size = 0;
    if (off < pending.size()) {
      a = pending.data() + off;
      a_size = std::min(len, pending.size() - off);
    }
    const char* b = len > a_size ? tail + (off + a_size - pending.size()) : nullptr;
    Emit(stream, partial, a, a_size, b, len - a_size);
  };
  size_t off = 0;
  while (max_line_ > 0 && total - off > max_line_) {
    emit(off, max_line_, true);
    off += max_line_;
  }
  emit(off, total - off, eof);
  pending.clear();
  if (pending.capacity() > 2 * max_line_ + 4096) std::string().swap(pending);
}

void CriLogWriter::Write(CriStream stream, const char* data, size_t size) {
  std::string& pending = pending_[static_cast<int>(stream)];
  const char* p = data;
  const char* end = data + size;
  while (p < end) {
    const char* nl = static_cast<const char*>(memchr(p, '\n', end - p));
    if (nl == nullptr) {
      pending.append(p, end - p);
      // Write full-size P records as soon as there is more than a record's worth, keeping
      // a trailing '\r' back: with a '\n' after it, it is not part of the text.
      while (max_line_ > 0 && pending.size() - (pending.back() == '\r' ? 1 : 0) > max_line_) {
        Emit(stream, true, pending.data(), max_line_, nullptr, 0);
        pending.erase(0, max_line_);
      }
      return;
    }
    size_t tail = nl - p;
    if (tail > 0 && nl[-1] == '\r') {
      --tail;
    } else if (tail == 0 && !pending.empty() && pending.back() == '\r') {
      pending.pop_back();
    }
    EmitLine(stream, p, tail, /*eof=*/false);
    p = nl + 1;
  }
}

void CriLogWriter::Finish(CriStream stream) {
  if (pending_[static_cast<int>(stream)].empty()) return;
  EmitLine(stream, nullptr, 0, /*eof=*/true);
}

}  // namespace berth::shim
