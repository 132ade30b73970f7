#include "runtime/snapshot/layer_unpacker.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::snapshot {
namespace {

constexpr size_t kFileChunk = 1 << 20;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";
constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";
// overlayfs keeps its own metadata (opaque, redirect, origin, metacopy) under this
// prefix. A layer must not smuggle it in: a forged redirect would make overlayfs look
// up other paths of the lower layers than the image says.
constexpr std::string_view kOverlayXattrPrefix = "trusted.overlay.";

struct ArchiveReadDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveReadDeleter>;

struct DigestDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

std::string ArchiveMessage(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unknown libarchive error";
}

std::string Quoted(std::string_view name) { return StrCat("layer entry \"", name, "\""); }

// The first half of the pipeline: a libarchive reader in "raw" format with the gzip and
// zstd filters undoes the compression (none when neither bids) and yields the tar
// stream, which is hashed into the diff_id as it passes.
class Decompressor {
 public:
  explicit Decompressor(ByteSource& source) : source_(source) {}

  absl::Status Open() {
    digest_.reset(EVP_MD_CTX_new());
    if (digest_ == nullptr || EVP_DigestInit_ex(digest_.get(), EVP_sha256(), nullptr) != 1) {
      return absl::ResourceExhaustedError("layer: cannot start SHA-256");
    }
    archive_.reset(archive_read_new());
    if (archive_ == nullptr) return absl::ResourceExhaustedError("layer: archive_read_new");
    // Filters other than gzip and zstd are not OCI layer media types; leaving them out
    // keeps the attack surface small.
    if (archive_read_support_filter_gzip(archive_.get()) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(archive_.get()) != ARCHIVE_OK ||
        archive_read_support_format_raw(archive_.get()) != ARCHIVE_OK) {
      return absl::InternalError(
          StrCat("layer: set up decompression: ", ArchiveMessage(archive_.get())));
    }
    if (archive_read_open(archive_.get(), this, nullptr, &Decompressor::ReadCallback, nullptr) !=
        ARCHIVE_OK) {
      return Failure("open");
    }
    archive_entry* entry;
    int result = archive_read_next_header(archive_.get(), &entry);
    if (result == ARCHIVE_EOF) {
      done_ = true;  // an empty blob: the tar reader reports it
    } else if (result < ARCHIVE_WARN) {
      return Failure("decompress");
    }
    return absl::OkStatus();
  }

  // The next chunk of the uncompressed stream; empty at its end. The view stays valid
  // until the next call.
  absl::StatusOr<std::string_view> Read() {
    while (!done_) {
      const void* block;
      size_t size;
      la_int64_t offset;
      int result = archive_read_data_block(archive_.get(), &block, &size, &offset);
      if (result == ARCHIVE_EOF) {
        done_ = true;
        break;
      }
      if (result < ARCHIVE_WARN) return Failure("decompress");
      if (offset != bytes_) {
        error_ = absl::DataLossError(
            StrCat("layer: decompress: stream jumps from byte ", bytes_, " to ", offset));
        done_ = true;
        return error_;
      }
      if (size == 0) continue;
      EVP_DigestUpdate(digest_.get(), block, size);
      bytes_ += static_cast<int64_t>(size);
      return std::string_view(static_cast<const char*>(block), size);
    }
    return std::string_view();
  }

  // "sha256:<hex>" of everything Read() returned; call once, after the end.
  std::string DiffId() {
    unsigned char hash[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(digest_.get(), hash, &length);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned int i = 0; i < length; ++i) {
      out.push_back(kHex[hash[i] >> 4]);
      out.push_back(kHex[hash[i] & 0xf]);
    }
    return out;
  }

  int64_t bytes() const { return bytes_; }

  // The status of the last failed Read(), if any: why the tar reader saw an error.
  const absl::Status& error() const { return error_; }

 private:
  static la_ssize_t ReadCallback(archive* a, void* client_data, const void** buffer) {
    auto* self = static_cast<Decompressor*>(client_data);
    if (self->source_done_) return 0;
    absl::StatusOr<std::string_view> chunk = self->source_.Read();
    if (!chunk.ok()) {
      self->source_error_ = chunk.status();
      archive_set_error(a, EIO, "%s", std::string(chunk.status().message()).c_str());
      return -1;
    }
    if (chunk->empty()) self->source_done_ = true;
    *buffer = chunk->data();
    return static_cast<la_ssize_t>(chunk->size());
  }

  // A failure of the decompressing reader: the source's own error if it failed,
  // otherwise corrupt data.
  absl::Status Failure(std::string_view what) {
    if (!source_error_.ok()) {
      error_ = source_error_;
    } else {
      error_ = absl::DataLossError(StrCat("layer: ", what, ": ", ArchiveMessage(archive_.get())));
    }
    done_ = true;
    return error_;
  }

  ByteSource& source_;
  ArchivePtr archive_;
  std::unique_ptr<EVP_MD_CTX, DigestDeleter> digest_;
  absl::Status source_error_;
  absl::Status error_;
  bool source_done_ = false;
  bool done_ = false;
  int64_t bytes_ = 0;
};

la_ssize_t TarReadCallback(archive* a, void* client_data, const void** buffer) {
  auto* decompressor = static_cast<Decompressor*>(client_data);
  absl::StatusOr<std::string_view> chunk = decompressor->Read();
  if (!chunk.ok()) {
    archive_set_error(a, EIO, "%s", std::string(chunk.status().message()).c_str());
    return -1;
  }
  *buffer = chunk->data();
  return static_cast<la_ssize_t>(chunk->size());
}

long OpenAt2(int dirfd, const std::string& path, uint64_t flags, uint64_t resolve) {
  open_how how{.flags = flags, .mode = 0, .resolve = resolve};
  long fd;
  // EAGAIN: a rename elsewhere raced the lookup; nothing renames inside our tree, but
  // the kernel asks for a retry all the same.
  for (int attempt = 0; attempt < 8; ++attempt) {
    fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how));
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return fd;
}

std::string JoinPath(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) out.push_back('/');
    out += parts[i];
  }
  return out;
}

// The components of an entry name or hard link target, with empty and "." components
// dropped. Absolute names and ".." components are refused outright: a well-formed layer
// has neither, and refusing is simpler to trust than any cleaning rule.
absl::StatusOr<std::vector<std::string>> SplitEntryPath(std::string_view name,
                                                        std::string_view what) {
  if (name.empty()) return absl::InvalidArgumentError(StrCat(what, " is empty"));
  if (name.front() == '/') {
    return absl::InvalidArgumentError(StrCat(what, " is an absolute path"));
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part == "..") return absl::InvalidArgumentError(StrCat(what, " has a \"..\" component"));
    if (!part.empty() && part != ".") parts.emplace_back(part);
    start = end + 1;
  }
  return parts;
}

struct Times {
  std::array<timespec, 2> value;  // atime, mtime as utimensat wants them
};

// The second half: walks the tar entries and creates them beneath dest_dir.
class Extractor {
 public:
  // `decompressor_error` is why the tar stream broke, if the decompressor failed.
  Extractor(UniqueFd root, const absl::Status& decompressor_error)
      : root_(std::move(root)),
        host_root_(HasHostRoot()),
        decompressor_error_(decompressor_error) {}

  absl::Status Extract(archive* tar, archive_entry* entry) {
    const char* raw_name = archive_entry_pathname(entry);
    if (raw_name == nullptr) raw_name = archive_entry_pathname_utf8(entry);
    if (raw_name == nullptr) {
      return absl::InvalidArgumentError("layer entry with a name that cannot be read");
    }
    const std::string name = raw_name;
    const std::string what = Quoted(name);
    ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitEntryPath(name, what));
    // The layer root itself ("./"): containerd ignores it too, and the snapshot's root
    // directory is ours to set up.
    if (parts.empty()) return absl::OkStatus();
    const std::string base = parts.back();
    parts.pop_back();
    // -1 would mean "leave unchanged" to chown; larger ids do not exist.
    for (int64_t id : {archive_entry_uid(entry), archive_entry_gid(entry)}) {
      if (id < 0 || id >= int64_t{UINT32_MAX}) {
        return absl::InvalidArgumentError(StrCat(what, " has an invalid owner id ", id));
      }
    }

    if (base.starts_with(kWhiteoutPrefix)) return Whiteout(entry, parts, base, what);

    ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(parts, parts.size(), what, /*create=*/true));
    parts.push_back(base);
    const std::string path = JoinPath(parts, parts.size());

    if (const char* target = archive_entry_hardlink(entry)) {
      RETURN_IF_ERROR(ReplaceExisting(parent.get(), base, path, /*keep_dir=*/false, what).status());
      return Hardlink(parent.get(), base, target, what);
    }
    const mode_t type = archive_entry_filetype(entry);
    switch (type) {
      case AE_IFREG:
        RETURN_IF_ERROR(
            ReplaceExisting(parent.get(), base, path, /*keep_dir=*/false, what).status());
        return RegularFile(tar, entry, parent.get(), base, what);
      case AE_IFDIR: {
        ASSIGN_OR_RETURN(bool exists,
                         ReplaceExisting(parent.get(), base, path, /*keep_dir=*/true, what));
        return Directory(entry, parent.get(), base, path, exists, what);
      }
      case AE_IFLNK:
        RETURN_IF_ERROR(
            ReplaceExisting(parent.get(), base, path, /*keep_dir=*/false, what).status());
        return Symlink(entry, parent.get(), base, what);
      case AE_IFIFO:
        RETURN_IF_ERROR(
            ReplaceExisting(parent.get(), base, path, /*keep_dir=*/false, what).status());
        return Fifo(entry, parent.get(), base, what);
      case AE_IFCHR:
      case AE_IFBLK:
        // A device node in an image would give the container direct access to host
        // hardware; the runtime creates the devices a container may have.
        return absl::InvalidArgumentError(
            StrCat(what, " is a ", type == AE_IFCHR ? "character" : "block",
                   " device; device nodes are not allowed in layers"));
      default:
        return absl::InvalidArgumentError(
            StrCat(what, " has an unsupported file type 0", fmt::format("{:o}", type)));
    }
  }

  // Directory mtimes, applied last and deepest first: creating children changes them.
  absl::Status FinishDirectories() {
    std::vector<std::pair<std::string, Times>> dirs(dir_times_.begin(), dir_times_.end());
    auto depth = [](const std::string& path) { return std::count(path.begin(), path.end(), '/'); };
    std::stable_sort(dirs.begin(), dirs.end(),
                     [&](const auto& a, const auto& b) { return depth(a.first) > depth(b.first); });
    for (const auto& [path, times] : dirs) {
      ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitEntryPath(path, Quoted(path)));
      std::string base = parts.back();
      absl::StatusOr<UniqueFd> parent =
          OpenParent(parts, parts.size() - 1, Quoted(path), /*create=*/false);
      if (!parent.ok()) {
        // A later entry replaced a parent with something that no longer leads here
        // (a file, a symlink elsewhere): the directory is gone from this path.
        if (absl::IsInvalidArgument(parent.status())) continue;
        return parent.status();
      }
      if (utimensat(parent->get(), base.c_str(), times.value.data(), AT_SYMLINK_NOFOLLOW) != 0 &&
          errno != ENOENT) {
        return ErrnoStatus(errno, StrCat(Quoted(path), ": set times"));
      }
    }
    return absl::OkStatus();
  }

 private:
  // Opens the directory made of the first `count` components of `parts`, resolved
  // beneath the root: a symlink met on the way may point anywhere inside the layer but
  // never outside it (absolute targets included) and never through /proc magic links.
  // With `create`, missing directories are made (0755, as containerd does).
  absl::StatusOr<UniqueFd> OpenParent(const std::vector<std::string>& parts, size_t count,
                                      const std::string& what, bool create) {
    constexpr uint64_t kFlags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    if (count == 0) {
      long fd = OpenAt2(root_.get(), ".", kFlags, kResolve);
      if (fd < 0) return ErrnoStatus(errno, StrCat(what, ": open layer root"));
      return UniqueFd(static_cast<int>(fd));
    }
    long fd = OpenAt2(root_.get(), JoinPath(parts, count), kFlags, kResolve);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno != ENOENT || !create) return ParentError(errno, JoinPath(parts, count), what);

    // Some component is missing: walk down, creating what is not there.
    UniqueFd current;
    for (size_t i = 1; i <= count; ++i) {
      const std::string prefix = JoinPath(parts, i);
      fd = OpenAt2(root_.get(), prefix, kFlags, kResolve);
      if (fd < 0 && errno == ENOENT) {
        int dirfd = i == 1 ? root_.get() : current.get();
        if (mkdirat(dirfd, parts[i - 1].c_str(), 0700) != 0) {
          // EEXIST here means a dangling symlink is in the way.
          return ParentError(errno == EEXIST ? ENOENT : errno, prefix, what);
        }
        fd = OpenAt2(root_.get(), prefix, kFlags, kResolve);
        // The mode is set explicitly: berthd's umask is not the layer's business.
        if (fd >= 0 && fchmod(static_cast<int>(fd), 0755) != 0) {
          int err = errno;
          close(static_cast<int>(fd));
          return ErrnoStatus(err, StrCat(what, ": chmod parent ", prefix));
        }
      }
      if (fd < 0) return ParentError(errno, prefix, what);
      current = UniqueFd(static_cast<int>(fd));
    }
    return current;
  }

  static absl::Status ParentError(int err, const std::string& parent, const std::string& what) {
    switch (err) {
      case EXDEV:
        return absl::InvalidArgumentError(
            StrCat(what, " resolves outside the layer (through \"", parent, "\")"));
      case ENOTDIR:
        return absl::InvalidArgumentError(
            StrCat(what, ": parent \"", parent, "\" is not a directory"));
      case ELOOP:
        return absl::InvalidArgumentError(
            StrCat(what, ": too many symlinks resolving \"", parent, "\""));
      case ENOENT:
        return absl::InvalidArgumentError(
            StrCat(what, ": parent \"", parent, "\" does not exist (a dangling symlink?)"));
      default:
        return ErrnoStatus(err, StrCat(what, ": open parent \"", parent, "\""));
    }
  }

  // Makes room for an entry named `base` in `parent`: whatever the layer put there
  // before is removed, except that with `keep_dir` an existing directory stays (a
  // directory entry over a directory only updates its metadata). Returns whether
  // something was kept.
  absl::StatusOr<bool> ReplaceExisting(int parent, const std::string& base, const std::string& path,
                                       bool keep_dir, const std::string& what) {
    struct stat st;
    if (fstatat(parent, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return false;
      return ErrnoStatus(errno, StrCat(what, ": stat"));
    }
    if (keep_dir && S_ISDIR(st.st_mode)) return true;
    if (S_ISDIR(st.st_mode)) {
      // Forget the times of directories that go away.
      dir_times_.erase(path);
      const std::string prefix = path + "/";
      for (auto it = dir_times_.lower_bound(prefix);
           it != dir_times_.end() && it->first.starts_with(prefix);) {
        it = dir_times_.erase(it);
      }
    }
    absl::Status removed = RemoveAllAt(parent, base);
    if (!removed.ok()) {
      return absl::Status(removed.code(), StrCat(what, ": replace: ", removed.message()));
    }
    return false;
  }

  absl::Status Whiteout(archive_entry* entry, const std::vector<std::string>& parts,
                        const std::string& base, const std::string& what) {
    if (base == kOpaqueWhiteout) {
      ASSIGN_OR_RETURN(UniqueFd dir, OpenParent(parts, parts.size(), what, /*create=*/true));
      if (fsetxattr(dir.get(), kOpaqueXattr, "y", 1, 0) != 0) {
        return ErrnoStatus(errno, StrCat(what, ": set ", kOpaqueXattr, " (needs CAP_SYS_ADMIN)"));
      }
      return absl::OkStatus();
    }
    // Other ".wh..wh." names are aufs bookkeeping (".wh..wh.plnk", ".wh..wh.aufs"); they
    // carry nothing an overlay needs.
    if (base.starts_with(kWhiteoutMetaPrefix)) return absl::OkStatus();
    const std::string hidden = base.substr(kWhiteoutPrefix.size());
    if (hidden.empty() || hidden == "." || hidden == "..") {
      return absl::InvalidArgumentError(StrCat(what, " is a whiteout of no valid name"));
    }
    ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(parts, parts.size(), what, /*create=*/true));
    std::vector<std::string> hidden_parts = parts;
    hidden_parts.push_back(hidden);
    RETURN_IF_ERROR(ReplaceExisting(parent.get(), hidden,
                                    JoinPath(hidden_parts, hidden_parts.size()),
                                    /*keep_dir=*/false, what)
                        .status());
    // overlayfs's whiteout: a character device 0/0. The kernel lets anyone create this
    // one device (since 5.8); it is the only device node a layer ever yields.
    if (mknodat(parent.get(), hidden.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": create whiteout device"));
    }
    return Chown(entry, parent.get(), hidden, what);
  }

  absl::Status RegularFile(archive* tar, archive_entry* entry, int parent, const std::string& base,
                           const std::string& what) {
    int raw_fd =
        openat(parent, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (raw_fd < 0) return ErrnoStatus(errno, StrCat(what, ": create"));
    UniqueFd fd(raw_fd);
    int64_t end = 0;
    for (;;) {
      const void* block;
      size_t size;
      la_int64_t offset;
      int result = archive_read_data_block(tar, &block, &size, &offset);
      if (result == ARCHIVE_EOF) break;
      if (result < ARCHIVE_WARN) return TarError(tar, StrCat(what, ": read content"));
      const char* data = static_cast<const char*>(block);
      while (size > 0) {
        ssize_t written = pwrite(fd.get(), data, size, offset);
        if (written < 0) {
          if (errno == EINTR) continue;
          return ErrnoStatus(errno, StrCat(what, ": write"));
        }
        data += written;
        size -= static_cast<size_t>(written);
        offset += written;
      }
      end = std::max<int64_t>(end, offset);
    }
    // A sparse file may end in a hole that no data block reaches.
    if (archive_entry_size_is_set(entry) && archive_entry_size(entry) > end &&
        ftruncate(fd.get(), archive_entry_size(entry)) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": set size"));
    }
    // chown clears setuid/setgid bits and file capabilities, so it goes first, then
    // the mode, then xattrs (security.capability among them).
    if (host_root_ && fchown(fd.get(), archive_entry_uid(entry), archive_entry_gid(entry)) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": chown"));
    }
    if (fchmod(fd.get(), archive_entry_perm(entry) & 07777) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": chmod"));
    }
    RETURN_IF_ERROR(SetXattrs(entry, what, [&](const char* name, const void* value, size_t size) {
      return fsetxattr(fd.get(), name, value, size, 0);
    }));
    if (std::optional<Times> times = EntryTimes(entry);
        times && futimens(fd.get(), times->value.data()) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": set times"));
    }
    return absl::OkStatus();
  }

  absl::Status Directory(archive_entry* entry, int parent, const std::string& base,
                         const std::string& path, bool exists, const std::string& what) {
    if (!exists && mkdirat(parent, base.c_str(), 0700) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": mkdir"));
    }
    int raw_fd = openat(parent, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (raw_fd < 0) return ErrnoStatus(errno, StrCat(what, ": open"));
    UniqueFd fd(raw_fd);
    if (host_root_ && fchown(fd.get(), archive_entry_uid(entry), archive_entry_gid(entry)) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": chown"));
    }
    if (fchmod(fd.get(), archive_entry_perm(entry) & 07777) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": chmod"));
    }
    RETURN_IF_ERROR(SetXattrs(entry, what, [&](const char* name, const void* value, size_t size) {
      return fsetxattr(fd.get(), name, value, size, 0);
    }));
    if (std::optional<Times> times = EntryTimes(entry)) dir_times_[path] = *times;
    return absl::OkStatus();
  }

  absl::Status Symlink(archive_entry* entry, int parent, const std::string& base,
                       const std::string& what) {
    const char* target = archive_entry_symlink(entry);
    if (target == nullptr) target = archive_entry_symlink_utf8(entry);
    if (target == nullptr || *target == '\0') {
      return absl::InvalidArgumentError(StrCat(what, " is a symlink with no target"));
    }
    // The target is stored as given, whatever it names: a symlink is never followed
    // while extracting (parents resolve beneath the root), only inside the container.
    if (symlinkat(target, parent, base.c_str()) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": symlink"));
    }
    RETURN_IF_ERROR(Chown(entry, parent, base, what));
    RETURN_IF_ERROR(SetXattrsAt(entry, parent, base, what));
    return SetTimesAt(entry, parent, base, what);
  }

  absl::Status Fifo(archive_entry* entry, int parent, const std::string& base,
                    const std::string& what) {
    if (mknodat(parent, base.c_str(), S_IFIFO | 0600, 0) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": mkfifo"));
    }
    RETURN_IF_ERROR(Chown(entry, parent, base, what));
    // Follows nothing: `base` is the FIFO just made, in a directory only we write to.
    if (fchmodat(parent, base.c_str(), archive_entry_perm(entry) & 07777, 0) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": chmod"));
    }
    RETURN_IF_ERROR(SetXattrsAt(entry, parent, base, what));
    return SetTimesAt(entry, parent, base, what);
  }

  absl::Status Hardlink(int parent, const std::string& base, const char* raw_target,
                        const std::string& what) {
    std::string target_what = StrCat(what, ": hard link target \"", raw_target, "\"");
    ASSIGN_OR_RETURN(std::vector<std::string> target, SplitEntryPath(raw_target, target_what));
    if (target.empty()) {
      return absl::InvalidArgumentError(StrCat(target_what, " is the layer root"));
    }
    absl::StatusOr<UniqueFd> target_parent =
        OpenParent(target, target.size() - 1, target_what, /*create=*/false);
    if (!target_parent.ok()) return target_parent.status();
    // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself, as tar means.
    if (linkat(target_parent->get(), target.back().c_str(), parent, base.c_str(), 0) != 0) {
      if (errno == ENOENT) {
        return absl::InvalidArgumentError(StrCat(target_what, " does not exist in the layer"));
      }
      if (errno == EPERM) {
        return absl::InvalidArgumentError(StrCat(target_what, " cannot be hard linked"));
      }
      return ErrnoStatus(errno, StrCat(what, ": link"));
    }
    return absl::OkStatus();
  }

  absl::Status Chown(archive_entry* entry, int parent, const std::string& base,
                     const std::string& what) {
    if (host_root_ && fchownat(parent, base.c_str(), archive_entry_uid(entry),
                               archive_entry_gid(entry), AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": chown"));
    }
    return absl::OkStatus();
  }

  absl::Status SetTimesAt(archive_entry* entry, int parent, const std::string& base,
                          const std::string& what) {
    if (std::optional<Times> times = EntryTimes(entry);
        times && utimensat(parent, base.c_str(), times->value.data(), AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus(errno, StrCat(what, ": set times"));
    }
    return absl::OkStatus();
  }

  // xattrs of something we hold no fd for (symlinks, FIFOs): lsetxattr through the
  // parent's /proc/self/fd entry. The magic link is ours and names the directory we
  // resolved safely; the final component is not followed.
  absl::Status SetXattrsAt(archive_entry* entry, int parent, const std::string& base,
                           const std::string& what) {
    if (archive_entry_xattr_count(entry) == 0) return absl::OkStatus();
    const std::string path = StrCat("/proc/self/fd/", parent, "/", base);
    return SetXattrs(entry, what, [&](const char* name, const void* value, size_t size) {
      return lsetxattr(path.c_str(), name, value, size, 0);
    });
  }

  template <typename SetFn>
  absl::Status SetXattrs(archive_entry* entry, const std::string& what, SetFn set) {
    archive_entry_xattr_reset(entry);
    const char* name;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
      if (std::string_view(name).starts_with(kOverlayXattrPrefix)) continue;
      if (set(name, value, size) == 0) continue;
      // A file system without xattrs of that namespace, and non-root callers, which may
      // only set user.*: skip, as containerd does, rather than fail the image.
      if (errno == ENOTSUP || (errno == EPERM && !host_root_)) continue;
      // The kernel refuses user.* on symlinks and FIFOs.
      if (errno == EPERM && std::string_view(name).starts_with("user.")) continue;
      return ErrnoStatus(errno, StrCat(what, ": set xattr ", name));
    }
    return absl::OkStatus();
  }

  static std::optional<Times> EntryTimes(archive_entry* entry) {
    if (!archive_entry_mtime_is_set(entry)) return std::nullopt;
    timespec mtime{.tv_sec = archive_entry_mtime(entry),
                   .tv_nsec = archive_entry_mtime_nsec(entry)};
    timespec atime = mtime;
    if (archive_entry_atime_is_set(entry)) {
      atime = {.tv_sec = archive_entry_atime(entry), .tv_nsec = archive_entry_atime_nsec(entry)};
    }
    return Times{.value = {atime, mtime}};
  }

  // The tar reader failed: the decompressor's error if that is why, else a corrupt tar.
  absl::Status TarError(archive* tar, std::string_view what) {
    if (!decompressor_error_.ok()) return decompressor_error_;
    return absl::DataLossError(StrCat(what, ": ", ArchiveMessage(tar)));
  }

  UniqueFd root_;
  const bool host_root_;
  const absl::Status& decompressor_error_;
  std::map<std::string, Times> dir_times_;
};

}  // namespace

absl::StatusOr<std::string_view> StringSource::Read() {
  if (done_) return std::string_view();
  done_ = true;
  return data_;
}

absl::StatusOr<std::string_view> FileSource::Read() {
  if (!fd_.valid()) {
    int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, StrCat("open layer blob ", path_));
    fd_ = UniqueFd(fd);
    buffer_.resize(kFileChunk);
  }
  for (;;) {
    ssize_t n = read(fd_.get(), buffer_.data(), buffer_.size());
    if (n >= 0) return std::string_view(buffer_.data(), static_cast<size_t>(n));
    if (errno != EINTR) return ErrnoStatus(errno, StrCat("read layer blob ", path_));
  }
}

absl::StatusOr<UnpackResult> UnpackLayer(ByteSource& source, const std::string& dest_dir) {
  ASSIGN_OR_RETURN(UniqueFd root, OpenDir(dest_dir));
  Decompressor decompressor(source);
  RETURN_IF_ERROR(decompressor.Open());

  // The second reader parses the tar that the first one yields. Both are pull-driven:
  // the tar reader's read callback pulls from the decompressor, which pulls from the
  // source, so one thread and a few buffers do the whole job.
  ArchivePtr tar(archive_read_new());
  if (tar == nullptr) return absl::ResourceExhaustedError("layer: archive_read_new");
  if (archive_read_support_format_tar(tar.get()) != ARCHIVE_OK) {
    return absl::InternalError(StrCat("layer: set up tar reader: ", ArchiveMessage(tar.get())));
  }
  auto tar_failure = [&](std::string_view what) -> absl::Status {
    if (!decompressor.error().ok()) return decompressor.error();
    return absl::DataLossError(StrCat("layer: ", what, ": ", ArchiveMessage(tar.get())));
  };
  if (archive_read_open(tar.get(), &decompressor, nullptr, TarReadCallback, nullptr) !=
      ARCHIVE_OK) {
    return tar_failure("open tar");
  }

  Extractor extractor(std::move(root), decompressor.error());
  archive_entry* entry;
  int result;
  while ((result = archive_read_next_header(tar.get(), &entry)) == ARCHIVE_OK ||
         result == ARCHIVE_WARN) {
    RETURN_IF_ERROR(extractor.Extract(tar.get(), entry));
  }
  if (result != ARCHIVE_EOF) return tar_failure("read tar");
  RETURN_IF_ERROR(extractor.FinishDirectories());

  // Whatever follows the end-of-archive blocks (record padding) is part of the diff_id.
  for (;;) {
    ASSIGN_OR_RETURN(std::string_view rest, decompressor.Read());
    if (rest.empty()) break;
  }
  return UnpackResult{.diff_id = decompressor.DiffId(), .uncompressed_bytes = decompressor.bytes()};
}

}  // namespace berth::snapshot
