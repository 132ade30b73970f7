// ImageManager against a real docker-registry, a real SQLite store, a real
// content store and the overlay snapshotter (e2e tier: root).
#include "runtime/images/image_manager.h"

#include <unistd.h>

#include <filesystem>

#include "e2e/fixtures/image_kit.h"
#include "e2e/fixtures/registry.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/image/digest.h"
#include "runtime/snapshot/overlay_snapshotter.h"
#include "runtime/store/sqlite_store.h"

namespace berth::images {
namespace {

using berth::testing::OciImage;

class ImageManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: unpacking sets ownership and whiteouts";
    char tmpl[] = "/tmp/berth-images-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    absl::StatusOr<OciImage> busybox = berth::testing::BuildBusyboxImage();
    ASSERT_TRUE(busybox.ok()) << busybox.status();
    busybox_ = *busybox;
    absl::StatusOr<OciImage> config = berth::testing::BuildConfigImage(busybox_);
    ASSERT_TRUE(config.ok()) << config.status();
    config_image_ = *config;
  }

  void TearDown() override {
    images_.reset();
    snapshotter_.reset();
    content_.reset();
    store_.reset();
    registry_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  void StartRegistry(berth::testing::RegistryOptions options = {}) {
    absl::StatusOr<std::unique_ptr<berth::testing::Registry>> registry =
        berth::testing::Registry::Start(options);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Push(busybox_, "library/busybox", "1.36").ok());
    ASSERT_TRUE(registry_->Push(config_image_, "berth/config", "v1").ok());
  }

  // registry.k8s.io, docker.io and the registry's own name all go to it.
  void Open(registry::Credentials credentials = {}) {
    absl::StatusOr<store::StorePtr> store = store::SqliteStore::Open({.path = dir_ + "/db"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<content::ContentStore>> content =
        content::ContentStore::Open(dir_ + "/content");
    ASSERT_TRUE(content.ok()) << content.status();
    content_ = *std::move(content);
    absl::StatusOr<snapshot::SnapshotterPtr> snapshotter =
        snapshot::OverlaySnapshotter::Create(dir_ + "/snapshotter", *store_);
    ASSERT_TRUE(snapshotter.ok()) << snapshotter.status();
    snapshotter_ = *std::move(snapshotter);
    ImageManagerOptions options;
    options.registry.hosts["*"].mirrors = {registry_->url()};
    options.registry.hosts["*"].credentials = credentials;
    absl::StatusOr<std::unique_ptr<ImageManager>> images =
        ImageManager::Create(*store_, *content_, *snapshotter_, options);
    ASSERT_TRUE(images.ok()) << images.status();
    images_ = *std::move(images);
  }

  std::string Busybox(const std::string& tag = "1.36") {
    return registry_->host() + "/library/busybox:" + tag;
  }

  size_t CommittedSnapshots() {
    absl::StatusOr<std::vector<snapshot::SnapshotInfo>> all = snapshotter_->List();
    EXPECT_TRUE(all.ok());
    return all.ok() ? all->size() : 0;
  }

  std::string dir_;
  OciImage busybox_, config_image_;
  std::unique_ptr<berth::testing::Registry> registry_;
  store::StorePtr store_;
  std::unique_ptr<content::ContentStore> content_;
  snapshot::SnapshotterPtr snapshotter_;
  std::unique_ptr<ImageManager> images_;
};

TEST_F(ImageManagerTest, PullByTagThenFindByEveryName) {
  StartRegistry();
  Open();
  absl::StatusOr<std::string> id = images_->Pull(Busybox(), {});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, busybox_.config.digest);

  std::string repo = registry_->host() + "/library/busybox";
  std::vector<std::string> names = {*id, std::string(image::DigestHex(*id)), Busybox(),
                                    repo + "@" + busybox_.manifest.digest};
  for (const std::string& name : names) {
    absl::StatusOr<std::optional<Image>> image = images_->Find(name);
    ASSERT_TRUE(image.ok()) << name << ": " << image.status();
    ASSERT_TRUE(image->has_value()) << name;
    EXPECT_EQ((*image)->id, *id);
    EXPECT_EQ((*image)->repo_tags, std::vector<std::string>{Busybox()});
    EXPECT_EQ((*image)->repo_digests,
              std::vector<std::string>{repo + "@" + busybox_.manifest.digest});
    EXPECT_EQ((*image)->config.cmd, std::vector<std::string>{"sh"});
    EXPECT_EQ((*image)->chain_ids.size(), 1u);
    EXPECT_GT((*image)->size, 0);
  }
  EXPECT_FALSE(images_->Find(repo + ":other")->has_value());
  EXPECT_EQ(images_->Find("Not/A/Ref").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CommittedSnapshots(), 1u);
}

TEST_F(ImageManagerTest, PullByDigestAndShortNameThroughAMirror) {
  StartRegistry();
  Open();
  // docker.io/library/busybox is served by the "*" mirror.
  absl::StatusOr<std::string> id = images_->Pull("busybox:1.36", {});
  ASSERT_TRUE(id.ok()) << id.status();
  absl::StatusOr<std::optional<Image>> image = images_->Find("busybox:1.36");
  ASSERT_TRUE(image.ok() && image->has_value());
  EXPECT_EQ((*image)->repo_tags, std::vector<std::string>{"docker.io/library/busybox:1.36"});

  absl::StatusOr<std::string> by_digest =
      images_->Pull("registry.k8s.io/library/busybox@" + busybox_.manifest.digest, {});
  ASSERT_TRUE(by_digest.ok()) << by_digest.status();
  EXPECT_EQ(*by_digest, *id);
  // Same image: one record, now with two repositories' names.
  EXPECT_EQ(images_->List()->size(), 1u);
}

TEST_F(ImageManagerTest, PullThroughAnIndexPicksLinuxAmd64) {
  StartRegistry();
  // arm64 points at the config image, amd64 at busybox.
  ASSERT_TRUE(registry_->Push(config_image_, "library/busybox", "arm-only").ok());
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", image::kOciIndex},
                          {"manifests",
                           {{{"mediaType", image::kOciManifest},
                             {"digest", config_image_.manifest.digest},
                             {"size", config_image_.manifest.data.size()},
                             {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}},
                            {{"mediaType", image::kOciManifest},
                             {"digest", busybox_.manifest.digest},
                             {"size", busybox_.manifest.data.size()},
                             {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
  berth::testing::Blob blob{.media_type = std::string(image::kOciIndex), .data = index.dump()};
  blob.digest = image::Sha256Digest(blob.data);
  ASSERT_TRUE(registry_->PushManifest(blob, "library/busybox", "multi").ok());
  Open();

  absl::StatusOr<std::string> id = images_->Pull(Busybox("multi"), {});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, busybox_.config.digest);
  // The repo digest is the index's, as the user asked for that.
  absl::StatusOr<std::optional<Image>> image = images_->Find(*id);
  ASSERT_TRUE(image.ok() && image->has_value());
  EXPECT_EQ((*image)->repo_digests,
            std::vector<std::string>{registry_->host() + "/library/busybox@" + blob.digest});
  EXPECT_EQ((*image)->manifest_digest, busybox_.manifest.digest);
}

TEST_F(ImageManagerTest, SharedBaseLayerIsUnpackedOnceAndCollectedLast) {
  StartRegistry();
  Open();
  ASSERT_TRUE(images_->Pull(Busybox(), {}).ok());
  absl::StatusOr<std::string> config_id = images_->Pull(registry_->host() + "/berth/config:v1", {});
  ASSERT_TRUE(config_id.ok()) << config_id.status();
  // busybox's layer once, the config image's second layer once.
  EXPECT_EQ(CommittedSnapshots(), 2u);

  absl::StatusOr<std::optional<Image>> config = images_->Find(*config_id);
  ASSERT_TRUE(config.ok() && config->has_value());
  EXPECT_EQ((*config)->config.user, "berth");
  EXPECT_EQ((*config)->config.working_dir, "/work");

  // Removing the config image frees exactly its own blobs and layer.
  ASSERT_TRUE(images_->Remove(*config_id).ok());
  ASSERT_TRUE(images_->CollectGarbage().ok());
  EXPECT_EQ(CommittedSnapshots(), 1u);
  EXPECT_TRUE(content_->Has(busybox_.layers[0].blob.digest));
  EXPECT_TRUE(content_->Has(busybox_.config.digest));
  EXPECT_FALSE(content_->Has(config_image_.config.digest));
  EXPECT_FALSE(content_->Has(config_image_.layers[1].blob.digest));

  ASSERT_TRUE(images_->Remove(Busybox()).ok());
  ASSERT_TRUE(images_->CollectGarbage().ok());
  EXPECT_EQ(CommittedSnapshots(), 0u);
  EXPECT_TRUE(content_->List()->empty());
}

TEST_F(ImageManagerTest, SeveralTagsAreOneImageAndRemovingOneOnlyUntags) {
  StartRegistry();
  ASSERT_TRUE(registry_->Push(busybox_, "library/busybox", "a").ok());
  ASSERT_TRUE(registry_->Push(busybox_, "library/busybox", "b").ok());
  Open();
  for (const char* tag : {"1.36", "a", "b"}) ASSERT_TRUE(images_->Pull(Busybox(tag), {}).ok());
  absl::StatusOr<std::vector<Image>> all = images_->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].repo_tags.size(), 3u);

  ASSERT_TRUE(images_->Remove(Busybox("a")).ok());
  absl::StatusOr<std::optional<Image>> left = images_->Find(Busybox("b"));
  ASSERT_TRUE(left.ok() && left->has_value());
  EXPECT_EQ((*left)->repo_tags.size(), 2u);
  EXPECT_FALSE(images_->Find(Busybox("a"))->has_value());

  ASSERT_TRUE(images_->Remove(Busybox("b")).ok());
  ASSERT_TRUE(images_->Remove(Busybox("1.36")).ok());
  EXPECT_TRUE(images_->List()->empty());
  // Removing what is gone is fine.
  EXPECT_TRUE(images_->Remove(Busybox("1.36")).ok());
}

TEST_F(ImageManagerTest, HostileLayerFailsThePullAndLeavesNothing) {
  StartRegistry();
  absl::StatusOr<berth::testing::Layer> evil =
      berth::testing::BuildLayer({berth::testing::TarEntry::File("../escape", "boom")});
  ASSERT_TRUE(evil.ok()) << evil.status();
  absl::StatusOr<OciImage> image =
      berth::testing::BuildImage("berth/evil", "latest", berth::testing::ImageConfig{.cmd = {"sh"}},
                                 {busybox_.layers[0], *evil});
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_TRUE(registry_->Push(*image, "berth/evil", "latest").ok());
  Open();

  absl::StatusOr<std::string> id = images_->Pull(registry_->host() + "/berth/evil:latest", {});
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << id.status();
  EXPECT_NE(id.status().message().find("../escape"), std::string::npos) << id.status();
  EXPECT_TRUE(images_->List()->empty());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/escape"));
  ASSERT_TRUE(images_->CollectGarbage().ok());
  EXPECT_EQ(CommittedSnapshots(), 0u);
  EXPECT_TRUE(content_->List()->empty());
}

TEST_F(ImageManagerTest, BasicAuthRegistry) {
  StartRegistry({.credentials = {.username = "berth", .password = "pw"}});
  Open();
  EXPECT_EQ(images_->Pull(Busybox(), {}).status().code(), absl::StatusCode::kUnauthenticated);
  absl::StatusOr<std::string> id =
      images_->Pull(Busybox(), {.username = "berth", .password = "pw"});
  EXPECT_TRUE(id.ok()) << id.status();
}

TEST(ChainIdsTest, FollowTheOciFormula) {
  std::vector<std::string> chain = ChainIds({"sha256:a", "sha256:b"});
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0], "sha256:a");
  EXPECT_EQ(chain[1], image::Sha256Digest("sha256:a sha256:b"));
}

}  // namespace
}  // namespace berth::images
