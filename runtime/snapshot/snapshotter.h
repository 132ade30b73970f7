// Snapshotter: turns image layers into read-only snapshots and gives each container a
// writable snapshot on top of its image, as a list of mounts for its root file system.
//
//   // Pulling: one committed snapshot per layer, keyed by the layer's chain ID.
//   if (!*snapshotter->Stat(chain_id)) {
//     FileSource blob(blob_path);
//     absl::StatusOr<Usage> usage =
//         snapshotter->ApplyLayer(chain_id, parent_chain_id, blob, layer_diff_id);
//     // AlreadyExists: another pull applied it meanwhile; that is success too.
//   }
//   // Creating a container: a writable snapshot on the image's top layer.
//   ASSIGN_OR_RETURN(std::vector<Mount> mounts, snapshotter->Prepare(container_id, top_chain_id));
//   RETURN_IF_ERROR(MountAll(mounts, rootfs_dir));  // see mount.h
//   ...
//   RETURN_IF_ERROR(UnmountAll(rootfs_dir));
//   RETURN_IF_ERROR(snapshotter->Remove(container_id));
//
// Snapshots form a tree by parent; a parent cannot be removed while a child (or any
// other object holding a store reference to it) exists. Keys are opaque strings chosen
// by the caller. Every method is thread-safe. At start-up, before serving, call
// Cleanup() to remove what a crash left half-made.
//
// Implementations: OverlaySnapshotter (overlay_snapshotter.h).
#ifndef BERTH_RUNTIME_SNAPSHOT_SNAPSHOTTER_H_
#define BERTH_RUNTIME_SNAPSHOT_SNAPSHOTTER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/snapshot/layer_unpacker.h"

namespace berth::snapshot {

// One mount(2), as `mount -t <type> -o <options> <source> <target>` would do it. A
// "bind" type (or a "bind"/"rbind" option) makes a bind mount of `source`.
struct Mount {
  std::string type;
  std::string source;
  std::vector<std::string> options;
};

struct Usage {
  int64_t bytes = 0;   // disk blocks in use, st_blocks * 512
  int64_t inodes = 0;  // hard links count once
};

enum class SnapshotKind {
  kCommitted,  // read-only: an unpacked layer
  kActive,     // writable: a container's root file system
};

struct SnapshotInfo {
  std::string key;
  std::string parent;  // "" for a base layer or a snapshot of nothing
  SnapshotKind kind;
};

class Snapshotter {
 public:
  virtual ~Snapshotter() = default;

  // The snapshot `key`, or nullopt when there is none.
  virtual absl::StatusOr<std::optional<SnapshotInfo>> Stat(const std::string& key) = 0;

  // Unpacks a layer on top of committed `parent` ("" for a base layer) into a new
  // committed snapshot `key` (the chain ID). The layer's diff_id must equal
  // expected_diff_id, else DataLoss and nothing is kept. Already existing key ->
  // AlreadyExists (callers check Stat first). Concurrent ApplyLayer of the same key: one
  // wins, the other gets AlreadyExists. Returns the snapshot's disk usage.
  virtual absl::StatusOr<Usage> ApplyLayer(const std::string& key, const std::string& parent,
                                           ByteSource& layer,
                                           const std::string& expected_diff_id) = 0;

  // A writable snapshot on top of committed `parent` ("" for an empty one) for a
  // container; returns the mounts for its rootfs.
  virtual absl::StatusOr<std::vector<Mount>> Prepare(const std::string& key,
                                                     const std::string& parent) = 0;

  // The mounts of an existing snapshot: writable for an active one, a read-only view for
  // a committed one. NotFound when there is no such snapshot.
  virtual absl::StatusOr<std::vector<Mount>> Mounts(const std::string& key) = 0;

  // Removes a snapshot and its files; FailedPrecondition while another snapshot has it
  // as parent (or another object refers to it in the store). A missing key is OK. An
  // active snapshot must be unmounted first.
  virtual absl::Status Remove(const std::string& key) = 0;

  // The disk space the snapshot itself uses (not its parents').
  virtual absl::StatusOr<Usage> GetUsage(const std::string& key) = 0;

  // Every snapshot, ordered by key.
  virtual absl::StatusOr<std::vector<SnapshotInfo>> List() = 0;

  // Removes what a crash left behind: half-unpacked layers and snapshot directories
  // that have no record in the store. Meant for start-up; safe at any time (work in
  // progress is left alone).
  virtual absl::Status Cleanup() = 0;
};

using SnapshotterPtr = std::unique_ptr<Snapshotter>;

}  // namespace berth::snapshot

#endif  // BERTH_RUNTIME_SNAPSHOT_SNAPSHOTTER_H_
