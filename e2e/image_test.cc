// Images as the kubelet and crictl meet them: PullImage from a real
// docker-registry through berth's mirror configuration, ImageStatus by every
// name, RemoveImage, ImageFsInfo, and a daemon killed in the middle of a pull.
#include <dirent.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include "e2e/berthd_fixture.h"
#include "e2e/fixtures/image_kit.h"
#include "e2e/fixtures/registry.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: image layers are unpacked with ownership";
    absl::StatusOr<OciImage> busybox = BuildBusyboxImage();
    ASSERT_TRUE(busybox.ok()) << busybox.status();
    busybox_ = *busybox;
    absl::StatusOr<std::unique_ptr<Registry>> registry = Registry::Start();
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Push(busybox_, "library/busybox", "1.36").ok());
  }

  // A berthd whose every registry name is served by the fixture registry.
  void StartBerthd() {
    absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start(
        {.config_toml = "[registries.\"*\"]\nmirrors = [\"" + registry_->url() + "\"]\n"});
    ASSERT_TRUE(berthd.ok()) << berthd.status();
    berthd_ = *std::move(berthd);
  }

  grpc::Status Pull(const std::string& ref, std::string* id = nullptr) {
    grpc::ClientContext ctx;
    v1::PullImageRequest request;
    request.mutable_image()->set_image(ref);
    v1::PullImageResponse response;
    grpc::Status s = berthd_->image().PullImage(&ctx, request, &response);
    if (id) *id = response.image_ref();
    return s;
  }

  v1::ImageStatusResponse Status(const std::string& ref, bool verbose = false) {
    grpc::ClientContext ctx;
    v1::ImageStatusRequest request;
    request.mutable_image()->set_image(ref);
    request.set_verbose(verbose);
    v1::ImageStatusResponse response;
    grpc::Status s = berthd_->image().ImageStatus(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << ref << ": " << s.error_message();
    return response;
  }

  grpc::Status Remove(const std::string& ref) {
    grpc::ClientContext ctx;
    v1::RemoveImageRequest request;
    request.mutable_image()->set_image(ref);
    v1::RemoveImageResponse response;
    return berthd_->image().RemoveImage(&ctx, request, &response);
  }

  std::vector<v1::Image> List(const std::string& filter = "") {
    grpc::ClientContext ctx;
    v1::ListImagesRequest request;
    if (!filter.empty()) request.mutable_filter()->mutable_image()->set_image(filter);
    v1::ListImagesResponse response;
    grpc::Status s = berthd_->image().ListImages(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {response.images().begin(), response.images().end()};
  }

  OciImage busybox_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<BerthdFixture> berthd_;
};

TEST_F(ImageTest, PullThenStatusIsIdenticalByIdTagDigestAndShortName) {
  StartBerthd();
  std::string id;
  // A Kubernetes-style name, served by the "*" mirror.
  grpc::Status pulled = Pull("registry.k8s.io/library/busybox:1.36", &id);
  ASSERT_TRUE(pulled.ok()) << pulled.error_message();
  EXPECT_EQ(id, busybox_.config.digest);
  ASSERT_TRUE(Pull("busybox:1.36").ok());

  v1::Image by_id = Status(id).image();
  EXPECT_EQ(by_id.id(), id);
  EXPECT_EQ(by_id.repo_tags_size(), 2);
  EXPECT_EQ(by_id.repo_digests_size(), 2);
  EXPECT_GT(by_id.size(), 0u);
  for (const std::string& name :
       {std::string("registry.k8s.io/library/busybox:1.36"), std::string("busybox:1.36"),
        std::string("docker.io/library/busybox@") + busybox_.manifest.digest, id.substr(7)}) {
    v1::Image image = Status(name).image();
    EXPECT_EQ(image.SerializeAsString(), by_id.SerializeAsString()) << name;
  }
  EXPECT_EQ(List().size(), 1u);
  EXPECT_EQ(List("busybox:1.36").size(), 1u);
  EXPECT_EQ(List("busybox:nope").size(), 0u);

  // verbose adds the image config.
  v1::ImageStatusResponse verbose = Status(id, true);
  nlohmann::json info = nlohmann::json::parse(verbose.info().at("info"));
  EXPECT_EQ(info["imageSpec"]["config"]["Cmd"], nlohmann::json({"sh"}));

  // A missing image is an empty answer, not an error.
  EXPECT_FALSE(Status("busybox:missing").has_image());
}

TEST_F(ImageTest, UserOfTheImageBecomesUidOrUsername) {
  struct Case {
    std::string tag, user;
    std::optional<int64_t> uid;
    std::string username;
  };
  std::vector<Case> cases = {{"numeric", "1003:1004", 1003, ""},
                             {"named", "www-data:1004", std::nullopt, "www-data"},
                             {"plain-uid", "0", 0, ""},
                             {"none", "", std::nullopt, ""}};
  for (const Case& c : cases) {
    absl::StatusOr<OciImage> image =
        BuildImage("berth/user", c.tag, ImageConfig{.user = c.user}, {busybox_.layers[0]});
    ASSERT_TRUE(image.ok());
    ASSERT_TRUE(registry_->Push(*image, "berth/user", c.tag).ok());
  }
  StartBerthd();
  for (const Case& c : cases) {
    std::string ref = registry_->host() + "/berth/user:" + c.tag;
    ASSERT_TRUE(Pull(ref).ok()) << ref;
    v1::Image image = Status(ref).image();
    EXPECT_EQ(image.has_uid(), c.uid.has_value()) << c.user;
    if (c.uid) {
      EXPECT_EQ(image.uid().value(), *c.uid) << c.user;
    }
    EXPECT_EQ(image.username(), c.username) << c.user;
  }
}

TEST_F(ImageTest, RemoveByTagOnlyUntagsThenByIdFreesTheDisk) {
  ASSERT_TRUE(registry_->Push(busybox_, "library/busybox", "other").ok());
  StartBerthd();
  std::string id;
  ASSERT_TRUE(Pull("busybox:1.36", &id).ok());
  ASSERT_TRUE(Pull("busybox:other").ok());
  ASSERT_EQ(Status(id).image().repo_tags_size(), 2);

  ASSERT_TRUE(Remove("busybox:other").ok());
  EXPECT_EQ(Status(id).image().repo_tags_size(), 1);

  grpc::ClientContext ctx;
  v1::ImageFsInfoResponse before;
  ASSERT_TRUE(berthd_->image().ImageFsInfo(&ctx, v1::ImageFsInfoRequest(), &before).ok());
  EXPECT_GT(before.image_filesystems(0).used_bytes().value(), 1000000u);  // busybox is ~2 MB

  ASSERT_TRUE(Remove(id).ok());
  EXPECT_FALSE(Status(id).has_image());
  EXPECT_TRUE(List().empty());
  EXPECT_TRUE(Remove(id).ok()) << "removing a missing image is not an error";
  grpc::ClientContext ctx2;
  v1::ImageFsInfoResponse after;
  ASSERT_TRUE(berthd_->image().ImageFsInfo(&ctx2, v1::ImageFsInfoRequest(), &after).ok());
  EXPECT_LT(after.image_filesystems(0).used_bytes().value(),
            before.image_filesystems(0).used_bytes().value() - 1000000u);
}

TEST_F(ImageTest, BadReferencesAreInvalidArgument) {
  StartBerthd();
  for (const char* bad : {"", "library/UPPER", "busybox:bad tag", "busybox@sha256:short"}) {
    grpc::Status s = Pull(bad);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << bad << ": " << s.error_message();
  }
  grpc::Status missing = Pull("busybox:does-not-exist");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND) << missing.error_message();
}

TEST(ImageAuthTest, CredentialsFromTheCriAuthConfig) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: image layers are unpacked with ownership";
  absl::StatusOr<OciImage> busybox = BuildBusyboxImage();
  ASSERT_TRUE(busybox.ok());
  absl::StatusOr<std::unique_ptr<Registry>> registry =
      Registry::Start({.credentials = {.username = "berth", .password = "pw"}});
  ASSERT_TRUE(registry.ok()) << registry.status();
  ASSERT_TRUE((*registry)->Push(*busybox, "library/busybox", "1.36").ok());
  absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start(
      {.config_toml = "[registries.\"*\"]\nmirrors = [\"" + (*registry)->url() + "\"]\n"});
  ASSERT_TRUE(berthd.ok()) << berthd.status();

  auto pull = [&](const v1::AuthConfig& auth) {
    grpc::ClientContext ctx;
    v1::PullImageRequest request;
    request.mutable_image()->set_image("busybox:1.36");
    *request.mutable_auth() = auth;
    v1::PullImageResponse response;
    return (*berthd)->image().PullImage(&ctx, request, &response);
  };
  EXPECT_EQ(pull({}).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::AuthConfig wrong;
  wrong.set_username("berth");
  wrong.set_password("nope");
  EXPECT_FALSE(pull(wrong).ok());
  v1::AuthConfig docker_form;
  docker_form.set_auth("YmVydGg6cHc=");  // base64("berth:pw"), as in a docker config.json
  grpc::Status ok = pull(docker_form);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  v1::AuthConfig malformed;
  malformed.set_auth("not base64!");
  EXPECT_EQ(pull(malformed).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

bool HasPullInProgress(const std::string& root) {
  for (const std::string& dir : {root + "/content/ingest", root + "/snapshotter/snapshots"}) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      std::string name = entry.path().filename();
      if (dir.ends_with("ingest") || name.rfind("tmp-", 0) == 0) return true;
    }
  }
  return false;
}

TEST_F(ImageTest, KillNineDuringAPullLeavesAConsistentStore) {
  // A layer of incompressible data, big enough to be caught mid-pull.
  std::mt19937_64 random(42);
  std::string noise(48 << 20, '\0');
  for (size_t i = 0; i + 8 <= noise.size(); i += 8) {
    uint64_t v = random();
    memcpy(&noise[i], &v, 8);
  }
  absl::StatusOr<Layer> big = BuildLayer({TarEntry::File("noise.bin", noise)});
  ASSERT_TRUE(big.ok()) << big.status();
  absl::StatusOr<OciImage> image =
      BuildImage("berth/big", "v1", ImageConfig{.cmd = {"sh"}}, {busybox_.layers[0], *big});
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_TRUE(registry_->Push(*image, "berth/big", "v1").ok());
  StartBerthd();

  std::string ref = registry_->host() + "/berth/big:v1";
  std::thread pull([&] { (void)Pull(ref); });
  bool caught = false;
  for (int i = 0; i < 20000 && !caught; ++i) {
    caught = HasPullInProgress(berthd_->root());
    if (!caught) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  berthd_->Kill9();
  pull.join();
  if (!caught) {
    GTEST_SKIP() << "the pull finished before it could be interrupted; nothing to check";
  }

  ASSERT_TRUE(berthd_->Restart().ok());
  // Start-up collected the half-done work: no image, no temp files, no layers.
  EXPECT_TRUE(List().empty());
  EXPECT_FALSE(HasPullInProgress(berthd_->root()));
  std::error_code ec;
  size_t snapshots = 0;
  for (auto it =
           std::filesystem::directory_iterator(berthd_->root() + "/snapshotter/snapshots", ec);
       it != std::filesystem::directory_iterator(); ++it) {
    ++snapshots;
  }
  EXPECT_EQ(snapshots, 0u);

  std::string id;
  grpc::Status again = Pull(ref, &id);
  ASSERT_TRUE(again.ok()) << again.error_message();
  EXPECT_EQ(id, image->config.digest);
  EXPECT_EQ(Status(ref).image().id(), id);
}

}  // namespace
}  // namespace berth::testing
