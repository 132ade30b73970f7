// ContainerManager: the container lifecycle core — create, start, stop, remove, find, list
// and crash recovery — composed from the pods (SandboxManager), the images (ImageManager),
// the snapshotter, the spec builder, berth-shim and runc. No gRPC: server/ maps the CRI
// container RPCs onto it.
//
//   ASSIGN_OR_RETURN(auto containers, ContainerManager::Create(store, pods, images,
//                                                              snapshotter, options));
//   RETURN_IF_ERROR(containers->Recover());                  // at start-up
//   ASSIGN_OR_RETURN(std::string id, containers->Create(pod_id, spec, "busybox:1.36"));
//   RETURN_IF_ERROR(containers->Start(id));
//   RETURN_IF_ERROR(containers->Stop(id, /*timeout_seconds=*/10));   // idempotent
//   RETURN_IF_ERROR(containers->Remove(id));                           // idempotent
//
// A container owns <state>/containers/<id>/: the OCI bundle (config.json and rootfs/, the
// snapshot's mounts) and shim/, berth-shim's state directory (pid files, exit file,
// socket). Its writable snapshot has the container id as key, on the image's top snapshot.
// The shim runs `runc create`; berthd runs `runc start/kill/delete` itself with one
// RuncRuntime whose state root is <state>/runtimes/runc.
//
// Records (store Kind::kContainer, with references container -> pod and container ->
// snapshot) go through "creating" (written before anything is made, so a crash mid-way is
// found and undone by Recover), "created", "running" and "exited". A container whose
// process exited on its own is reported EXITED as soon as the shim has recorded the exit
// (Find and List read the exit file), and the record is updated then.
#ifndef BERTH_RUNTIME_CONTAINERS_CONTAINER_MANAGER_H_
#define BERTH_RUNTIME_CONTAINERS_CONTAINER_MANAGER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/container/container_spec.h"
#include "runtime/containers/exit_watcher.h"
#include "runtime/events/event_bus.h"
#include "runtime/images/image_manager.h"
#include "runtime/oci/runc_runtime.h"
#include "runtime/sandbox/sandbox_manager.h"
#include "runtime/shim/shim_client.h"
#include "runtime/snapshot/snapshotter.h"
#include "runtime/stats/cgroup_stats.h"
#include "runtime/store/store.h"

namespace berth::containers {

// runtime.v1.ContainerState.
enum class ContainerState { kCreated, kRunning, kExited, kUnknown };

struct Container {
  std::string id;
  std::string pod_id;
  std::string image_id;   // "sha256:<config digest hex>"
  std::string image_ref;  // the image as the client named it (ContainerSpec::image)
  // From the ContainerSpec.
  std::string name;
  uint32_t attempt = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::string log_path;  // absolute CRI log path, "" for none
  ContainerState state = ContainerState::kUnknown;
  int64_t created_at_ns = 0;
  int64_t started_at_ns = 0;   // 0 until started
  int64_t finished_at_ns = 0;  // 0 until exited
  int exit_code = 0;
  std::string reason;  // "Completed", "Error", "OOMKilled" once exited
  std::string message;
  int pid = 0;              // the container's init in the host PID namespace
  int shim_pid = 0;         // its berth-shim
  std::string stop_signal;  // the image's StopSignal, "" for SIGTERM
  bool tty = false;         // ContainerConfig.tty
  bool stdin = false;       // ContainerConfig.stdin: the shim keeps a stdin for attach
  std::string dir;          // <state>/containers/<id>
  std::string cgroups_path;  // linux.cgroupsPath, "/parent/id"
  std::vector<container::Mount> mounts;  // the CRI mounts, as requested
};

// ContainerStats: the container's cgroup and writable layer, sampled now.
struct ContainerStats {
  Container container;
  int64_t timestamp_ns = 0;
  // Zero figures when the cgroup is gone (the container exited and was deleted).
  stats::CgroupStats cgroup;
  // From the previous sample of this container (ContainerStats is polled); 0 at first.
  uint64_t cpu_nano_cores = 0;
  snapshot::Usage writable_layer;
};

// What ExecSync returns: the process's output, kept apart, and its exit code.
struct ExecSyncResult {
  std::string out;
  std::string err;
  int exit_code = 0;
};

struct ContainerFilter {
  std::string id;      // exact id or a unique prefix
  std::string pod_id;  // exact pod id or a unique prefix
  std::optional<ContainerState> state;
  std::map<std::string, std::string> labels;  // all must match
};

struct ContainerManagerOptions {
  std::string state_dir;    // e.g. /run/berth; containers/ and runtimes/runc/ live below
  std::string shim_binary;  // berth-shim (//runtime/shim:berth-shim), absolute
  std::string runc_binary = "/usr/sbin/runc";  // absolute; no PATH search
  std::string default_cgroup_parent = "/berth";
  int64_t min_oom_score_adj = 0;  // see SpecContext::min_oom_score_adj
  // Where created/started/stopped/deleted events go; null: nowhere.
  events::EventBus* events = nullptr;
};

class ContainerManager {
 public:
  static absl::StatusOr<std::unique_ptr<ContainerManager>> Create(
      store::Store& store, sandbox::SandboxManager& pods, images::ImageManager& images,
      snapshot::Snapshotter& snapshotter, ContainerManagerOptions options);

  // Creates the container (state created: runc create done, its process waits for Start)
  // and returns its id (64 hex). NotFound for an unknown pod or image; FailedPrecondition
  // for a pod that is not ready.
  absl::StatusOr<std::string> Create(const std::string& pod_id,
                                     const container::ContainerSpec& spec,
                                     const std::string& image_ref);
  // Runs a created container's process. NotFound for an unknown container,
  // FailedPrecondition unless it is created.
  absl::Status Start(const std::string& id);
  // Signals the container's process (the image's StopSignal, else SIGTERM), waits up to
  // timeout_seconds for it to exit, then SIGKILLs it. OK for a container already exited.
  absl::Status Stop(const std::string& id, int64_t timeout_seconds);
  // Kills the container if needed and deletes its runtime state, rootfs, snapshot,
  // directory and record. A missing container is OK.
  absl::Status Remove(const std::string& id);

  // Runs `command` in the running container with the container's own process settings
  // (user, env, cwd, capabilities), stdin closed, and waits for it. With a timeout above
  // zero, a process still running then is killed and DeadlineExceeded returned. Output
  // beyond kMaxExecOutput per stream is dropped. FailedPrecondition unless running.
  absl::StatusOr<ExecSyncResult> ExecSync(const std::string& id_or_prefix,
                                          const std::vector<std::string>& command,
                                          absl::Duration timeout);
  static constexpr size_t kMaxExecOutput = 16 << 20;

  // The container, if it is running; NotFound or FailedPrecondition naming `action`
  // ("exec in it") otherwise.
  absl::StatusOr<Container> FindRunning(const std::string& id_or_prefix, std::string_view action);

  // For a streaming exec (the CRI Exec URL): the running container's id and the OCI
  // process to give `runc exec`: the container's own settings with `command`, and a
  // terminal when `tty`. FailedPrecondition unless running.
  struct ExecTarget {
    std::string id;
    std::string process_json;
  };
  absl::StatusOr<ExecTarget> PrepareExec(const std::string& id_or_prefix,
                                         const std::vector<std::string>& command, bool tty);
  // Where a streaming exec keeps its pid file: <state>/tmp (emptied at start-up).
  std::string ScratchDir() const { return options_.state_dir + "/tmp"; }
  // For attach: the running container and its shim's state directory (shim_client.h).
  struct AttachTarget {
    std::string id;
    std::string shim_dir;
    bool tty = false;
    bool stdin = false;
  };
  absl::StatusOr<AttachTarget> PrepareAttach(const std::string& id_or_prefix);

  // Changes a created or running container's cgroup resources (runc update) and records
  // them in its spec. FailedPrecondition once exited.
  absl::Status UpdateResources(const std::string& id_or_prefix,
                               const container::LinuxResources& resources);

  // Makes the container's shim reopen its CRI log file (after log rotation renamed it).
  // FailedPrecondition unless running.
  absl::Status ReopenLog(const std::string& id_or_prefix);

  absl::StatusOr<std::optional<Container>> Find(const std::string& id_or_prefix);
  absl::StatusOr<std::vector<Container>> List(const ContainerFilter& filter);

  // Resource use of one container (NotFound for an unknown one), or of those the filter
  // selects.
  absl::StatusOr<ContainerStats> Stats(const std::string& id_or_prefix);
  absl::StatusOr<std::vector<ContainerStats>> ListStats(const ContainerFilter& filter);

  // Start-up: undoes half-made containers, marks containers whose shim is gone EXITED (with
  // the recorded exit, or "Unknown" without one), removes directories with no record.
  absl::Status Recover();

  oci::RuncRuntime& runtime() { return runc_; }

 private:
  ContainerManager(store::Store& store, sandbox::SandboxManager& pods, images::ImageManager& images,
                   snapshot::Snapshotter& snapshotter, ContainerManagerOptions options);

  absl::StatusOr<std::string> CreateLocked(const std::string& id, const sandbox::PodSandbox& pod,
                                           const container::ContainerSpec& spec,
                                           const images::Image& image);
  absl::Status RemoveLocked(const std::string& id);
  // Tears down what Create made; each step tolerates what is already gone.
  absl::Status Teardown(const std::string& id);
  absl::StatusOr<std::optional<std::string>> ResolveId(const std::string& id_or_prefix);
  // The record as a Container, with an exit the shim recorded since folded in (and, with
  // `record`, saved). RefreshUnlocked saves it when no operation holds the container.
  absl::StatusOr<Container> Refresh(const std::string& id, const nlohmann::json& doc,
                                    bool record);
  absl::StatusOr<Container> RefreshUnlocked(const std::string& id, const nlohmann::json& doc);
  // Records the exit once (and publishes "stopped"); later calls change nothing.
  absl::Status RecordExit(const std::string& id, int exit_code, int64_t finished_at_ns,
                          const std::string& reason);
  absl::Status RecordShimExit(const Container& c, const shim::ExitStatus& exit);
  // "Completed", "Error" or "OOMKilled" (from the shim, or the memory cgroup's count).
  std::string ExitReason(const Container& c, const shim::ExitStatus& exit) const;
  std::string CgroupsPath(const Container& c) const;
  void Publish(events::ContainerEventType type, const std::string& id, const std::string& pod_id);
  // The exit watcher's callback.
  void OnExit(const std::string& id);
  // Serializes operations on one container.
  std::shared_ptr<absl::Mutex> LockFor(const std::string& id);

  std::string ContainerDir(const std::string& id) const;

  store::Store& store_;
  sandbox::SandboxManager& pods_;
  images::ImageManager& images_;
  snapshot::Snapshotter& snapshotter_;
  const ContainerManagerOptions options_;
  const std::string containers_dir_;
  oci::RuncRuntime runc_;

  absl::StatusOr<ContainerStats> Sample(const Container& c);

  absl::Mutex samples_mu_;
  std::map<std::string, stats::CgroupStats> last_samples_ ABSL_GUARDED_BY(samples_mu_);

  absl::Mutex locks_mu_;
  std::map<std::string, std::weak_ptr<absl::Mutex>> locks_ ABSL_GUARDED_BY(locks_mu_);

  // Last: its thread calls back into the members above, so it stops first.
  std::unique_ptr<ExitWatcher> exit_watcher_;
};

std::string_view ContainerStateName(ContainerState state);

}  // namespace berth::containers

#endif  // BERTH_RUNTIME_CONTAINERS_CONTAINER_MANAGER_H_
