#include "runtime/image/manifest.h"

#include <string>

#include "gtest/gtest.h"
#include "runtime/image/digest.h"

namespace berth::image {
namespace {

// A distinct valid digest per number.
std::string D(int n) { return Sha256Digest(std::to_string(n)); }

bool Contains(const absl::Status& s, std::string_view text) {
  return std::string(s.message()).find(text) != std::string::npos;
}

// Replaces every "@N@" in text with D(N), so fixtures read like real documents.
std::string Fill(std::string text) {
  for (int n = 0; n < 10; ++n) {
    std::string marker = "@" + std::to_string(n) + "@";
    for (size_t at; (at = text.find(marker)) != std::string::npos;) {
      text.replace(at, marker.size(), D(n));
    }
  }
  return text;
}

// An OCI index as BuildKit pushes it: two images and an attestation manifest.
const std::string kOciIndexJson = Fill(R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@1@", "size": 1234,
     "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@2@", "size": 1235,
     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@3@", "size": 566,
     "annotations": {"vnd.docker.reference.digest": "@1@",
                     "vnd.docker.reference.type": "attestation-manifest"},
     "platform": {"architecture": "unknown", "os": "unknown"}}
  ]
})");

// A Docker manifest list (busybox-like), no mediaType fields missing.
const std::string kDockerListJson = Fill(R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "@4@",
     "size": 527, "platform": {"architecture": "arm", "os": "linux", "variant": "v5"}},
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "@5@",
     "size": 527, "platform": {"architecture": "arm", "os": "linux", "variant": "v6"}},
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "@6@",
     "size": 527, "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "@7@",
     "size": 527, "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "@8@",
     "size": 527, "platform": {"architecture": "s390x", "os": "linux"}}
  ]
})");

const std::string kDockerManifestJson = Fill(R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1457,
             "digest": "@1@"},
  "layers": [
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2592863,
     "digest": "@2@"},
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 0,
     "digest": "@3@"}
  ]
})");

const std::string kOciManifestJson = Fill(R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 600,
             "digest": "@1@"},
  "layers": [
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "size": 10, "digest": "@2@",
     "annotations": {"org.opencontainers.image.title": "base"}},
    {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "size": 20,
     "digest": "@3@", "urls": ["https://example.com/layer.tgz"]}
  ],
  "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
})");

const std::string kSchema1Json = R"({
  "schemaVersion": 1, "name": "library/busybox", "tag": "latest", "architecture": "amd64",
  "fsLayers": [
    {"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}
  ],
  "history": [{"v1Compatibility": "{}"}],
  "signatures": []
})";

TEST(MediaTypeTest, Classifies) {
  EXPECT_TRUE(IsIndexMediaType(kOciIndex));
  EXPECT_TRUE(IsIndexMediaType(kDockerManifestList));
  EXPECT_FALSE(IsIndexMediaType(kOciManifest));
  EXPECT_TRUE(IsManifestMediaType(kOciManifest));
  EXPECT_TRUE(IsManifestMediaType(kDockerManifest));
  EXPECT_FALSE(IsManifestMediaType(kDockerSchema1SignedManifest));
  EXPECT_FALSE(IsManifestMediaType(kOciIndex));
  EXPECT_TRUE(IsSchema1MediaType(kDockerSchema1Manifest));
  EXPECT_TRUE(IsSchema1MediaType(kDockerSchema1SignedManifest));
  for (std::string_view t :
       {kOciLayer, kOciLayerGzip, kOciLayerZstd, kOciForeignLayer, kOciForeignLayerGzip,
        kOciForeignLayerZstd, kDockerLayerGzip, kDockerLayer, kDockerForeignLayerGzip}) {
    EXPECT_TRUE(IsLayerMediaType(t)) << t;
  }
  for (std::string_view t : {kOciManifest, kOciConfig, kDockerConfig, std::string_view(""),
                             std::string_view("application/vnd.in-toto+json")}) {
    EXPECT_FALSE(IsLayerMediaType(t)) << t;
  }
  EXPECT_TRUE(IsForeignLayerMediaType(kDockerForeignLayerGzip));
  EXPECT_TRUE(IsForeignLayerMediaType(kOciForeignLayerZstd));
  EXPECT_FALSE(IsForeignLayerMediaType(kOciLayerGzip));
}

TEST(MediaTypeTest, LayerCompression) {
  EXPECT_EQ(*LayerCompression(kOciLayer), Compression::kNone);
  EXPECT_EQ(*LayerCompression(kDockerLayer), Compression::kNone);
  EXPECT_EQ(*LayerCompression(kOciLayerGzip), Compression::kGzip);
  EXPECT_EQ(*LayerCompression(kDockerLayerGzip), Compression::kGzip);
  EXPECT_EQ(*LayerCompression(kDockerForeignLayerGzip), Compression::kGzip);
  EXPECT_EQ(*LayerCompression(kOciLayerZstd), Compression::kZstd);
  absl::StatusOr<Compression> c = LayerCompression(kOciConfig);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(c.status(), kOciConfig)) << c.status();
}

TEST(MediaTypeTest, AcceptListPrefersIndexesAndSkipsSchema1) {
  EXPECT_EQ(kAcceptedManifestTypes.front(), kOciIndex);
  for (std::string_view t : kAcceptedManifestTypes) EXPECT_FALSE(IsSchema1MediaType(t));
}

TEST(DetectMediaTypeTest, BodyMediaTypeWins) {
  EXPECT_EQ(DetectMediaType(kOciIndexJson, "application/json"), kOciIndex);
  EXPECT_EQ(DetectMediaType(kOciIndexJson, ""), kOciIndex);
  // A lying header loses to the digest-covered body.
  EXPECT_EQ(DetectMediaType(kDockerManifestJson, kOciIndex), kDockerManifest);
}

TEST(DetectMediaTypeTest, HeaderWhenBodyHasNone) {
  const std::string body = Fill(R"({"schemaVersion": 2, "manifests": []})");
  EXPECT_EQ(DetectMediaType(body, "application/vnd.docker.distribution.manifest.list.v2+json"),
            kDockerManifestList);
  EXPECT_EQ(DetectMediaType(
                body, " Application/VND.docker.distribution.manifest.list.v2+json; charset=utf-8"),
            kDockerManifestList);
}

TEST(DetectMediaTypeTest, FallsBackToShape) {
  EXPECT_EQ(DetectMediaType(R"({"schemaVersion": 2, "manifests": []})", "application/json"),
            kOciIndex);
  EXPECT_EQ(
      DetectMediaType(Fill(R"({"config": {"mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "@1@", "size": 1}, "layers": []})"),
                      "text/plain"),
      kOciManifest);
  EXPECT_EQ(DetectMediaType(
                Fill(R"({"config": {"mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": "@1@", "size": 1}, "layers": []})"),
                ""),
            kDockerManifest);
  EXPECT_EQ(DetectMediaType(kSchema1Json, "application/json"), kDockerSchema1Manifest);
  EXPECT_EQ(DetectMediaType(kSchema1Json, kDockerSchema1SignedManifest),
            kDockerSchema1SignedManifest);
}

TEST(DetectMediaTypeTest, UnknownStaysUnknown) {
  EXPECT_EQ(DetectMediaType("not json", "text/html"), "text/html");
  EXPECT_EQ(DetectMediaType(R"({"hello": 1})", ""), "");
  EXPECT_EQ(DetectMediaType(R"({"mediaType": 7, "layers": 3})", "x/y"), "x/y");
}

TEST(ParseIndexTest, OciIndexWithAttestation) {
  absl::StatusOr<Index> index = ParseIndex(kOciIndexJson);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->media_type, kOciIndex);
  ASSERT_EQ(index->manifests.size(), 3u);
  const Descriptor& amd64 = index->manifests[0];
  EXPECT_EQ(amd64.media_type, kOciManifest);
  EXPECT_EQ(amd64.digest, D(1));
  EXPECT_EQ(amd64.size, 1234);
  ASSERT_TRUE(amd64.platform.has_value());
  EXPECT_EQ(*amd64.platform, (Platform{"linux", "amd64", ""}));
  EXPECT_EQ(index->manifests[1].platform->variant, "v8");
  EXPECT_EQ(index->manifests[2].annotations.at("vnd.docker.reference.type"),
            "attestation-manifest");
}

TEST(ParseIndexTest, DockerManifestList) {
  absl::StatusOr<Index> index = ParseIndex(kDockerListJson);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->media_type, kDockerManifestList);
  ASSERT_EQ(index->manifests.size(), 5u);
  EXPECT_EQ(index->manifests[3].media_type, kDockerManifest);
}

TEST(ParseIndexTest, DefaultsMediaTypeAndAllowsEmpty) {
  absl::StatusOr<Index> index = ParseIndex(R"({"schemaVersion": 2, "manifests": []})");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->media_type, kOciIndex);
  EXPECT_TRUE(index->manifests.empty());
}

TEST(ParseIndexTest, Errors) {
  struct Case {
    std::string body;
    std::string reason;
  };
  for (const Case& c : std::vector<Case>{
           {"", "malformed JSON"},
           {"{", "malformed JSON"},
           {"[1,2]", "must be a JSON object, got array"},
           {R"({"manifests": {}})", "index: manifests: must be a list, got object"},
           {R"({})", "manifests is missing"},
           {kDockerManifestJson, "a manifest, not an index"},
           {kSchema1Json, "schema1 manifests are not supported"},
           {R"({"schemaVersion": 3, "manifests": []})", "unsupported schemaVersion 3"},
           {R"({"schemaVersion": "2", "manifests": []})", "schemaVersion: must be an integer"},
           {R"({"mediaType": "application/vnd.foo", "manifests": []})",
            "unsupported mediaType \"application/vnd.foo\""},
           {R"({"manifests": [7]})", "index: manifests[0]: must be an object, got number"},
           {Fill(R"({"manifests": [{"digest": "@1@", "size": 1}]})"),
            "manifests[0].mediaType: missing"},
           {Fill(R"({"manifests": [{"mediaType": "a", "digest": "@1@", "size": 1,
                "platform": "linux"}]})"),
            "manifests[0].platform: must be an object, got string"},
           {Fill(R"({"manifests": [{"mediaType": "a", "digest": "@1@", "size": 1,
                "platform": {"os": 1}}]})"),
            "manifests[0].platform.os: must be a string, got number"},
       }) {
    absl::StatusOr<Index> index = ParseIndex(c.body);
    ASSERT_FALSE(index.ok()) << c.body;
    EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(index.status(), c.reason)) << index.status();
    EXPECT_TRUE(Contains(index.status(), "index")) << index.status();
  }
}

TEST(ParseManifestTest, DockerSchema2) {
  absl::StatusOr<Manifest> m = ParseManifest(kDockerManifestJson);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->media_type, kDockerManifest);
  EXPECT_EQ(m->config.media_type, kDockerConfig);
  EXPECT_EQ(m->config.digest, D(1));
  EXPECT_EQ(m->config.size, 1457);
  ASSERT_EQ(m->layers.size(), 2u);
  EXPECT_EQ(m->layers[0].media_type, kDockerLayerGzip);
  EXPECT_EQ(m->layers[0].size, 2592863);
  EXPECT_EQ(m->layers[1].size, 0);
  for (const Descriptor& layer : m->layers) EXPECT_TRUE(ValidateLayerDescriptor(layer).ok());
}

TEST(ParseManifestTest, OciWithAnnotationsAndUrls) {
  absl::StatusOr<Manifest> m = ParseManifest(kOciManifestJson);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->media_type, kOciManifest);
  ASSERT_EQ(m->layers.size(), 2u);
  EXPECT_EQ(m->layers[0].annotations.at("org.opencontainers.image.title"), "base");
  EXPECT_EQ(m->layers[1].urls, std::vector<std::string>{"https://example.com/layer.tgz"});
  EXPECT_FALSE(m->layers[0].platform.has_value());
}

TEST(ParseManifestTest, NoMediaTypeMeansOci) {
  absl::StatusOr<Manifest> m = ParseManifest(Fill(R"({"schemaVersion": 2,
      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "@1@",
                 "size": 2},
      "layers": []})"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->media_type, kOciManifest);
  EXPECT_TRUE(m->layers.empty());
}

TEST(ParseManifestTest, Schema1IsRefused) {
  for (const std::string& body :
       {kSchema1Json,
        std::string(
            R"({"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"})"),
        std::string(R"({"fsLayers": []})")}) {
    absl::StatusOr<Manifest> m = ParseManifest(body);
    ASSERT_FALSE(m.ok()) << body;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(m.status(), "schema1 manifests are not supported")) << m.status();
  }
}

TEST(ParseManifestTest, Errors) {
  struct Case {
    std::string body;
    std::string reason;
  };
  const std::string config = Fill(
      R"("config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "@1@",
      "size": 2})");
  auto with_layer = [&](const std::string& layer) {
    return "{" + config + R"(, "layers": [)" + Fill(layer) + "]}";
  };
  for (const Case& c : std::vector<Case>{
           {"{\"config\": ", "malformed JSON"},
           {"\"string\"", "must be a JSON object, got string"},
           {"null", "must be a JSON object, got null"},
           {kOciIndexJson, "an index, not a manifest"},
           {R"({"manifests": []})", "it is an index"},
           {R"({"layers": []})", "config is missing"},
           {"{" + config + "}", "layers is missing"},
           {"{" + config + R"(, "layers": {}})", "manifest: layers: must be a list, got object"},
           {R"({"config": [], "layers": []})", "manifest: config: must be an object, got array"},
           {R"({"mediaType": 2, "config": {}, "layers": []})",
            "manifest: mediaType: must be a string, got number"},
           {R"({"mediaType": "application/vnd.oci.artifact.manifest.v1+json"})",
            "unsupported mediaType"},
           {with_layer(R"({"mediaType": "x", "size": 1})"), "layers[0].digest: missing"},
           {with_layer(R"({"mediaType": "x", "digest": "sha256:abc", "size": 1})"),
            "layers[0].digest: digest \"sha256:abc\""},
           {with_layer(R"({"mediaType": "x", "digest": "sha256:../../../etc/passwd", "size": 1})"),
            "layers[0].digest"},
           {with_layer(R"({"mediaType": "x", "digest": "@2@"})"), "layers[0].size: missing"},
           {with_layer(R"({"mediaType": "x", "digest": "@2@", "size": -1})"),
            "layers[0].size: negative"},
           {with_layer(R"({"mediaType": "x", "digest": "@2@", "size": 1.5})"),
            "layers[0].size: must be an integer, got number"},
           {with_layer(R"({"mediaType": "x", "digest": "@2@", "size": "1"})"),
            "layers[0].size: must be an integer, got string"},
           {with_layer(R"({"mediaType": "x", "digest": "@2@", "size": 18446744073709551615})"),
            "layers[0].size: too large"},
           {with_layer(R"({"mediaType": "x", "digest": "@2@", "size": 1, "urls": "u"})"),
            "layers[0].urls: must be a list of strings, got string"},
           {with_layer(R"({"mediaType": "x", "digest": "@2@", "size": 1, "urls": [1]})"),
            "layers[0].urls[0]: must be a string, got number"},
           {with_layer(R"({"mediaType": "x", "digest": "@2@", "size": 1,
                "annotations": {"a": 1}})"),
            "layers[0].annotations[\"a\"]: must be a string, got number"},
           {with_layer(R"(3)"), "manifest: layers[0]: must be an object, got number"},
       }) {
    absl::StatusOr<Manifest> m = ParseManifest(c.body);
    ASSERT_FALSE(m.ok()) << c.body;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(m.status(), c.reason)) << c.reason << " not in " << m.status();
    EXPECT_TRUE(Contains(m.status(), "manifest")) << m.status();
  }
}

TEST(ParseManifestTest, HostileInputDoesNotCrash) {
  std::string deep(200000, '[');
  EXPECT_FALSE(ParseManifest(deep).ok());
  std::string deep_closed = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_FALSE(ParseManifest(deep_closed).ok());
  EXPECT_FALSE(ParseManifest(std::string("{\"a\": \"\xff\xfe\"}")).ok());  // invalid UTF-8
  EXPECT_FALSE(ParseManifest(std::string("{\"a\"\0: 1}", 10)).ok());
  EXPECT_FALSE(ParseImageConfig(deep).ok());
  EXPECT_FALSE(ParseIndex(deep_closed).ok());
}

TEST(SelectPlatformTest, PicksAmd64AndSkipsAttestation) {
  Index index = *ParseIndex(kOciIndexJson);
  absl::StatusOr<Descriptor> d = SelectPlatform(index, {"linux", "amd64", ""});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, D(1));
  d = SelectPlatform(index, {"linux", "arm64", ""});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, D(2));  // arm64 == arm64/v8
  d = SelectPlatform(index, {"linux", "aarch64", "v8"});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, D(2));
  d = SelectPlatform(index, {"Linux", "x86_64", ""});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, D(1));
}

TEST(SelectPlatformTest, NotFoundListsAvailableWithoutAttestations) {
  Index index = *ParseIndex(kOciIndexJson);
  absl::StatusOr<Descriptor> d = SelectPlatform(index, {"linux", "s390x", ""});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(d.status(), "linux/s390x")) << d.status();
  EXPECT_TRUE(Contains(d.status(), "available: linux/amd64, linux/arm64/v8)")) << d.status();
  EXPECT_FALSE(Contains(d.status(), "unknown")) << d.status();

  d = SelectPlatform(Index{}, {"linux", "amd64", ""});
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(d.status(), "available: none")) << d.status();
}

TEST(SelectPlatformTest, ArmVariants) {
  Index index = *ParseIndex(kDockerListJson);
  auto pick = [&](Platform want) -> std::string {
    absl::StatusOr<Descriptor> d = SelectPlatform(index, want);
    return d.ok() ? d->digest : std::string(d.status().message());
  };
  EXPECT_EQ(pick({"linux", "arm", "v7"}), D(6));  // exact wins over older v5, v6
  EXPECT_EQ(pick({"linux", "arm", ""}), D(6));    // plain arm means v7
  EXPECT_EQ(pick({"linux", "arm", "v6"}), D(5));
  EXPECT_EQ(pick({"linux", "arm", "v5"}), D(4));
  EXPECT_EQ(pick({"linux", "armhf", ""}), D(6));
  EXPECT_EQ(pick({"linux", "armel", ""}), D(5));
  EXPECT_EQ(pick({"linux", "amd64", ""}), D(7));
  // v8 (32-bit on arm64) takes the nearest older variant, v7.
  EXPECT_EQ(pick({"linux", "arm", "v8"}), D(6));
  // Only the newest variants in the list: an older CPU must not get them.
  Index v7_only;
  v7_only.manifests = {index.manifests[2]};
  absl::StatusOr<Descriptor> d = SelectPlatform(v7_only, {"linux", "arm", "v6"});
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(d.status(), "available: linux/arm/v7")) << d.status();
}

TEST(SelectPlatformTest, Amd64MicroarchitectureLevels) {
  Index index;
  Descriptor base{.media_type = std::string(kOciManifest),
                  .digest = D(1),
                  .size = 1,
                  .platform = Platform{"linux", "amd64", ""}};
  Descriptor v3 = base;
  v3.digest = D(3);
  v3.platform->variant = "v3";
  index.manifests = {v3, base};
  EXPECT_EQ(SelectPlatform(index, {"linux", "amd64", ""})->digest, D(1));
  EXPECT_EQ(SelectPlatform(index, {"linux", "amd64", "v3"})->digest, D(3));
  EXPECT_EQ(SelectPlatform(index, {"linux", "amd64", "v4"})->digest, D(3));
  EXPECT_EQ(SelectPlatform(index, {"linux", "amd64", "v2"})->digest, D(1));
  index.manifests = {v3};
  EXPECT_FALSE(SelectPlatform(index, {"linux", "amd64", ""}).ok());
}

TEST(SelectPlatformTest, SkipsNonManifestsAndUsesPlatformlessAsLastResort) {
  Descriptor artifact{.media_type = "application/vnd.example+json",
                      .digest = D(1),
                      .size = 1,
                      .platform = Platform{"linux", "amd64", ""}};
  Descriptor bare{.media_type = std::string(kOciManifest), .digest = D(2), .size = 1};
  Descriptor annotated_attestation{.media_type = std::string(kOciManifest),
                                   .digest = D(3),
                                   .size = 1,
                                   .platform = Platform{"linux", "amd64", ""}};
  annotated_attestation.annotations[std::string(kAnnotationReferenceType)] =
      std::string(kAttestationManifest);
  Descriptor nested{.media_type = std::string(kOciIndex),
                    .digest = D(4),
                    .size = 1,
                    .platform = Platform{"linux", "amd64", ""}};
  Index index;
  index.manifests = {artifact, annotated_attestation, bare};
  EXPECT_EQ(SelectPlatform(index, {"linux", "amd64", ""})->digest, D(2));
  index.manifests.push_back(nested);
  EXPECT_EQ(SelectPlatform(index, {"linux", "amd64", ""})->digest, D(4));
}

TEST(SelectPlatformTest, TiesGoToTheFirstEntry) {
  Descriptor a{.media_type = std::string(kOciManifest),
               .digest = D(1),
               .size = 1,
               .platform = Platform{"linux", "amd64", ""}};
  Descriptor b = a;
  b.digest = D(2);
  Index index;
  index.manifests = {a, b};
  EXPECT_EQ(SelectPlatform(index, {"linux", "amd64", ""})->digest, D(1));
}

TEST(PlatformTest, StringAndDefault) {
  EXPECT_EQ((Platform{"linux", "arm", "v7"}).String(), "linux/arm/v7");
  EXPECT_EQ((Platform{"linux", "amd64", ""}).String(), "linux/amd64");
  Platform host = DefaultPlatform();
  EXPECT_EQ(host.os, "linux");
  EXPECT_FALSE(host.architecture.empty());
}

TEST(ParseImageConfigTest, DockerConfig) {
  const std::string body = Fill(R"({
    "architecture": "amd64", "os": "linux", "created": "2023-05-19T20:19:24.234Z",
    "config": {
      "User": "1000:1000",
      "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=b=c"],
      "Entrypoint": ["/docker-entrypoint.sh"],
      "Cmd": ["nginx", "-g", "daemon off;"],
      "WorkingDir": "/srv",
      "StopSignal": "SIGQUIT",
      "Labels": {"maintainer": "NGINX <x@y>", "empty": ""},
      "ExposedPorts": {"80/tcp": {}, "443/tcp": {}, "53/udp": {}},
      "Volumes": {"/var/cache": {}, "/data": {}},
      "ArgsEscaped": true, "OnBuild": null, "Healthcheck": {"Test": ["NONE"]}
    },
    "rootfs": {"type": "layers", "diff_ids": ["@1@", "@2@"]},
    "history": [{"created_by": "ADD file"}]
  })");
  absl::StatusOr<ImageConfig> c = ParseImageConfig(body);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->os, "linux");
  EXPECT_EQ(c->architecture, "amd64");
  EXPECT_EQ(c->created, "2023-05-19T20:19:24.234Z");
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->env.size(), 2u);
  EXPECT_EQ(c->env[1], "A=b=c");
  EXPECT_EQ(c->entrypoint, std::vector<std::string>{"/docker-entrypoint.sh"});
  EXPECT_EQ(c->cmd, (std::vector<std::string>{"nginx", "-g", "daemon off;"}));
  EXPECT_EQ(c->working_dir, "/srv");
  EXPECT_EQ(c->stop_signal, "SIGQUIT");
  EXPECT_EQ(c->labels.at("maintainer"), "NGINX <x@y>");
  EXPECT_EQ(c->labels.at("empty"), "");
  EXPECT_EQ(c->exposed_ports, (std::vector<std::string>{"443/tcp", "53/udp", "80/tcp"}));
  EXPECT_EQ(c->volumes, (std::vector<std::string>{"/data", "/var/cache"}));
  EXPECT_EQ(c->diff_ids, (std::vector<std::string>{D(1), D(2)}));
}

TEST(ParseImageConfigTest, NullsAndAbsentFieldsAreEmpty) {
  absl::StatusOr<ImageConfig> c = ParseImageConfig(R"({
    "config": {"User": null, "Env": null, "Entrypoint": null, "Cmd": null, "Labels": null,
               "ExposedPorts": null, "Volumes": null, "WorkingDir": ""},
    "rootfs": {"type": "layers", "diff_ids": null}
  })");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->entrypoint.empty());
  EXPECT_TRUE(c->cmd.empty());
  EXPECT_TRUE(c->env.empty());
  EXPECT_TRUE(c->labels.empty());
  EXPECT_TRUE(c->diff_ids.empty());

  c = ParseImageConfig(R"({"config": null})");
  ASSERT_TRUE(c.ok()) << c.status();
  c = ParseImageConfig("{}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->user.empty());
}

TEST(ParseImageConfigTest, SingleStringEntrypointAndCmd) {
  absl::StatusOr<ImageConfig> c =
      ParseImageConfig(R"({"config": {"Entrypoint": "/bin/sh -c", "Cmd": "echo hi"}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->entrypoint, std::vector<std::string>{"/bin/sh -c"});
  EXPECT_EQ(c->cmd, std::vector<std::string>{"echo hi"});
}

TEST(ParseImageConfigTest, Errors) {
  struct Case {
    std::string body;
    std::string reason;
  };
  for (const Case& c : std::vector<Case>{
           {"{nope}", "image config: malformed JSON"},
           {"[]", "image config: must be a JSON object, got array"},
           {R"({"config": "x"})", "image config: config: must be an object, got string"},
           {R"({"config": {"Env": "A=b"}})",
            "image config: config.Env: must be a list of strings, got string"},
           {R"({"config": {"Env": ["A=b", 3]}})", "config.Env[1]: must be a string, got number"},
           {R"({"config": {"Entrypoint": 5}})", "config.Entrypoint: must be a list of strings"},
           {R"({"config": {"Cmd": [true]}})", "config.Cmd[0]: must be a string, got boolean"},
           {R"({"config": {"User": 0}})", "config.User: must be a string, got number"},
           {R"({"config": {"Labels": ["a"]}})", "config.Labels: must be an object of strings"},
           {R"({"config": {"Labels": {"a": 1}}})", "config.Labels[\"a\"]: must be a string"},
           {R"({"config": {"ExposedPorts": ["80/tcp"]}})",
            "config.ExposedPorts: must be an object, got array"},
           {R"({"rootfs": []})", "image config: rootfs: must be an object, got array"},
           {R"({"rootfs": {"type": "tarball", "diff_ids": []}})", "rootfs.type: \"tarball\""},
           {R"({"rootfs": {"type": "layers", "diff_ids": ["sha256:nope"]}})",
            "rootfs.diff_ids[0]: digest \"sha256:nope\""},
           {R"({"rootfs": {"type": "layers", "diff_ids": [1]}})",
            "rootfs.diff_ids[0]: must be a string, got number"},
           {R"({"os": ["linux"]})", "image config: os: must be a string, got array"},
       }) {
    absl::StatusOr<ImageConfig> config = ParseImageConfig(c.body);
    ASSERT_FALSE(config.ok()) << c.body;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(config.status(), c.reason)) << c.reason << " not in " << config.status();
  }
}

TEST(ValidateLayerDescriptorTest, AcceptsKnownLayers) {
  for (std::string_view t :
       {kOciLayer, kOciLayerGzip, kOciLayerZstd, kDockerLayerGzip, kDockerForeignLayerGzip}) {
    Descriptor d{.media_type = std::string(t), .digest = D(1), .size = 0};
    EXPECT_TRUE(ValidateLayerDescriptor(d).ok()) << t;
  }
}

TEST(ValidateLayerDescriptorTest, Rejects) {
  Descriptor good{.media_type = std::string(kOciLayerGzip), .digest = D(1), .size = 10};
  Descriptor d = good;
  d.digest = "sha256:../../x";
  absl::Status s = ValidateLayerDescriptor(d);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, "sha256:../../x")) << s;

  d = good;
  d.size = -5;
  s = ValidateLayerDescriptor(d);
  EXPECT_TRUE(Contains(s, "negative size -5")) << s;
  EXPECT_TRUE(Contains(s, D(1))) << s;

  d = good;
  d.media_type = "application/vnd.in-toto+json";
  s = ValidateLayerDescriptor(d);
  EXPECT_TRUE(Contains(s, "unsupported media type \"application/vnd.in-toto+json\"")) << s;

  d = good;
  d.media_type = std::string(kDockerSchema1Manifest);
  s = ValidateLayerDescriptor(d);
  EXPECT_TRUE(Contains(s, "schema1 manifests are not supported")) << s;
}

}  // namespace
}  // namespace berth::image
