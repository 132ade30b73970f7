// berth's own description of a pod and a container, mirroring what the CRI
// sends (PodSandboxConfig, ContainerConfig) without any protobuf type.
//
//   PodSpec pod;
//   pod.name = "nginx-7d9"; pod.uid = "0f1e..."; pod.namespace_name = "default";
//   pod.hostname = "nginx-7d9";
//   ContainerSpec container;
//   container.name = "nginx";
//   container.image = "docker.io/library/nginx:1.25";
//   container.security.run_as_user = 101;
//   ASSIGN_OR_RETURN(nlohmann::json spec, BuildSpec(pod, container, image_config, ctx));
//
// server/ fills these from the CRI messages field by field; runtime/ never
// sees a protobuf. Defaults are the CRI's zero values, so an unset protobuf
// field maps to a default-constructed member. std::optional marks the fields
// where the CRI tells "unset" apart from zero (wrapper messages such as
// Int64Value, or sub-messages whose absence means something).
#ifndef BERTH_RUNTIME_CONTAINER_CONTAINER_SPEC_H_
#define BERTH_RUNTIME_CONTAINER_CONTAINER_SPEC_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth::container {

// runtime.v1.NamespaceMode. The numeric order matches the CRI enum, whose
// zero value is POD.
enum class NamespaceMode {
  kPod = 0,        // shared by the pod's containers
  kContainer = 1,  // the container's own (PID only)
  kNode = 2,       // the host's
  kTarget = 3,     // another container's (PID only); see NamespaceOptions::target_id
};

// runtime.v1.NamespaceOption.
struct NamespaceOptions {
  NamespaceMode network = NamespaceMode::kPod;
  NamespaceMode pid = NamespaceMode::kPod;
  NamespaceMode ipc = NamespaceMode::kPod;
  std::string target_id;  // the container whose PID namespace kTarget joins
};

// runtime.v1.SecurityProfile (seccomp and AppArmor). The CRI's zero value is
// RuntimeDefault, but an absent message means "nothing asked", which is why
// the fields that hold one are std::optional.
struct SecurityProfile {
  enum class Type { kRuntimeDefault = 0, kUnconfined = 1, kLocalhost = 2 };
  Type type = Type::kRuntimeDefault;
  std::string localhost_ref;  // kLocalhost: an absolute path (seccomp) or a profile name (AppArmor)
};

// runtime.v1.Capability. Names come as the kubelet sends them ("NET_ADMIN",
// sometimes "CAP_NET_ADMIN"), plus the word "ALL".
struct Capabilities {
  std::vector<std::string> add;
  std::vector<std::string> drop;
};

// runtime.v1.HugepageLimit.
struct HugepageLimit {
  std::string page_size;  // "2MB", "1GB"
  uint64_t limit = 0;     // bytes
};

// runtime.v1.LinuxContainerResources. Zero (or empty) means "not set".
struct LinuxResources {
  int64_t cpu_period = 0;
  int64_t cpu_quota = 0;
  int64_t cpu_shares = 0;
  int64_t memory_limit_in_bytes = 0;
  int64_t memory_swap_limit_in_bytes = 0;
  int64_t oom_score_adj = 0;
  std::string cpuset_cpus;  // "0-3,7"
  std::string cpuset_mems;
  std::vector<HugepageLimit> hugepage_limits;
  std::map<std::string, std::string> unified;  // cgroup v2 files, e.g. "memory.high"
};

// runtime.v1.MountPropagation.
enum class MountPropagation {
  kPrivate = 0,          // rprivate
  kHostToContainer = 1,  // rslave
  kBidirectional = 2,    // rshared
};

// runtime.v1.Mount.
struct Mount {
  std::string container_path;
  std::string host_path;
  bool readonly = false;
  bool selinux_relabel = false;  // accepted; SELinux is not supported (issue 5)
  MountPropagation propagation = MountPropagation::kPrivate;
};

// runtime.v1.Device.
struct Device {
  std::string container_path;
  std::string host_path;    // a device node, or a directory of them
  std::string permissions;  // cgroup access: some of "rwm"; empty means "rwm"
};

// runtime.v1.KeyValue, for container environment variables.
struct EnvVar {
  std::string key;
  std::string value;
};

// runtime.v1.PortMapping.
struct PortMapping {
  enum class Protocol { kTcp = 0, kUdp = 1, kSctp = 2 };
  Protocol protocol = Protocol::kTcp;
  int32_t container_port = 0;
  int32_t host_port = 0;
  std::string host_ip;
};

// runtime.v1.DNSConfig.
struct DnsConfig {
  std::vector<std::string> servers;
  std::vector<std::string> searches;
  std::vector<std::string> options;
};

// runtime.v1.LinuxSandboxSecurityContext: what the pod as a whole asks.
struct PodSecurityContext {
  NamespaceOptions namespace_options;
  bool privileged = false;  // containers may be privileged only in a privileged pod
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::vector<int64_t> supplemental_groups;
  bool readonly_rootfs = false;
  std::optional<SecurityProfile> seccomp;
  std::optional<SecurityProfile> apparmor;
};

// runtime.v1.PodSandboxConfig, plus the runtime handler RunPodSandbox names.
struct PodSpec {
  // PodSandboxMetadata.
  std::string name;
  std::string uid;
  std::string namespace_name;
  uint32_t attempt = 0;

  std::string runtime_handler;  // "" = the default handler
  std::string hostname;         // empty for host-network pods: the node's name is used
  std::string log_directory;    // containers' log_path is relative to this
  DnsConfig dns;
  std::vector<PortMapping> port_mappings;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;

  // LinuxPodSandboxConfig.
  std::string cgroup_parent;  // cgroupfs path, e.g. "/kubepods/burstable/pod0f1e..."
  std::map<std::string, std::string> sysctls;
  PodSecurityContext security;
  std::optional<LinuxResources> overhead;
  std::optional<LinuxResources> resources;
};

// runtime.v1.LinuxContainerSecurityContext.
struct ContainerSecurityContext {
  Capabilities capabilities;
  bool privileged = false;
  NamespaceOptions namespace_options;
  // Identity. RunAsUsername wins over RunAsUser; RunAsGroup needs one of them.
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::string run_as_username;
  std::vector<int64_t> supplemental_groups;
  bool readonly_rootfs = false;
  bool no_new_privs = false;
  // nullopt: berth's defaults (kDefaultMaskedPaths / kDefaultReadonlyPaths in
  // spec_builder.h); a value, even empty: exactly that list. The CRI cannot
  // tell an empty list from an absent one, so server/ picks the mapping: an
  // empty CRI list becomes nullopt (defaults), since the kubelet always sends
  // the full default list for unprivileged containers and only a bare CRI
  // client (crictl) sends none.
  std::optional<std::vector<std::string>> masked_paths;
  std::optional<std::vector<std::string>> readonly_paths;
  std::optional<SecurityProfile> seccomp;   // nullopt: no seccomp filter
  std::optional<SecurityProfile> apparmor;  // nullopt: the runtime's choice
};

// runtime.v1.ContainerConfig.
struct ContainerSpec {
  // ContainerMetadata.
  std::string name;
  uint32_t attempt = 0;

  std::string image;  // the image as the client named it (ImageSpec.image)
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::string working_dir;
  std::vector<EnvVar> envs;
  std::vector<Mount> mounts;
  std::vector<Device> devices;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::string log_path;  // relative to PodSpec::log_directory
  // ContainerConfig.stdin: keep stdin open (named as Docker does, since
  // `stdin` is a macro in <cstdio>).
  bool open_stdin = false;
  bool stdin_once = false;
  bool tty = false;

  // LinuxContainerConfig.
  LinuxResources resources;
  ContainerSecurityContext security;
};

}  // namespace berth::container

#endif  // BERTH_RUNTIME_CONTAINER_CONTAINER_SPEC_H_
