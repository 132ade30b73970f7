// SocketGuard: claims the right to serve a unix socket path.
//
//   absl::StatusOr<std::unique_ptr<SocketGuard>> guard =
//   SocketGuard::Acquire("/run/berth/berth.sock");
//   // ... bind and serve ...; the guard's destructor removes the socket.
//
// A daemon killed with SIGKILL leaves its socket file behind. That stale file
// must not keep the next daemon from starting, while a second daemon must
// never steal the socket of a live one. The guard decides with an flock()ed
// pid file beside the socket (<socket>.lock): the kernel drops the lock when
// its holder dies, however it dies, so a held lock means a live daemon.
#ifndef BERTH_SERVER_SOCKET_GUARD_H_
#define BERTH_SERVER_SOCKET_GUARD_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace berth::server {

// An flock()ed file holding the owner's pid. Unlocked when destroyed or when
// the process dies.
class PidLock {
 public:
  // FailedPrecondition naming the holder when another live process has it.
  static absl::StatusOr<std::unique_ptr<PidLock>> Acquire(const std::string& path,
                                                          const std::string& what);
  ~PidLock();
  PidLock(const PidLock&) = delete;
  PidLock& operator=(const PidLock&) = delete;

 private:
  explicit PidLock(int fd) : fd_(fd) {}
  int fd_;
};

class SocketGuard {
 public:
  static absl::StatusOr<std::unique_ptr<SocketGuard>> Acquire(const std::string& socket_path);
  // Removes the socket file, then releases the lock.
  ~SocketGuard();

  // True when Acquire found and removed a socket left by a dead daemon.
  bool removed_stale_socket() const { return removed_stale_socket_; }

 private:
  SocketGuard(std::string socket_path, std::unique_ptr<PidLock> lock, bool removed)
      : socket_path_(std::move(socket_path)),
        lock_(std::move(lock)),
        removed_stale_socket_(removed) {}
  std::string socket_path_;
  std::unique_ptr<PidLock> lock_;
  bool removed_stale_socket_;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_SOCKET_GUARD_H_
