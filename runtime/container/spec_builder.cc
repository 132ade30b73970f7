#include "runtime/container/spec_builder.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/container/capabilities.h"
#include "runtime/container/seccomp.h"
#include "runtime/container/user.h"

namespace berth::container {
namespace {

using nlohmann::json;

bool IsHost(const std::string& ns_path) { return ns_path == kHostNamespace; }

bool IsAbsolute(std::string_view path) { return !path.empty() && path.front() == '/'; }

// Go's filepath.Clean for absolute paths, which is what containerd compares
// mount destinations with: no empty or "." components, ".." resolved
// lexically, no trailing slash.
std::string CleanPath(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  std::string out;
  for (std::string_view part : parts) out += StrCat("/", part);
  return out.empty() ? "/" : out;
}

// The number of components, so that sorting by it puts "/a" before "/a/b".
int Depth(const std::string& clean_path) {
  return static_cast<int>(std::count(clean_path.begin(), clean_path.end(), '/'));
}

absl::Status WithPrefix(const absl::Status& status, std::string_view prefix) {
  return absl::Status(status.code(), StrCat(prefix, status.message()));
}

absl::Status HostPathError(int err, std::string_view what, const std::string& path) {
  if (err == ENOENT || err == ENOTDIR) {
    return absl::NotFoundError(StrCat(what, ": host path ", path, " does not exist"));
  }
  return absl::ErrnoToStatus(err, StrCat(what, ": host path ", path));
}

// The host path with every symlink resolved, as the bind will see it.
absl::StatusOr<std::string> ResolveHostPath(const std::string& path, std::string_view what) {
  std::unique_ptr<char, decltype(&free)> resolved(realpath(path.c_str(), nullptr), &free);
  if (resolved == nullptr) return HostPathError(errno, what, path);
  return std::string(resolved.get());
}

std::string Hostname(const PodSpec& pod, const SpecContext& ctx) {
  if (!pod.hostname.empty()) return pod.hostname;
  if (!ctx.node_hostname.empty()) return ctx.node_hostname;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

// ---- mounts ----------------------------------------------------------------

json OciMount(std::string_view destination, std::string_view type, std::string_view source,
              std::vector<std::string> options) {
  return {{"destination", destination}, {"type", type}, {"source", source}, {"options", options}};
}

// containerd's standard set (oci.defaultMounts without /run, plus the
// read-only cgroup mount its CRI plugin adds).
std::vector<json> DefaultMounts(bool privileged) {
  const char* sys_access = privileged ? "rw" : "ro";
  return {
      OciMount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      OciMount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      OciMount("/dev/pts", "devpts", "devpts",
               {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      OciMount("/dev/shm", "tmpfs", "shm",
               {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      OciMount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      OciMount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", sys_access}),
      OciMount("/sys/fs/cgroup", "cgroup", "cgroup",
               {"nosuid", "noexec", "nodev", "relatime", sys_access}),
  };
}

struct Bind {
  std::string destination;  // clean
  std::string source;       // as given
  bool readonly = false;
  MountPropagation propagation = MountPropagation::kPrivate;
};

// "\040" -> " ": mountinfo escapes space, tab, newline and backslash.
std::string UnescapeMountinfo(std::string_view s) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

struct MountInfoEntry {
  std::string mount_point;
  std::vector<std::string> optional_fields;  // "shared:1", "master:2", ...
};

absl::StatusOr<std::vector<MountInfoEntry>> ReadMountInfo(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    int err = errno;
    return absl::ErrnoToStatus(err, StrCat("read ", path));
  }
  std::vector<MountInfoEntry> entries;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    std::string field;
    while (fields >> field) f.push_back(field);
    if (f.size() < 7) continue;
    MountInfoEntry entry{.mount_point = UnescapeMountinfo(f[4])};
    for (size_t i = 6; i < f.size() && f[i] != "-"; ++i) entry.optional_fields.push_back(f[i]);
    entries.push_back(std::move(entry));
  }
  return entries;
}

// The mount `path` lives on: the longest mount point containing it, the
// last one listed (the top of a stack) on a tie.
const MountInfoEntry* MountOf(const std::vector<MountInfoEntry>& mounts, const std::string& path) {
  const MountInfoEntry* best = nullptr;
  for (const MountInfoEntry& m : mounts) {
    const std::string& mp = m.mount_point;
    bool contains =
        mp == "/" || path == mp ||
        (path.size() > mp.size() && path.compare(0, mp.size(), mp) == 0 && path[mp.size()] == '/');
    if (contains && (best == nullptr || mp.size() >= best->mount_point.size())) best = &m;
  }
  return best;
}

// rshared and rslave only propagate anything when the source mount is
// shared (rshared) or at least a slave (rslave); containerd refuses
// otherwise rather than give a mount that silently does not propagate.
absl::Status CheckPropagationSource(const std::vector<MountInfoEntry>& mounts,
                                    const std::string& source, MountPropagation propagation,
                                    std::string_view what) {
  const MountInfoEntry* m = MountOf(mounts, source);
  if (m == nullptr) {
    return absl::FailedPreconditionError(StrCat(what, ": no mount found for ", source));
  }
  auto has = [&](std::string_view prefix) {
    return std::any_of(m->optional_fields.begin(), m->optional_fields.end(),
                       [&](const std::string& f) { return f.rfind(prefix, 0) == 0; });
  };
  if (propagation == MountPropagation::kBidirectional && !has("shared:")) {
    return absl::FailedPreconditionError(
        StrCat(what, ": bidirectional propagation needs a shared mount, and ", source,
               " is on mount ", m->mount_point, ", which is not shared"));
  }
  if (propagation == MountPropagation::kHostToContainer && !has("shared:") && !has("master:")) {
    return absl::FailedPreconditionError(
        StrCat(what, ": host-to-container propagation needs a shared or slave mount, and ", source,
               " is on mount ", m->mount_point, ", which is private"));
  }
  return absl::OkStatus();
}

// ---- devices ---------------------------------------------------------------

absl::Status CheckPermissions(const std::string& permissions, std::string_view what) {
  std::set<char> seen;
  for (char c : permissions) {
    if ((c != 'r' && c != 'w' && c != 'm') || !seen.insert(c).second) {
      return absl::InvalidArgumentError(
          StrCat(what, ": permissions \"", permissions, "\" are not a subset of \"rwm\""));
    }
  }
  return absl::OkStatus();
}

void AddDeviceNode(const std::string& container_path, const struct stat& st,
                   const std::string& access, json& nodes, json& rules) {
  const char* type = S_ISBLK(st.st_mode) ? "b" : "c";
  const int64_t major_number = major(st.st_rdev);
  const int64_t minor_number = minor(st.st_rdev);
  nodes.push_back({{"path", container_path},
                   {"type", type},
                   {"major", major_number},
                   {"minor", minor_number},
                   {"fileMode", st.st_mode & ~S_IFMT},
                   {"uid", st.st_uid},
                   {"gid", st.st_gid}});
  rules.push_back({{"allow", true},
                   {"type", type},
                   {"major", major_number},
                   {"minor", minor_number},
                   {"access", access}});
}

// Every device node under `dir` (symlinks not followed), sorted by name so
// the spec is stable.
absl::Status AddDeviceDir(const std::string& host_dir, const std::string& container_dir,
                          const std::string& access, std::string_view what, json& nodes,
                          json& rules) {
  struct CloseDir {
    void operator()(DIR* d) const { closedir(d); }
  };
  std::unique_ptr<DIR, CloseDir> dir(opendir(host_dir.c_str()));
  if (dir == nullptr) return HostPathError(errno, what, host_dir);
  std::vector<std::string> names;
  while (dirent* entry = readdir(dir.get())) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string host_path = StrCat(host_dir, "/", name);
    struct stat st;
    if (lstat(host_path.c_str(), &st) != 0) continue;  // gone meanwhile
    std::string container_path = StrCat(container_dir, "/", name);
    if (S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(AddDeviceDir(host_path, container_path, access, what, nodes, rules));
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      AddDeviceNode(container_path, st, access, nodes, rules);
    }
  }
  return absl::OkStatus();
}

// linux.devices and their device-cgroup rules for the CRI devices.
absl::Status AddDevices(const ContainerSpec& container, json& nodes, json& rules) {
  for (const Device& device : container.devices) {
    std::string what = StrCat("device ", device.container_path);
    if (!IsAbsolute(device.container_path)) {
      return absl::InvalidArgumentError(StrCat(what, ": container path is not absolute"));
    }
    if (!IsAbsolute(device.host_path)) {
      return absl::InvalidArgumentError(
          StrCat(what, ": host path \"", device.host_path, "\" is not absolute"));
    }
    std::string access = device.permissions.empty() ? "rwm" : device.permissions;
    RETURN_IF_ERROR(CheckPermissions(access, what));
    struct stat st;
    if (stat(device.host_path.c_str(), &st) != 0) {
      return HostPathError(errno, what, device.host_path);
    }
    std::string container_path = CleanPath(device.container_path);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      AddDeviceNode(container_path, st, access, nodes, rules);
    } else if (S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(AddDeviceDir(device.host_path, container_path == "/" ? "" : container_path,
                                   access, what, nodes, rules));
    } else {
      return absl::InvalidArgumentError(
          StrCat(what, ": host path ", device.host_path, " is neither a device nor a directory"));
    }
  }
  return absl::OkStatus();
}

json DeviceRule(bool allow, std::string_view type, std::optional<int64_t> major_number,
                std::optional<int64_t> minor_number) {
  json rule = {{"allow", allow}, {"access", "rwm"}};
  if (!type.empty()) rule["type"] = type;
  if (major_number) rule["major"] = *major_number;
  if (minor_number) rule["minor"] = *minor_number;
  return rule;
}

// Deny everything, then the devices every container needs. runc 1.1 appends
// its own equivalent list after ours, so this states the policy rather than
// changes it.
json DefaultDeviceRules() {
  return json::array({
      DeviceRule(false, "", std::nullopt, std::nullopt), DeviceRule(true, "c", 1, 3),  // /dev/null
      DeviceRule(true, "c", 1, 5),                                                     // /dev/zero
      DeviceRule(true, "c", 1, 7),                                                     // /dev/full
      DeviceRule(true, "c", 1, 8),               // /dev/random
      DeviceRule(true, "c", 1, 9),               // /dev/urandom
      DeviceRule(true, "c", 5, 0),               // /dev/tty
      DeviceRule(true, "c", 5, 2),               // /dev/ptmx
      DeviceRule(true, "c", 136, std::nullopt),  // /dev/pts/*
  });
}

// ---- process ---------------------------------------------------------------

std::string EnvKey(std::string_view entry) { return std::string(entry.substr(0, entry.find('='))); }

absl::StatusOr<json> BuildProcess(const PodSpec& pod, const ContainerSpec& container,
                                  const image::ImageConfig& image, const SpecContext& ctx,
                                  const std::vector<std::string>& capabilities) {
  const ContainerSecurityContext& security = container.security;
  ASSIGN_OR_RETURN(std::vector<std::string> args,
                   MergeProcessArgs(container.command, container.args, image));

  UserRequest user_request{.run_as_user = security.run_as_user,
                           .run_as_group = security.run_as_group,
                           .run_as_username = security.run_as_username,
                           .supplemental_groups = security.supplemental_groups,
                           .image_user = image.user};
  ASSIGN_OR_RETURN(ResolvedUser user, ResolveUser(ctx.rootfs, user_request));

  std::vector<std::string> env = {std::string(kDefaultPathEnv)};
  MergeEnv(env, {StrCat("HOSTNAME=", Hostname(pod, ctx))});
  MergeEnv(env, image.env);
  std::vector<std::string> cri_env;
  for (const EnvVar& var : container.envs) cri_env.push_back(StrCat(var.key, "=", var.value));
  MergeEnv(env, cri_env);
  // runc would fill HOME from the image's passwd at start; setting it here
  // gives ExecSync the same value.
  if (std::none_of(env.begin(), env.end(),
                   [](const std::string& e) { return EnvKey(e) == "HOME"; })) {
    env.push_back(StrCat("HOME=", user.home));
  }

  std::string cwd = !container.working_dir.empty() ? container.working_dir
                    : !image.working_dir.empty()   ? image.working_dir
                                                   : "/";
  if (!IsAbsolute(cwd)) {
    return absl::InvalidArgumentError(StrCat("working directory \"", cwd, "\" is not absolute"));
  }

  const int64_t oom_score_adj =
      std::min<int64_t>(std::max(container.resources.oom_score_adj, ctx.min_oom_score_adj), 1000);

  return json{
      {"terminal", container.tty},
      {"user", {{"uid", user.uid}, {"gid", user.gid}, {"additionalGids", user.additional_gids}}},
      {"args", args},
      {"env", env},
      {"cwd", cwd},
      {"capabilities",
       {{"bounding", capabilities}, {"effective", capabilities}, {"permitted", capabilities}}},
      {"noNewPrivileges", security.no_new_privs},
      {"oomScoreAdj", oom_score_adj},
  };
}

// ---- linux -----------------------------------------------------------------

absl::StatusOr<json> BuildNamespaces(const ContainerSpec& container, const SpecContext& ctx) {
  json namespaces = json::array();
  auto add = [&](std::string_view type, const std::string& path) {
    if (IsHost(path)) return;
    json ns = {{"type", type}};
    if (!path.empty()) ns["path"] = path;
    namespaces.push_back(ns);
  };
  const NamespaceOptions& options = container.security.namespace_options;
  switch (options.pid) {
    case NamespaceMode::kPod:
      if (ctx.type == SpecContext::Type::kSandbox) {
        add("pid", "");  // the infra process makes the pod's PID namespace
      } else if (ctx.pod_pid_ns_path.empty()) {
        return absl::FailedPreconditionError(
            "PID namespace mode POD, but the pod has no shared PID namespace");
      } else {
        add("pid", ctx.pod_pid_ns_path);
      }
      break;
    case NamespaceMode::kContainer:
      add("pid", "");
      break;
    case NamespaceMode::kNode:
      break;
    case NamespaceMode::kTarget:
      if (ctx.target_pid_ns_path.empty()) {
        return absl::FailedPreconditionError(
            StrCat("PID namespace mode TARGET: no namespace for target container \"",
                   options.target_id, "\""));
      }
      add("pid", ctx.target_pid_ns_path);
      break;
  }
  add("ipc", ctx.ipc_ns_path);
  add("uts", ctx.uts_ns_path);
  add("mount", "");
  add("network", ctx.network_ns_path);
  if (ctx.cgroup_namespace && !container.security.privileged) add("cgroup", "");
  return namespaces;
}

std::string JoinCgroupPath(std::string_view parent, std::string_view id) {
  std::string joined = StrCat(parent, "/", id);
  return parent.empty() || parent.front() != '/' ? joined : CleanPath(joined);
}

json PathList(const std::optional<std::vector<std::string>>& given, const auto& defaults) {
  if (given) return *given;
  json list = json::array();
  for (std::string_view path : defaults) list.push_back(path);
  return list;
}

absl::StatusOr<json> BuildLinux(const PodSpec& pod, const ContainerSpec& container,
                                const SpecContext& ctx,
                                const std::vector<std::string>& capabilities,
                                const std::string& rootfs_propagation) {
  const ContainerSecurityContext& security = container.security;
  json linux = json::object();

  ASSIGN_OR_RETURN(json resources, BuildResources(container.resources));
  json device_nodes = json::array();
  json device_rules = json::array();
  RETURN_IF_ERROR(AddDevices(container, device_nodes, device_rules));
  if (security.privileged) {
    resources["devices"] = json::array({DeviceRule(true, "", std::nullopt, std::nullopt)});
  } else {
    resources["devices"] = DefaultDeviceRules();
    for (json& rule : device_rules) resources["devices"].push_back(std::move(rule));
  }
  linux["resources"] = resources;
  if (!device_nodes.empty()) linux["devices"] = device_nodes;

  if (!ctx.cgroups_path.empty()) {
    linux["cgroupsPath"] = ctx.cgroups_path;
  } else {
    const std::string& parent =
        !pod.cgroup_parent.empty() ? pod.cgroup_parent : ctx.default_cgroup_parent;
    linux["cgroupsPath"] = JoinCgroupPath(parent, ctx.container_id);
  }
  ASSIGN_OR_RETURN(linux["namespaces"], BuildNamespaces(container, ctx));

  if (!security.privileged) {
    json masked = PathList(security.masked_paths, kDefaultMaskedPaths);
    json readonly = PathList(security.readonly_paths, kDefaultReadonlyPaths);
    if (!masked.empty()) linux["maskedPaths"] = masked;
    if (!readonly.empty()) linux["readonlyPaths"] = readonly;
  }
  if (!pod.sysctls.empty()) linux["sysctl"] = pod.sysctls;
  if (!rootfs_propagation.empty()) linux["rootfsPropagation"] = rootfs_propagation;

  ASSIGN_OR_RETURN(std::optional<json> seccomp,
                   SeccompSection(security.seccomp, security.privileged, capabilities));
  if (seccomp) linux["seccomp"] = *seccomp;
  return linux;
}

json BuildAnnotations(const PodSpec& pod, const ContainerSpec& container, const SpecContext& ctx) {
  json annotations = json::object();
  for (const auto& [key, value] : container.annotations) annotations[key] = value;
  // Ours win over a CRI annotation of the same name: tools trust these.
  auto set = [&](std::string_view key, std::string_view value) {
    annotations[std::string(key)] = value;
  };
  const bool sandbox = ctx.type == SpecContext::Type::kSandbox;
  set(kAnnotationContainerType, sandbox ? "sandbox" : "container");
  set(kAnnotationSandboxId, ctx.sandbox_id);
  set(kAnnotationSandboxName, pod.name);
  set(kAnnotationSandboxNamespace, pod.namespace_name);
  set(kAnnotationSandboxUid, pod.uid);
  if (sandbox) {
    set(kAnnotationSandboxLogDirectory, pod.log_directory);
  } else {
    set(kAnnotationContainerName, container.name);
    set(kAnnotationImageName, container.image);
  }
  return annotations;
}

}  // namespace

absl::StatusOr<json> BuildResources(const LinuxResources& r) {
  json resources = json::object();
  if (r.cpu_shares < 0 || r.cpu_period < 0) {
    return absl::InvalidArgumentError(StrCat("resources: cpu_shares ", r.cpu_shares,
                                             " and cpu_period ", r.cpu_period,
                                             " must not be negative"));
  }
  json cpu = json::object();
  if (r.cpu_shares != 0) cpu["shares"] = r.cpu_shares;
  if (r.cpu_quota != 0) cpu["quota"] = r.cpu_quota;
  if (r.cpu_period != 0) cpu["period"] = r.cpu_period;
  if (!r.cpuset_cpus.empty()) cpu["cpus"] = r.cpuset_cpus;
  if (!r.cpuset_mems.empty()) cpu["mems"] = r.cpuset_mems;
  if (!cpu.empty()) resources["cpu"] = cpu;
  // Only the limit, as containerd 1.6 on cgroup v1: a swap value would need
  // memory.memsw, which this host's v1 memory controller may not have.
  json memory = json::object();
  if (r.memory_limit_in_bytes != 0) memory["limit"] = r.memory_limit_in_bytes;
  if (r.memory_swap_limit_in_bytes != 0) memory["swap"] = r.memory_swap_limit_in_bytes;
  if (!memory.empty()) resources["memory"] = memory;
  if (!r.hugepage_limits.empty()) {
    json limits = json::array();
    for (const HugepageLimit& h : r.hugepage_limits) {
      limits.push_back({{"pageSize", h.page_size}, {"limit", h.limit}});
    }
    resources["hugepageLimits"] = limits;
  }
  if (!r.unified.empty()) resources["unified"] = r.unified;
  return resources;
}

absl::StatusOr<std::vector<std::string>> MergeProcessArgs(const std::vector<std::string>& command,
                                                          const std::vector<std::string>& args,
                                                          const image::ImageConfig& image) {
  std::vector<std::string> merged = command;
  std::vector<std::string> tail = args;
  if (command.empty()) {
    // Docker's rule, which the kubelet documents: args alone replace CMD and
    // keep ENTRYPOINT.
    if (args.empty()) tail = image.cmd;
    bool entrypoint_unset = image.entrypoint.size() == 1 && image.entrypoint[0].empty();
    if (!entrypoint_unset) merged = image.entrypoint;
  }
  merged.insert(merged.end(), tail.begin(), tail.end());
  if (merged.empty()) return absl::InvalidArgumentError("no command specified");
  return merged;
}

void MergeEnv(std::vector<std::string>& base, const std::vector<std::string>& overrides) {
  for (const std::string& entry : overrides) {
    std::string key = EnvKey(entry);
    auto it = std::find_if(base.begin(), base.end(),
                           [&](const std::string& e) { return EnvKey(e) == key; });
    if (entry.find('=') == std::string::npos) {
      // "KEY" alone unsets KEY, as containerd's replaceOrAppendEnvValues does.
      if (it != base.end()) base.erase(it);
    } else if (it != base.end()) {
      *it = entry;
    } else {
      base.push_back(entry);
    }
  }
}

absl::StatusOr<json> BuildMounts(const ContainerSpec& container, const SpecContext& ctx,
                                 std::string& rootfs_propagation) {
  const ContainerSecurityContext& security = container.security;
  std::vector<Bind> binds;
  for (const Mount& m : container.mounts) {
    if (!IsAbsolute(m.container_path)) {
      return absl::InvalidArgumentError(
          StrCat("mount \"", m.container_path, "\": container path is not absolute"));
    }
    if (!IsAbsolute(m.host_path)) {
      return absl::InvalidArgumentError(
          StrCat("mount ", m.container_path, ": host path \"", m.host_path, "\" is not absolute"));
    }
    binds.push_back({.destination = CleanPath(m.container_path),
                     .source = m.host_path,
                     .readonly = m.readonly,
                     .propagation = m.propagation});
  }
  std::set<std::string> taken;
  for (const Bind& b : binds) taken.insert(b.destination);
  // The pod's files, unless the CRI mounts its own there.
  auto add_pod_mount = [&](std::string_view destination, const std::string& source, bool readonly) {
    if (source.empty() || taken.count(std::string(destination)) > 0) return;
    binds.push_back(
        {.destination = std::string(destination), .source = source, .readonly = readonly});
  };
  add_pod_mount("/etc/hostname", ctx.hostname_path, security.readonly_rootfs);
  add_pod_mount("/etc/hosts", ctx.hosts_path, security.readonly_rootfs);
  add_pod_mount("/etc/resolv.conf", ctx.resolv_conf_path, security.readonly_rootfs);
  add_pod_mount("/dev/shm", IsHost(ctx.ipc_ns_path) ? "/dev/shm" : ctx.shm_path, false);
  for (const Bind& b : binds) taken.insert(b.destination);
  std::stable_sort(binds.begin(), binds.end(), [](const Bind& a, const Bind& b) {
    return Depth(a.destination) < Depth(b.destination);
  });

  json mounts = json::array();
  for (json& m : DefaultMounts(security.privileged)) {
    std::string destination = m["destination"];
    if (taken.count(destination) > 0) continue;
    if (taken.count("/dev") > 0 && destination.rfind("/dev/", 0) == 0) continue;
    mounts.push_back(std::move(m));
  }

  std::optional<std::vector<MountInfoEntry>> mountinfo;
  rootfs_propagation.clear();
  for (const Bind& b : binds) {
    std::string what = StrCat("mount ", b.destination);
    ASSIGN_OR_RETURN(std::string source, ResolveHostPath(b.source, what));
    std::vector<std::string> options = {"rbind"};
    switch (b.propagation) {
      case MountPropagation::kPrivate:
        options.push_back("rprivate");
        break;
      case MountPropagation::kHostToContainer:
        options.push_back("rslave");
        if (rootfs_propagation != "rshared") rootfs_propagation = "rslave";
        break;
      case MountPropagation::kBidirectional:
        options.push_back("rshared");
        rootfs_propagation = "rshared";
        break;
    }
    if (b.propagation != MountPropagation::kPrivate && !ctx.mountinfo_path.empty()) {
      if (!mountinfo) {
        ASSIGN_OR_RETURN(mountinfo, ReadMountInfo(ctx.mountinfo_path));
      }
      RETURN_IF_ERROR(CheckPropagationSource(*mountinfo, source, b.propagation, what));
    }
    options.push_back(b.readonly ? "ro" : "rw");
    mounts.push_back(OciMount(b.destination, "bind", source, options));
  }
  return mounts;
}

absl::StatusOr<json> BuildSpec(const PodSpec& pod, const ContainerSpec& container,
                               const image::ImageConfig& image, const SpecContext& ctx) {
  const std::string prefix = StrCat("container \"", container.name, "\": ");
  auto build = [&]() -> absl::StatusOr<json> {
    const ContainerSecurityContext& security = container.security;
    if (security.privileged && !pod.security.privileged) {
      return absl::InvalidArgumentError(
          "a privileged container is not allowed in a non-privileged pod");
    }
    std::vector<std::string> available = ctx.node_capabilities;
    if (available.empty()) {
      ASSIGN_OR_RETURN(available, CurrentCapabilities());
    }
    std::vector<std::string> capabilities;
    if (security.privileged) {
      capabilities = available;
    } else {
      ASSIGN_OR_RETURN(capabilities, ApplyCapabilityChanges(DefaultCapabilities(),
                                                            security.capabilities, available));
    }

    json spec = {{"ociVersion", kOciVersion}};
    ASSIGN_OR_RETURN(spec["process"], BuildProcess(pod, container, image, ctx, capabilities));
    spec["root"] = {{"path", ctx.root_path}, {"readonly", security.readonly_rootfs}};
    // runc sets the hostname only in a UTS namespace of the container's own
    // or the pod's; the node's is not ours to rename.
    if (!IsHost(ctx.uts_ns_path)) spec["hostname"] = Hostname(pod, ctx);
    std::string rootfs_propagation;
    ASSIGN_OR_RETURN(spec["mounts"], BuildMounts(container, ctx, rootfs_propagation));
    ASSIGN_OR_RETURN(spec["linux"],
                     BuildLinux(pod, container, ctx, capabilities, rootfs_propagation));
    spec["annotations"] = BuildAnnotations(pod, container, ctx);
    return spec;
  };
  absl::StatusOr<json> spec = build();
  if (!spec.ok()) return WithPrefix(spec.status(), prefix);
  return spec;
}

}  // namespace berth::container
