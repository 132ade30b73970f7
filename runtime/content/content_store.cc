#include "runtime/content/content_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::content {
namespace {

using image::DigestHex;
using image::ValidateDigest;


absl::Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, StrCat("open ", dir));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, StrCat("fsync ", dir));
  return absl::OkStatus();
}

// mkdir that accepts an existing directory. A directory it creates is made
// durable in its parent, so blobs fsync'ed into it later are reachable after
// a power cut.
absl::Status EnsureDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) {
    return FsyncDir(std::filesystem::path(path).parent_path().string());
  }
  int err = errno;
  struct stat st;
  if (err == EEXIST && ::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(StrCat(path, " exists and is not a directory"));
  }
  return ErrnoStatus(err, StrCat("mkdir ", path));
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, StrCat("write ", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string BlobName(std::string_view digest) { return StrCat("blob ", digest); }

}  // namespace

BlobWriter::BlobWriter(std::string expected_digest, int64_t expected_size, int fd,
                       std::string temp_path, std::string blob_dir)
    : expected_digest_(std::move(expected_digest)),
      expected_size_(expected_size),
      fd_(fd),
      temp_path_(std::move(temp_path)),
      blob_dir_(std::move(blob_dir)) {}

BlobWriter::~BlobWriter() {
  if (!committed_) Discard();
}

void BlobWriter::Discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  // Unlink only while the name is ours: once removed, mkstemp may hand the
  // same name to another writer.
  if (temp_exists_) {
    ::unlink(temp_path_.c_str());
    temp_exists_ = false;
  }
}

absl::Status BlobWriter::Fail(absl::Status error) {
  error_ = error;
  Discard();
  return error;
}

absl::Status BlobWriter::Write(std::string_view data) {
  if (committed_) {
    return absl::FailedPreconditionError(
        StrCat(BlobName(expected_digest_), ": write after commit"));
  }
  if (!error_.ok()) return error_;
  if (expected_size_ >= 0 && static_cast<int64_t>(data.size()) > expected_size_ - written_) {
    // Stop at once: a registry sending more than the descriptor promised is
    // either broken or hostile, and the disk should not fill with it.
    return Fail(absl::DataLossError(StrCat(BlobName(expected_digest_), ": more than the expected ",
                                           expected_size_, " bytes arrived")));
  }
  if (absl::Status s = WriteAll(fd_, data, temp_path_); !s.ok()) {
    return Fail(absl::Status(s.code(), StrCat(BlobName(expected_digest_), ": ", s.message())));
  }
  hasher_.Update(data);
  written_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::Status BlobWriter::Commit() {
  const std::string name = BlobName(expected_digest_);
  if (committed_) return absl::FailedPreconditionError(StrCat(name, ": already committed"));
  if (!error_.ok()) return error_;
  if (expected_size_ >= 0 && written_ != expected_size_) {
    return Fail(
        absl::DataLossError(StrCat(name, ": got ", written_, " bytes, expected ", expected_size_)));
  }
  std::string actual = hasher_.Digest();
  if (actual != expected_digest_) {
    return Fail(absl::DataLossError(StrCat(name, ": content has digest ", actual, " (", written_,
                                           " bytes), expected ", expected_digest_)));
  }
  auto fail_io = [&](int err, std::string_view what) {
    return Fail(ErrnoStatus(err, StrCat(name, ": ", what)));
  };

  const std::string final_path = StrCat(blob_dir_, "/", DigestHex(expected_digest_));
  struct stat st;
  if (::stat(final_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    // Another writer (or an earlier pull) published the same content: its
    // bytes are verified and durable already.
    Discard();
    committed_ = true;
    return absl::OkStatus();
  }
  // The content must be on disk before its name is: otherwise a power cut
  // could leave a published blob with empty or partial content.
  if (::fsync(fd_) != 0) return fail_io(errno, StrCat("fsync ", temp_path_));
  // Read-only, so nothing can alter a blob in place and break its name.
  if (::fchmod(fd_, 0444) != 0) return fail_io(errno, StrCat("chmod ", temp_path_));
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return fail_io(errno, StrCat("close ", temp_path_));
  if (::rename(temp_path_.c_str(), final_path.c_str()) != 0) {
    return fail_io(errno, StrCat("rename ", temp_path_, " to ", final_path));
  }
  temp_exists_ = false;
  committed_ = true;
  // The blob is visible and correct from here on; the fsync only makes its
  // name survive a power cut, so a failure is reported but changes nothing.
  if (absl::Status s = FsyncDir(blob_dir_); !s.ok()) {
    return absl::Status(s.code(), StrCat(name, ": ", s.message()));
  }
  return absl::OkStatus();
}

ContentStore::ContentStore(std::string root)
    : root_(std::move(root)),
      blob_dir_(StrCat(root_, "/blobs/sha256")),
      ingest_dir_(StrCat(root_, "/ingest")) {}

absl::StatusOr<std::unique_ptr<ContentStore>> ContentStore::Open(std::string root) {
  if (root.empty()) return absl::InvalidArgumentError("content store: root is empty");
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return absl::InternalError(StrCat("content store: mkdir ", root, ": ", ec.message()));
  std::unique_ptr<ContentStore> store(new ContentStore(root));
  for (const auto& [dir, mode] : {std::pair<std::string, mode_t>{StrCat(root, "/blobs"), 0755},
                                  {store->blob_dir_, 0755},
                                  {store->ingest_dir_, 0700}}) {
    if (absl::Status s = EnsureDir(dir, mode); !s.ok()) {
      return absl::Status(s.code(), StrCat("content store: ", s.message()));
    }
  }
  return store;
}

std::string ContentStore::BlobPath(std::string_view digest) const {
  if (!ValidateDigest(digest).ok()) return "";
  return StrCat(blob_dir_, "/", DigestHex(digest));
}

bool ContentStore::Has(std::string_view digest) const {
  std::string path = BlobPath(digest);
  struct stat st;
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<int64_t> ContentStore::Size(std::string_view digest) const {
  RETURN_IF_ERROR(ValidateDigest(digest));
  std::string path = BlobPath(digest);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(StrCat(BlobName(digest), ": not found"));
    return ErrnoStatus(errno, StrCat(BlobName(digest), ": stat ", path));
  }
  return static_cast<int64_t>(st.st_size);
}

absl::StatusOr<std::string> ContentStore::ReadBlob(std::string_view digest,
                                                   int64_t max_bytes) const {
  RETURN_IF_ERROR(ValidateDigest(digest));
  const std::string name = BlobName(digest);
  std::string path = BlobPath(digest);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(StrCat(name, ": not found"));
    return ErrnoStatus(errno, StrCat(name, ": open ", path));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, StrCat(name, ": stat ", path));
  if (st.st_size > max_bytes) {
    return absl::FailedPreconditionError(
        StrCat(name, ": ", st.st_size, " bytes, more than the ", max_bytes, " allowed here"));
  }
  std::string content(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < content.size()) {
    ssize_t n = ::read(fd, content.data() + got, content.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, StrCat(name, ": read ", path));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  content.resize(got);
  // Blobs never change, so a mismatch means the disk or someone outside berth
  // damaged it; refuse rather than parse corrupt metadata.
  if (std::string actual = image::Sha256Digest(content); actual != digest) {
    return absl::DataLossError(
        StrCat(name, ": stored content has digest ", actual, "; ", path, " is damaged"));
  }
  return content;
}

absl::StatusOr<std::unique_ptr<BlobWriter>> ContentStore::NewWriter(std::string expected_digest,
                                                                    int64_t expected_size) {
  RETURN_IF_ERROR(ValidateDigest(expected_digest));
  if (expected_size < -1) {
    return absl::InvalidArgumentError(
        StrCat(BlobName(expected_digest), ": invalid expected size ", expected_size));
  }
  // mkostemp gives every writer its own name, which is what lets concurrent
  // pulls of the same blob proceed independently.
  std::string temp = StrCat(ingest_dir_, "/", DigestHex(expected_digest), ".XXXXXX");
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno,
                       StrCat(BlobName(expected_digest), ": create temp file in ", ingest_dir_));
  }
  return std::unique_ptr<BlobWriter>(
      new BlobWriter(std::move(expected_digest), expected_size, fd, std::move(temp), blob_dir_));
}

absl::Status ContentStore::Delete(std::string_view digest) {
  RETURN_IF_ERROR(ValidateDigest(digest));
  std::string path = BlobPath(digest);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, StrCat(BlobName(digest), ": delete ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ContentStore::List() const {
  DIR* dir = ::opendir(blob_dir_.c_str());
  if (dir == nullptr) return ErrnoStatus(errno, StrCat("content store: open ", blob_dir_));
  std::vector<std::string> digests;
  errno = 0;
  while (struct dirent* entry = ::readdir(dir)) {
    if (image::IsSha256Hex(entry->d_name)) digests.push_back(StrCat("sha256:", entry->d_name));
    errno = 0;
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return ErrnoStatus(err, StrCat("content store: read ", blob_dir_));
  std::sort(digests.begin(), digests.end());
  return digests;
}

absl::Status ContentStore::CleanIngest() {
  std::error_code ec;
  std::filesystem::directory_iterator it(ingest_dir_, ec);
  if (ec)
    return absl::InternalError(StrCat("content store: open ", ingest_dir_, ": ", ec.message()));
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code remove_ec;
    std::filesystem::remove_all(it->path(), remove_ec);
    if (remove_ec) {
      return absl::InternalError(
          StrCat("content store: remove ", it->path().string(), ": ", remove_ec.message()));
    }
  }
  if (ec)
    return absl::InternalError(StrCat("content store: read ", ingest_dir_, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ContentStore::DiskUsage() const {
  int64_t total = 0;
  for (const std::string& dir : {blob_dir_, ingest_dir_}) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return ErrnoStatus(errno, StrCat("content store: open ", dir));
    errno = 0;
    while (struct dirent* entry = ::readdir(d)) {
      std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      // Files come and go while we look (commits, deletes): skip vanished ones.
      if (::fstatat(dirfd(d), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        total += static_cast<int64_t>(st.st_blocks) * 512;
      }
      errno = 0;
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return ErrnoStatus(err, StrCat("content store: read ", dir));
  }
  return total;
}

}  // namespace berth::content
