// ContainerManager end to end: a real SQLite store, content store, overlay snapshotter,
// ImageManager pulling busybox from a local registry, SandboxManager pods, berth-shim and
// runc (e2e tier: root). Every test ends with a census: no mounts, runc state, cgroups,
// shims or container processes may be left.
#include "runtime/containers/container_manager.h"

#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "e2e/fixtures/image_kit.h"
#include "e2e/fixtures/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/base/strings.h"
#include "runtime/content/content_store.h"
#include "runtime/oci/test_util.h"
#include "runtime/snapshot/overlay_snapshotter.h"
#include "runtime/store/sqlite_store.h"

namespace berth::containers {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
namespace ot = ::berth::oci::testing;

constexpr char kRunc[] = "/usr/sbin/runc";

std::string ShimBinary() {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) return "";
  return StrCat(srcdir, "/", workspace, "/runtime/shim/berth-shim");
}

// Mount points (from /proc/self/mountinfo) under `dir`.
std::vector<std::string> MountsUnder(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::vector<std::string> found;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    if (mount_point.rfind(dir, 0) == 0) found.push_back(mount_point);
  }
  return found;
}

class ContainerManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (mounts, runc, cgroups, namespaces)";
    if (access(kRunc, X_OK) != 0) GTEST_SKIP() << kRunc << " is not installed";
    ASSERT_EQ(access(ShimBinary().c_str(), X_OK), 0) << ShimBinary();
    dir_ = std::make_unique<ot::TempDir>();
    const std::string& dir = dir_->path();

    absl::StatusOr<berth::testing::OciImage> busybox = berth::testing::BuildBusyboxImage();
    ASSERT_TRUE(busybox.ok()) << busybox.status();
    absl::StatusOr<std::unique_ptr<berth::testing::Registry>> registry =
        berth::testing::Registry::Start();
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Push(*busybox, "library/busybox", "1.36").ok());

    absl::StatusOr<store::StorePtr> store = store::SqliteStore::Open({.path = dir + "/db"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<content::ContentStore>> content =
        content::ContentStore::Open(dir + "/content");
    ASSERT_TRUE(content.ok()) << content.status();
    content_ = *std::move(content);
    absl::StatusOr<snapshot::SnapshotterPtr> snapshotter =
        snapshot::OverlaySnapshotter::Create(dir + "/snapshotter", *store_);
    ASSERT_TRUE(snapshotter.ok()) << snapshotter.status();
    snapshotter_ = *std::move(snapshotter);
    images::ImageManagerOptions image_options;
    image_options.registry.hosts["*"].mirrors = {registry_->url()};
    absl::StatusOr<std::unique_ptr<images::ImageManager>> images =
        images::ImageManager::Create(*store_, *content_, *snapshotter_, image_options);
    ASSERT_TRUE(images.ok()) << images.status();
    images_ = *std::move(images);
    image_ = registry_->host() + "/library/busybox:1.36";
    absl::StatusOr<std::string> pulled = images_->Pull(image_, {});
    ASSERT_TRUE(pulled.ok()) << pulled.status();

    absl::StatusOr<std::unique_ptr<sandbox::SandboxManager>> pods =
        sandbox::SandboxManager::Create(*store_, dir + "/pods", {""});
    ASSERT_TRUE(pods.ok()) << pods.status();
    pods_ = *std::move(pods);
    OpenContainers();

    container::PodSpec pod;
    pod.name = "pod1";
    pod.uid = "uid-1";
    pod.namespace_name = "default";
    pod.hostname = "pod1";
    pod.log_directory = dir + "/logs/default_pod1_uid-1";
    pod.cgroup_parent = "/" + cgroups_.name();
    absl::StatusOr<std::string> pod_id = pods_->Run(pod);
    ASSERT_TRUE(pod_id.ok()) << pod_id.status();
    pod_id_ = *pod_id;
  }

  void OpenContainers() {
    containers_.reset();
    absl::StatusOr<std::unique_ptr<ContainerManager>> containers = ContainerManager::Create(
        *store_, *pods_, *images_, *snapshotter_,
        {.state_dir = dir_->path() + "/state", .shim_binary = ShimBinary(), .runc_binary = kRunc});
    ASSERT_TRUE(containers.ok()) << containers.status();
    containers_ = *std::move(containers);
  }

  void TearDown() override {
    if (dir_ == nullptr) return;
    if (containers_ != nullptr) {
      absl::StatusOr<std::vector<Container>> all = containers_->List({});
      EXPECT_TRUE(all.ok()) << all.status();
      if (all.ok()) {
        for (const Container& c : *all) {
          ADD_FAILURE() << "container left: " << c.id;
          EXPECT_TRUE(containers_->Remove(c.id).ok());
        }
      }
    }
    if (pods_ != nullptr && !pod_id_.empty()) {
      EXPECT_TRUE(pods_->Remove(pod_id_).ok());
    }
    containers_.reset();
    pods_.reset();
    images_.reset();
    snapshotter_.reset();
    content_.reset();
    store_.reset();
    registry_.reset();
    for (const std::string& m : MountsUnder(dir_->path())) {
      umount2(m.c_str(), MNT_DETACH);
    }
    dir_.reset();
  }

  // What a removed container must not leave behind.
  void ExpectNothingLeft() {
    const std::string& dir = dir_->path();
    EXPECT_THAT(MountsUnder(dir + "/state"), IsEmpty());
    absl::StatusOr<std::vector<oci::ContainerState>> runc = containers_->runtime().List();
    ASSERT_TRUE(runc.ok()) << runc.status();
    EXPECT_TRUE(runc->empty()) << "runc still knows " << runc->size() << " containers";
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!ot::ProcessesWithCmdline(dir).empty() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    EXPECT_THAT(ot::ProcessesWithCmdline(dir), IsEmpty()) << "shims left";
    EXPECT_THAT(cgroups_.Leftovers(), IsEmpty()) << "cgroups left";
    std::error_code ec;
    EXPECT_TRUE(std::filesystem::is_empty(dir + "/state/containers", ec));
    absl::StatusOr<std::vector<snapshot::SnapshotInfo>> snapshots = snapshotter_->List();
    ASSERT_TRUE(snapshots.ok());
    for (const snapshot::SnapshotInfo& s : *snapshots) {
      EXPECT_EQ(s.kind, snapshot::SnapshotKind::kCommitted) << "active snapshot left: " << s.key;
    }
  }

  container::ContainerSpec Spec(const std::string& name, std::vector<std::string> command) {
    container::ContainerSpec spec;
    spec.name = name;
    spec.image = image_;
    spec.command = std::move(command);
    spec.log_path = name + "/0.log";
    spec.labels = {{"app", name}};
    spec.security.namespace_options.pid = container::NamespaceMode::kContainer;
    return spec;
  }

  Container MustFind(const std::string& id) {
    absl::StatusOr<std::optional<Container>> c = containers_->Find(id);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok() || !c->has_value()) {
      ADD_FAILURE() << "container " << id << " not found";
      return {};
    }
    return **c;
  }

  Container WaitExited(const std::string& id, absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    Container c = MustFind(id);
    while (c.state != ContainerState::kExited && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      c = MustFind(id);
    }
    return c;
  }

  std::unique_ptr<ot::TempDir> dir_;
  ot::TestCgroupParent cgroups_;
  std::unique_ptr<berth::testing::Registry> registry_;
  store::StorePtr store_;
  std::unique_ptr<content::ContentStore> content_;
  snapshot::SnapshotterPtr snapshotter_;
  std::unique_ptr<images::ImageManager> images_;
  std::unique_ptr<sandbox::SandboxManager> pods_;
  std::unique_ptr<ContainerManager> containers_;
  std::string image_;
  std::string pod_id_;
};

TEST_F(ContainerManagerTest, RunsToCompletionWithExitCodeAndLog) {
  absl::StatusOr<std::string> id =
      containers_->Create(pod_id_, Spec("c1", {"sh", "-c", "echo hello; exit 3"}), image_);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->size(), 64u);
  Container created = MustFind(*id);
  EXPECT_EQ(created.state, ContainerState::kCreated);
  EXPECT_EQ(created.pod_id, pod_id_);
  EXPECT_GT(created.pid, 0);
  EXPECT_GT(created.shim_pid, 0);
  EXPECT_EQ(created.log_path, dir_->path() + "/logs/default_pod1_uid-1/c1/0.log");
  EXPECT_THAT(MountsUnder(created.dir + "/rootfs"), ::testing::SizeIs(1));

  ASSERT_TRUE(containers_->Start(*id).ok());
  Container exited = WaitExited(*id);
  EXPECT_EQ(exited.state, ContainerState::kExited);
  EXPECT_EQ(exited.exit_code, 3);
  EXPECT_EQ(exited.reason, "Error");
  EXPECT_GT(exited.started_at_ns, 0);
  EXPECT_GE(exited.finished_at_ns, exited.started_at_ns);
  EXPECT_THAT(ot::ReadFileOrEmpty(exited.log_path), HasSubstr(" stdout F hello\n"));

  // List by pod, state and label.
  absl::StatusOr<std::vector<Container>> listed = containers_->List(
      {.pod_id = pod_id_, .state = ContainerState::kExited, .labels = {{"app", "c1"}}});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, *id);
  EXPECT_TRUE(containers_->List({.state = ContainerState::kRunning})->empty());
  // Start of an exited container, Stop of one: refused, and OK.
  EXPECT_EQ(containers_->Start(*id).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(containers_->Stop(*id, 2).ok());

  ASSERT_TRUE(containers_->Remove(*id).ok());
  EXPECT_TRUE(containers_->Remove(*id).ok());  // idempotent
  EXPECT_FALSE(containers_->Find(*id)->has_value());
  ExpectNothingLeft();
}

TEST_F(ContainerManagerTest, StopKillsAfterTimeout) {
  absl::StatusOr<std::string> id =
      containers_->Create(pod_id_, Spec("sleeper", {"sleep", "1000"}), image_);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(containers_->Start(*id).ok());
  EXPECT_EQ(MustFind(*id).state, ContainerState::kRunning);
  // Its cgroup sits under the pod's cgroup parent (so the census below means something).
  nlohmann::json config =
      nlohmann::json::parse(ot::ReadFileOrEmpty(MustFind(*id).dir + "/config.json"), nullptr,
                            /*allow_exceptions=*/false);
  EXPECT_EQ(config["linux"].value("cgroupsPath", ""), cgroups_.PathFor(*id));
  EXPECT_THAT(cgroups_.Leftovers(), Not(IsEmpty()));

  absl::Time before = absl::Now();
  absl::Status stopped = containers_->Stop(*id, 2);
  ASSERT_TRUE(stopped.ok()) << stopped;
  EXPECT_LT(absl::Now() - before, absl::Seconds(15));
  Container c = MustFind(*id);
  EXPECT_EQ(c.state, ContainerState::kExited);
  EXPECT_THAT(c.exit_code, AnyOf(137, 143));
  EXPECT_EQ(c.reason, "Error");
  EXPECT_TRUE(containers_->Stop(*id, 2).ok());  // idempotent

  ASSERT_TRUE(containers_->Remove(*id).ok());
  ExpectNothingLeft();
}

TEST_F(ContainerManagerTest, RemoveKillsRunningAndCreatedContainers) {
  absl::StatusOr<std::string> running =
      containers_->Create(pod_id_, Spec("running", {"sleep", "1000"}), image_);
  ASSERT_TRUE(running.ok()) << running.status();
  ASSERT_TRUE(containers_->Start(*running).ok());
  absl::StatusOr<std::string> created =
      containers_->Create(pod_id_, Spec("created", {"sleep", "1000"}), image_);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(containers_->List({.pod_id = pod_id_})->size(), 2u);

  ASSERT_TRUE(containers_->Remove(*running).ok());
  ASSERT_TRUE(containers_->Remove(created->substr(0, 12)).ok());  // by prefix
  EXPECT_TRUE(containers_->List({})->empty());
  ExpectNothingLeft();
}

TEST_F(ContainerManagerTest, CreateRefusesUnknownPodAndImage) {
  EXPECT_EQ(containers_->Create("nope", Spec("c", {"true"}), image_).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(containers_->Create(pod_id_, Spec("c", {"true"}), "busybox:nope").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(pods_->Stop(pod_id_).ok());
  EXPECT_EQ(containers_->Create(pod_id_, Spec("c", {"true"}), image_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ExpectNothingLeft();
}

TEST_F(ContainerManagerTest, CreateFailureLeavesNothing) {
  // No such binary in the image: runc create fails inside the shim.
  absl::StatusOr<std::string> id =
      containers_->Create(pod_id_, Spec("bad", {"/no/such/binary"}), image_);
  EXPECT_FALSE(id.ok());
  EXPECT_THAT(id.status().message(), HasSubstr("bad"));
  EXPECT_TRUE(containers_->List({})->empty());
  ExpectNothingLeft();
}

TEST_F(ContainerManagerTest, RecoverKeepsLiveAndPicksUpExits) {
  absl::StatusOr<std::string> live =
      containers_->Create(pod_id_, Spec("live", {"sleep", "1000"}), image_);
  ASSERT_TRUE(live.ok()) << live.status();
  ASSERT_TRUE(containers_->Start(*live).ok());
  absl::StatusOr<std::string> quick =
      containers_->Create(pod_id_, Spec("quick", {"sh", "-c", "exit 7"}), image_);
  ASSERT_TRUE(quick.ok()) << quick.status();
  ASSERT_TRUE(containers_->Start(*quick).ok());
  // A half-made container, as a crash inside Create leaves it.
  ASSERT_TRUE(store_
                  ->Update([&](store::Transaction& tx) {
                    return tx.Create(store::Kind::kContainer, std::string(64, 'a'),
                                     {{"state", "creating"}, {"pod_id", pod_id_}});
                  })
                  .ok());
  // A directory with no record.
  std::filesystem::create_directories(dir_->path() + "/state/containers/" + std::string(64, 'b') +
                                      "/rootfs");
  absl::SleepFor(absl::Milliseconds(500));  // quick exits; nobody reads it before Recover

  OpenContainers();  // "berthd restarted"
  ASSERT_TRUE(containers_->Recover().ok());
  EXPECT_EQ(MustFind(*live).state, ContainerState::kRunning);
  Container q = MustFind(*quick);
  EXPECT_EQ(q.state, ContainerState::kExited);
  EXPECT_EQ(q.exit_code, 7);
  absl::StatusOr<std::vector<store::Record>> records;
  ASSERT_TRUE(store_
                  ->View([&](const store::ReadTransaction& tx) -> absl::Status {
                    records = tx.List(store::Kind::kContainer);
                    return records.status();
                  })
                  .ok());
  EXPECT_EQ(records->size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(dir_->path() + "/state/containers/" + std::string(64, 'b')));

  ASSERT_TRUE(containers_->Remove(*live).ok());
  ASSERT_TRUE(containers_->Remove(*quick).ok());
  ExpectNothingLeft();
}

}  // namespace
}  // namespace berth::containers
