// The registry client against a real docker-registry (e2e tier).
#include "runtime/registry/registry_client.h"

#include "e2e/fixtures/image_kit.h"
#include "e2e/fixtures/registry.h"
#include "gtest/gtest.h"
#include "runtime/image/digest.h"

namespace berth::registry {
namespace {

using berth::testing::OciImage;

class RegistryClientTest : public ::testing::Test {
 protected:
  void StartRegistry(berth::testing::RegistryOptions options = {}) {
    absl::StatusOr<OciImage> busybox = berth::testing::BuildBusyboxImage();
    ASSERT_TRUE(busybox.ok()) << busybox.status();
    image_ = *busybox;
    absl::StatusOr<std::unique_ptr<berth::testing::Registry>> registry =
        berth::testing::Registry::Start(options);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Push(image_, "library/busybox", "1.36").ok());
  }

  // The registry under its own host name, reached over plain http.
  RegistryConfig DirectConfig() {
    RegistryConfig config;
    config.hosts[registry_->host()].mirrors = {"http://" + registry_->host()};
    return config;
  }

  OciImage image_;
  std::unique_ptr<berth::testing::Registry> registry_;
};

TEST_F(RegistryClientTest, ManifestByTagAndDigestAndBlob) {
  StartRegistry();
  RegistryClient client(DirectConfig());
  image::Reference ref = *image::ParseReference(registry_->host() + "/library/busybox:1.36");

  absl::StatusOr<FetchedManifest> by_tag = client.FetchManifest(ref, "1.36", {});
  ASSERT_TRUE(by_tag.ok()) << by_tag.status();
  EXPECT_EQ(by_tag->digest, image_.manifest.digest);
  EXPECT_EQ(by_tag->media_type, image::kOciManifest);
  EXPECT_EQ(by_tag->body, image_.manifest.data);

  absl::StatusOr<FetchedManifest> by_digest = client.FetchManifest(ref, image_.manifest.digest, {});
  ASSERT_TRUE(by_digest.ok()) << by_digest.status();
  EXPECT_EQ(by_digest->body, image_.manifest.data);

  std::string blob;
  image::Descriptor layer{.media_type = std::string(image::kOciLayerGzip),
                          .digest = image_.layers[0].blob.digest,
                          .size = static_cast<int64_t>(image_.layers[0].blob.data.size())};
  absl::Status fetched =
      client.FetchBlob(by_tag->endpoint, ref, layer, {}, [&](std::string_view chunk) {
        blob.append(chunk);
        return absl::OkStatus();
      });
  ASSERT_TRUE(fetched.ok()) << fetched;
  EXPECT_EQ(blob, image_.layers[0].blob.data);
}

TEST_F(RegistryClientTest, MissingTagIsNotFound) {
  StartRegistry();
  RegistryClient client(DirectConfig());
  image::Reference ref = *image::ParseReference(registry_->host() + "/library/busybox:nope");
  absl::StatusOr<FetchedManifest> missing = client.FetchManifest(ref, "nope", {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
}

TEST_F(RegistryClientTest, WrongDescriptorSizeOrDigestIsDataLoss) {
  StartRegistry();
  RegistryClient client(DirectConfig());
  image::Reference ref = *image::ParseReference(registry_->host() + "/library/busybox:1.36");
  auto sink = [](std::string_view) { return absl::OkStatus(); };
  Endpoint endpoint = (*ResolveEndpoints(client.config(), ref.domain))[0];
  image::Descriptor layer{.media_type = std::string(image::kOciLayerGzip),
                          .digest = image_.layers[0].blob.digest,
                          .size = static_cast<int64_t>(image_.layers[0].blob.data.size()) - 1};
  EXPECT_EQ(client.FetchBlob(endpoint, ref, layer, {}, sink).code(), absl::StatusCode::kDataLoss);
  layer.size += 2;
  EXPECT_EQ(client.FetchBlob(endpoint, ref, layer, {}, sink).code(), absl::StatusCode::kDataLoss);
}

TEST_F(RegistryClientTest, MirrorForAnotherRegistryName) {
  StartRegistry();
  RegistryConfig config;
  config.hosts["*"].mirrors = {"http://" + registry_->host()};
  RegistryClient client(config);
  // registry.k8s.io is never contacted: the mirror replaces it.
  image::Reference ref = *image::ParseReference("registry.k8s.io/library/busybox:1.36");
  absl::StatusOr<FetchedManifest> manifest = client.FetchManifest(ref, "1.36", {});
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->digest, image_.manifest.digest);
}

TEST_F(RegistryClientTest, BasicAuthFromRequestOrConfig) {
  StartRegistry({.credentials = {.username = "berth", .password = "s3cret"}});
  image::Reference ref = *image::ParseReference(registry_->host() + "/library/busybox:1.36");

  RegistryClient anonymous(DirectConfig());
  absl::StatusOr<FetchedManifest> denied = anonymous.FetchManifest(ref, "1.36", {});
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kUnauthenticated) << denied.status();

  RegistryClient with_request(DirectConfig());
  absl::StatusOr<FetchedManifest> ok =
      with_request.FetchManifest(ref, "1.36", {.username = "berth", .password = "s3cret"});
  EXPECT_TRUE(ok.ok()) << ok.status();

  RegistryConfig config = DirectConfig();
  config.hosts[registry_->host()].credentials = {.username = "berth", .password = "s3cret"};
  RegistryClient with_config(config);
  EXPECT_TRUE(with_config.FetchManifest(ref, "1.36", {}).ok());

  RegistryClient wrong(DirectConfig());
  EXPECT_FALSE(wrong.FetchManifest(ref, "1.36", {.username = "berth", .password = "x"}).ok());
}

TEST_F(RegistryClientTest, UnreachableMirrorFallsThroughToTheNext) {
  StartRegistry();
  RegistryConfig config;
  // Port 1 on loopback refuses connections.
  config.hosts["*"].mirrors = {"http://127.0.0.1:1", "http://" + registry_->host()};
  config.max_attempts = 1;
  RegistryClient client(config);
  image::Reference ref = *image::ParseReference("docker.io/library/busybox:1.36");
  absl::StatusOr<FetchedManifest> manifest = client.FetchManifest(ref, "1.36", {});
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->endpoint.base_url, "http://" + registry_->host());
}

}  // namespace
}  // namespace berth::registry
