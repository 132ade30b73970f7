#include "runtime/image/digest.h"

#include <string>

#include "gtest/gtest.h"

namespace berth::image {
namespace {

constexpr char kEmpty[] = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Digest(""), kEmpty);
  EXPECT_EQ(Sha256Digest("abc"), kAbc);
  EXPECT_EQ(Sha256Hasher().Digest(), kEmpty);
}

TEST(Sha256Test, IncrementalEqualsOneShot) {
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  Sha256Hasher hasher;
  for (size_t i = 0; i < data.size(); i += 4093)
    hasher.Update(std::string_view(data).substr(i, 4093));
  EXPECT_EQ(hasher.Digest(), Sha256Digest(data));
}

TEST(Sha256Test, DigestDoesNotEndTheStream) {
  Sha256Hasher hasher;
  hasher.Update("a");
  std::string first = hasher.Digest();
  EXPECT_EQ(first, Sha256Digest("a"));
  EXPECT_EQ(hasher.Digest(), first);  // asking twice changes nothing
  hasher.Update("bc");
  EXPECT_EQ(hasher.Digest(), kAbc);
}

TEST(Sha256Test, Movable) {
  Sha256Hasher a;
  a.Update("ab");
  Sha256Hasher b = std::move(a);
  b.Update("c");
  EXPECT_EQ(b.Digest(), kAbc);
}

TEST(ValidateDigestTest, AcceptsCanonicalSha256) {
  EXPECT_TRUE(ValidateDigest(kEmpty).ok());
  EXPECT_TRUE(ValidateDigest(kAbc).ok());
}

TEST(ValidateDigestTest, RejectsWithReason) {
  struct Case {
    std::string digest;
    std::string reason;
  };
  const std::string hex(64, 'a');
  for (const Case& c : std::vector<Case>{
           {"", "empty"},
           {hex, "missing algorithm"},
           {"sha256:", "64 hex digits"},
           {"sha256:abc", "64 hex digits"},
           {"sha256:" + hex + "a", "64 hex digits"},
           {"sha256:" + std::string(64, 'A'), "lowercase"},
           {"sha256:" + std::string(63, 'a') + "g", "lowercase"},
           {"SHA256:" + hex, "unsupported algorithm \"SHA256\""},
           {"sha512:" + std::string(128, 'a'), "unsupported algorithm \"sha512\""},
           {"sha256:../../etc/passwd", "64 hex digits"},
           {"sha256:" + std::string(61, 'a') + "/..", "lowercase"},
           {"../x:" + hex, "malformed algorithm"},
           {":" + hex, "malformed algorithm"},
       }) {
    absl::Status s = ValidateDigest(c.digest);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.digest;
    EXPECT_NE(std::string(s.message()).find(c.reason), std::string::npos)
        << c.digest << " -> " << s;
    if (!c.digest.empty()) {
      EXPECT_NE(std::string(s.message()).find(c.digest), std::string::npos) << s;
    }
  }
}

TEST(DigestHexTest, SplitsAfterAlgorithm) {
  EXPECT_EQ(DigestHex(kAbc), std::string(kAbc).substr(7));
  EXPECT_EQ(DigestHex("nocolon"), "");
  EXPECT_TRUE(IsSha256Hex(DigestHex(kAbc)));
  EXPECT_FALSE(IsSha256Hex(kAbc));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'G')));
}

}  // namespace
}  // namespace berth::image
