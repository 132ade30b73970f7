// ImageManager::Import with a real SQLite store, content store and the
// overlay snapshotter (e2e tier: root), from tars the tests build.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "e2e/fixtures/image_kit.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/image/digest.h"
#include "runtime/images/image_manager.h"
#include "runtime/images/import_format.h"
#include "runtime/images/import_testing.h"
#include "runtime/snapshot/overlay_snapshotter.h"
#include "runtime/store/sqlite_store.h"

namespace berth::images {
namespace {

using berth::testing::OciImage;
using berth::testing::TarEntry;
using testing::DescriptorJson;
using testing::SavedImage;

constexpr char kBusyboxName[] = "docker.io/berth-test/busybox:latest";
constexpr char kConfigName[] = "docker.io/berth-test/config:latest";

nlohmann::json Index(nlohmann::json manifests) {
  return {
      {"schemaVersion", 2}, {"mediaType", image::kOciIndex}, {"manifests", std::move(manifests)}};
}

class ImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: unpacking sets ownership and whiteouts";
    char tmpl[] = "/tmp/berth-import-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    absl::StatusOr<OciImage> busybox = berth::testing::BuildBusyboxImage();
    ASSERT_TRUE(busybox.ok()) << busybox.status();
    busybox_ = *busybox;
    absl::StatusOr<OciImage> config = berth::testing::BuildConfigImage(busybox_);
    ASSERT_TRUE(config.ok()) << config.status();
    config_image_ = *config;

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
    absl::StatusOr<std::unique_ptr<ImageManager>> images =
        ImageManager::Create(*store_, *content_, *snapshotter_, {});
    ASSERT_TRUE(images.ok()) << images.status();
    images_ = *std::move(images);
  }

  void TearDown() override {
    images_.reset();
    snapshotter_.reset();
    content_.reset();
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Writes the archive to a file and imports it.
  absl::StatusOr<std::vector<ImportedImage>> ImportBytes(const std::string& tar,
                                                         const std::string& name = "") {
    std::string path = dir_ + "/archive.tar";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << tar;
    return images_->Import(path, name);
  }

  absl::StatusOr<std::vector<ImportedImage>> ImportFiles(
      const std::map<std::string, std::string>& files, const std::string& name = "") {
    absl::StatusOr<std::string> tar = testing::FilesTar(files);
    if (!tar.ok()) return tar.status();
    return ImportBytes(*tar, name);
  }

  // A layout of both standard images, named as WriteOciLayout names them.
  std::map<std::string, std::string> StandardLayout() {
    std::string index =
        Index({DescriptorJson(busybox_.manifest,
                              {{std::string(kAnnotationImageName), busybox_.Reference()}}),
               DescriptorJson(config_image_.manifest,
                              {{std::string(kAnnotationImageName), config_image_.Reference()}})})
            .dump();
    return testing::LayoutFiles({busybox_, config_image_}, index);
  }

  size_t Snapshots() {
    absl::StatusOr<std::vector<snapshot::SnapshotInfo>> all = snapshotter_->List();
    EXPECT_TRUE(all.ok());
    return all.ok() ? all->size() : 0;
  }

  std::vector<std::string> IngestFiles() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/content/ingest")) {
      out.push_back(e.path().filename());
    }
    return out;
  }

  std::string dir_;
  OciImage busybox_, config_image_;
  store::StorePtr store_;
  std::unique_ptr<content::ContentStore> content_;
  snapshot::SnapshotterPtr snapshotter_;
  std::unique_ptr<ImageManager> images_;
};

TEST_F(ImportTest, OciLayoutTarFromTheImageKit) {
  std::string path = dir_ + "/layout.tar";
  ASSERT_TRUE(berth::testing::WriteOciLayoutTar({busybox_, config_image_}, path).ok());
  absl::StatusOr<std::vector<ImportedImage>> imported = images_->Import(path, "");
  ASSERT_TRUE(imported.ok()) << imported.status();
  ASSERT_EQ(imported->size(), 2u);
  EXPECT_EQ((*imported)[0].id, busybox_.config.digest);
  EXPECT_EQ((*imported)[0].repo_tags, std::vector<std::string>{kBusyboxName});
  EXPECT_EQ((*imported)[0].repo_digests,
            std::vector<std::string>{"docker.io/berth-test/busybox@" + busybox_.manifest.digest});
  EXPECT_EQ((*imported)[1].id, config_image_.config.digest);

  // Found like a pulled image, by every name.
  for (const std::string& name :
       {std::string(kBusyboxName), std::string("berth-test/busybox"),
        "docker.io/berth-test/busybox@" + busybox_.manifest.digest, busybox_.config.digest}) {
    absl::StatusOr<std::optional<Image>> image = images_->Find(name);
    ASSERT_TRUE(image.ok() && image->has_value()) << name;
    EXPECT_EQ((*image)->id, busybox_.config.digest);
    EXPECT_EQ((*image)->manifest_digest, busybox_.manifest.digest);
    EXPECT_EQ((*image)->config.cmd, std::vector<std::string>{"sh"});
  }
  absl::StatusOr<std::optional<Image>> config = images_->Find(kConfigName);
  ASSERT_TRUE(config.ok() && config->has_value());
  EXPECT_EQ((*config)->config.user, "berth");
  // The base layer is shared: two snapshots for three layers.
  EXPECT_EQ(Snapshots(), 2u);
  EXPECT_EQ((*config)->chain_ids[0], busybox_.layers[0].diff_id);

  // Recorded like a pull: garbage collection keeps everything; importing
  // again changes nothing; removing frees it all.
  ASSERT_TRUE(images_->CollectGarbage().ok());
  EXPECT_EQ(Snapshots(), 2u);
  EXPECT_TRUE(images_->Find(kConfigName)->has_value());
  ASSERT_TRUE(images_->Import(path, "").ok());
  EXPECT_EQ(images_->List()->size(), 2u);
  ASSERT_TRUE(images_->Remove(busybox_.config.digest).ok());
  ASSERT_TRUE(images_->Remove(config_image_.config.digest).ok());
  ASSERT_TRUE(images_->CollectGarbage().ok());
  EXPECT_EQ(Snapshots(), 0u);
  EXPECT_TRUE(content_->List()->empty());
  // The tar was only read.
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST_F(ImportTest, GzipCompressedLayoutTar) {
  absl::StatusOr<std::string> tar = testing::FilesTar(StandardLayout());
  ASSERT_TRUE(tar.ok());
  absl::StatusOr<std::string> gz = berth::testing::Gzip(*tar);
  ASSERT_TRUE(gz.ok());
  absl::StatusOr<std::vector<ImportedImage>> imported = ImportBytes(*gz);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->size(), 2u);
}

TEST_F(ImportTest, NamesFromRefNameAndTheDefaultName) {
  std::string index =
      Index({DescriptorJson(busybox_.manifest, {{std::string(kAnnotationRefName), "1.36"}}),
             DescriptorJson(config_image_.manifest)})
          .dump();
  auto files = testing::LayoutFiles({busybox_, config_image_}, index);

  // Without a name: the tag alone names nothing, so both are known by id only.
  absl::StatusOr<std::vector<ImportedImage>> unnamed = ImportFiles(files);
  ASSERT_TRUE(unnamed.ok()) << unnamed.status();
  ASSERT_EQ(unnamed->size(), 2u);
  EXPECT_TRUE((*unnamed)[0].repo_tags.empty());
  EXPECT_TRUE((*unnamed)[0].repo_digests.empty());
  absl::StatusOr<std::optional<Image>> by_id = images_->Find(busybox_.config.digest);
  ASSERT_TRUE(by_id.ok() && by_id->has_value());
  EXPECT_TRUE((*by_id)->repo_tags.empty());

  // With one: the tag goes on its repository; the unnamed image takes it whole.
  absl::StatusOr<std::vector<ImportedImage>> named = ImportFiles(files, "example.com/app:v2");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ((*named)[0].repo_tags, std::vector<std::string>{"example.com/app:1.36"});
  EXPECT_EQ((*named)[1].repo_tags, std::vector<std::string>{"example.com/app:v2"});
  EXPECT_EQ((*images_->Find("example.com/app:v2"))->id, config_image_.config.digest);

  EXPECT_EQ(ImportFiles(files, "Not:A:Ref").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ImportFiles(files, "app@sha256:" + std::string(64, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ImportTest, NestedIndexIsNarrowedToLinuxAmd64AndOtherPlatformsAreSkipped) {
  nlohmann::json nested = Index({DescriptorJson(config_image_.manifest, {}, "linux", "arm64"),
                                 DescriptorJson(busybox_.manifest, {}, "linux", "amd64")});
  berth::testing::Blob nested_blob{.media_type = std::string(image::kOciIndex),
                                   .data = nested.dump()};
  nested_blob.digest = image::Sha256Digest(nested_blob.data);
  std::string index =
      Index({DescriptorJson(nested_blob, {{std::string(kAnnotationImageName), "multi:1"}}),
             // A manifest listed for another platform is not imported.
             DescriptorJson(config_image_.manifest,
                            {{std::string(kAnnotationImageName), "arm-only:1"}}, "linux", "arm64")})
          .dump();
  auto files = testing::LayoutFiles({busybox_, config_image_}, index);
  files["blobs/sha256/" + nested_blob.digest.substr(7)] = nested_blob.data;
  absl::StatusOr<std::vector<ImportedImage>> imported = ImportFiles(files);
  ASSERT_TRUE(imported.ok()) << imported.status();
  ASSERT_EQ(imported->size(), 1u);
  EXPECT_EQ((*imported)[0].id, busybox_.config.digest);
  // The repo digest pins the index, as for a pull by tag.
  EXPECT_EQ((*imported)[0].repo_digests,
            std::vector<std::string>{"docker.io/library/multi@" + nested_blob.digest});
  absl::StatusOr<std::optional<Image>> image = images_->Find("multi:1");
  ASSERT_TRUE(image.ok() && image->has_value());
  EXPECT_EQ((*image)->manifest_digest, busybox_.manifest.digest);
  EXPECT_FALSE(images_->Find("arm-only:1")->has_value());
}

TEST_F(ImportTest, DockerSaveArchiveWithASharedLayer) {
  absl::StatusOr<std::vector<TarEntry>> base = testing::LayerEntries(busybox_.layers[0]);
  ASSERT_TRUE(base.ok()) << base.status();
  absl::StatusOr<SavedImage> app = testing::SaveableImage(
      "berth-test/app", "v1",
      berth::testing::ImageConfig{.user = "1001:1001", .cmd = {"sh", "-c", "id"}},
      {*base, {TarEntry::File("app.txt", "hello")}});
  ASSERT_TRUE(app.ok()) << app.status();
  app->repo_tags.push_back("example.com/app:also");
  absl::StatusOr<SavedImage> plain = testing::SaveableImage(
      "berth-test/plain", "v1", berth::testing::ImageConfig{.cmd = {"sh"}}, {*base});
  ASSERT_TRUE(plain.ok()) << plain.status();
  absl::StatusOr<std::string> tar = testing::DockerSaveTar({*app, *plain});
  ASSERT_TRUE(tar.ok()) << tar.status();

  absl::StatusOr<std::vector<ImportedImage>> imported = ImportBytes(*tar);
  ASSERT_TRUE(imported.ok()) << imported.status();
  ASSERT_EQ(imported->size(), 2u);
  EXPECT_EQ((*imported)[0].id, app->image.config.digest);
  EXPECT_EQ((*imported)[0].repo_tags,
            (std::vector<std::string>{"docker.io/berth-test/app:v1", "example.com/app:also"}));
  ASSERT_EQ((*imported)[0].repo_digests.size(), 2u);

  absl::StatusOr<std::optional<Image>> image = images_->Find("berth-test/app:v1");
  ASSERT_TRUE(image.ok() && image->has_value()) << image.status();
  EXPECT_EQ((*image)->config.user, "1001:1001");
  EXPECT_EQ((*image)->config.cmd, (std::vector<std::string>{"sh", "-c", "id"}));
  EXPECT_EQ((*image)->chain_ids.size(), 2u);
  // A synthesized Docker schema2 manifest gives the repo digest.
  absl::StatusOr<std::string> manifest = content_->ReadBlob((*image)->manifest_digest, 1 << 20);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(image::DetectMediaType(*manifest, ""), image::kDockerManifest);
  EXPECT_EQ((*imported)[0].repo_digests[0],
            "docker.io/berth-test/app@" + (*image)->manifest_digest);
  // The layers are stored as the uncompressed tars they were.
  EXPECT_TRUE(content_->Has(app->image.layers[0].diff_id));
  EXPECT_EQ(*content_->Size(app->image.layers[1].diff_id),
            static_cast<int64_t>(app->layer_tars[1].size()));
  // Two images, three layers, two distinct chains.
  EXPECT_EQ(Snapshots(), 2u);

  // Importing the same archive again yields the same manifest digest.
  absl::StatusOr<std::vector<ImportedImage>> again = ImportBytes(*tar);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)[0].repo_digests, (*imported)[0].repo_digests);
}

TEST_F(ImportTest, DockerSaveLayerThatIsNotItsDiffIdIsDataLoss) {
  absl::StatusOr<std::vector<TarEntry>> base = testing::LayerEntries(busybox_.layers[0]);
  ASSERT_TRUE(base.ok());
  absl::StatusOr<SavedImage> app = testing::SaveableImage(
      "berth-test/app", "v1", {}, {*base, {TarEntry::File("app.txt", "hello")}});
  ASSERT_TRUE(app.ok());
  app->layer_tars[1] = *berth::testing::WriteTar({TarEntry::File("app.txt", "HELLO")});
  absl::StatusOr<std::string> tar = testing::DockerSaveTar({*app});
  ASSERT_TRUE(tar.ok());
  absl::StatusOr<std::vector<ImportedImage>> imported = ImportBytes(*tar);
  EXPECT_EQ(imported.status().code(), absl::StatusCode::kDataLoss) << imported.status();
  EXPECT_TRUE(images_->List()->empty());
}

TEST_F(ImportTest, CorruptBlobFailsAndLeavesNothing) {
  auto files = StandardLayout();
  std::string& layer = files["blobs/sha256/" + config_image_.layers[1].blob.digest.substr(7)];
  layer[layer.size() / 2] ^= 0x55;
  absl::StatusOr<std::vector<ImportedImage>> imported = ImportFiles(files);
  EXPECT_EQ(imported.status().code(), absl::StatusCode::kDataLoss) << imported.status();
  EXPECT_NE(imported.status().message().find(config_image_.layers[1].blob.digest),
            std::string::npos)
      << imported.status();
  EXPECT_TRUE(images_->List()->empty());
  EXPECT_TRUE(IngestFiles().empty());
  ASSERT_TRUE(images_->CollectGarbage().ok());
  EXPECT_TRUE(content_->List()->empty());
  EXPECT_EQ(Snapshots(), 0u);
}

TEST_F(ImportTest, HostileAndMalformedArchivesAreRefused) {
  struct Case {
    std::string name;
    std::map<std::string, std::string> files;
    absl::StatusCode code;
  };
  std::vector<Case> cases;
  auto with = [&](std::string name, auto change, absl::StatusCode code) {
    auto files = StandardLayout();
    change(files);
    cases.push_back({std::move(name), std::move(files), code});
  };
  const std::string layer_path = "blobs/sha256/" + busybox_.layers[0].blob.digest.substr(7);
  with(
      "escaping path", [](auto& f) { f["../evil"] = "x"; }, absl::StatusCode::kInvalidArgument);
  with(
      "sha512 blob", [](auto& f) { f["blobs/sha512/" + std::string(128, 'a')] = "x"; },
      absl::StatusCode::kInvalidArgument);
  with(
      "missing layer", [&](auto& f) { f.erase(layer_path); }, absl::StatusCode::kInvalidArgument);
  with(
      "no index", [](auto& f) { f.erase("index.json"); }, absl::StatusCode::kInvalidArgument);
  with(
      "bad layout version", [](auto& f) { f["oci-layout"] = R"({"imageLayoutVersion":"2"})"; },
      absl::StatusCode::kInvalidArgument);
  with(
      "index is not JSON", [](auto& f) { f["index.json"] = "{"; },
      absl::StatusCode::kInvalidArgument);
  with(
      "empty index", [](auto& f) { f["index.json"] = Index(nlohmann::json::array()).dump(); },
      absl::StatusCode::kInvalidArgument);
  with(
      "oversize index.json", [](auto& f) { f["index.json"] = std::string(5 << 20, ' '); },
      absl::StatusCode::kInvalidArgument);
  with(
      "wrong descriptor size",
      [&](auto& f) {
        nlohmann::json d = DescriptorJson(busybox_.manifest);
        d["size"] = busybox_.manifest.data.size() + 1;
        f["index.json"] = Index({d}).dump();
      },
      absl::StatusCode::kDataLoss);
  with(
      "bad name annotation",
      [&](auto& f) {
        f["index.json"] =
            Index({DescriptorJson(busybox_.manifest,
                                  {{std::string(kAnnotationImageName), "Not:A:Ref"}})})
                .dump();
      },
      absl::StatusCode::kInvalidArgument);
  for (const Case& c : cases) {
    // What an earlier case stored is garbage, and must not make this one pass.
    ASSERT_TRUE(images_->CollectGarbage().ok());
    absl::StatusOr<std::vector<ImportedImage>> imported = ImportFiles(c.files);
    EXPECT_EQ(imported.status().code(), c.code) << c.name << ": " << imported.status();
    EXPECT_TRUE(images_->List()->empty()) << c.name;
  }

  // Entries the kit can only write raw: a device node, a link out of the archive.
  for (const TarEntry& entry :
       {TarEntry::CharDevice("dev", 1, 3), TarEntry::Symlink("x/layer.tar", "../../etc/shadow")}) {
    absl::StatusOr<std::string> tar = berth::testing::WriteTar({entry});
    ASSERT_TRUE(tar.ok());
    EXPECT_EQ(ImportBytes(*tar).status().code(), absl::StatusCode::kInvalidArgument) << entry.path;
  }
  EXPECT_EQ(ImportBytes("this is not a tar archive at all").status().code(),
            absl::StatusCode::kInvalidArgument);
  // A truncated archive.
  absl::StatusOr<std::string> tar = testing::FilesTar(StandardLayout());
  ASSERT_TRUE(tar.ok());
  EXPECT_FALSE(ImportBytes(tar->substr(0, tar->size() / 2)).ok());
  EXPECT_TRUE(images_->List()->empty());
  EXPECT_EQ(images_->Import(dir_ + "/missing.tar", "").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ImportTest, DockerSaveWithMissingOrEscapingPathsIsRefused) {
  absl::StatusOr<std::vector<TarEntry>> base = testing::LayerEntries(busybox_.layers[0]);
  ASSERT_TRUE(base.ok());
  absl::StatusOr<SavedImage> app = testing::SaveableImage("berth-test/app", "v1", {}, {*base});
  ASSERT_TRUE(app.ok());
  std::string config_file = app->image.config.digest.substr(7) + ".json";
  for (nlohmann::json manifest : {
           nlohmann::json::array({{{"Config", config_file}, {"Layers", {"nope/layer.tar"}}}}),
           nlohmann::json::array({{{"Config", "nope.json"}, {"Layers", {"x/layer.tar"}}}}),
           nlohmann::json::array({{{"Config", config_file}, {"Layers", {"../x/layer.tar"}}}}),
           nlohmann::json::array({{{"Config", config_file}, {"Layers", nlohmann::json::array()}}}),
       }) {
    std::vector<TarEntry> entries = {TarEntry::File(config_file, app->image.config.data),
                                     TarEntry::File("x/layer.tar", app->layer_tars[0]),
                                     TarEntry::File("manifest.json", manifest.dump())};
    absl::StatusOr<std::string> tar = berth::testing::WriteTar(entries);
    ASSERT_TRUE(tar.ok());
    EXPECT_EQ(ImportBytes(*tar).status().code(), absl::StatusCode::kInvalidArgument)
        << manifest.dump();
  }
  // A config whose name is not its digest.
  std::vector<TarEntry> entries = {
      TarEntry::File(std::string(64, 'a') + ".json", app->image.config.data),
      TarEntry::File("x/layer.tar", app->layer_tars[0]),
      TarEntry::File("manifest.json",
                     nlohmann::json::array({{{"Config", std::string(64, 'a') + ".json"},
                                             {"Layers", {"x/layer.tar"}}}})
                         .dump())};
  absl::StatusOr<std::string> tar = berth::testing::WriteTar(entries);
  ASSERT_TRUE(tar.ok());
  EXPECT_EQ(ImportBytes(*tar).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(images_->List()->empty());
}

TEST_F(ImportTest, SpoolSurvivesGarbageCollectionAndIsRemovedWithItsOwner) {
  absl::StatusOr<std::unique_ptr<ImportSpool>> spool = images_->NewImportSpool();
  ASSERT_TRUE(spool.ok()) << spool.status();
  std::string path = (*spool)->path();
  EXPECT_EQ(path.rfind(dir_ + "/content/ingest/import-", 0), 0u) << path;
  absl::StatusOr<std::string> tar = testing::FilesTar(StandardLayout());
  ASSERT_TRUE(tar.ok());
  ASSERT_TRUE((*spool)->Write(tar->substr(0, 1000)).ok());
  // A collection (after a RemoveImage, say) while the upload is under way.
  ASSERT_TRUE(images_->CollectGarbage().ok());
  ASSERT_TRUE((*spool)->Write(tar->substr(1000)).ok());
  ASSERT_TRUE((*spool)->Close().ok());
  EXPECT_EQ((*spool)->size(), static_cast<int64_t>(tar->size()));
  absl::StatusOr<std::vector<ImportedImage>> imported = images_->Import(path, "");
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->size(), 2u);
  EXPECT_EQ((*spool)->Write("x").code(), absl::StatusCode::kFailedPrecondition);
  spool->reset();
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(IngestFiles().empty());
}

}  // namespace
}  // namespace berth::images
