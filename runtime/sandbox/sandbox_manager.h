// SandboxManager: pod sandboxes — their namespaces, shared files and records.
//
//   ASSIGN_OR_RETURN(auto pods, SandboxManager::Create(store, state_dir + "/pods", handlers));
//   RETURN_IF_ERROR(pods->Recover());                 // at start-up
//   ASSIGN_OR_RETURN(std::string id, pods->Run(spec));
//   ASSIGN_OR_RETURN(std::optional<PodSandbox> pod, pods->Find(id));
//   RETURN_IF_ERROR(pods->Stop(id));                  // idempotent
//   RETURN_IF_ERROR(pods->Remove(id));                // idempotent
//
// A pod owns <pods dir>/<id>/: ns/{net,ipc,uts} (pinned namespaces, unless
// the pod uses the node's), shm (a tmpfs for /dev/shm), hostname, hosts and
// resolv.conf (bind-mounted into its containers). The namespaces are pinned
// by bind mounts (namespace_pins.h), so no process is needed to hold them;
// only a pod whose containers share a PID namespace (NamespaceMode POD) gets
// an infra process, berth-pause (pause_infra.h), under <id>/infra.
//
// Records (store Kind::kPod) go through three states: "creating" (written
// before anything is made, so a crash mid-way is found and undone by
// Recover), "ready" and "notready". A pod's name — name, namespace, uid and
// attempt together — is held by a Kind::kName record. A RunPodSandbox the
// kubelet retries after a timeout gets the pod the first call made, also
// while that call is still running: the retry waits for it.
#ifndef BERTH_RUNTIME_SANDBOX_SANDBOX_MANAGER_H_
#define BERTH_RUNTIME_SANDBOX_SANDBOX_MANAGER_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/container/container_spec.h"
#include "runtime/sandbox/pause_infra.h"
#include "runtime/sandbox/pod_network.h"
#include "runtime/sandbox/pod_sandbox.h"
#include "runtime/store/store.h"

namespace berth::sandbox {

struct PodFilter {
  std::string id;  // exact id or a unique prefix
  std::optional<PodState> state;
  std::map<std::string, std::string> labels;  // all must match
};

class SandboxManager {
 public:
  // handlers: the configured runtime handler names ("" means the default).
  // infra runs the infra process of pods with a shared PID namespace; null:
  // such pods get none (and containers that need it cannot be created).
  // network attaches pods that have their own network namespace; null: they
  // keep loopback only.
  static absl::StatusOr<std::unique_ptr<SandboxManager>> Create(store::Store& store,
                                                                std::string pods_dir,
                                                                std::set<std::string> handlers,
                                                                PauseInfra* infra = nullptr,
                                                                PodNetwork* network = nullptr);

  // Makes the pod and returns its id (64 hex). InvalidArgument for bad
  // metadata or an unknown runtime handler.
  absl::StatusOr<std::string> Run(const container::PodSpec& spec);
  // Releases the pod's namespaces and shm; the record stays, NOTREADY.
  // NotFound for an unknown id.
  absl::Status Stop(const std::string& id);
  // Stops the pod if needed, then deletes its directory and records. A
  // missing pod is OK.
  absl::Status Remove(const std::string& id);

  absl::StatusOr<std::optional<PodSandbox>> Find(const std::string& id_or_prefix);
  absl::StatusOr<std::vector<PodSandbox>> List(const PodFilter& filter);

  // Start-up: undoes half-made pods, removes directories with no record,
  // marks pods whose pins or infra process vanished (a reboot emptied the
  // state dir, someone killed berth-pause) NOTREADY.
  absl::Status Recover();

 private:
  SandboxManager(store::Store& store, std::string pods_dir, std::set<std::string> handlers,
                 PauseInfra* infra, PodNetwork* network)
      : store_(store),
        pods_dir_(std::move(pods_dir)),
        handlers_(std::move(handlers)),
        infra_(infra),
        network_(network) {}

  absl::StatusOr<std::string> Create(const container::PodSpec& spec, const std::string& id);
  absl::Status Release(const std::string& dir);
  absl::StatusOr<std::optional<std::string>> ResolveId(const std::string& id_or_prefix);

  store::Store& store_;
  const std::string pods_dir_;
  const std::set<std::string> handlers_;
  PauseInfra* const infra_;
  PodNetwork* const network_;

  // RunPodSandbox calls in flight, by pod name: a retry waits for the first.
  absl::Mutex mu_;
  std::set<std::string> creating_ ABSL_GUARDED_BY(mu_);
};

// "name_namespace_uid_attempt": what makes two RunPodSandbox calls the same pod.
std::string PodName(const container::PodSpec& spec);

}  // namespace berth::sandbox

#endif  // BERTH_RUNTIME_SANDBOX_SANDBOX_MANAGER_H_
