#include "runtime/container/capabilities.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>

#include "absl/status/status.h"
#include "runtime/base/strings.h"

namespace berth::container {
namespace {

bool IsAll(std::string_view name) {
  return name.size() == 3 && std::toupper(name[0]) == 'A' && std::toupper(name[1]) == 'L' &&
         std::toupper(name[2]) == 'L';
}

bool Contains(const std::vector<std::string>& caps, const std::string& cap) {
  return std::find(caps.begin(), caps.end(), cap) != caps.end();
}

}  // namespace

const std::vector<std::string>& AllCapabilities() {
  // include/uapi/linux/capability.h, 0 through CAP_LAST_CAP (40 since 5.9).
  static const auto* const kAll = new std::vector<std::string>{
      "CAP_CHOWN",
      "CAP_DAC_OVERRIDE",
      "CAP_DAC_READ_SEARCH",
      "CAP_FOWNER",
      "CAP_FSETID",
      "CAP_KILL",
      "CAP_SETGID",
      "CAP_SETUID",
      "CAP_SETPCAP",
      "CAP_LINUX_IMMUTABLE",
      "CAP_NET_BIND_SERVICE",
      "CAP_NET_BROADCAST",
      "CAP_NET_ADMIN",
      "CAP_NET_RAW",
      "CAP_IPC_LOCK",
      "CAP_IPC_OWNER",
      "CAP_SYS_MODULE",
      "CAP_SYS_RAWIO",
      "CAP_SYS_CHROOT",
      "CAP_SYS_PTRACE",
      "CAP_SYS_PACCT",
      "CAP_SYS_ADMIN",
      "CAP_SYS_BOOT",
      "CAP_SYS_NICE",
      "CAP_SYS_RESOURCE",
      "CAP_SYS_TIME",
      "CAP_SYS_TTY_CONFIG",
      "CAP_MKNOD",
      "CAP_LEASE",
      "CAP_AUDIT_WRITE",
      "CAP_AUDIT_CONTROL",
      "CAP_SETFCAP",
      "CAP_MAC_OVERRIDE",
      "CAP_MAC_ADMIN",
      "CAP_SYSLOG",
      "CAP_WAKE_ALARM",
      "CAP_BLOCK_SUSPEND",
      "CAP_AUDIT_READ",
      "CAP_PERFMON",
      "CAP_BPF",
      "CAP_CHECKPOINT_RESTORE",
  };
  return *kAll;
}

const std::vector<std::string>& DefaultCapabilities() {
  static const auto* const kDefault = new std::vector<std::string>{
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE",
  };
  return *kDefault;
}

absl::StatusOr<std::string> NormalizeCapability(std::string_view name) {
  std::string upper;
  upper.reserve(name.size() + 4);
  for (char c : name)
    upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (upper.rfind("CAP_", 0) != 0) upper.insert(0, "CAP_");
  if (!Contains(AllCapabilities(), upper)) {
    return absl::InvalidArgumentError(StrCat("unknown capability \"", name, "\""));
  }
  return upper;
}

std::vector<std::string> CapabilitiesFromMask(uint64_t mask) {
  std::vector<std::string> caps;
  const std::vector<std::string>& all = AllCapabilities();
  for (size_t bit = 0; bit < all.size(); ++bit) {
    if (mask & (uint64_t{1} << bit)) caps.push_back(all[bit]);
  }
  return caps;
}

absl::StatusOr<std::vector<std::string>> CurrentCapabilities() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    constexpr std::string_view kField = "CapEff:";
    if (line.rfind(kField, 0) != 0) continue;
    std::string hex = line.substr(kField.size());
    hex.erase(0, hex.find_first_not_of(" \t"));
    uint64_t mask = 0;
    auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), mask, 16);
    if (ec != std::errc() || end == hex.data()) break;
    return CapabilitiesFromMask(mask);
  }
  return absl::InternalError("no CapEff line in /proc/self/status");
}

absl::StatusOr<std::vector<std::string>> ApplyCapabilityChanges(
    std::vector<std::string> base, const Capabilities& changes,
    const std::vector<std::string>& available) {
  if (std::any_of(changes.add.begin(), changes.add.end(), IsAll)) base = available;
  if (std::any_of(changes.drop.begin(), changes.drop.end(), IsAll)) base.clear();
  for (const std::string& name : changes.add) {
    if (IsAll(name)) continue;
    absl::StatusOr<std::string> cap = NormalizeCapability(name);
    if (!cap.ok()) return absl::InvalidArgumentError(StrCat("add: ", cap.status().message()));
    if (!Contains(available, *cap)) {
      return absl::FailedPreconditionError(
          StrCat("add: capability ", *cap, " is not available to berth on this node"));
    }
    if (!Contains(base, *cap)) base.push_back(*cap);
  }
  for (const std::string& name : changes.drop) {
    if (IsAll(name)) continue;
    absl::StatusOr<std::string> cap = NormalizeCapability(name);
    if (!cap.ok()) continue;  // nothing to drop; runc, too, ignores names it does not know
    base.erase(std::remove(base.begin(), base.end(), *cap), base.end());
  }
  return base;
}

}  // namespace berth::container
