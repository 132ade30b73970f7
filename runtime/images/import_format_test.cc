#include "runtime/images/import_format.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/image/digest.h"

namespace berth::images {
namespace {

const std::string kHex = std::string(64, 'a');

TEST(CleanArchivePathTest, NormalizesHarmlessSpellings) {
  EXPECT_EQ(*CleanArchivePath("index.json"), "index.json");
  EXPECT_EQ(*CleanArchivePath("./blobs//sha256/./x"), "blobs/sha256/x");
  EXPECT_EQ(*CleanArchivePath("blobs/sha256/"), "blobs/sha256");
  EXPECT_EQ(*CleanArchivePath("a/b/../c"), "a/c");
  EXPECT_EQ(*CleanArchivePath("./"), "");
  EXPECT_EQ(*CleanArchivePath("."), "");
}

TEST(CleanArchivePathTest, RefusesPathsLeavingTheArchive) {
  std::vector<std::string_view> paths = {"/etc/passwd", "../x", "a/../../x", "..",
                                         std::string_view("a\0b", 3)};
  for (std::string_view path : paths) {
    absl::StatusOr<std::string> clean = CleanArchivePath(path);
    EXPECT_EQ(clean.status().code(), absl::StatusCode::kInvalidArgument) << path;
  }
}

TEST(ResolveSymlinkTargetTest, ResolvesAgainstTheLinksDirectory) {
  EXPECT_EQ(*ResolveSymlinkTarget("abc/layer.tar", "../def/layer.tar"), "def/layer.tar");
  EXPECT_EQ(*ResolveSymlinkTarget("top.json", "other.json"), "other.json");
  EXPECT_EQ(*ResolveSymlinkTarget("a/b/c", "d"), "a/b/d");
  EXPECT_EQ(ResolveSymlinkTarget("abc/layer.tar", "../../etc/shadow").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveSymlinkTarget("abc/layer.tar", "/etc/shadow").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveSymlinkTarget("abc/layer.tar", "..").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BlobDigestOfPathTest, OnlySha256BlobsNamedByTheirDigest) {
  EXPECT_EQ(**BlobDigestOfPath("blobs/sha256/" + kHex), "sha256:" + kHex);
  EXPECT_FALSE(BlobDigestOfPath("index.json")->has_value());
  EXPECT_FALSE(BlobDigestOfPath("abc/layer.tar")->has_value());
  EXPECT_FALSE(BlobDigestOfPath("blobsy/x")->has_value());
  for (const std::string& path : std::vector<std::string>{
           "blobs/sha512/" + kHex, "blobs/sha256/" + kHex.substr(1), "blobs/sha256/ABC",
           "blobs/sha256/" + kHex + "/x", std::string("blobs/x")}) {
    EXPECT_EQ(BlobDigestOfPath(path).status().code(), absl::StatusCode::kInvalidArgument) << path;
  }
}

TEST(ParseDockerSaveManifestTest, LegacyAndBlobLayouts) {
  nlohmann::json doc = nlohmann::json::array({{{"Config", kHex + ".json"},
                                               {"RepoTags", {"busybox:1.36", "busybox:latest"}},
                                               {"Layers", {"111/layer.tar", "./222/layer.tar"}}},
                                              {{"Config", "blobs/sha256/" + kHex},
                                               {"RepoTags", nullptr},
                                               {"Layers", {"blobs/sha256/" + kHex}},
                                               {"LayerSources", nlohmann::json::object()}}});
  absl::StatusOr<std::vector<DockerSaveImage>> images = ParseDockerSaveManifest(doc.dump());
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].config, kHex + ".json");
  EXPECT_EQ((*images)[0].repo_tags, (std::vector<std::string>{"busybox:1.36", "busybox:latest"}));
  EXPECT_EQ((*images)[0].layers, (std::vector<std::string>{"111/layer.tar", "222/layer.tar"}));
  EXPECT_TRUE((*images)[1].repo_tags.empty());
  EXPECT_EQ((*images)[1].config, "blobs/sha256/" + kHex);
}

TEST(ParseDockerSaveManifestTest, RefusesMalformedManifests) {
  for (std::string text : {
           std::string("not json"),
           std::string("{}"),
           std::string("[]"),
           std::string("[1]"),
           std::string(R"([{"Layers": []}])"),
           std::string(R"([{"Config": 5, "Layers": []}])"),
           std::string(R"([{"Config": "c.json"}])"),
           std::string(R"([{"Config": "c.json", "Layers": "x"}])"),
           std::string(R"([{"Config": "c.json", "Layers": [1]}])"),
           std::string(R"([{"Config": "c.json", "RepoTags": "x", "Layers": []}])"),
           std::string(R"([{"Config": "../c.json", "Layers": []}])"),
           std::string(R"([{"Config": "c.json", "Layers": ["/etc/shadow"]}])"),
           std::string(R"([{"Config": "c.json", "Layers": ["a/../../x"]}])"),
       }) {
    EXPECT_EQ(ParseDockerSaveManifest(text).status().code(), absl::StatusCode::kInvalidArgument)
        << text;
  }
}

TEST(DockerSchema2ManifestTest, IsAValidDeterministicManifest) {
  image::Descriptor config{
      .media_type = std::string(image::kDockerConfig), .digest = "sha256:" + kHex, .size = 123};
  image::Descriptor layer{.media_type = std::string(image::kDockerLayer),
                          .digest = "sha256:" + std::string(64, 'b'),
                          .size = 4096};
  std::string body = DockerSchema2Manifest(config, {layer});
  EXPECT_EQ(body, DockerSchema2Manifest(config, {layer}));
  EXPECT_EQ(image::DetectMediaType(body, ""), image::kDockerManifest);
  absl::StatusOr<image::Manifest> manifest = image::ParseManifest(body);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->config.digest, config.digest);
  EXPECT_EQ(manifest->config.size, 123);
  ASSERT_EQ(manifest->layers.size(), 1u);
  EXPECT_EQ(manifest->layers[0].media_type, image::kDockerLayer);
  EXPECT_EQ(manifest->layers[0].size, 4096);
  EXPECT_TRUE(image::ValidateLayerDescriptor(manifest->layers[0]).ok());
}

TEST(DockerSaveLayerMediaTypeTest, FromTheFirstBytes) {
  EXPECT_EQ(DockerSaveLayerMediaType("bin/\0\0\0"), image::kDockerLayer);
  EXPECT_EQ(DockerSaveLayerMediaType(""), image::kDockerLayer);
  EXPECT_EQ(DockerSaveLayerMediaType("\x1f\x8b\x08\x00"), image::kDockerLayerGzip);
  EXPECT_EQ(DockerSaveLayerMediaType(std::string_view("\x28\xb5\x2f\xfd", 4)),
            image::kOciLayerZstd);
}

std::vector<std::string> Strings(const absl::StatusOr<std::vector<image::Reference>>& refs) {
  std::vector<std::string> out;
  if (!refs.ok()) return {refs.status().ToString()};
  for (const image::Reference& ref : *refs) out.push_back(ref.String());
  return out;
}

TEST(OciImageNamesTest, ContainerdNameThenRefNameThenDefault) {
  std::optional<image::Reference> fallback = *image::ParseReference("example.com/team/app");
  using Names = std::vector<std::string>;
  EXPECT_EQ(Strings(OciImageNames({{std::string(kAnnotationImageName), "busybox:1.36"},
                                   {std::string(kAnnotationRefName), "1.36"}},
                                  fallback)),
            Names{"docker.io/library/busybox:1.36"});
  // ref.name as a full reference.
  EXPECT_EQ(Strings(OciImageNames({{std::string(kAnnotationRefName), "quay.io/x/y:2"}}, fallback)),
            Names{"quay.io/x/y:2"});
  // ref.name as a tag: on the default name's repository, or nothing.
  EXPECT_EQ(Strings(OciImageNames({{std::string(kAnnotationRefName), "v3"}}, fallback)),
            Names{"example.com/team/app:v3"});
  EXPECT_EQ(Strings(OciImageNames({{std::string(kAnnotationRefName), "v3"}}, std::nullopt)),
            Names{});
  // No annotation: the default name, or nothing.
  EXPECT_EQ(Strings(OciImageNames({}, fallback)), Names{"example.com/team/app:latest"});
  EXPECT_EQ(Strings(OciImageNames({}, std::nullopt)), Names{});

  EXPECT_EQ(
      OciImageNames({{std::string(kAnnotationImageName), "Bad:Name:x"}}, fallback).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OciImageNames({{std::string(kAnnotationRefName), "v3!"}}, fallback).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DockerSaveImageNamesTest, RepoTagsElseDefault) {
  std::optional<image::Reference> fallback = *image::ParseReference("mine:v1");
  using Names = std::vector<std::string>;
  EXPECT_EQ(
      Strings(DockerSaveImageNames(
          {"busybox:1.36", "docker.io/library/busybox:1.36", "localhost:5000/x:y"}, fallback)),
      (Names{"docker.io/library/busybox:1.36", "localhost:5000/x:y"}));
  EXPECT_EQ(Strings(DockerSaveImageNames({}, fallback)), Names{"docker.io/library/mine:v1"});
  EXPECT_EQ(Strings(DockerSaveImageNames({}, std::nullopt)), Names{});
  EXPECT_EQ(DockerSaveImageNames({"Not:A:Ref"}, fallback).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth::images
