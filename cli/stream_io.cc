#include "cli/stream_io.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "runtime/base/errno_status.h"
#include "runtime/base/strings.h"

namespace berth::cli {

namespace {
// Bytes read from stdin at a time: one message (WebSocket) or DATA frame (SPDY) each.
constexpr size_t kReadChunk = 32 * 1024;
}  // namespace

using streaming::remotecommand::TerminalSize;

absl::Status WriteToFd(int fd, std::string_view data, std::string_view what) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{fd, POLLOUT, 0};
      poll(&pfd, 1, -1);
      continue;
    }
    if (n < 0) return ErrnoStatus(errno, StrCat("write to ", what));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status InputPump::Start() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  cancel_read_.reset(fds[0]);
  cancel_write_.reset(fds[1]);
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void InputPump::Stop() {
  if (!thread_.joinable()) return;
  char byte = 0;
  while (write(cancel_write_.get(), &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
}

void InputPump::Run() {
  const bool resizes = io_.tty && io_.resize != nullptr && io_.resize->size && sink_.resize;
  int wake_fd = resizes ? io_.resize->wake_fd : -1;
  std::optional<TerminalSize> last_size;
  auto send_size = [&] {
    std::optional<TerminalSize> size = io_.resize->size();
    if (!size || size == last_size) return true;
    last_size = size;
    return sink_.resize(*size);
  };
  // The first size before any input, so the remote side starts with the right one.
  if (resizes && !send_size()) return;
  bool stdin_open = io_.in_fd >= 0;
  std::array<char, kReadChunk> buffer;
  while (true) {
    std::array<pollfd, 4> fds{};
    nfds_t count = 0;
    auto watch = [&](int fd) -> pollfd* {
      if (fd < 0) return nullptr;
      fds[count] = {fd, POLLIN, 0};
      return &fds[count++];
    };
    pollfd* cancel = watch(cancel_read_.get());
    pollfd* interrupt = watch(io_.interrupt_fd);
    pollfd* wake = watch(wake_fd);
    pollfd* in = watch(stdin_open ? io_.in_fd : -1);
    if (poll(fds.data(), count, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (cancel->revents != 0) return;
    if (interrupt != nullptr && interrupt->revents != 0) {
      if (sink_.interrupt) sink_.interrupt();
      return;
    }
    if (wake != nullptr && wake->revents != 0) {
      char drain[64];
      if (read(wake->fd, drain, sizeof(drain)) == 0) wake_fd = -1;  // closed: no more
      if (!send_size()) return;
    }
    if (in != nullptr && in->revents != 0) {
      ssize_t n = read(in->fd, buffer.data(), buffer.size());
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n > 0) {
        if (!sink_.stdin_data(std::string_view(buffer.data(), static_cast<size_t>(n)))) return;
        continue;
      }
      // EOF (or a read error such as a hung-up terminal's EIO).
      stdin_open = false;
      if (sink_.stdin_eof && !sink_.stdin_eof()) return;
    }
  }
}

}  // namespace berth::cli
