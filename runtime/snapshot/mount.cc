#include "runtime/snapshot/mount.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/snapshot/fs_util.h"

namespace berth::snapshot {
namespace {

// How often UnmountAll detaches before it gives up on a target that keeps being
// mounted over.
constexpr int kMaxStackedMounts = 64;

struct FlagOption {
  std::string_view name;
  unsigned long flag;
  bool clear;  // "rw", "suid", ...: undo the flag
};

constexpr FlagOption kFlagOptions[] = {
    {"ro", MS_RDONLY, false},
    {"rw", MS_RDONLY, true},
    {"nosuid", MS_NOSUID, false},
    {"suid", MS_NOSUID, true},
    {"nodev", MS_NODEV, false},
    {"dev", MS_NODEV, true},
    {"noexec", MS_NOEXEC, false},
    {"exec", MS_NOEXEC, true},
    {"sync", MS_SYNCHRONOUS, false},
    {"async", MS_SYNCHRONOUS, true},
    {"noatime", MS_NOATIME, false},
    {"atime", MS_NOATIME, true},
    {"relatime", MS_RELATIME, false},
    {"norelatime", MS_RELATIME, true},
    {"nodiratime", MS_NODIRATIME, false},
    {"diratime", MS_NODIRATIME, true},
    {"strictatime", MS_STRICTATIME, false},
    {"bind", MS_BIND, false},
    {"rbind", MS_BIND | MS_REC, false},
};

// The flags that a bind mount only takes on a remount.
constexpr unsigned long kBindRemountFlags =
    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME;

struct ParsedOptions {
  unsigned long flags = 0;
  std::string data;
};

ParsedOptions ParseOptions(const Mount& spec) {
  ParsedOptions parsed;
  if (spec.type == "bind") parsed.flags |= MS_BIND;
  for (const std::string& option : spec.options) {
    bool is_flag = false;
    for (const FlagOption& known : kFlagOptions) {
      if (option == known.name) {
        parsed.flags = known.clear ? parsed.flags & ~known.flag : parsed.flags | known.flag;
        is_flag = true;
        break;
      }
    }
    if (is_flag) continue;
    if (!parsed.data.empty()) parsed.data.push_back(',');
    parsed.data += option;
  }
  return parsed;
}

absl::Status MountOne(const Mount& spec, const std::string& target) {
  ParsedOptions parsed = ParseOptions(spec);
  const std::string what = StrCat("mount ", spec.type, " ", spec.source, " on ", target);
  // The kernel copies one page of mount data; a longer overlay lowerdir list is cut
  // off and fails with a baffling error, so say what happened instead.
  const size_t limit = static_cast<size_t>(sysconf(_SC_PAGESIZE)) - 1;
  if (parsed.data.size() > limit) {
    return absl::InvalidArgumentError(StrCat(what, ": options are ", parsed.data.size(),
                                             " bytes, the kernel takes at most ", limit,
                                             " (too many layers?)"));
  }
  if (parsed.flags & MS_BIND) {
    if (::mount(spec.source.c_str(), target.c_str(), nullptr, parsed.flags & (MS_BIND | MS_REC),
                nullptr) != 0) {
      return ErrnoStatus(errno, what);
    }
    if (unsigned long extra = parsed.flags & kBindRemountFlags; extra != 0) {
      if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | extra, nullptr) != 0) {
        absl::Status status = ErrnoStatus(errno, StrCat(what, ": remount with its flags"));
        umount2(target.c_str(), MNT_DETACH);
        return status;
      }
    }
    return absl::OkStatus();
  }
  if (::mount(spec.source.c_str(), target.c_str(), spec.type.c_str(), parsed.flags,
              parsed.data.empty() ? nullptr : parsed.data.c_str()) != 0) {
    return ErrnoStatus(errno, StrCat(what, " (options ", parsed.data, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MountAll(const std::vector<Mount>& mounts, const std::string& target) {
  for (size_t i = 0; i < mounts.size(); ++i) {
    absl::Status status = MountOne(mounts[i], target);
    if (!status.ok()) {
      for (size_t undo = 0; undo < i; ++undo) umount2(target.c_str(), MNT_DETACH);
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status UnmountAll(const std::string& target) {
  for (int i = 0; i < kMaxStackedMounts; ++i) {
    if (umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) continue;
    // EINVAL: not a mount point (any more); ENOENT: no such target.
    if (errno == EINVAL || errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, StrCat("unmount ", target));
  }
  return absl::FailedPreconditionError(
      StrCat("unmount ", target, ": still mounted after ", kMaxStackedMounts, " detaches"));
}

}  // namespace berth::snapshot
