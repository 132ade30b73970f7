// ContentStore: immutable blobs (manifests, configs, layers) on disk, named by
// their SHA-256 digest.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<ContentStore> store, ContentStore::Open(root + "/content"));
//   ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> w, store->NewWriter(desc.digest, desc.size));
//   while (...) RETURN_IF_ERROR(w->Write(chunk));   // hashes as it goes
//   RETURN_IF_ERROR(w->Commit());                   // verified, durable, visible
//   ASSIGN_OR_RETURN(std::string manifest, store->ReadBlob(digest, 4 << 20));
//   std::string path = store->BlobPath(layer_digest);  // stream a layer from here
//
// Layout: <root>/blobs/sha256/<hex> (mode 0444) and <root>/ingest/ for writes
// in progress; both under one root, so the final rename never crosses a
// filesystem.
//
// Atomicity: a blob is written to a temp file in ingest/, checked against the
// expected size and digest, fsync'ed, renamed into blobs/ and the directory
// fsync'ed. So a crash at any point never leaves a file under blobs/ whose
// content does not match its name, and a blob that Commit() reported is there
// after a power cut. Leftover temp files are removed by CleanIngest().
//
// Concurrency: every method is safe to call from many threads. Each writer has
// its own uniquely named temp file, so any number of writers may fetch the same
// digest at once and all of them succeed: the first Commit() publishes the
// blob and the rest find it there and drop their temp files. Readers never see
// a partial blob. Deleting a blob while a reader has it open is fine: the
// reader keeps the old file.
//
// Digests are validated (image/digest.h) before they touch a path, so a name
// such as "sha256:../../x" is InvalidArgument, never a file outside root.
#ifndef BERTH_RUNTIME_CONTENT_CONTENT_STORE_H_
#define BERTH_RUNTIME_CONTENT_CONTENT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/image/digest.h"

namespace berth::content {

// One blob being written. Not thread-safe: use it from one thread at a time.
// It holds its own paths, so it may outlive the ContentStore that made it.
class BlobWriter {
 public:
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;
  // Without a successful Commit(), removes the temp file.
  ~BlobWriter();

  // Appends data. DataLoss as soon as more bytes arrive than the expected
  // size; I/O errors are Internal (ResourceExhausted for a full disk). After
  // any error the temp file is gone and every later call returns that error.
  absl::Status Write(std::string_view data);

  // Verifies the size (when one was expected) and the SHA-256, then publishes
  // the blob durably. DataLoss naming the expected and actual digest and size
  // on a mismatch, with the temp file removed. Committing a digest that is
  // already stored succeeds and just drops the temp file. FailedPrecondition
  // when called again after success.
  absl::Status Commit();

  int64_t written() const { return written_; }
  const std::string& digest() const { return expected_digest_; }

 private:
  friend class ContentStore;
  BlobWriter(std::string expected_digest, int64_t expected_size, int fd, std::string temp_path,
             std::string blob_dir);

  // Records error as the writer's final state and removes the temp file.
  absl::Status Fail(absl::Status error);
  void Discard();

  const std::string expected_digest_;
  const int64_t expected_size_;  // -1: unknown
  int fd_;                       // -1 once closed
  const std::string temp_path_;
  const std::string blob_dir_;  // <root>/blobs/sha256
  image::Sha256Hasher hasher_;
  int64_t written_ = 0;
  bool temp_exists_ = true;  // temp_path_ is still ours to unlink
  bool committed_ = false;
  absl::Status error_;  // sticky
};

class ContentStore {
 public:
  // Creates <root>, <root>/blobs/sha256 and <root>/ingest as needed.
  static absl::StatusOr<std::unique_ptr<ContentStore>> Open(std::string root);

  ContentStore(const ContentStore&) = delete;
  ContentStore& operator=(const ContentStore&) = delete;

  const std::string& root() const { return root_; }

  // <root>/blobs/sha256/<hex>, whether or not it exists; "" for an invalid
  // digest, so a hostile one can never name another file.
  std::string BlobPath(std::string_view digest) const;

  // False for a missing blob and for an invalid digest.
  bool Has(std::string_view digest) const;

  // NotFound "blob sha256:...: not found"; InvalidArgument for a bad digest.
  absl::StatusOr<int64_t> Size(std::string_view digest) const;

  // The whole blob, for small documents (manifests, configs).
  // FailedPrecondition when it is larger than max_bytes; DataLoss when its
  // content no longer matches its digest (a damaged disk), so callers never
  // act on corrupt metadata.
  absl::StatusOr<std::string> ReadBlob(std::string_view digest, int64_t max_bytes) const;

  // A writer for the blob with expected_digest; expected_size -1 when
  // unknown. InvalidArgument for a bad digest or a size below -1.
  absl::StatusOr<std::unique_ptr<BlobWriter>> NewWriter(std::string expected_digest,
                                                        int64_t expected_size);

  // Removes the blob; a missing one is OK.
  absl::Status Delete(std::string_view digest);

  // Every stored digest, sorted. Stray files under blobs/ are skipped.
  absl::StatusOr<std::vector<std::string>> List() const;

  // Removes everything under ingest/: temp files of writes a crash
  // interrupted. Call it at daemon start, before any writer exists; it would
  // break writers in progress.
  absl::Status CleanIngest();

  // Bytes allocated on disk (st_blocks) by blobs and writes in progress.
  absl::StatusOr<int64_t> DiskUsage() const;

 private:
  explicit ContentStore(std::string root);

  const std::string root_;
  const std::string blob_dir_;    // <root>/blobs/sha256
  const std::string ingest_dir_;  // <root>/ingest
};

}  // namespace berth::content

#endif  // BERTH_RUNTIME_CONTENT_CONTENT_STORE_H_
