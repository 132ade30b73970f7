// Namespace pins: a pod's network, IPC and UTS namespaces kept alive by bind
// mounts, with no process in them.
//
//   ASSIGN_OR_RETURN(NamespacePins pins,
//                    PinNamespaces(pod_dir + "/ns", {.net = true, .ipc = true, .uts = true},
//                                  "my-pod"));
//   pins.net   // "<pod_dir>/ns/net": what runc's spec names as the netns path
//   RETURN_IF_ERROR(UnpinNamespaces(pod_dir + "/ns"));   // idempotent
//
// This is how berth avoids a pause process for pods whose PID namespace is
// not shared (CRI-O's pinns does the same): a short-lived thread unshares the
// namespaces, sets the hostname and brings up loopback; the caller bind-mounts
// /proc/<pid>/task/<tid>/ns/<kind> onto files under `dir`; the thread ends.
// The namespaces live as long as the bind mounts.
#ifndef BERTH_RUNTIME_SANDBOX_NAMESPACE_PINS_H_
#define BERTH_RUNTIME_SANDBOX_NAMESPACE_PINS_H_

#include <string>

#include "absl/status/statusor.h"

namespace berth::sandbox {

struct NamespaceKinds {
  bool net = false;
  bool ipc = false;
  bool uts = false;
};

struct NamespacePins {
  // Bind-mounted nsfs files; empty for a kind that was not pinned.
  std::string net;
  std::string ipc;
  std::string uts;
};

// Creates the namespaces and pins them under dir (created 0700). The UTS
// namespace gets `hostname`; the network namespace gets loopback up. On
// error nothing stays mounted.
absl::StatusOr<NamespacePins> PinNamespaces(const std::string& dir, NamespaceKinds kinds,
                                            const std::string& hostname);

// Unmounts whatever pins exist under dir and removes dir. Missing is fine.
absl::Status UnpinNamespaces(const std::string& dir);

// True when path is a live pin: a mount of an nsfs file.
bool IsPinned(const std::string& path);

}  // namespace berth::sandbox

#endif  // BERTH_RUNTIME_SANDBOX_NAMESPACE_PINS_H_
