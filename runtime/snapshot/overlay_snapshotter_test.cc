// The overlay snapshotter against the real thing: a SQLite store, layers unpacked from
// the image kit, overlayfs mounted and read through. Needs root in the initial user
// namespace; skips loudly otherwise.
#include "runtime/snapshot/overlay_snapshotter.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "e2e/fixtures/image_kit.h"
#include "gtest/gtest.h"
#include "runtime/base/strings.h"
#include "runtime/snapshot/fs_util.h"
#include "runtime/snapshot/mount.h"
#include "runtime/store/sqlite_store.h"

namespace berth::snapshot {
namespace {

namespace fs = std::filesystem;
using ::berth::testing::BuildLayer;
using ::berth::testing::Layer;
using ::berth::testing::TarEntry;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFile(const std::string& path, std::string_view data) {
  std::ofstream(path, std::ios::binary) << data;
}

// Everything under `dir`, as relative paths.
std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> names;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

// The value of `key=` among a mount's options.
std::string Option(const Mount& mount, std::string_view key) {
  std::string prefix = StrCat(key, "=");
  for (const std::string& option : mount.options) {
    if (option.starts_with(prefix)) return option.substr(prefix.size());
  }
  return "";
}

// Counts Read() calls, to prove a refused ApplyLayer never touched its source.
class CountingSource : public ByteSource {
 public:
  explicit CountingSource(std::string_view data) : inner_(data) {}
  absl::StatusOr<std::string_view> Read() override {
    ++reads;
    return inner_.Read();
  }
  int reads = 0;

 private:
  StringSource inner_;
};

// One test's world: a temp dir holding the store, the snapshotter root and mount
// targets. Teardown detaches every target it handed out and removes the dir, pass or
// fail.
class OverlaySnapshotterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HasHostRoot()) {
      GTEST_SKIP() << "NOT ROOT (in the initial user namespace): the overlay snapshotter "
                      "needs mount(2), mknod and trusted.* xattrs; nothing was tested";
    }
    if (ReadFile("/proc/filesystems").find("\toverlay\n") == std::string::npos) {
      GTEST_SKIP() << "NO OVERLAYFS in /proc/filesystems (modprobe overlay); nothing was tested";
    }
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern = StrCat(base != nullptr ? base : "/tmp", "/overlay-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << strerror(errno);
    dir_ = pattern;
    absl::StatusOr<store::StorePtr> store = store::SqliteStore::Open({.path = dir_ + "/berth.db"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    OpenSnapshotter();
  }

  void TearDown() override {
    for (const std::string& target : targets_) {
      absl::Status unmounted = UnmountAll(target);
      EXPECT_TRUE(unmounted.ok()) << unmounted;
    }
    snapshotter_.reset();
    store_.reset();
    if (!dir_.empty()) {
      absl::Status removed = RemoveAll(dir_);
      EXPECT_TRUE(removed.ok()) << "clean up " << dir_ << ": " << removed;
    }
  }

  // (Re)creates the snapshotter over the same root and store, as a restart would.
  void OpenSnapshotter() {
    snapshotter_.reset();
    absl::StatusOr<SnapshotterPtr> snapshotter = OverlaySnapshotter::Create(root(), *store_);
    ASSERT_TRUE(snapshotter.ok()) << snapshotter.status();
    snapshotter_ = *std::move(snapshotter);
  }

  std::string root() const { return dir_ + "/snapshotter"; }
  std::string snapshots() const { return root() + "/snapshots"; }

  // A fresh empty directory to mount on, detached at teardown.
  std::string NewTarget() {
    std::string target = StrCat(dir_, "/mnt", targets_.size());
    fs::create_directory(target);
    targets_.push_back(target);
    return target;
  }

  absl::StatusOr<Usage> Apply(const std::string& key, const std::string& parent,
                              const Layer& layer) {
    StringSource source(layer.blob.data);
    return snapshotter_->ApplyLayer(key, parent, source, layer.diff_id);
  }

  // Two layers: the base, and one that deletes, hides and overrides parts of it.
  void ApplyTwoLayers() {
    absl::StatusOr<Layer> base = BuildLayer({
        TarEntry::Dir("bin"),
        TarEntry::File("bin/tool", "v1", 0755),
        TarEntry::Dir("etc"),
        TarEntry::File("etc/motd", "hello"),
        TarEntry::File("etc/gone", "deleted by layer 2"),
        TarEntry::Dir("var"),
        TarEntry::Dir("var/cache"),
        TarEntry::File("var/cache/a", "hidden by opaque"),
        TarEntry::File("shared", "from layer 1"),
    });
    ASSERT_TRUE(base.ok()) << base.status();
    absl::StatusOr<Layer> top = BuildLayer({
        TarEntry::Dir("etc"),
        TarEntry::Whiteout("etc/gone"),
        TarEntry::Dir("var"),
        TarEntry::Dir("var/cache"),
        TarEntry::OpaqueWhiteout("var/cache"),
        TarEntry::File("var/cache/c", "after opaque"),
        TarEntry::File("shared", "from layer 2"),
    });
    ASSERT_TRUE(top.ok()) << top.status();
    absl::StatusOr<Usage> usage = Apply(kBase, "", *base);
    ASSERT_TRUE(usage.ok()) << usage.status();
    EXPECT_GT(usage->bytes, 0);
    EXPECT_GE(usage->inodes, 9);
    usage = Apply(kTop, kBase, *top);
    ASSERT_TRUE(usage.ok()) << usage.status();
    base_ = *base;
    top_ = *top;
  }

  static constexpr char kBase[] = "sha256:chain-base";
  static constexpr char kTop[] = "sha256:chain-top";

  std::string dir_;
  store::StorePtr store_;
  SnapshotterPtr snapshotter_;
  std::vector<std::string> targets_;
  Layer base_;
  Layer top_;
};

TEST_F(OverlaySnapshotterTest, ContainerSeesTheMergedLayersAndWritesToItsUpperDir) {
  ASSERT_NO_FATAL_FAILURE(ApplyTwoLayers());
  absl::StatusOr<std::optional<SnapshotInfo>> info = snapshotter_->Stat(kTop);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(info->has_value());
  EXPECT_EQ((*info)->parent, kBase);
  EXPECT_EQ((*info)->kind, SnapshotKind::kCommitted);

  absl::StatusOr<std::vector<Mount>> mounts = snapshotter_->Prepare("container-1", kTop);
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  ASSERT_EQ(mounts->size(), 1u);
  const Mount& overlay = mounts->front();
  EXPECT_EQ(overlay.type, "overlay");
  std::string lowerdir = Option(overlay, "lowerdir");
  std::string upperdir = Option(overlay, "upperdir");
  // Nearest layer first.
  ASSERT_NE(lowerdir.find(':'), std::string::npos) << lowerdir;
  EXPECT_EQ(ReadFile(lowerdir.substr(0, lowerdir.find(':')) + "/shared"), "from layer 2");
  EXPECT_EQ(ReadFile(lowerdir.substr(lowerdir.find(':') + 1) + "/shared"), "from layer 1");
  EXPECT_TRUE(fs::is_directory(Option(overlay, "workdir")));
  EXPECT_NE(std::find(overlay.options.begin(), overlay.options.end(), "index=off"),
            overlay.options.end());

  std::string rootfs = NewTarget();
  absl::Status mounted = MountAll(*mounts, rootfs);
  ASSERT_TRUE(mounted.ok()) << mounted;
  EXPECT_EQ(ReadFile(rootfs + "/bin/tool"), "v1");
  EXPECT_EQ(ReadFile(rootfs + "/etc/motd"), "hello");
  EXPECT_FALSE(fs::exists(rootfs + "/etc/gone")) << "the whiteout should hide it";
  EXPECT_EQ(Entries(rootfs + "/var/cache"), std::set<std::string>{"c"})
      << "the opaque directory should hide layer 1's contents";
  EXPECT_EQ(ReadFile(rootfs + "/shared"), "from layer 2");

  // Writes land in the upper directory; deletes become whiteouts there.
  WriteFile(rootfs + "/written", "by the container");
  fs::remove(rootfs + "/etc/motd");
  EXPECT_EQ(ReadFile(upperdir + "/written"), "by the container");
  struct stat st;
  ASSERT_EQ(lstat((upperdir + "/etc/motd").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
  EXPECT_FALSE(fs::exists(rootfs + "/etc/motd"));
  EXPECT_EQ(ReadFile(lowerdir.substr(lowerdir.find(':') + 1) + "/etc/motd"), "hello")
      << "a lower layer must never change";

  absl::StatusOr<Usage> usage = snapshotter_->GetUsage("container-1");
  ASSERT_TRUE(usage.ok()) << usage.status();
  EXPECT_GE(usage->inodes, 4);  // its dir, fs, work, written, etc, the whiteout...

  absl::Status unmounted = UnmountAll(rootfs);
  ASSERT_TRUE(unmounted.ok()) << unmounted;
  EXPECT_TRUE(Entries(rootfs).empty());

  // Parents in use are refused, then everything goes, children first.
  absl::Status refused = snapshotter_->Remove(kBase);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_NE(refused.message().find(kTop), std::string::npos) << refused;
  refused = snapshotter_->Remove(kTop);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_NE(refused.message().find("container-1"), std::string::npos) << refused;
  for (const char* key : {"container-1", kTop, kBase}) {
    absl::Status removed = snapshotter_->Remove(key);
    EXPECT_TRUE(removed.ok()) << key << ": " << removed;
  }
  EXPECT_TRUE(snapshotter_->Remove("never-existed").ok());
  absl::StatusOr<std::vector<SnapshotInfo>> list = snapshotter_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->empty());
  EXPECT_TRUE(Entries(snapshots()).empty());
}

TEST_F(OverlaySnapshotterTest, CommittedSnapshotsMountReadOnly) {
  ASSERT_NO_FATAL_FAILURE(ApplyTwoLayers());
  absl::StatusOr<std::vector<Mount>> single = snapshotter_->Mounts(kBase);
  ASSERT_TRUE(single.ok()) << single.status();
  ASSERT_EQ(single->size(), 1u);
  EXPECT_EQ(single->front().type, "bind");
  std::string view = NewTarget();
  absl::Status mounted = MountAll(*single, view);
  ASSERT_TRUE(mounted.ok()) << mounted;
  EXPECT_EQ(ReadFile(view + "/shared"), "from layer 1");
  std::ofstream(view + "/nope") << "x";
  EXPECT_FALSE(fs::exists(view + "/nope")) << "a committed layer was writable";

  absl::StatusOr<std::vector<Mount>> stacked = snapshotter_->Mounts(kTop);
  ASSERT_TRUE(stacked.ok()) << stacked.status();
  ASSERT_EQ(stacked->size(), 1u);
  EXPECT_EQ(stacked->front().type, "overlay");
  EXPECT_EQ(Option(stacked->front(), "upperdir"), "");
  std::string merged = NewTarget();
  mounted = MountAll(*stacked, merged);
  ASSERT_TRUE(mounted.ok()) << mounted;
  EXPECT_EQ(ReadFile(merged + "/shared"), "from layer 2");
  EXPECT_FALSE(fs::exists(merged + "/etc/gone"));
  std::ofstream(merged + "/nope") << "x";
  EXPECT_FALSE(fs::exists(merged + "/nope")) << "a committed view was writable";
}

TEST_F(OverlaySnapshotterTest, PrepareWithoutParentIsAWritableBindMount) {
  absl::StatusOr<std::vector<Mount>> mounts = snapshotter_->Prepare("scratch", "");
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  ASSERT_EQ(mounts->size(), 1u);
  EXPECT_EQ(mounts->front().type, "bind");
  std::string target = NewTarget();
  absl::Status mounted = MountAll(*mounts, target);
  ASSERT_TRUE(mounted.ok()) << mounted;
  WriteFile(target + "/file", "scratch");
  EXPECT_EQ(ReadFile(mounts->front().source + "/file"), "scratch");
  ASSERT_TRUE(UnmountAll(target).ok());
  // Mounts of an existing snapshot are the same as Prepare returned.
  absl::StatusOr<std::vector<Mount>> again = snapshotter_->Mounts("scratch");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->front().source, mounts->front().source);
  // An active snapshot cannot be a parent.
  absl::StatusOr<std::vector<Mount>> child = snapshotter_->Prepare("child", "scratch");
  EXPECT_EQ(child.status().code(), absl::StatusCode::kFailedPrecondition) << child.status();
}

TEST_F(OverlaySnapshotterTest, DiffIdMismatchKeepsNothing) {
  absl::StatusOr<Layer> layer = BuildLayer({TarEntry::File("file", "content")});
  ASSERT_TRUE(layer.ok()) << layer.status();
  StringSource source(layer->blob.data);
  absl::StatusOr<Usage> usage = snapshotter_->ApplyLayer(
      kBase, "", source, "sha256:0000000000000000000000000000000000000000000000000000000000000000");
  EXPECT_EQ(usage.status().code(), absl::StatusCode::kDataLoss) << usage.status();
  EXPECT_NE(usage.status().message().find(layer->diff_id), std::string::npos) << usage.status();
  absl::StatusOr<std::optional<SnapshotInfo>> info = snapshotter_->Stat(kBase);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->has_value());
  EXPECT_TRUE(Entries(snapshots()).empty());
}

TEST_F(OverlaySnapshotterTest, HostileLayerKeepsNothing) {
  absl::StatusOr<Layer> layer =
      BuildLayer({TarEntry::Symlink("escape", "/"), TarEntry::File("escape/berth-evil", "x")});
  ASSERT_TRUE(layer.ok()) << layer.status();
  absl::StatusOr<Usage> usage = Apply(kBase, "", *layer);
  EXPECT_EQ(usage.status().code(), absl::StatusCode::kInvalidArgument) << usage.status();
  EXPECT_NE(usage.status().message().find("\"escape/berth-evil\""), std::string::npos)
      << usage.status();
  EXPECT_FALSE(fs::exists("/berth-evil"));
  EXPECT_TRUE(Entries(snapshots()).empty());
}

TEST_F(OverlaySnapshotterTest, RefusesExistingKeysAndMissingParents) {
  ASSERT_NO_FATAL_FAILURE(ApplyTwoLayers());
  CountingSource source(base_.blob.data);
  absl::StatusOr<Usage> again = snapshotter_->ApplyLayer(kBase, "", source, base_.diff_id);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_EQ(source.reads, 0) << "the layer was read although the snapshot exists";

  absl::StatusOr<Usage> orphan = Apply("sha256:orphan", "sha256:no-such-parent", top_);
  EXPECT_EQ(orphan.status().code(), absl::StatusCode::kNotFound) << orphan.status();
  absl::StatusOr<std::vector<Mount>> prepared = snapshotter_->Prepare("c", "sha256:nope");
  EXPECT_EQ(prepared.status().code(), absl::StatusCode::kNotFound) << prepared.status();
  prepared = snapshotter_->Prepare(kTop, kBase);
  EXPECT_EQ(prepared.status().code(), absl::StatusCode::kAlreadyExists) << prepared.status();
  EXPECT_EQ(snapshotter_->Mounts("missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(snapshotter_->GetUsage("missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Entries(snapshots()).size(), 2u) << "failed calls left directories behind";

  absl::StatusOr<SnapshotterPtr> colon = OverlaySnapshotter::Create(dir_ + "/a:b", *store_);
  EXPECT_EQ(colon.status().code(), absl::StatusCode::kInvalidArgument) << colon.status();
}

TEST_F(OverlaySnapshotterTest, ConcurrentApplyOfOneKeyHasOneWinner) {
  absl::StatusOr<Layer> layer = BuildLayer({TarEntry::File("file", std::string(1 << 20, 'x'))});
  ASSERT_TRUE(layer.ok()) << layer.status();
  constexpr int kThreads = 4;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = Apply(kBase, "", *layer).status(); });
  }
  for (std::thread& thread : threads) thread.join();
  int winners = 0;
  for (const absl::Status& status : results) {
    if (status.ok()) {
      ++winners;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(Entries(snapshots()).size(), 1u);
}

TEST_F(OverlaySnapshotterTest, CleanupRemovesWhatACrashLeftBehind) {
  ASSERT_NO_FATAL_FAILURE(ApplyTwoLayers());
  // A half-unpacked layer, and a renamed one whose store commit never happened.
  fs::create_directories(snapshots() + "/tmp-crashed/fs/usr/bin");
  WriteFile(snapshots() + "/tmp-crashed/fs/usr/bin/half", "partial");
  fs::create_directories(snapshots() + "/99/fs/etc");
  WriteFile(snapshots() + "/99/fs/etc/orphan", "no record");
  fs::create_directories(snapshots() + "/not-ours");

  // A restart: the new snapshotter must not hand out id 99 again.
  ASSERT_NO_FATAL_FAILURE(OpenSnapshotter());
  absl::Status cleaned = snapshotter_->Cleanup();
  ASSERT_TRUE(cleaned.ok()) << cleaned;
  std::set<std::string> left = Entries(snapshots());
  EXPECT_FALSE(left.contains("tmp-crashed"));
  EXPECT_FALSE(left.contains("99"));
  EXPECT_TRUE(left.contains("not-ours")) << "Cleanup removes only what it made";
  EXPECT_EQ(left.size(), 3u);

  // The recorded snapshots survived the restart and the cleanup.
  absl::StatusOr<std::vector<Mount>> mounts = snapshotter_->Prepare("after-restart", kTop);
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  std::string upper = Option(mounts->front(), "upperdir");
  EXPECT_TRUE(upper.starts_with(snapshots() + "/100/")) << upper;
  std::string rootfs = NewTarget();
  ASSERT_TRUE(MountAll(*mounts, rootfs).ok());
  EXPECT_EQ(ReadFile(rootfs + "/shared"), "from layer 2");
  EXPECT_TRUE(snapshotter_->Cleanup().ok());
  EXPECT_EQ(ReadFile(rootfs + "/bin/tool"), "v1") << "Cleanup touched a live snapshot";
}

TEST(MountTest, MountAllReportsFailuresAndLeavesNothingMounted) {
  if (!HasHostRoot()) GTEST_SKIP() << "NOT ROOT: mount(2) needs CAP_SYS_ADMIN; not tested";
  const char* base = getenv("TEST_TMPDIR");
  std::string pattern = StrCat(base != nullptr ? base : "/tmp", "/mount-XXXXXX");
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  std::string dir = pattern;
  fs::create_directories(dir + "/src");
  fs::create_directories(dir + "/target");
  std::string target = dir + "/target";

  // The second mount fails: the first must be undone.
  absl::Status status = MountAll(
      {{"bind", dir + "/src", {"rbind", "rw"}}, {"bind", dir + "/missing", {"rbind"}}}, target);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find(dir + "/missing"), std::string::npos) << status;
  std::string mountinfo = ReadFile("/proc/self/mountinfo");
  EXPECT_EQ(mountinfo.find(target), std::string::npos) << "left mounted";

  // A lowerdir list longer than a page is refused up front with a clear message.
  std::string lower = "lowerdir=" + std::string(5000, 'a');
  status = MountAll({{"overlay", "overlay", {lower}}}, target);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("too many layers"), std::string::npos) << status;

  // Stacked mounts all come off.
  ASSERT_TRUE(
      MountAll({{"bind", dir + "/src", {"rbind"}}, {"tmpfs", "tmpfs", {"size=1m"}}}, target).ok());
  EXPECT_TRUE(UnmountAll(target).ok());
  EXPECT_EQ(ReadFile("/proc/self/mountinfo").find(target), std::string::npos);
  EXPECT_TRUE(UnmountAll(target).ok()) << "unmounting nothing is fine";
  EXPECT_TRUE(UnmountAll(dir + "/missing").ok());
  EXPECT_TRUE(RemoveAll(dir).ok());
}

}  // namespace
}  // namespace berth::snapshot
