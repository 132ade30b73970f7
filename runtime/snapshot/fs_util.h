// File-system helpers shared by the layer unpacker and the snapshotters: an owned file
// descriptor, errno-to-Status mapping, and directory-tree walks that never follow
// symlinks or cross into other mounts.
//
//   ASSIGN_OR_RETURN(UniqueFd dir, OpenDir("/var/lib/berth/snapshots"));
//   RETURN_IF_ERROR(RemoveAll("/var/lib/berth/snapshots/tmp-123"));
//   ASSIGN_OR_RETURN(DiskUsage usage, MeasureTree("/var/lib/berth/snapshots/7"));
//
// These are internal to runtime/snapshot; other modules should not depend on them.
#ifndef BERTH_RUNTIME_SNAPSHOT_FS_UTIL_H_
#define BERTH_RUNTIME_SNAPSHOT_FS_UTIL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/unique_fd.h"

namespace berth::snapshot {

using ::berth::UniqueFd;

using ::berth::ErrnoStatus;

// Opens an existing directory (O_RDONLY | O_DIRECTORY | O_CLOEXEC).
absl::StatusOr<UniqueFd> OpenDir(const std::string& path);

// Removes `name` in `dirfd` and, if it is a directory, everything beneath it. Symlinks are
// removed, never followed. A directory that is a mount point (another st_dev) is refused
// rather than emptied, so a forgotten mount never costs the data behind it. A missing
// `name` is OK.
absl::Status RemoveAllAt(int dirfd, const std::string& name);

// RemoveAllAt for an absolute or cwd-relative path.
absl::Status RemoveAll(const std::string& path);

// Whether this process is root in the initial user namespace: only then can it chown to
// any id, set trusted.* xattrs and mount overlayfs with them. Root inside a user
// namespace (rootless setups, Bazel's linux-sandbox) maps only some ids and is not.
bool HasHostRoot();

struct DiskUsage {
  int64_t bytes = 0;   // sum of st_blocks * 512
  int64_t inodes = 0;  // distinct inodes; hard links count once
};

// Measures the tree rooted at `path` (itself included), not following symlinks and not
// crossing mounts.
absl::StatusOr<DiskUsage> MeasureTree(const std::string& path);

}  // namespace berth::snapshot

#endif  // BERTH_RUNTIME_SNAPSHOT_FS_UTIL_H_
