#include "cni/internal/locks.h"

#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"

namespace berth::cni::internal {
namespace {

struct ContainerLocks {
  absl::Mutex mu;
  std::set<std::string> held ABSL_GUARDED_BY(mu);
};

ContainerLocks& Containers() {
  static auto* locks = new ContainerLocks;
  return *locks;
}

struct FreeArgs {
  ContainerLocks* locks;
  const std::string* id;
};

bool IsFree(FreeArgs* args) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  return !args->locks->held.contains(*args->id);
}

}  // namespace

ContainerLock::ContainerLock(std::string container_id) : container_id_(std::move(container_id)) {
  ContainerLocks& locks = Containers();
  FreeArgs args{&locks, &container_id_};
  locks.mu.LockWhen(absl::Condition(&IsFree, &args));
  locks.held.insert(container_id_);
  locks.mu.Unlock();
}

ContainerLock::~ContainerLock() {
  ContainerLocks& locks = Containers();
  absl::MutexLock lock(&locks.mu);
  locks.held.erase(container_id_);
}

absl::Mutex& NetworkGcMutex(const std::string& network_name) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* mutexes ABSL_GUARDED_BY(mu) =
      new std::map<std::string, std::unique_ptr<absl::Mutex>>;
  absl::MutexLock lock(&mu);
  std::unique_ptr<absl::Mutex>& m = (*mutexes)[network_name];
  if (m == nullptr) m = std::make_unique<absl::Mutex>();
  return *m;
}

}  // namespace berth::cni::internal
