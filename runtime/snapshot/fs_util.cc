#include "runtime/snapshot/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::snapshot {
namespace {

// Past this depth RemoveAllAt moves a subtree up to the top directory instead of
// descending further: a container can build trees deeper than the fd limit allows us to
// hold open one fd per level.
constexpr int kMaxRemoveDepth = 64;

std::atomic<uint64_t> remove_counter{0};

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// The names in the directory `fd` (other than "." and ".."), with their d_type.
absl::StatusOr<std::vector<std::pair<std::string, unsigned char>>> ReadNames(
    int fd, std::string_view what) {
  // fdopendir takes ownership of the fd it gets, so give it a duplicate.
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoStatus(errno, StrCat("read directory ", what));
  DirPtr dir(fdopendir(dup_fd));
  if (dir == nullptr) {
    int err = errno;
    close(dup_fd);
    return ErrnoStatus(err, StrCat("read directory ", what));
  }
  std::vector<std::pair<std::string, unsigned char>> names;
  errno = 0;
  while (dirent* entry = readdir(dir.get())) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(std::string(name), entry->d_type);
    errno = 0;
  }
  if (errno != 0) return ErrnoStatus(errno, StrCat("read directory ", what));
  return names;
}

// Whether the directory `fd` is the root of a mount (bind mounts of the same file system
// included, which st_dev alone would miss).
absl::StatusOr<bool> IsMountRoot(int fd, std::string_view what) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) != 0) {
    return ErrnoStatus(errno, StrCat("statx ", what));
  }
  return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
         (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

absl::StatusOr<UniqueFd> OpenChildDir(int dirfd, const std::string& name, std::string_view what) {
  int fd = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, StrCat("open ", what));
  return UniqueFd(fd);
}

// Empties the directory `fd` (known as `what` in messages). Subdirectories deeper than
// kMaxRemoveDepth are renamed into `top_fd` and appended to `deferred`.
absl::Status EmptyDir(int fd, int top_fd, int depth, const std::string& what,
                      std::vector<std::string>& deferred) {
  ASSIGN_OR_RETURN(auto names, ReadNames(fd, what));
  for (const auto& [name, type] : names) {
    std::string child_what = StrCat(what, "/", name);
    bool is_dir = type == DT_DIR;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        return ErrnoStatus(errno, StrCat("stat ", child_what));
      }
      is_dir = S_ISDIR(st.st_mode);
    }
    if (!is_dir) {
      if (unlinkat(fd, name.c_str(), 0) != 0 && errno != ENOENT) {
        return ErrnoStatus(errno, StrCat("remove ", child_what));
      }
      continue;
    }
    if (depth >= kMaxRemoveDepth) {
      std::string moved = StrCat(".rm-", getpid(), "-", remove_counter.fetch_add(1));
      if (renameat(fd, name.c_str(), top_fd, moved.c_str()) != 0) {
        return ErrnoStatus(errno, StrCat("move ", child_what, " up for removal"));
      }
      deferred.push_back(std::move(moved));
      continue;
    }
    ASSIGN_OR_RETURN(UniqueFd child, OpenChildDir(fd, name, child_what));
    ASSIGN_OR_RETURN(bool mount_root, IsMountRoot(child.get(), child_what));
    if (mount_root) {
      return absl::FailedPreconditionError(
          StrCat("remove ", child_what, ": it is a mount point; unmount it first"));
    }
    RETURN_IF_ERROR(EmptyDir(child.get(), top_fd, depth + 1, child_what, deferred));
    child = UniqueFd();
    if (unlinkat(fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, StrCat("remove ", child_what));
    }
  }
  return absl::OkStatus();
}

// RemoveAllAt, naming paths in messages as `dir_what`/name.
absl::Status RemoveTree(int dirfd, const std::string& name, const std::string& dir_what) {
  auto display = [&](const std::string& n) {
    if (dir_what.empty()) return n;
    return dir_what.back() == '/' ? StrCat(dir_what, n) : StrCat(dir_what, "/", n);
  };
  struct stat st;
  if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, StrCat("stat ", display(name)));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, StrCat("remove ", display(name)));
    }
    return absl::OkStatus();
  }
  std::vector<std::string> pending = {name};
  while (!pending.empty()) {
    std::string current = std::move(pending.back());
    pending.pop_back();
    std::string what = display(current);
    absl::StatusOr<UniqueFd> fd = OpenChildDir(dirfd, current, what);
    if (!fd.ok()) {
      if (absl::IsNotFound(fd.status())) continue;
      return fd.status();
    }
    ASSIGN_OR_RETURN(bool mount_root, IsMountRoot(fd->get(), what));
    if (mount_root) {
      return absl::FailedPreconditionError(
          StrCat("remove ", what, ": it is a mount point; unmount it first"));
    }
    std::vector<std::string> deferred;
    RETURN_IF_ERROR(EmptyDir(fd->get(), dirfd, 0, what, deferred));
    *fd = UniqueFd();
    if (unlinkat(dirfd, current.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, StrCat("remove ", what));
    }
    for (std::string& moved : deferred) pending.push_back(std::move(moved));
  }
  return absl::OkStatus();
}

absl::Status MeasureDir(int fd, const std::string& what, std::set<std::pair<dev_t, ino_t>>& links,
                        DiskUsage& usage) {
  ASSIGN_OR_RETURN(auto names, ReadNames(fd, what));
  for (const auto& [name, type] : names) {
    std::string child_what = StrCat(what, "/", name);
    struct stat st;
    if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // removed while we walked: a live container's upper dir
      return ErrnoStatus(errno, StrCat("stat ", child_what));
    }
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && !links.emplace(st.st_dev, st.st_ino).second) {
      continue;
    }
    usage.bytes += static_cast<int64_t>(st.st_blocks) * 512;
    usage.inodes += 1;
    if (S_ISDIR(st.st_mode)) {
      absl::StatusOr<UniqueFd> child = OpenChildDir(fd, name, child_what);
      if (!child.ok()) {
        if (absl::IsNotFound(child.status())) continue;
        return child.status();
      }
      ASSIGN_OR_RETURN(bool mount_root, IsMountRoot(child->get(), child_what));
      if (mount_root) continue;
      RETURN_IF_ERROR(MeasureDir(child->get(), child_what, links, usage));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool HasHostRoot() {
  static const bool host_root = [] {
    if (geteuid() != 0) return false;
    // The initial namespace maps every id to itself: "0 0 4294967295" (what runc's
    // RunningInUserNS checks too).
    std::ifstream map("/proc/self/uid_map");
    int64_t inside = -1, outside = -1, count = -1;
    map >> inside >> outside >> count;
    return inside == 0 && outside == 0 && count == 4294967295;
  }();
  return host_root;
}

absl::StatusOr<UniqueFd> OpenDir(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, StrCat("open directory ", path));
  return UniqueFd(fd);
}

absl::Status RemoveAllAt(int dirfd, const std::string& name) { return RemoveTree(dirfd, name, ""); }

absl::Status RemoveAll(const std::string& path) {
  std::string parent = ".";
  std::string name = path;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  if (size_t slash = name.rfind('/'); slash != std::string::npos) {
    parent = slash == 0 ? "/" : name.substr(0, slash);
    name = name.substr(slash + 1);
  }
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(StrCat("remove ", path, ": not a removable path"));
  }
  absl::StatusOr<UniqueFd> dir = OpenDir(parent);
  if (!dir.ok()) {
    if (absl::IsNotFound(dir.status())) return absl::OkStatus();
    return dir.status();
  }
  return RemoveTree(dir->get(), name, parent);
}

absl::StatusOr<DiskUsage> MeasureTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, StrCat("stat ", path));
  DiskUsage usage{.bytes = static_cast<int64_t>(st.st_blocks) * 512, .inodes = 1};
  if (!S_ISDIR(st.st_mode)) return usage;
  ASSIGN_OR_RETURN(UniqueFd fd, OpenDir(path));
  std::set<std::pair<dev_t, ino_t>> links;
  RETURN_IF_ERROR(MeasureDir(fd.get(), path, links, usage));
  return usage;
}

}  // namespace berth::snapshot
