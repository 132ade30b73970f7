#include "server/socket_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::server {
namespace {

std::string ReadPid(int fd) {
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "unknown";
  std::string pid(buf, n);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid.empty() ? "unknown" : pid;
}

// True when something accepts connections on the socket.
bool SomeoneListens(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool connected = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return connected;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PidLock>> PidLock::Acquire(const std::string& path,
                                                          const std::string& what) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(StrCat("open lock file ", path, ": ", strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string holder = ReadPid(fd);
    close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(StrCat("another berthd (pid ", holder,
                                                  ") is already serving ", what,
                                                  "; stop it first or choose another path"));
    }
    return absl::InternalError(StrCat("lock ", path, ": ", strerror(err)));
  }
  std::string pid = StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != (ssize_t)pid.size()) {
    int err = errno;
    close(fd);
    return absl::InternalError(StrCat("write pid to ", path, ": ", strerror(err)));
  }
  return std::unique_ptr<PidLock>(new PidLock(fd));
}

// The lock file stays: unlinking it would let a successor that opened the old
// inode and one that creates a new file both believe they hold the lock.
PidLock::~PidLock() { close(fd_); }

absl::StatusOr<std::unique_ptr<SocketGuard>> SocketGuard::Acquire(const std::string& socket_path) {
  ASSIGN_OR_RETURN(std::unique_ptr<PidLock> lock,
                   PidLock::Acquire(socket_path + ".lock", socket_path));
  bool removed = false;
  struct stat st;
  if (lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          StrCat(socket_path, " exists and is not a socket; refusing to replace it"));
    }
    // We hold the lock, so no berthd serves this socket. Something else
    // (another runtime pointed at the same path) still might.
    if (SomeoneListens(socket_path)) {
      return absl::FailedPreconditionError(
          StrCat(socket_path, " is in use by another process that accepts connections"));
    }
    if (unlink(socket_path.c_str()) != 0) {
      return absl::InternalError(
          StrCat("remove stale socket ", socket_path, ": ", strerror(errno)));
    }
    removed = true;
  }
  return std::unique_ptr<SocketGuard>(new SocketGuard(socket_path, std::move(lock), removed));
}

SocketGuard::~SocketGuard() { unlink(socket_path_.c_str()); }

}  // namespace berth::server
