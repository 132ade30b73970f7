// OverlaySnapshotter: the Snapshotter on overlayfs. Each layer is unpacked once into its
// own directory; a container's root file system is an overlay mount of its image's
// layer directories (read-only, nearest first) under a writable upper directory.
//
//   ASSIGN_OR_RETURN(SnapshotterPtr snapshotter,
//                    OverlaySnapshotter::Create("/var/lib/berth/snapshotter", *store));
//   RETURN_IF_ERROR(snapshotter->Cleanup());  // at start-up
//
// On disk, under root_dir:
//   snapshots/<id>/fs     the layer's files, or an active snapshot's upper directory
//   snapshots/<id>/work   overlay's work directory (active snapshots only)
//   snapshots/tmp-*       layers being unpacked, snapshots being made
// Ids are short decimal numbers so that an overlay lowerdir option of many layers stays
// under the kernel's one-page limit for mount options.
//
// Metadata lives in the store as Kind::kSnapshot records keyed by snapshot key:
//   {"id": 7, "parent": "<key>", "kind": "committed"|"active",
//    "usage": {"bytes": ..., "inodes": ...}}      (usage: committed snapshots only)
// plus a store reference child -> parent, so that the store itself refuses to delete a
// parent in use.
//
// Crash consistency: a snapshot directory is built under a tmp-* name and renamed to its
// id inside the store transaction that records it. A crash therefore leaves nothing, or
// a tmp-* directory, or an id directory with no record; Cleanup() removes both kinds.
// Layer files are not fsync()ed: like containerd's default, a committed layer survives
// kill -9 but not necessarily a power cut.
#ifndef BERTH_RUNTIME_SNAPSHOT_OVERLAY_SNAPSHOTTER_H_
#define BERTH_RUNTIME_SNAPSHOT_OVERLAY_SNAPSHOTTER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/snapshot/snapshotter.h"
#include "runtime/store/store.h"

namespace berth::snapshot {

class OverlaySnapshotter : public Snapshotter {
 public:
  // Creates root_dir (and its snapshots/ directory, 0700: layers hold setuid binaries)
  // if needed. root_dir must not contain ':' or ',', which overlay's options cannot
  // carry. `store` must outlive the snapshotter.
  static absl::StatusOr<SnapshotterPtr> Create(std::string root_dir, store::Store& store);

  absl::StatusOr<std::optional<SnapshotInfo>> Stat(const std::string& key) override;
  absl::StatusOr<Usage> ApplyLayer(const std::string& key, const std::string& parent,
                                   ByteSource& layer, const std::string& expected_diff_id) override;
  absl::StatusOr<std::vector<Mount>> Prepare(const std::string& key,
                                             const std::string& parent) override;
  absl::StatusOr<std::vector<Mount>> Mounts(const std::string& key) override;
  absl::Status Remove(const std::string& key) override;
  absl::StatusOr<Usage> GetUsage(const std::string& key) override;
  absl::StatusOr<std::vector<SnapshotInfo>> List() override;
  absl::Status Cleanup() override;

 private:
  OverlaySnapshotter(std::string snapshots_dir, store::Store& store, int64_t next_id);

  // Makes an empty snapshots/tmp-* directory and marks it in flight.
  absl::StatusOr<std::string> MakeTempDir(std::string_view what);
  // Records snapshot `key` and renames `temp` to its id directory, in one transaction;
  // removes `temp` whatever happens.
  absl::Status Commit(const std::string& key, const std::string& parent, SnapshotKind kind,
                      const std::string& temp, const std::optional<Usage>& usage);
  void Forget(const std::string& name);
  std::string Dir(int64_t id) const;

  const std::string snapshots_dir_;  // absolute: it ends up in mount options
  store::Store& store_;

  // Lock order: mu_ may be held while calling into the store (Cleanup), never the other
  // way round, so nothing takes mu_ inside a store transaction.
  absl::Mutex mu_;
  absl::CondVar applied_;
  int64_t next_id_ ABSL_GUARDED_BY(mu_);
  // Names under snapshots/ that are being built or committed: Cleanup leaves them alone.
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
  // Keys an ApplyLayer is working on: a second ApplyLayer of the same key waits for the
  // first instead of unpacking the same layer twice.
  std::set<std::string> applying_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::snapshot

#endif  // BERTH_RUNTIME_SNAPSHOT_OVERLAY_SNAPSHOTTER_H_
