#include "runtime/base/disk_usage.h"

#include <errno.h>
#include <fts.h>
#include <string.h>
#include <sys/stat.h>

#include <set>
#include <utility>

#include "runtime/base/strings.h"

namespace berth {

absl::StatusOr<DiskUsage> MeasureDiskUsage(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return DiskUsage{};
    return absl::InternalError(StrCat("measure ", path, ": ", strerror(errno)));
  }
  char* roots[] = {const_cast<char*>(path.c_str()), nullptr};
  // FTS_PHYSICAL: never follow symlinks; FTS_XDEV: a mount inside the tree
  // (a container rootfs) is not ours to count.
  FTS* fts = fts_open(roots, FTS_PHYSICAL | FTS_XDEV | FTS_NOCHDIR, nullptr);
  if (fts == nullptr) return absl::InternalError(StrCat("measure ", path, ": ", strerror(errno)));
  DiskUsage usage;
  std::set<std::pair<dev_t, ino_t>> seen_links;
  while (FTSENT* entry = fts_read(fts)) {
    if (entry->fts_info == FTS_DP) continue;  // directories are visited twice
    if (entry->fts_info == FTS_NS || entry->fts_info == FTS_DNR || entry->fts_info == FTS_ERR) {
      // Entries can vanish while we walk (a layer being removed); skip them.
      if (entry->fts_errno == ENOENT) continue;
      std::string where = entry->fts_path;
      int err = entry->fts_errno;
      fts_close(fts);
      return absl::InternalError(StrCat("measure ", where, ": ", strerror(err)));
    }
    const struct stat* s = entry->fts_statp;
    if (s->st_nlink > 1 && !S_ISDIR(s->st_mode) &&
        !seen_links.insert({s->st_dev, s->st_ino}).second) {
      continue;
    }
    usage.bytes += static_cast<int64_t>(s->st_blocks) * 512;
    usage.inodes += 1;
  }
  fts_close(fts);
  return usage;
}

}  // namespace berth
