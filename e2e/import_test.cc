// The air-gapped path: no registry anywhere. An operator carries an OCI
// layout or a `docker save` tar to the node and imports it through berth's
// ImportImage, with berthctl or any gRPC client; the images then look to the
// kubelet exactly like pulled ones.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "e2e/berthd_fixture.h"
#include "e2e/fixtures/image_kit.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/base/strings.h"
#include "runtime/images/import_testing.h"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;

constexpr char kBusyboxName[] = "docker.io/berth-test/busybox:latest";
constexpr char kConfigName[] = "docker.io/berth-test/config:latest";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

struct CommandRun {
  int code;
  std::string out;
};

// Runs berthctl against the daemon; `args` may use shell redirections.
CommandRun Berthctl(const BerthdFixture& berthd, const std::string& args) {
  std::string binary =
      StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"), "/cli/berthctl");
  std::string command = StrCat(binary, " -r unix://", berthd.socket(), " ", args, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class ImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: image layers are unpacked with ownership";
    absl::StatusOr<OciImage> busybox = BuildBusyboxImage();
    ASSERT_TRUE(busybox.ok()) << busybox.status();
    busybox_ = *busybox;
    absl::StatusOr<OciImage> config = BuildConfigImage(busybox_);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    // No [registries] at all: nothing could be pulled.
    absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start();
    ASSERT_TRUE(berthd.ok()) << berthd.status();
    berthd_ = *std::move(berthd);
  }

  std::string Path(const std::string& name) const { return berthd_->dir() + "/" + name; }

  // Streams the file to ImportImage in chunks of chunk_bytes.
  grpc::Status Import(const std::string& path, berth::v1::ImportImageResponse* response,
                      const std::string& name = "", size_t chunk_bytes = 256 << 10) {
    std::string data = ReadFile(path);
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientWriter<berth::v1::ImportImageRequest>> writer =
        berthd_->berth().ImportImage(&ctx, response);
    berth::v1::ImportImageRequest request;
    request.set_name(name);
    for (size_t offset = 0; offset < data.size(); offset += chunk_bytes) {
      request.set_chunk(data.substr(offset, chunk_bytes));
      if (!writer->Write(request)) break;
      request.clear_name();
    }
    writer->WritesDone();
    return writer->Finish();
  }

  v1::Image Status(const std::string& ref) {
    grpc::ClientContext ctx;
    v1::ImageStatusRequest request;
    request.mutable_image()->set_image(ref);
    v1::ImageStatusResponse response;
    grpc::Status s = berthd_->image().ImageStatus(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << ref << ": " << s.error_message();
    return response.image();
  }

  std::vector<v1::Image> List() {
    grpc::ClientContext ctx;
    v1::ListImagesResponse response;
    grpc::Status s = berthd_->image().ListImages(&ctx, v1::ListImagesRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {response.images().begin(), response.images().end()};
  }

  grpc::Status Remove(const std::string& ref) {
    grpc::ClientContext ctx;
    v1::RemoveImageRequest request;
    request.mutable_image()->set_image(ref);
    v1::RemoveImageResponse response;
    return berthd_->image().RemoveImage(&ctx, request, &response);
  }

  // Unpacked layers on disk.
  size_t Snapshots() {
    size_t n = 0;
    for (const auto& e :
         std::filesystem::directory_iterator(berthd_->root() + "/snapshotter/snapshots")) {
      if (e.path().filename().string().rfind("tmp-", 0) != 0) ++n;
    }
    return n;
  }

  // Upload spools and blobs being written.
  std::vector<std::string> IngestFiles() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(berthd_->root() + "/content/ingest")) {
      out.push_back(e.path().filename());
    }
    return out;
  }

  OciImage busybox_, config_;
  std::unique_ptr<BerthdFixture> berthd_;
};

TEST_F(ImportTest, OciLayoutTarBecomesImagesTheKubeletCanUse) {
  std::string tar = Path("layout.tar");
  ASSERT_TRUE(WriteOciLayoutTar({busybox_, config_}, tar).ok());
  berth::v1::ImportImageResponse response;
  grpc::Status s = Import(tar, &response);
  ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << berthd_->Log();
  ASSERT_EQ(response.images_size(), 2);
  EXPECT_EQ(response.images(0).id(), busybox_.config.digest);
  EXPECT_EQ(response.images(0).repo_tags(0), kBusyboxName);
  EXPECT_EQ(response.images(0).repo_digests(0),
            "docker.io/berth-test/busybox@" + busybox_.manifest.digest);
  EXPECT_EQ(response.images(1).id(), config_.config.digest);
  EXPECT_EQ(response.images(1).repo_tags(0), kConfigName);

  std::vector<v1::Image> images = List();
  ASSERT_EQ(images.size(), 2u);
  std::set<std::string> tags;
  for (const v1::Image& image : images)
    tags.insert(image.repo_tags().begin(), image.repo_tags().end());
  EXPECT_EQ(tags, (std::set<std::string>{kBusyboxName, kConfigName}));

  // ImageStatus is the same by id, tag, short name and digest, as for a pull.
  v1::Image by_id = Status(config_.config.digest);
  EXPECT_EQ(by_id.id(), config_.config.digest);
  EXPECT_EQ(by_id.username(), "berth");
  for (const std::string& name : {std::string(kConfigName), std::string("berth-test/config"),
                                  "docker.io/berth-test/config@" + config_.manifest.digest}) {
    EXPECT_EQ(Status(name).SerializeAsString(), by_id.SerializeAsString()) << name;
  }
  // The config image reuses busybox's layer: three layers, two on disk.
  EXPECT_EQ(Snapshots(), 2u);
  EXPECT_TRUE(IngestFiles().empty());

  // And they go like pulled images do.
  ASSERT_TRUE(Remove(kConfigName).ok());
  EXPECT_EQ(Snapshots(), 1u);
  ASSERT_TRUE(Remove(busybox_.config.digest).ok());
  EXPECT_EQ(Snapshots(), 0u);
  EXPECT_TRUE(List().empty());
}

TEST_F(ImportTest, DockerSaveTarKeepsTheImageConfig) {
  absl::StatusOr<std::vector<TarEntry>> base = images::testing::LayerEntries(busybox_.layers[0]);
  ASSERT_TRUE(base.ok()) << base.status();
  absl::StatusOr<images::testing::SavedImage> app = images::testing::SaveableImage(
      "berth-test/app", "v1",
      ImageConfig{.user = "1001:1001", .cmd = {"sh", "-c", "id"}, .working_dir = "/tmp"},
      {*base, {TarEntry::Dir("app"), TarEntry::File("app/hello.txt", "hello\n")}});
  ASSERT_TRUE(app.ok()) << app.status();
  absl::StatusOr<images::testing::SavedImage> named = images::testing::SaveableImage(
      "berth-test/named", "v1", ImageConfig{.user = "www-data"}, {*base});
  ASSERT_TRUE(named.ok()) << named.status();
  absl::StatusOr<std::string> tar = images::testing::DockerSaveTar({*app, *named});
  ASSERT_TRUE(tar.ok()) << tar.status();
  WriteFile(Path("saved.tar"), *tar);

  berth::v1::ImportImageResponse response;
  grpc::Status s = Import(Path("saved.tar"), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(response.images_size(), 2);
  EXPECT_EQ(response.images(0).id(), app->image.config.digest);

  v1::Image image = Status("berth-test/app:v1");
  EXPECT_EQ(image.id(), app->image.config.digest);
  ASSERT_TRUE(image.has_uid());
  EXPECT_EQ(image.uid().value(), 1001);
  ASSERT_EQ(image.repo_digests_size(), 1);
  EXPECT_EQ(image.repo_digests(0), response.images(0).repo_digests(0));
  EXPECT_EQ(Status("berth-test/named:v1").username(), "www-data");

  // The verbose status shows the config as saved.
  grpc::ClientContext ctx;
  v1::ImageStatusRequest request;
  request.mutable_image()->set_image("berth-test/app:v1");
  request.set_verbose(true);
  v1::ImageStatusResponse verbose;
  ASSERT_TRUE(berthd_->image().ImageStatus(&ctx, request, &verbose).ok());
  nlohmann::json info = nlohmann::json::parse(verbose.info().at("info"));
  EXPECT_EQ(info["imageSpec"]["config"]["WorkingDir"], "/tmp");
  EXPECT_EQ(info["imageSpec"]["config"]["Cmd"], nlohmann::json({"sh", "-c", "id"}));
  EXPECT_EQ(Snapshots(), 2u);
}

TEST_F(ImportTest, CorruptArchiveIsRefusedAndLeavesNothing) {
  std::string good = Path("layout.tar");
  ASSERT_TRUE(WriteOciLayoutTar({busybox_, config_}, good).ok());
  absl::StatusOr<std::vector<TarEntry>> entries = ReadTar(ReadFile(good));
  ASSERT_TRUE(entries.ok()) << entries.status();
  const std::string layer = "blobs/sha256/" + config_.layers[1].blob.digest.substr(7);
  bool changed = false;
  for (TarEntry& entry : *entries) {
    if (entry.path != layer) continue;
    entry.content[entry.content.size() / 2] ^= 0x55;
    changed = true;
  }
  ASSERT_TRUE(changed);
  absl::StatusOr<std::string> corrupt = WriteTar(*entries);
  ASSERT_TRUE(corrupt.ok());
  WriteFile(Path("corrupt.tar"), *corrupt);

  berth::v1::ImportImageResponse response;
  grpc::Status s = Import(Path("corrupt.tar"), &response);
  EXPECT_EQ(s.error_code(), grpc::DATA_LOSS) << s.error_message();
  EXPECT_NE(s.error_message().find(config_.layers[1].blob.digest), std::string::npos)
      << s.error_message();
  EXPECT_TRUE(List().empty());
  EXPECT_TRUE(IngestFiles().empty());

  // Not an archive at all; and nothing sent.
  WriteFile(Path("junk.tar"), std::string(4096, 'x'));
  s = Import(Path("junk.tar"), &response);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << s.error_message();
  WriteFile(Path("empty.tar"), "");
  s = Import(Path("empty.tar"), &response);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << s.error_message();
  EXPECT_TRUE(List().empty());
  EXPECT_TRUE(IngestFiles().empty());

  // The good archive still imports: the failures left nothing in the way.
  s = Import(good, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(ImportTest, ClientGoingAwayMidUploadLeavesNoSpool) {
  std::string tar = Path("layout.tar");
  ASSERT_TRUE(WriteOciLayoutTar({busybox_, config_}, tar).ok());
  std::string data = ReadFile(tar);
  {
    grpc::ClientContext ctx;
    berth::v1::ImportImageResponse response;
    auto writer = berthd_->berth().ImportImage(&ctx, &response);
    berth::v1::ImportImageRequest request;
    request.set_chunk(data.substr(0, data.size() / 2));
    ASSERT_TRUE(writer->Write(request));
    // The spool exists while the upload is under way.
    for (int i = 0; i < 100 && IngestFiles().empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(IngestFiles().size(), 1u);
    ctx.TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::CANCELLED);
  }
  for (int i = 0; i < 100 && !IngestFiles().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(IngestFiles().empty());
  EXPECT_TRUE(List().empty());
}

TEST_F(ImportTest, BerthctlImportAndImageImport) {
  std::string tar = Path("layout.tar");
  ASSERT_TRUE(WriteOciLayoutTar({busybox_, config_}, tar).ok());
  CommandRun run = Berthctl(*berthd_, "import " + tar);
  ASSERT_EQ(run.code, 0) << run.out;
  EXPECT_NE(run.out.find(busybox_.config.digest), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(kBusyboxName), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(kConfigName), std::string::npos) << run.out;
  CommandRun listed = Berthctl(*berthd_, "images");
  EXPECT_NE(listed.out.find("docker.io/berth-test/config"), std::string::npos) << listed.out;

  // An unnamed image from stdin, named on the command line; JSON output.
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", std::string(kIndexMediaType)},
                          {"manifests", {images::testing::DescriptorJson(busybox_.manifest)}}};
  absl::StatusOr<std::string> unnamed =
      images::testing::FilesTar(images::testing::LayoutFiles({busybox_}, index.dump()));
  ASSERT_TRUE(unnamed.ok());
  WriteFile(Path("unnamed.tar"), *unnamed);
  run = Berthctl(*berthd_, "-o json image import --name example.com/tools/busybox:v9 - < " +
                               Path("unnamed.tar"));
  ASSERT_EQ(run.code, 0) << run.out;
  nlohmann::json out = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << run.out;
  EXPECT_EQ(out["images"][0]["id"], busybox_.config.digest) << run.out;
  EXPECT_EQ(out["images"][0]["repoTags"][0], "example.com/tools/busybox:v9") << run.out;
  EXPECT_EQ(Status("example.com/tools/busybox:v9").id(), busybox_.config.digest);

  CommandRun missing = Berthctl(*berthd_, "import " + Path("missing.tar"));
  EXPECT_EQ(missing.code, 1) << missing.out;
  EXPECT_NE(missing.out.find("missing.tar"), std::string::npos) << missing.out;
  WriteFile(Path("junk.tar"), "junk");
  CommandRun junk = Berthctl(*berthd_, "image import " + Path("junk.tar"));
  EXPECT_EQ(junk.code, 1) << junk.out;
  EXPECT_NE(junk.out.find("berthctl: ImportImage"), std::string::npos) << junk.out;
  EXPECT_NE(junk.out.find("not a tar archive"), std::string::npos) << junk.out;
  CommandRun bare = Berthctl(*berthd_, "image");
  EXPECT_NE(bare.code, 0) << bare.out;
}

}  // namespace
}  // namespace berth::testing
