#include "runtime/container/user.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::container {
namespace {

// Generous for any real image; keeps a hostile multi-gigabyte passwd from
// being read into memory.
constexpr size_t kMaxAccountFileBytes = 4 << 20;

// The largest valid id: (uid_t)-1 means "no change" to the kernel.
constexpr int64_t kMaxId = 4294967294;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;
};

struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

// A decimal id in [0, kMaxId]; nullopt when `s` is not all digits or too big.
std::optional<uint32_t> ParseId(std::string_view s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < 0 || value > kMaxId) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(value);
}

bool IsNumeric(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

absl::StatusOr<uint32_t> CheckId(int64_t id, std::string_view what) {
  if (id < 0 || id > kMaxId) {
    return absl::InvalidArgumentError(StrCat(what, " ", id, " is out of range [0, ", kMaxId, "]"));
  }
  return static_cast<uint32_t>(id);
}

// Lines that do not parse (comments, NIS "+" entries, garbage) are skipped,
// as libc does.
std::vector<PasswdEntry> ParsePasswd(std::string_view text) {
  std::vector<PasswdEntry> entries;
  for (std::string_view line : Split(text, '\n')) {
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string_view> f = Split(line, ':');
    if (f.size() < 4 || f[0].empty()) continue;
    std::optional<uint32_t> uid = ParseId(f[2]);
    std::optional<uint32_t> gid = ParseId(f[3]);
    if (!uid || !gid) continue;
    entries.push_back({.name = std::string(f[0]),
                       .uid = *uid,
                       .gid = *gid,
                       .home = f.size() > 5 ? std::string(f[5]) : ""});
  }
  return entries;
}

std::vector<GroupEntry> ParseGroup(std::string_view text) {
  std::vector<GroupEntry> entries;
  for (std::string_view line : Split(text, '\n')) {
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string_view> f = Split(line, ':');
    if (f.size() < 3 || f[0].empty()) continue;
    std::optional<uint32_t> gid = ParseId(f[2]);
    if (!gid) continue;
    GroupEntry entry{.name = std::string(f[0]), .gid = *gid};
    if (f.size() > 3) {
      for (std::string_view member : Split(f[3], ',')) {
        while (!member.empty() && member.front() == ' ') member.remove_prefix(1);
        while (!member.empty() && (member.back() == ' ' || member.back() == '\r')) {
          member.remove_suffix(1);
        }
        if (!member.empty()) entry.members.emplace_back(member);
      }
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

// The image's account files, read once; absent ones are empty.
struct AccountFiles {
  std::vector<PasswdEntry> passwd;
  std::vector<GroupEntry> group;
  bool has_passwd = false;
  bool has_group = false;
};

absl::StatusOr<AccountFiles> ReadAccountFiles(const std::string& rootfs) {
  AccountFiles files;
  if (rootfs.empty()) return files;
  ASSIGN_OR_RETURN(std::optional<std::string> passwd,
                   ReadFileInRoot(rootfs, "/etc/passwd", kMaxAccountFileBytes));
  if (passwd) {
    files.has_passwd = true;
    files.passwd = ParsePasswd(*passwd);
  }
  ASSIGN_OR_RETURN(std::optional<std::string> group,
                   ReadFileInRoot(rootfs, "/etc/group", kMaxAccountFileBytes));
  if (group) {
    files.has_group = true;
    files.group = ParseGroup(*group);
  }
  return files;
}

// Why a name lookup failed, when the reason is that the file is absent.
std::string AbsentHint(bool present, std::string_view file) {
  return present ? "" : StrCat(" (the image has no ", file, ")");
}

}  // namespace

absl::StatusOr<std::optional<std::string>> ReadFileInRoot(const std::string& root,
                                                          std::string_view path, size_t max_bytes) {
  int raw_root = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (raw_root < 0) {
    int err = errno;
    return absl::ErrnoToStatus(err, StrCat("open root ", root));
  }
  Fd root_fd(raw_root);
  std::string relative(path);
  while (!relative.empty() && relative.front() == '/') relative.erase(0, 1);
  if (relative.empty()) relative = ".";
  // RESOLVE_IN_ROOT: "/" and ".." stop at root_fd, and absolute symlinks are
  // taken relative to it, exactly as the container will see them.
  // O_NONBLOCK: opening a FIFO planted by the image must not block us; it is
  // refused below as not a regular file.
  open_how how{.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
               .mode = 0,
               .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  long raw = -1;
  // EAGAIN: a concurrent rename somewhere raced the lookup; the kernel asks
  // for a retry.
  for (int attempt = 0; attempt < 8; ++attempt) {
    raw = syscall(SYS_openat2, root_fd.get(), relative.c_str(), &how, sizeof(how));
    if (raw >= 0 || errno != EAGAIN) break;
  }
  if (raw < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return std::nullopt;
    return absl::ErrnoToStatus(err, StrCat("open ", path, " in ", root));
  }
  Fd fd(static_cast<int>(raw));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    int err = errno;
    return absl::ErrnoToStatus(err, StrCat("stat ", path, " in ", root));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(StrCat(path, " in ", root, " is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::ResourceExhaustedError(
        StrCat(path, " in ", root, " is larger than ", max_bytes, " bytes"));
  }
  std::string content;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      return absl::ErrnoToStatus(err, StrCat("read ", path, " in ", root));
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
    // The file may grow between fstat and read.
    if (content.size() > max_bytes) {
      return absl::ResourceExhaustedError(
          StrCat(path, " in ", root, " is larger than ", max_bytes, " bytes"));
    }
  }
  return content;
}

absl::StatusOr<std::string> UserString(const UserRequest& request) {
  std::string user;
  if (!request.run_as_username.empty()) {
    user = request.run_as_username;
  } else if (request.run_as_user) {
    ASSIGN_OR_RETURN(uint32_t uid, CheckId(*request.run_as_user, "run_as_user"));
    user = StrCat(uid);
  }
  if (request.run_as_group) {
    // critest expects this refusal: a group alone would silently run as root.
    if (user.empty()) {
      return absl::InvalidArgumentError(StrCat("run_as_group ", *request.run_as_group,
                                               " is set without run_as_user or run_as_username"));
    }
    ASSIGN_OR_RETURN(uint32_t gid, CheckId(*request.run_as_group, "run_as_group"));
    user = StrCat(user, ":", gid);
  }
  if (user.empty()) user = request.image_user;
  return user;
}

absl::StatusOr<ResolvedUser> ResolveUser(const std::string& rootfs, const UserRequest& request) {
  ASSIGN_OR_RETURN(std::string user_string, UserString(request));
  std::string_view user_part = user_string;
  std::optional<std::string_view> group_part;
  if (size_t colon = user_string.find(':'); colon != std::string::npos) {
    user_part = std::string_view(user_string).substr(0, colon);
    group_part = std::string_view(user_string).substr(colon + 1);
    if (user_part.empty() || group_part->empty()) {
      return absl::InvalidArgumentError(
          StrCat("user \"", user_string, "\": want user[:group], both parts non-empty"));
    }
  }
  if (user_part.empty()) user_part = "0";

  ASSIGN_OR_RETURN(AccountFiles files, ReadAccountFiles(rootfs));

  ResolvedUser result;
  const PasswdEntry* entry = nullptr;
  if (IsNumeric(user_part)) {
    std::optional<uint32_t> uid = ParseId(user_part);
    if (!uid) {
      return absl::InvalidArgumentError(StrCat("user \"", user_string, "\": uid ", user_part,
                                               " is out of range [0, ", kMaxId, "]"));
    }
    result.uid = *uid;
    for (const PasswdEntry& e : files.passwd) {
      if (e.uid == *uid) {
        entry = &e;
        break;
      }
    }
  } else {
    for (const PasswdEntry& e : files.passwd) {
      if (e.name == user_part) {
        entry = &e;
        break;
      }
    }
    if (entry == nullptr) {
      return absl::InvalidArgumentError(StrCat("user \"", user_part,
                                               "\" not found in the image's /etc/passwd",
                                               AbsentHint(files.has_passwd, "/etc/passwd")));
    }
    result.uid = entry->uid;
  }
  if (entry != nullptr) {
    result.gid = entry->gid;
    result.name = entry->name;
    if (!entry->home.empty()) result.home = entry->home;
  }

  if (group_part) {
    if (IsNumeric(*group_part)) {
      std::optional<uint32_t> gid = ParseId(*group_part);
      if (!gid) {
        return absl::InvalidArgumentError(StrCat("user \"", user_string, "\": gid ", *group_part,
                                                 " is out of range [0, ", kMaxId, "]"));
      }
      result.gid = *gid;
    } else {
      const GroupEntry* group = nullptr;
      for (const GroupEntry& g : files.group) {
        if (g.name == *group_part) {
          group = &g;
          break;
        }
      }
      if (group == nullptr) {
        return absl::InvalidArgumentError(StrCat("group \"", *group_part,
                                                 "\" not found in the image's /etc/group",
                                                 AbsentHint(files.has_group, "/etc/group")));
      }
      result.gid = group->gid;
    }
  }

  auto add = [&result](uint32_t gid) {
    if (std::find(result.additional_gids.begin(), result.additional_gids.end(), gid) ==
        result.additional_gids.end()) {
      result.additional_gids.push_back(gid);
    }
  };
  add(result.gid);
  for (int64_t group : request.supplemental_groups) {
    ASSIGN_OR_RETURN(uint32_t gid, CheckId(group, "supplemental group"));
    add(gid);
  }
  // As initgroups(3) would: every group that lists the user by name.
  if (!result.name.empty()) {
    for (const GroupEntry& g : files.group) {
      if (std::find(g.members.begin(), g.members.end(), result.name) != g.members.end()) {
        add(g.gid);
      }
    }
  }
  return result;
}

}  // namespace berth::container
