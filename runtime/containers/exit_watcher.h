// ExitWatcher: learns the moment a shim records a container's exit, with one
// inotify descriptor and one thread for all containers (no polling), and calls
// back so that the exit is recorded and a "stopped" event published even when
// nobody asks for the container's status.
//
//   ExitWatcher watcher([&](const std::string& id) { manager.OnExit(id); });
//   RETURN_IF_ERROR(watcher.Watch(id, shim_state_dir));
//   watcher.Unwatch(id);
//
// The callback runs on the watcher's thread; it must not call Watch or Unwatch.
// A Watch of a container whose exit file is already there calls back at once
// (from the watcher's thread too).
#ifndef BERTH_RUNTIME_CONTAINERS_EXIT_WATCHER_H_
#define BERTH_RUNTIME_CONTAINERS_EXIT_WATCHER_H_

#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "runtime/base/unique_fd.h"

namespace berth::containers {

class ExitWatcher {
 public:
  explicit ExitWatcher(std::function<void(const std::string& id)> on_exit);
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  absl::Status Watch(const std::string& id, const std::string& shim_dir);
  void Unwatch(const std::string& id);

 private:
  void Loop();

  const std::function<void(const std::string&)> on_exit_;
  UniqueFd inotify_;
  UniqueFd wakeup_;  // an eventfd: the destructor stops the loop through it

  absl::Mutex mu_;
  std::map<int, std::string> ids_by_watch_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> watches_by_id_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> pending_ ABSL_GUARDED_BY(mu_);  // exited before Watch

  std::thread thread_;
};

}  // namespace berth::containers

#endif  // BERTH_RUNTIME_CONTAINERS_EXIT_WATCHER_H_
