// Mounting a snapshot's mounts (see snapshotter.h) onto a directory, and taking them
// down again: the container root file system.
//
//   ASSIGN_OR_RETURN(std::vector<Mount> mounts, snapshotter->Prepare(id, image_top));
//   RETURN_IF_ERROR(MountAll(mounts, rootfs));
//   ...
//   RETURN_IF_ERROR(UnmountAll(rootfs));
//
// Needs CAP_SYS_ADMIN. Mounts are made in the caller's mount namespace.
#ifndef BERTH_RUNTIME_SNAPSHOT_MOUNT_H_
#define BERTH_RUNTIME_SNAPSHOT_MOUNT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/snapshot/snapshotter.h"

namespace berth::snapshot {

// Mounts each of `mounts` on `target` (an existing directory) in order, later ones on
// top. Well-known flag options (ro, nosuid, nodev, noexec, bind, rbind, ...) become mount
// flags; the rest are passed to the file system (overlay's lowerdir=..., for one). A
// bind mount with flags (ro, nosuid, ...) is bound, then remounted with them, as the
// kernel ignores flags on the bind itself. On
// failure the mounts already made on `target` are detached again.
absl::Status MountAll(const std::vector<Mount>& mounts, const std::string& target);

// Detaches (MNT_DETACH) everything mounted on `target`, stacked mounts included. OK when
// nothing is mounted there or `target` does not exist.
absl::Status UnmountAll(const std::string& target);

}  // namespace berth::snapshot

#endif  // BERTH_RUNTIME_SNAPSHOT_MOUNT_H_
