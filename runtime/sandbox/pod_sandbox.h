// PodSandbox: a pod as berth records it (see sandbox_manager.h).
#ifndef BERTH_RUNTIME_SANDBOX_POD_SANDBOX_H_
#define BERTH_RUNTIME_SANDBOX_POD_SANDBOX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/container/container_spec.h"

namespace berth::sandbox {

enum class PodState { kReady, kNotReady };

struct PodSandbox {
  std::string id;
  container::PodSpec spec;
  PodState state = PodState::kNotReady;
  int64_t created_at_ns = 0;
  std::string dir;  // <pods dir>/<id>
  // Namespace paths for the OCI spec: a pinned file, or "" for the node's.
  std::string netns, ipcns, utsns;
  // With NamespaceMode POD for PID: the infra process (berth-pause) and its
  // PID namespace (/proc/<pid>/ns/pid), which the containers join. Else 0/"".
  int infra_pid = 0;
  std::string pidns;
  // From the pod network, the primary first; empty for loopback only or the
  // node's network.
  std::vector<std::string> ips;
};

}  // namespace berth::sandbox

#endif  // BERTH_RUNTIME_SANDBOX_POD_SANDBOX_H_
