// PauseInfra: the infra process of pods whose containers share one PID
// namespace (NamespaceMode POD): berth-pause (runtime/pause), run through the
// OCI runtime and a berth-shim like any container, from a read-only rootfs
// that holds only the berth-pause binary. No pause image is ever pulled.
//
//   ASSIGN_OR_RETURN(auto infra, PauseInfra::Create({.state_dir = "/run/berth",
//       .pause_binary = ..., .shim_binary = ..., .runc = {...}}));
//   ASSIGN_OR_RETURN(int pid, infra->Start(pod));   // pod.dir and namespaces set
//   // containers join /proc/<pid>/ns/pid
//   RETURN_IF_ERROR(infra->Stop(pod.id, pod.dir));   // idempotent
//
// The infra process of pod <id> is runtime container <id> (container ids are
// different random ids, so they never collide); its bundle is <pod dir>/infra
// and its shim's state <pod dir>/infra/shim. Its cgroup is
// <pod cgroup parent>/<pod id>. Like containerd's sandbox, it runs as uid
// 65535 with no capabilities and no new privileges.
#ifndef BERTH_RUNTIME_SANDBOX_PAUSE_INFRA_H_
#define BERTH_RUNTIME_SANDBOX_PAUSE_INFRA_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/oci/runc_runtime.h"
#include "runtime/sandbox/pod_sandbox.h"

namespace berth::sandbox {

struct PauseInfraOptions {
  std::string state_dir;     // the rootfs is <state_dir>/pause/rootfs
  std::string pause_binary;  // berth-pause, absolute; copied into the rootfs
  std::string shim_binary;   // berth-shim, absolute
  oci::RuncOptions runc;
  std::string default_cgroup_parent = "/berth";
  int64_t min_oom_score_adj = 0;  // see container::SpecContext
};

class PauseInfra {
 public:
  // Installs the rootfs (a fresh copy of berth-pause each start, so an
  // upgraded berth runs its own).
  static absl::StatusOr<std::unique_ptr<PauseInfra>> Create(PauseInfraOptions options);

  // Runs the pod's infra process in the pod's network, IPC and UTS
  // namespaces (pod.netns/ipcns/utsns) and a new PID namespace; returns its
  // host pid.
  absl::StatusOr<int> Start(const PodSandbox& pod);
  // Kills the infra process and deletes its runtime state and shim. OK when
  // there is none.
  absl::Status Stop(const std::string& pod_id, const std::string& pod_dir);
  // Whether the infra process of the pod in pod_dir still runs.
  bool Alive(const std::string& pod_dir) const;

  const std::string& rootfs() const { return rootfs_; }

 private:
  explicit PauseInfra(PauseInfraOptions options);

  const PauseInfraOptions options_;
  const std::string rootfs_;
  oci::RuncRuntime runc_;
};

}  // namespace berth::sandbox

#endif  // BERTH_RUNTIME_SANDBOX_PAUSE_INFRA_H_
