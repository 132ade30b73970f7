// DiskUsage: bytes and inodes a directory tree occupies on disk.
//
//   absl::StatusOr<DiskUsage> usage = MeasureDiskUsage("/var/lib/berth/snapshots");
//
// Bytes are allocated blocks (st_blocks * 512), which is what a full disk is
// made of; a hard-linked inode is counted once. Symlinks are not followed and
// the walk stays on the starting filesystem. A missing path measures zero.
#ifndef BERTH_RUNTIME_BASE_DISK_USAGE_H_
#define BERTH_RUNTIME_BASE_DISK_USAGE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace berth {

struct DiskUsage {
  int64_t bytes = 0;
  int64_t inodes = 0;
};

absl::StatusOr<DiskUsage> MeasureDiskUsage(const std::string& path);

}  // namespace berth

#endif  // BERTH_RUNTIME_BASE_DISK_USAGE_H_
