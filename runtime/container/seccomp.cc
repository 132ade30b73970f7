#include "runtime/container/seccomp.h"

#include <errno.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "runtime/base/strings.h"

namespace berth::container {
namespace {

constexpr size_t kMaxProfileBytes = 1 << 20;

// Namespace-creating clone(2) flags: NEWNS, NEWCGROUP, NEWUTS, NEWIPC,
// NEWUSER, NEWPID, NEWNET (Docker's mask 0x7E020000, bit by bit).
constexpr uint64_t kCloneNamespaceFlags[] = {0x00020000, 0x02000000, 0x04000000, 0x08000000,
                                             0x10000000, 0x20000000, 0x40000000};

struct Group {
  // Empty: refused for everyone. Otherwise allowed when the process holds
  // any of these capabilities.
  std::vector<std::string_view> unless_any_of;
  std::vector<std::string_view> names;
};

const std::vector<Group>& DeniedSyscalls() {
  static const auto* const kGroups = new std::vector<Group>{
      // Not namespaced (keys), a large attack surface (io_uring), or long gone.
      {{}, {"add_key",        "keyctl",          "request_key",
            "io_uring_setup", "io_uring_enter",  "io_uring_register",
            "create_module",  "get_kernel_syms", "query_module",
            "nfsservctl",     "uselib",          "ustat",
            "sysfs",          "_sysctl",         "vm86",
            "vm86old",        "afs_syscall",     "tuxcall",
            "security",       "getpmsg",         "putpmsg"}},
      {{"CAP_SYS_ADMIN"},
       {"mount",     "umount",       "umount2",       "pivot_root",     "unshare",
        "setns",     "sethostname",  "setdomainname", "swapon",         "swapoff",
        "quotactl",  "quotactl_fd",  "fanotify_init", "lookup_dcookie", "name_to_handle_at",
        "fsopen",    "fsconfig",     "fsmount",       "fspick",         "move_mount",
        "open_tree", "mount_setattr"}},
      {{"CAP_SYS_ADMIN", "CAP_BPF"}, {"bpf"}},
      {{"CAP_SYS_ADMIN", "CAP_PERFMON"}, {"perf_event_open"}},
      {{"CAP_SYS_ADMIN", "CAP_SYSLOG"}, {"syslog"}},
      {{"CAP_SYS_BOOT"}, {"reboot", "kexec_load", "kexec_file_load"}},
      {{"CAP_SYS_MODULE"}, {"init_module", "finit_module", "delete_module"}},
      // ptrace and process_vm_* stay allowed, as in containerd's profile since kernel 4.8
      // closed the seccomp bypass: strace and debuggers work in a container.
      {{"CAP_SYS_PTRACE"}, {"kcmp", "pidfd_getfd", "userfaultfd"}},
      // clock_adjtime stays allowed: reading the clock is harmless and the kernel itself
      // asks for CAP_SYS_TIME to change it.
      {{"CAP_SYS_TIME"}, {"settimeofday", "stime", "clock_settime", "clock_settime64"}},
      {{"CAP_SYS_PACCT"}, {"acct"}},
      {{"CAP_SYS_RAWIO"}, {"iopl", "ioperm"}},
      {{"CAP_SYS_TTY_CONFIG"}, {"vhangup"}},
      {{"CAP_DAC_READ_SEARCH"}, {"open_by_handle_at"}},
      {{"CAP_SYS_NICE"},
       {"get_mempolicy", "set_mempolicy", "mbind", "set_mempolicy_home_node", "migrate_pages",
        "move_pages", "process_madvise"}},
  };
  return *kGroups;
}

bool Has(const std::vector<std::string>& caps, std::string_view cap) {
  return std::find(caps.begin(), caps.end(), cap) != caps.end();
}

nlohmann::json Architectures() {
#if defined(__x86_64__)
  return {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  return {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#else
#error "berth's default seccomp profile knows x86_64 and aarch64 only"
#endif
}

absl::StatusOr<nlohmann::json> ReadProfile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(StrCat("seccomp profile ", path, " not found"));
    }
    return absl::ErrnoToStatus(err, StrCat("open seccomp profile ", path));
  }
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxProfileBytes) {
      return absl::InvalidArgumentError(
          StrCat("seccomp profile ", path, " is larger than ", kMaxProfileBytes, " bytes"));
    }
  }
  nlohmann::json profile = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!profile.is_object()) {
    return absl::InvalidArgumentError(StrCat("seccomp profile ", path, " is not a JSON object"));
  }
  return profile;
}

}  // namespace

nlohmann::json DefaultSeccompProfile(const std::vector<std::string>& capabilities) {
  nlohmann::json syscalls = nlohmann::json::array();
  for (const Group& group : DeniedSyscalls()) {
    bool allowed = std::any_of(group.unless_any_of.begin(), group.unless_any_of.end(),
                               [&](std::string_view cap) { return Has(capabilities, cap); });
    if (allowed) continue;
    syscalls.push_back({{"names", group.names}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", EPERM}});
  }
  if (!Has(capabilities, "CAP_SYS_ADMIN")) {
    // One rule per flag: rules for the same syscall are ORed, so any
    // namespace flag refuses the call.
    for (uint64_t flag : kCloneNamespaceFlags) {
      syscalls.push_back(
          {{"names", {"clone"}},
           {"action", "SCMP_ACT_ERRNO"},
           {"errnoRet", EPERM},
           {"args",
            {{{"index", 0}, {"value", flag}, {"valueTwo", flag}, {"op", "SCMP_CMP_MASKED_EQ"}}}}});
    }
    // clone3 passes its flags in memory, out of seccomp's reach: say it does
    // not exist, and libc falls back to clone.
    syscalls.push_back({{"names", {"clone3"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", ENOSYS}});
  }
  return {{"defaultAction", "SCMP_ACT_ALLOW"},
          {"architectures", Architectures()},
          {"syscalls", syscalls}};
}

absl::StatusOr<std::optional<nlohmann::json>> SeccompSection(
    const std::optional<SecurityProfile>& profile, bool privileged,
    const std::vector<std::string>& capabilities) {
  if (privileged || !profile) return std::nullopt;
  if (profile->type != SecurityProfile::Type::kLocalhost && !profile->localhost_ref.empty()) {
    return absl::InvalidArgumentError(StrCat("seccomp: localhost_ref \"", profile->localhost_ref,
                                             "\" is set but the profile type is not Localhost"));
  }
  switch (profile->type) {
    case SecurityProfile::Type::kUnconfined:
      return std::nullopt;
    case SecurityProfile::Type::kRuntimeDefault:
      return DefaultSeccompProfile(capabilities);
    case SecurityProfile::Type::kLocalhost: {
      const std::string& path = profile->localhost_ref;
      if (path.empty() || path.front() != '/') {
        return absl::InvalidArgumentError(
            StrCat("seccomp: Localhost profile path \"", path, "\" is not absolute"));
      }
      return ReadProfile(path);
    }
  }
  return absl::InvalidArgumentError("seccomp: unknown profile type");
}

absl::StatusOr<std::optional<SecurityProfile>> ProfileFromLegacyName(std::string_view name) {
  using Type = SecurityProfile::Type;
  if (name.empty()) return std::nullopt;
  if (name == "runtime/default" || name == "docker/default") {
    return SecurityProfile{.type = Type::kRuntimeDefault};
  }
  if (name == "unconfined") return SecurityProfile{.type = Type::kUnconfined};
  constexpr std::string_view kLocalhost = "localhost/";
  if (name.substr(0, kLocalhost.size()) == kLocalhost && name.size() > kLocalhost.size()) {
    return SecurityProfile{.type = Type::kLocalhost,
                           .localhost_ref = std::string(name.substr(kLocalhost.size()))};
  }
  return absl::InvalidArgumentError(StrCat("invalid security profile \"", name, "\""));
}

}  // namespace berth::container
