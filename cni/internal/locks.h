// Process-wide locks for CNI operations. The spec forbids parallel operations on one
// container, across all its attachments, and any ADD or DEL on a network while it is
// garbage-collected; berth may hold several Network objects for one network, so the locks
// cannot live in them.
//
//   absl::ReaderMutexLock gc(&NetworkGcMutex(network_name));  // Add/Del/Check
//   ContainerLock lock(container_id);                           // always after the GC lock
#ifndef BERTH_CNI_INTERNAL_LOCKS_H_
#define BERTH_CNI_INTERNAL_LOCKS_H_

#include <string>

#include "absl/synchronization/mutex.h"

namespace berth::cni::internal {

// Holds the container id until destroyed; a second holder of the same id waits.
class ContainerLock {
 public:
  explicit ContainerLock(std::string container_id);
  ~ContainerLock();
  ContainerLock(const ContainerLock&) = delete;
  ContainerLock& operator=(const ContainerLock&) = delete;

 private:
  std::string container_id_;
};

// One mutex per network name, never destroyed: readers are Add/Del/Check, the writer is
// GarbageCollect.
absl::Mutex& NetworkGcMutex(const std::string& network_name);

}  // namespace berth::cni::internal

#endif  // BERTH_CNI_INTERNAL_LOCKS_H_
