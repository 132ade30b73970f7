// The OCI runtime spec (config.json) for a container, built from the CRI
// request (PodSpec, ContainerSpec), the image config and what the pod has
// already set up (SpecContext). The result is what runc 1.1 reads.
//
//   SpecContext ctx;
//   ctx.container_id = id;
//   ctx.sandbox_id = pod_id;
//   ctx.rootfs = "/run/berth/containers/<id>/rootfs";   // mounted, for /etc/passwd
//   ctx.network_ns_path = "/run/berth/netns/<pod>";    // or kHostNamespace
//   ctx.ipc_ns_path = ...; ctx.uts_ns_path = ...;
//   ctx.hosts_path = ...; ctx.resolv_conf_path = ...; ctx.hostname_path = ...;
//   ctx.shm_path = ...;
//   ASSIGN_OR_RETURN(nlohmann::json spec, BuildSpec(pod, container, image.config, ctx));
//
// What it does, containerd's CRI plugin (1.6/1.7) being the reference:
//   - process: args from MergeProcessArgs, env from MergeEnv (PATH default,
//     HOSTNAME, image env, CRI env, then HOME from passwd if still unset),
//     cwd (CRI, image, "/"), terminal, user (user.h), capabilities
//     (capabilities.h; bounding/effective/permitted, never inheritable or
//     ambient), noNewPrivileges, oomScoreAdj clamped into
//     [min_oom_score_adj, 1000], no rlimits (runc's own are inherited).
//   - mounts: containerd's standard set (/proc, /dev, /dev/pts, /dev/shm,
//     /dev/mqueue, /sys ro, /sys/fs/cgroup ro), then the pod's /etc/hostname,
//     /etc/hosts, /etc/resolv.conf and /dev/shm with the CRI mounts, parents
//     first. See BuildMounts.
//   - linux: namespaces, cgroupsPath, resources (cpu, memory, hugepages,
//     unified, devices), masked and read-only paths, sysctls, devices,
//     rootfsPropagation, seccomp (seccomp.h).
//   - annotations: the container's CRI annotations plus containerd's
//     io.kubernetes.cri.* keys, which tools such as Falco read.
//   - privileged: every capability berth holds, every device allowed in the
//     device cgroup, /sys and /sys/fs/cgroup writable, no masked or read-only
//     paths, no seccomp. A privileged container needs a privileged pod.
//
// Errors name the container and the field; the caller adds the pod.
// InvalidArgument for a bad request, NotFound for a missing host path or
// seccomp profile, FailedPrecondition when the node cannot do what is asked
// (a propagation source that is not shared, a PID namespace the pod does not
// have, a capability berth does not hold).
#ifndef BERTH_RUNTIME_CONTAINER_SPEC_BUILDER_H_
#define BERTH_RUNTIME_CONTAINER_SPEC_BUILDER_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/container/container_spec.h"
#include "runtime/image/manifest.h"

namespace berth::container {

inline constexpr std::string_view kOciVersion = "1.0.2-dev";

// A namespace path meaning "the node's own namespace": no entry in the spec.
inline constexpr std::string_view kHostNamespace = "host";

inline constexpr std::string_view kDefaultPathEnv =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// containerd's defaults (oci.populateDefaultUnixSpec), plus the powercap
// energy counters that later runc/Docker releases mask (a side channel).
inline constexpr std::array<std::string_view, 11> kDefaultMaskedPaths = {
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/powercap",
};
inline constexpr std::array<std::string_view, 5> kDefaultReadonlyPaths = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

// Annotation keys containerd's CRI plugin sets on every spec.
inline constexpr std::string_view kAnnotationContainerType = "io.kubernetes.cri.container-type";
inline constexpr std::string_view kAnnotationSandboxId = "io.kubernetes.cri.sandbox-id";
inline constexpr std::string_view kAnnotationSandboxName = "io.kubernetes.cri.sandbox-name";
inline constexpr std::string_view kAnnotationSandboxNamespace =
    "io.kubernetes.cri.sandbox-namespace";
inline constexpr std::string_view kAnnotationSandboxUid = "io.kubernetes.cri.sandbox-uid";
inline constexpr std::string_view kAnnotationSandboxLogDirectory =
    "io.kubernetes.cri.sandbox-log-directory";
inline constexpr std::string_view kAnnotationContainerName = "io.kubernetes.cri.container-name";
inline constexpr std::string_view kAnnotationImageName = "io.kubernetes.cri.image-name";

// What berth has decided or set up outside the CRI request.
struct SpecContext {
  enum class Type { kContainer, kSandbox };

  std::string container_id;
  std::string sandbox_id;
  // kSandbox for a pod's infra process (berth-pause): annotations say
  // "sandbox" and name no container or image.
  Type type = Type::kContainer;

  // The container's root file system on the host, mounted: /etc/passwd and
  // /etc/group are read from it (user.h). Empty: numeric users only.
  std::string rootfs;
  // root.path in the spec, relative to the bundle or absolute.
  std::string root_path = "rootfs";

  // The pod's namespaces: a path to join (a pinned bind mount), kHostNamespace
  // for the node's, or empty for a new one of the container's own.
  std::string network_ns_path;
  std::string ipc_ns_path;
  std::string uts_ns_path;
  // PID namespaces to join: the infra process's (/proc/<pid>/ns/pid) for
  // NamespaceMode POD, the target container's for TARGET. Required then.
  std::string pod_pid_ns_path;
  std::string target_pid_ns_path;
  // Add a new cgroup namespace. containerd does on cgroup v2 only; on this
  // hybrid host it stays off.
  bool cgroup_namespace = false;

  // The pod's files, bind-mounted unless the CRI mounts something at the same
  // place. Empty: not mounted (and /dev/shm is a private tmpfs). With the
  // node's IPC namespace, /dev/shm is the node's /dev/shm instead.
  std::string hosts_path;
  std::string resolv_conf_path;
  std::string hostname_path;
  std::string shm_path;

  // linux.cgroupsPath. Empty: <pod cgroup_parent or default_cgroup_parent>/<id>.
  std::string cgroups_path;
  std::string default_cgroup_parent = "/berth";

  // The lowest oom_score_adj berth may ask for. This host lacks
  // CAP_SYS_RESOURCE, so lower values would make runc fail (BRIEF §4);
  // containerd's restrict_oom_score_adj does the same.
  int64_t min_oom_score_adj = 0;

  // The capabilities berth holds: what privileged containers and "add ALL"
  // get, and the limit of any add. Empty: CurrentCapabilities().
  std::vector<std::string> node_capabilities;

  // HOSTNAME for pods without their own (host network). Empty: gethostname().
  std::string node_hostname;

  // Where to check that the host paths of rslave/rshared mounts sit on shared
  // (or slave) mounts, as containerd does. Empty: no check.
  std::string mountinfo_path = "/proc/self/mountinfo";
};

// Builds the spec. See the header comment for the rules.
absl::StatusOr<nlohmann::json> BuildSpec(const PodSpec& pod, const ContainerSpec& container,
                                         const image::ImageConfig& image, const SpecContext& ctx);

// linux.resources: the OCI LinuxResources object for `resources` (also what
// `runc update` takes). InvalidArgument for negative shares or period.
absl::StatusOr<nlohmann::json> BuildResources(const LinuxResources& resources);

// process.args, as the kubelet expects and containerd does it: a CRI command
// replaces the image's ENTRYPOINT and, unless CRI args are given too, its CMD;
// CRI args alone replace only CMD. An image ENTRYPOINT of [""] counts as
// none. InvalidArgument "no command specified" when nothing is left.
absl::StatusOr<std::vector<std::string>> MergeProcessArgs(const std::vector<std::string>& command,
                                                          const std::vector<std::string>& args,
                                                          const image::ImageConfig& image);

// Applies `overrides` ("KEY=value") to `base` in order: an existing KEY is
// replaced where it stands, a new one appended; a bare "KEY" removes KEY.
void MergeEnv(std::vector<std::string>& base, const std::vector<std::string>& overrides);

// The spec's mounts: the standard set, minus any destination a pod or CRI
// mount takes (and everything under /dev when the CRI mounts /dev), then the
// pod's and CRI mounts sorted so that parents come before children (a CRI
// mount wins over a pod mount at the same place). Each of those is an rbind
// with rprivate, rslave or rshared and "ro" or "rw"; its host path must exist
// and is resolved through symlinks now. `rootfs_propagation` becomes
// "rshared" with any bidirectional mount, else "rslave" with any
// host-to-container one, else stays empty.
absl::StatusOr<nlohmann::json> BuildMounts(const ContainerSpec& container, const SpecContext& ctx,
                                           std::string& rootfs_propagation);

}  // namespace berth::container

#endif  // BERTH_RUNTIME_CONTAINER_SPEC_BUILDER_H_
