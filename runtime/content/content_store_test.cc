#include "runtime/content/content_store.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/image/digest.h"

namespace berth::content {
namespace {

namespace fs = std::filesystem;
using image::Sha256Digest;

bool Contains(const absl::Status& s, std::string_view text) {
  return std::string(s.message()).find(text) != std::string::npos;
}

// Deterministic bytes that do not compress, so disk usage is real.
std::string Bytes(size_t n, uint32_t seed = 1) {
  std::string out(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return out;
}

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

class ContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-content-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    root_ = dir_ + "/content";
    absl::StatusOr<std::unique_ptr<ContentStore>> store = ContentStore::Open(root_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<BlobWriter> Writer(const std::string& digest, int64_t size) {
    absl::StatusOr<std::unique_ptr<BlobWriter>> w = store_->NewWriter(digest, size);
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *std::move(w) : nullptr;
  }

  // Writes data in chunks of `chunk` bytes and commits.
  absl::Status Put(const std::string& data, size_t chunk = 1000) {
    std::unique_ptr<BlobWriter> w = Writer(Sha256Digest(data), static_cast<int64_t>(data.size()));
    if (w == nullptr) return absl::InternalError("no writer");
    for (size_t i = 0; i < data.size(); i += chunk) {
      if (absl::Status s = w->Write(std::string_view(data).substr(i, chunk)); !s.ok()) return s;
    }
    return w->Commit();
  }

  std::vector<std::string> Blobs() { return DirEntries(root_ + "/blobs/sha256"); }
  std::vector<std::string> Ingest() { return DirEntries(root_ + "/ingest"); }

  std::string dir_;
  std::string root_;
  std::unique_ptr<ContentStore> store_;
};

TEST_F(ContentStoreTest, OpenCreatesLayout) {
  EXPECT_TRUE(fs::is_directory(root_ + "/blobs/sha256"));
  EXPECT_TRUE(fs::is_directory(root_ + "/ingest"));
  EXPECT_EQ(store_->root(), root_);
  // Opening again (a daemon restart) is fine, and a trailing slash is too.
  EXPECT_TRUE(ContentStore::Open(root_ + "/").ok());
}

TEST_F(ContentStoreTest, OpenRejectsBadRoots) {
  EXPECT_EQ(ContentStore::Open("").status().code(), absl::StatusCode::kInvalidArgument);
  std::ofstream(dir_ + "/file") << "x";
  absl::StatusOr<std::unique_ptr<ContentStore>> s = ContentStore::Open(dir_ + "/file");
  EXPECT_FALSE(s.ok());
  fs::create_directories(dir_ + "/half/blobs");
  std::ofstream(dir_ + "/half/blobs/sha256") << "x";
  s = ContentStore::Open(dir_ + "/half");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.status(), "not a directory")) << s.status();
}

TEST_F(ContentStoreTest, WriteCommitReadBack) {
  const std::string data = Bytes(100000);
  const std::string digest = Sha256Digest(data);
  EXPECT_FALSE(store_->Has(digest));

  std::unique_ptr<BlobWriter> w = Writer(digest, static_cast<int64_t>(data.size()));
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->digest(), digest);
  ASSERT_TRUE(w->Write(std::string_view(data).substr(0, 123)).ok());
  ASSERT_TRUE(w->Write("").ok());
  ASSERT_TRUE(w->Write(std::string_view(data).substr(123)).ok());
  EXPECT_EQ(w->written(), 100000);
  EXPECT_EQ(Ingest().size(), 1u);
  EXPECT_TRUE(Blobs().empty());  // not visible before Commit
  ASSERT_TRUE(w->Commit().ok());

  EXPECT_TRUE(store_->Has(digest));
  EXPECT_EQ(*store_->Size(digest), 100000);
  absl::StatusOr<std::string> back = store_->ReadBlob(digest, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, data);
  std::string path = store_->BlobPath(digest);
  EXPECT_EQ(path, root_ + "/blobs/sha256/" + std::string(image::DigestHex(digest)));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444);
  EXPECT_TRUE(Ingest().empty());
  EXPECT_EQ(*store_->List(), std::vector<std::string>{digest});

  // Committing again, and writing after commit, are caller bugs.
  EXPECT_EQ(w->Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(w->Write("x").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ContentStoreTest, UnknownSizeAndEmptyBlob) {
  const std::string data = Bytes(5000, 2);
  std::unique_ptr<BlobWriter> w = Writer(Sha256Digest(data), -1);
  ASSERT_TRUE(w->Write(data).ok());
  ASSERT_TRUE(w->Commit().ok());
  EXPECT_EQ(*store_->ReadBlob(Sha256Digest(data), 5000), data);

  const std::string empty = Sha256Digest("");
  w = Writer(empty, 0);
  ASSERT_TRUE(w->Commit().ok());
  EXPECT_EQ(*store_->ReadBlob(empty, 0), "");
  EXPECT_EQ(*store_->Size(empty), 0);
}

TEST_F(ContentStoreTest, BlobsSurviveReopen) {
  const std::string data = Bytes(3000, 3);
  ASSERT_TRUE(Put(data).ok());
  store_.reset();
  absl::StatusOr<std::unique_ptr<ContentStore>> again = ContentStore::Open(root_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*(*again)->ReadBlob(Sha256Digest(data), 3000), data);
}

TEST_F(ContentStoreTest, DigestMismatchIsDataLossAndLeavesNothing) {
  const std::string data = Bytes(4096, 4);
  const std::string wrong = Sha256Digest("something else");
  std::unique_ptr<BlobWriter> w = Writer(wrong, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(w->Write(data).ok());
  absl::Status s = w->Commit();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(s, wrong)) << s;
  EXPECT_TRUE(Contains(s, Sha256Digest(data))) << s;
  EXPECT_TRUE(Blobs().empty());
  EXPECT_TRUE(Ingest().empty());  // removed at once, not only by the destructor
  EXPECT_FALSE(store_->Has(wrong));
  EXPECT_EQ(w->Commit(), s);  // the failure sticks
  EXPECT_EQ(w->Write("x"), s);
}

TEST_F(ContentStoreTest, TruncatedBlobIsDataLossAndLeavesNothing) {
  const std::string data = Bytes(10000, 5);
  const std::string digest = Sha256Digest(data);
  std::unique_ptr<BlobWriter> w = Writer(digest, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(w->Write(std::string_view(data).substr(0, 9999)).ok());
  absl::Status s = w->Commit();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(s, "got 9999 bytes, expected 10000")) << s;
  EXPECT_TRUE(Contains(s, digest)) << s;
  EXPECT_TRUE(Blobs().empty());
  EXPECT_TRUE(Ingest().empty());
  EXPECT_FALSE(store_->Has(digest));
}

TEST_F(ContentStoreTest, OversizeFailsAsSoonAsItArrives) {
  const std::string data = Bytes(100, 6);
  const std::string digest = Sha256Digest(data);
  std::unique_ptr<BlobWriter> w = Writer(digest, 99);
  ASSERT_TRUE(w->Write(std::string_view(data).substr(0, 99)).ok());
  absl::Status s = w->Write(std::string_view(data).substr(99));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(s, "more than the expected 99 bytes")) << s;
  EXPECT_TRUE(Contains(s, digest)) << s;
  EXPECT_TRUE(Ingest().empty());
  EXPECT_EQ(w->Commit(), s);
  EXPECT_TRUE(Blobs().empty());

  // One oversized chunk is refused before any of it is written.
  w = Writer(digest, 10);
  EXPECT_EQ(w->Write(data).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(w->written(), 0);
}

TEST_F(ContentStoreTest, DestructorWithoutCommitRemovesTemp) {
  const std::string data = Bytes(2048, 7);
  {
    std::unique_ptr<BlobWriter> w = Writer(Sha256Digest(data), 2048);
    ASSERT_TRUE(w->Write(std::string_view(data).substr(0, 1000)).ok());
    EXPECT_EQ(Ingest().size(), 1u);
  }
  EXPECT_TRUE(Ingest().empty());
  EXPECT_TRUE(Blobs().empty());
}

TEST_F(ContentStoreTest, WriterMayOutliveStore) {
  const std::string data = Bytes(64, 8);
  std::unique_ptr<BlobWriter> w = Writer(Sha256Digest(data), 64);
  store_.reset();
  ASSERT_TRUE(w->Write(data).ok());
  ASSERT_TRUE(w->Commit().ok());
  EXPECT_EQ(Blobs().size(), 1u);
}

TEST_F(ContentStoreTest, CommittingAnExistingDigestDropsTheTemp) {
  const std::string data = Bytes(777, 9);
  ASSERT_TRUE(Put(data).ok());
  ASSERT_TRUE(Put(data).ok());
  EXPECT_EQ(Blobs().size(), 1u);
  EXPECT_TRUE(Ingest().empty());
  EXPECT_EQ(*store_->ReadBlob(Sha256Digest(data), 777), data);
}

TEST_F(ContentStoreTest, InterleavedWritersOfOneDigestBothSucceed) {
  const std::string data = Bytes(3000, 10);
  const std::string digest = Sha256Digest(data);
  std::unique_ptr<BlobWriter> a = Writer(digest, 3000);
  std::unique_ptr<BlobWriter> b = Writer(digest, 3000);
  ASSERT_TRUE(a->Write(std::string_view(data).substr(0, 1500)).ok());
  ASSERT_TRUE(b->Write(std::string_view(data).substr(0, 2000)).ok());
  EXPECT_EQ(Ingest().size(), 2u);  // distinct temp files
  ASSERT_TRUE(a->Write(std::string_view(data).substr(1500)).ok());
  ASSERT_TRUE(b->Write(std::string_view(data).substr(2000)).ok());
  ASSERT_TRUE(b->Commit().ok());
  ASSERT_TRUE(a->Commit().ok());
  EXPECT_EQ(Blobs().size(), 1u);
  EXPECT_TRUE(Ingest().empty());
  EXPECT_EQ(*store_->ReadBlob(digest, 3000), data);
}

TEST_F(ContentStoreTest, ConcurrentWritersOfOneDigest) {
  const std::string data = Bytes(1 << 20, 11);
  const std::string digest = Sha256Digest(data);
  constexpr int kThreads = 8;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = Put(data, 4096 + i * 1000); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(Blobs().size(), 1u);
  EXPECT_TRUE(Ingest().empty());
  EXPECT_EQ(*store_->ReadBlob(digest, 1 << 20), data);
}

TEST_F(ContentStoreTest, ConcurrentWritersOfDifferentDigests) {
  constexpr int kThreads = 6;
  std::vector<std::string> data;
  for (int i = 0; i < kThreads; ++i) data.push_back(Bytes(50000 + i, 100 + i));
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = Put(data[i]); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(store_->List()->size(), static_cast<size_t>(kThreads));
  for (const std::string& d : data) EXPECT_EQ(*store_->ReadBlob(Sha256Digest(d), 1 << 20), d);
}

TEST_F(ContentStoreTest, CrashMidWriteLeavesOnlyIngestAndCleanIngestRemovesIt) {
  const std::string data = Bytes(50000, 12);
  const std::string digest = Sha256Digest(data);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The "daemon": half a blob, then killed with no destructor running.
    absl::StatusOr<std::unique_ptr<BlobWriter>> w = store_->NewWriter(digest, 50000);
    if (!w.ok() || !(*w)->Write(std::string_view(data).substr(0, 25000)).ok()) _exit(1);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(Blobs().empty());
  EXPECT_FALSE(store_->Has(digest));
  EXPECT_EQ(Ingest().size(), 1u);

  // Other leftovers, whatever their shape.
  std::ofstream(root_ + "/ingest/stray") << "junk";
  fs::create_directories(root_ + "/ingest/dir/sub");
  std::ofstream(root_ + "/ingest/dir/sub/f") << "junk";

  ASSERT_TRUE(store_->CleanIngest().ok());
  EXPECT_TRUE(Ingest().empty());
  EXPECT_TRUE(fs::is_directory(root_ + "/ingest"));
  // The interrupted pull can simply start over.
  ASSERT_TRUE(Put(data).ok());
  EXPECT_TRUE(store_->Has(digest));
}

TEST_F(ContentStoreTest, CleanIngestKeepsBlobs) {
  const std::string data = Bytes(100, 13);
  ASSERT_TRUE(Put(data).ok());
  ASSERT_TRUE(store_->CleanIngest().ok());
  EXPECT_TRUE(store_->Has(Sha256Digest(data)));
}

TEST_F(ContentStoreTest, InvalidDigestsAreRejectedEverywhere) {
  const std::string hex(64, 'a');
  fs::create_directories(dir_ + "/outside");
  for (const std::string& bad : std::vector<std::string>{
           "",
           "sha256:../../x",
           "sha256:../../../outside/" + std::string(41, 'a'),
           "sha256:" + std::string(60, 'a') + "/../",
           "sha256:" + std::string(64, 'A'),
           "sha512:" + std::string(128, 'a'),
           "SHA256:" + hex,
           hex,
           "sha256:" + hex + "\n",
           "sha256:" + hex + "/x",
       }) {
    SCOPED_TRACE(bad);
    absl::StatusOr<std::unique_ptr<BlobWriter>> w = store_->NewWriter(bad, 1);
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->BlobPath(bad), "");
    EXPECT_FALSE(store_->Has(bad));
    EXPECT_EQ(store_->Size(bad).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->ReadBlob(bad, 100).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Delete(bad).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(Ingest().empty());
  EXPECT_TRUE(DirEntries(dir_ + "/outside").empty());
  EXPECT_EQ(DirEntries(dir_).size(), 2u);  // content/ and outside/
}

TEST_F(ContentStoreTest, NegativeExpectedSizeRejected) {
  absl::StatusOr<std::unique_ptr<BlobWriter>> w = store_->NewWriter(Sha256Digest("x"), -2);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Ingest().empty());
}

TEST_F(ContentStoreTest, MissingBlobs) {
  const std::string digest = Sha256Digest("absent");
  absl::StatusOr<int64_t> size = store_->Size(digest);
  EXPECT_EQ(size.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(size.status(), digest)) << size.status();
  EXPECT_EQ(store_->ReadBlob(digest, 10).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Delete(digest).ok());
  EXPECT_FALSE(store_->Has(digest));
  EXPECT_FALSE(store_->BlobPath(digest).empty());
}

TEST_F(ContentStoreTest, ReadBlobLimit) {
  const std::string data = Bytes(1000, 14);
  ASSERT_TRUE(Put(data).ok());
  EXPECT_TRUE(store_->ReadBlob(Sha256Digest(data), 1000).ok());
  absl::StatusOr<std::string> r = store_->ReadBlob(Sha256Digest(data), 999);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(r.status(), "1000 bytes, more than the 999")) << r.status();
}

TEST_F(ContentStoreTest, ReadBlobDetectsDamage) {
  const std::string data = Bytes(1000, 15);
  const std::string digest = Sha256Digest(data);
  ASSERT_TRUE(Put(data).ok());
  std::string path = store_->BlobPath(digest);
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(500);
    f.put(static_cast<char>(data[500] ^ 1));
  }
  absl::StatusOr<std::string> r = store_->ReadBlob(digest, 1000);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(r.status(), digest)) << r.status();
  EXPECT_TRUE(Contains(r.status(), "damaged")) << r.status();
}

TEST_F(ContentStoreTest, DeleteAndList) {
  std::vector<std::string> digests;
  for (int i = 0; i < 3; ++i) {
    std::string data = Bytes(100, 20 + i);
    ASSERT_TRUE(Put(data).ok());
    digests.push_back(Sha256Digest(data));
  }
  std::sort(digests.begin(), digests.end());
  // Strays under blobs/ are not blobs.
  std::ofstream(root_ + "/blobs/sha256/junk") << "x";
  std::ofstream(root_ + "/blobs/sha256/" + std::string(64, 'A')) << "x";
  EXPECT_EQ(*store_->List(), digests);

  ASSERT_TRUE(store_->Delete(digests[1]).ok());
  EXPECT_FALSE(store_->Has(digests[1]));
  EXPECT_EQ(*store_->List(), (std::vector<std::string>{digests[0], digests[2]}));
  ASSERT_TRUE(store_->Delete(digests[1]).ok());  // already gone is fine
}

TEST_F(ContentStoreTest, DiskUsageCountsBlobsAndIngest) {
  absl::StatusOr<int64_t> empty = store_->DiskUsage();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, 0);

  ASSERT_TRUE(Put(Bytes(1 << 20, 30)).ok());
  int64_t with_blob = *store_->DiskUsage();
  EXPECT_GE(with_blob, 1 << 20);

  const std::string pending = Bytes(1 << 20, 31);
  std::unique_ptr<BlobWriter> w = Writer(Sha256Digest(pending), 1 << 20);
  ASSERT_TRUE(w->Write(pending).ok());
  EXPECT_GE(*store_->DiskUsage(), with_blob + (1 << 20));
  w.reset();
  EXPECT_EQ(*store_->DiskUsage(), with_blob);
}

}  // namespace
}  // namespace berth::content
