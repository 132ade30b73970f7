#include "runtime/image/reference.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace berth::image {
namespace {

const std::string kHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kDigest = "sha256:" + kHex;

struct Valid {
  std::string input;
  std::string domain;
  std::string path;
  std::string tag;
  std::string digest;
  std::string canonical;
};

class ValidReferenceTest : public ::testing::TestWithParam<Valid> {};

TEST_P(ValidReferenceTest, Normalizes) {
  const Valid& want = GetParam();
  absl::StatusOr<Reference> ref = ParseReference(want.input);
  ASSERT_TRUE(ref.ok()) << want.input << ": " << ref.status();
  EXPECT_EQ(ref->domain, want.domain);
  EXPECT_EQ(ref->path, want.path);
  EXPECT_EQ(ref->tag, want.tag);
  EXPECT_EQ(ref->digest, want.digest);
  EXPECT_EQ(ref->String(), want.canonical);
  EXPECT_EQ(ref->Repository(), want.domain + "/" + want.path);
  // The canonical form is a fixed point.
  absl::StatusOr<Reference> again = ParseReference(ref->String());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *ref);
}

INSTANTIATE_TEST_SUITE_P(
    Docker, ValidReferenceTest,
    ::testing::Values(
        Valid{"busybox", "docker.io", "library/busybox", "latest", "",
              "docker.io/library/busybox:latest"},
        Valid{"busybox:1.36", "docker.io", "library/busybox", "1.36", "",
              "docker.io/library/busybox:1.36"},
        Valid{"library/busybox", "docker.io", "library/busybox", "latest", "",
              "docker.io/library/busybox:latest"},
        Valid{"docker.io/busybox", "docker.io", "library/busybox", "latest", "",
              "docker.io/library/busybox:latest"},
        Valid{"index.docker.io/busybox:1", "docker.io", "library/busybox", "1", "",
              "docker.io/library/busybox:1"},
        Valid{"docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "",
              "docker.io/library/busybox:latest"},
        Valid{"foo/bar", "docker.io", "foo/bar", "latest", "", "docker.io/foo/bar:latest"},
        Valid{"foo/bar/baz:v1", "docker.io", "foo/bar/baz", "v1", "", "docker.io/foo/bar/baz:v1"},
        Valid{"registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", "",
              "registry.k8s.io/pause:3.9"},
        Valid{"gcr.io/google-containers/pause", "gcr.io", "google-containers/pause", "latest", "",
              "gcr.io/google-containers/pause:latest"},
        Valid{"localhost/foo", "localhost", "foo", "latest", "", "localhost/foo:latest"},
        Valid{"localhost:5000/foo/bar:tag", "localhost:5000", "foo/bar", "tag", "",
              "localhost:5000/foo/bar:tag"},
        Valid{"127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", "",
              "127.0.0.1:5000/busybox:latest"},
        Valid{"[::1]:5000/busybox:1", "[::1]:5000", "busybox", "1", "", "[::1]:5000/busybox:1"},
        Valid{"[fe80::1]/a", "[fe80::1]", "a", "latest", "", "[fe80::1]/a:latest"},
        Valid{"xn--n3h.com/myimage", "xn--n3h.com", "myimage", "latest", "",
              "xn--n3h.com/myimage:latest"},
        // An uppercase first component is a registry host, as in Docker.
        Valid{"Foo.Example/bar", "Foo.Example", "bar", "latest", "", "Foo.Example/bar:latest"},
        Valid{"Foo/bar", "Foo", "bar", "latest", "", "Foo/bar:latest"},
        // Without '/', "host:port" is a repository and a tag (Docker agrees).
        Valid{"localhost:5000", "docker.io", "library/localhost", "5000", "",
              "docker.io/library/localhost:5000"},
        Valid{"foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", "",
              "docker.io/library/foo_bar.com:8080"},
        Valid{"foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", "",
              "docker.io/foo/foo_bar.com:8080"},
        Valid{"a__b/c-----d/e.f_g", "docker.io", "a__b/c-----d/e.f_g", "latest", "",
              "docker.io/a__b/c-----d/e.f_g:latest"},
        Valid{"busybox:UPPER_case.tag-1", "docker.io", "library/busybox", "UPPER_case.tag-1", "",
              "docker.io/library/busybox:UPPER_case.tag-1"},
        Valid{"busybox:_x", "docker.io", "library/busybox", "_x", "",
              "docker.io/library/busybox:_x"},
        // A digest alone implies no tag; tag and digest together are both kept.
        Valid{"busybox@" + kDigest, "docker.io", "library/busybox", "", kDigest,
              "docker.io/library/busybox@" + kDigest},
        Valid{"busybox:1.36@" + kDigest, "docker.io", "library/busybox", "1.36", kDigest,
              "docker.io/library/busybox:1.36@" + kDigest},
        Valid{"localhost:5000/a/b:t@" + kDigest, "localhost:5000", "a/b", "t", kDigest,
              "localhost:5000/a/b:t@" + kDigest},
        Valid{"127.0.0.1:5000/x@" + kDigest, "127.0.0.1:5000", "x", "", kDigest,
              "127.0.0.1:5000/x@" + kDigest}));

struct Invalid {
  std::string input;
  std::string reason;
};

class InvalidReferenceTest : public ::testing::TestWithParam<Invalid> {};

TEST_P(InvalidReferenceTest, FailsWithReason) {
  const Invalid& c = GetParam();
  absl::StatusOr<Reference> ref = ParseReference(c.input);
  ASSERT_FALSE(ref.ok()) << c.input << " parsed as " << ref->String();
  EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument);
  std::string message(ref.status().message());
  EXPECT_NE(message.find(c.reason), std::string::npos) << c.input << ": " << message;
  if (!c.input.empty()) {
    EXPECT_NE(message.find("\"" + c.input + "\""), std::string::npos) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Docker, InvalidReferenceTest,
    ::testing::Values(
        Invalid{"", "empty"}, Invalid{":tag", "repository name is empty"},
        Invalid{"@" + kDigest, "repository name is empty"}, Invalid{"busybox:", "invalid tag"},
        Invalid{"busybox@", "digest"}, Invalid{"busybox:.tag", "invalid tag"},
        Invalid{"busybox:-tag", "invalid tag"}, Invalid{"busybox:a+b", "invalid tag"},
        Invalid{"busybox:" + std::string(129, 'a'), "invalid tag"},
        Invalid{"busybox@sha256:abc", "64 hex digits"},
        Invalid{"busybox@sha256:" + std::string(64, 'A'), "lowercase"},
        Invalid{"busybox@sha512:" + std::string(128, 'a'), "unsupported algorithm \"sha512\""},
        Invalid{"busybox@" + kHex, "missing algorithm"},
        Invalid{"busybox@" + kDigest + "@" + kDigest, "digest"},
        Invalid{"UPPERCASE", "must be lowercase"},
        Invalid{"docker.io/Busybox", "must be lowercase"},
        Invalid{"localhost:5000/Foo", "must be lowercase"}, Invalid{kHex, "image id"},
        Invalid{"foo//bar", "invalid repository path"}, Invalid{"foo/", "invalid repository path"},
        Invalid{"/foo", "invalid repository path"}, Invalid{"a..b", "invalid repository path"},
        Invalid{"a___b", "invalid repository path"}, Invalid{"-a", "invalid repository path"},
        Invalid{"a-", "invalid repository path"}, Invalid{"foo bar", "invalid repository path"},
        Invalid{"https://docker.io/busybox", "invalid registry host \"https:\""},
        Invalid{"localhost:/foo", "invalid registry host"},
        Invalid{"localhost:50a/foo", "invalid registry host"},
        Invalid{"-bad.com/foo", "invalid registry host"},
        Invalid{"bad-.com/foo", "invalid registry host"},
        Invalid{"a..com/foo", "invalid registry host"},
        Invalid{"[::1/foo", "invalid registry host"},
        Invalid{"[]:5000/foo", "invalid registry host"},
        Invalid{"[zz::1]/foo", "invalid registry host"},
        Invalid{"[::1]x/foo", "invalid registry host"}));

TEST(ReferenceTest, NameLengthLimitAppliesToNormalizedName) {
  // "docker.io/library/" is 18 characters: 237 + 18 = 255 is the limit.
  EXPECT_TRUE(ParseReference(std::string(237, 'a')).ok());
  absl::StatusOr<Reference> ref = ParseReference(std::string(238, 'a'));
  ASSERT_FALSE(ref.ok());
  EXPECT_NE(std::string(ref.status().message()).find("256 characters"), std::string::npos)
      << ref.status();
  EXPECT_TRUE(ParseReference("example.com/" + std::string(243, 'a')).ok());
  EXPECT_FALSE(ParseReference("example.com/" + std::string(244, 'a')).ok());
}

TEST(ReferenceTest, TagLengthLimit) {
  EXPECT_TRUE(ParseReference("busybox:" + std::string(128, 'a')).ok());
  EXPECT_FALSE(ParseReference("busybox:" + std::string(129, 'a')).ok());
}

TEST(ReferenceTest, StringOmitsWhatIsUnset) {
  Reference ref{.domain = "r.io", .path = "a/b"};
  EXPECT_EQ(ref.String(), "r.io/a/b");
  ref.digest = kDigest;
  EXPECT_EQ(ref.String(), "r.io/a/b@" + kDigest);
}

TEST(ImageIdTest, Recognizes) {
  EXPECT_TRUE(IsImageId(kHex));
  EXPECT_TRUE(IsImageId(kDigest));
  EXPECT_FALSE(IsImageId(""));
  EXPECT_FALSE(IsImageId("sha256:"));
  EXPECT_FALSE(IsImageId(kHex.substr(1)));
  EXPECT_FALSE(IsImageId("sha512:" + kHex));
  EXPECT_FALSE(IsImageId("SHA256:" + kHex));
  EXPECT_FALSE(IsImageId(std::string(64, 'A')));
  EXPECT_FALSE(IsImageId("busybox"));
  EXPECT_FALSE(IsImageId("busybox@" + kDigest));
}

TEST(ImageIdTest, Normalizes) {
  EXPECT_EQ(NormalizeImageId(kHex), kDigest);
  EXPECT_EQ(NormalizeImageId(kDigest), kDigest);
  EXPECT_EQ(NormalizeImageId("busybox"), "busybox");
}

}  // namespace
}  // namespace berth::image
