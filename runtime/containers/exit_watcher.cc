#include "runtime/containers/exit_watcher.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "runtime/base/errno_status.h"
#include "runtime/base/strings.h"
#include "runtime/shim/shim_protocol.h"

namespace berth::containers {

ExitWatcher::ExitWatcher(std::function<void(const std::string&)> on_exit)
    : on_exit_(std::move(on_exit)),
      inotify_(inotify_init1(IN_CLOEXEC | IN_NONBLOCK)),
      wakeup_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  thread_ = std::thread([this] { Loop(); });
}

ExitWatcher::~ExitWatcher() {
  uint64_t one = 1;
  (void)!write(wakeup_.get(), &one, sizeof(one));
  thread_.join();
}

absl::Status ExitWatcher::Watch(const std::string& id, const std::string& shim_dir) {
  if (!inotify_.valid()) return absl::InternalError("exit watcher: no inotify descriptor");
  // The shim writes the exit file under a temporary name and renames it.
  int wd = inotify_add_watch(inotify_.get(), shim_dir.c_str(), IN_MOVED_TO | IN_CREATE);
  if (wd < 0) return ErrnoStatus(errno, StrCat("inotify watch ", shim_dir));
  bool exited = access(StrCat(shim_dir, "/", shim::kExitFile).c_str(), F_OK) == 0;
  absl::MutexLock lock(&mu_);
  ids_by_watch_[wd] = id;
  watches_by_id_[id] = wd;
  if (exited) {
    // It exited before the watch: hand it to the loop, which runs every callback.
    pending_.push_back(id);
    uint64_t one = 1;
    (void)!write(wakeup_.get(), &one, sizeof(one));
  }
  return absl::OkStatus();
}

void ExitWatcher::Unwatch(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = watches_by_id_.find(id);
  if (it == watches_by_id_.end()) return;
  inotify_rm_watch(inotify_.get(), it->second);
  ids_by_watch_.erase(it->second);
  watches_by_id_.erase(it);
}

void ExitWatcher::Loop() {
  alignas(struct inotify_event) char buffer[16 * 1024];
  for (;;) {
    pollfd fds[2] = {{.fd = inotify_.get(), .events = POLLIN, .revents = 0},
                     {.fd = wakeup_.get(), .events = POLLIN, .revents = 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    std::vector<std::string> exited;
    if (fds[1].revents & POLLIN) {
      uint64_t count = 0;
      (void)!read(wakeup_.get(), &count, sizeof(count));
      absl::MutexLock lock(&mu_);
      if (pending_.empty()) return;  // the destructor's wake-up
      exited.swap(pending_);
    }
    if (fds[0].revents & POLLIN) {
      ssize_t n;
      while ((n = read(inotify_.get(), buffer, sizeof(buffer))) > 0) {
        for (char* p = buffer; p < buffer + n;) {
          auto* event = reinterpret_cast<struct inotify_event*>(p);
          p += sizeof(struct inotify_event) + event->len;
          absl::MutexLock lock(&mu_);
          auto it = ids_by_watch_.find(event->wd);
          if (it == ids_by_watch_.end()) continue;
          if (event->mask & IN_IGNORED) {
            // The directory is gone (the container was removed).
            watches_by_id_.erase(it->second);
            ids_by_watch_.erase(it);
            continue;
          }
          if (event->len > 0 && strcmp(event->name, shim::kExitFile) == 0) {
            exited.push_back(it->second);
          }
        }
      }
    }
    for (const std::string& id : exited) on_exit_(id);
  }
}

}  // namespace berth::containers
