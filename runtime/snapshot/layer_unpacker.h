// Layer unpacking: streams an image layer blob (gzip, zstd or plain tar, detected from
// its first bytes) into a directory, computing its diff_id on the way. The compressed
// bytes never touch the disk, so a layer can be unpacked while it downloads.
//
//   FileSource blob("/var/lib/berth/content/blobs/sha256/ab12...");
//   absl::StatusOr<UnpackResult> result = UnpackLayer(blob, "/var/lib/berth/snapshots/tmp-1/fs");
//   if (result.ok() && result->diff_id != expected_diff_id) { /* corrupt: discard the dir */ }
//
// The output is an overlayfs layer: an OCI whiteout `.wh.<name>` becomes a 0/0 character
// device <name>, and `<dir>/.wh..wh..opq` sets trusted.overlay.opaque=y on <dir>.
//
// Extraction is safe against hostile layers: nothing is ever created, changed or followed
// outside dest_dir. Absolute or `..` entry names, parents or hard-link targets that
// resolve outside dest_dir (through a symlink earlier in the layer), and block or
// character device nodes fail the whole unpack with InvalidArgument naming the entry. A
// corrupt or truncated blob fails with DataLoss; errors of the ByteSource pass through
// unchanged. On failure dest_dir holds a partial tree that the caller must remove.
//
// Fidelity: ownership, permission bits including setuid/setgid/sticky, xattrs, mtimes
// (directories too), hard links, symlinks with any target, FIFOs. Ownership, the
// opaque xattr (a trusted.* xattr) and xattrs outside user.* need root in the initial
// user namespace; without it chown and such xattrs are skipped (files keep the caller's
// ids, as `tar` does for non-root) but an opaque whiteout fails with PermissionDenied.
#ifndef BERTH_RUNTIME_SNAPSHOT_LAYER_UNPACKER_H_
#define BERTH_RUNTIME_SNAPSHOT_LAYER_UNPACKER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "runtime/snapshot/fs_util.h"

namespace berth::snapshot {

// A pull-driven stream of bytes: the layer blob as stored or as it arrives from a
// registry. Used from one thread at a time.
class ByteSource {
 public:
  virtual ~ByteSource() = default;

  // The next chunk of the (possibly compressed) layer blob; an empty view means end of
  // stream. The view stays valid until the next call.
  virtual absl::StatusOr<std::string_view> Read() = 0;
};

// A blob held in memory; the caller keeps `data` alive while the source is read.
class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string_view data) : data_(data) {}
  absl::StatusOr<std::string_view> Read() override;

 private:
  std::string_view data_;
  bool done_ = false;
};

// A blob read from a file in 1 MiB chunks. A missing file surfaces as NotFound from the
// first Read().
class FileSource : public ByteSource {
 public:
  explicit FileSource(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<std::string_view> Read() override;

 private:
  std::string path_;
  UniqueFd fd_;
  std::string buffer_;
};

struct UnpackResult {
  std::string diff_id;  // "sha256:<hex>" of the uncompressed tar
  int64_t uncompressed_bytes = 0;
};

// Unpacks the layer read from `source` into `dest_dir`, an existing directory that
// should be empty. See the top of this file for the rules.
absl::StatusOr<UnpackResult> UnpackLayer(ByteSource& source, const std::string& dest_dir);

}  // namespace berth::snapshot

#endif  // BERTH_RUNTIME_SNAPSHOT_LAYER_UNPACKER_H_
