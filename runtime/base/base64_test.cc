#include "runtime/base/base64.h"

#include "gtest/gtest.h"

namespace berth {
namespace {

TEST(Base64Test, RoundTripsWithPadding) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "user:pa:ss",
                                                       std::string("\0\xff", 2)}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_EQ(Base64Encode("berth:s3cret"), "YmVydGg6czNjcmV0");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
}

TEST(Base64Test, RejectsMalformed) {
  EXPECT_EQ(Base64Decode("abc"), std::nullopt);
  EXPECT_EQ(Base64Decode("ab!="), std::nullopt);
}

}  // namespace
}  // namespace berth
