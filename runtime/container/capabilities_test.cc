#include "runtime/container/capabilities.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::container {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(CapabilitiesTest, DefaultSetIsContainerds) {
  EXPECT_THAT(DefaultCapabilities(),
              ElementsAre("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                          "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                          "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"));
  EXPECT_EQ(AllCapabilities().size(), 41u);  // 0 ..= CAP_CHECKPOINT_RESTORE (40)
  EXPECT_EQ(AllCapabilities().back(), "CAP_CHECKPOINT_RESTORE");
}

TEST(CapabilitiesTest, NamesAreNormalized) {
  EXPECT_EQ(*NormalizeCapability("net_admin"), "CAP_NET_ADMIN");
  EXPECT_EQ(*NormalizeCapability("CAP_SYS_ADMIN"), "CAP_SYS_ADMIN");
  EXPECT_EQ(NormalizeCapability("FLY").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CapabilitiesTest, AddAndDrop) {
  absl::StatusOr<std::vector<std::string>> caps = ApplyCapabilityChanges(
      DefaultCapabilities(), {.add = {"NET_ADMIN"}, .drop = {"chown"}}, AllCapabilities());
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_THAT(*caps, Contains("CAP_NET_ADMIN"));
  EXPECT_THAT(*caps, Not(Contains("CAP_CHOWN")));
  EXPECT_EQ(caps->size(), DefaultCapabilities().size());
  EXPECT_EQ(caps->back(), "CAP_NET_ADMIN");
}

TEST(CapabilitiesTest, AddingTwiceKeepsOne) {
  absl::StatusOr<std::vector<std::string>> caps = ApplyCapabilityChanges(
      DefaultCapabilities(), {.add = {"KILL", "CAP_KILL"}}, AllCapabilities());
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(*caps, DefaultCapabilities());
}

TEST(CapabilitiesTest, AllThenIndividualChanges) {
  absl::StatusOr<std::vector<std::string>> caps = ApplyCapabilityChanges(
      DefaultCapabilities(), {.add = {"ALL"}, .drop = {"SYS_ADMIN"}}, AllCapabilities());
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(caps->size(), AllCapabilities().size() - 1);
  EXPECT_THAT(*caps, Not(Contains("CAP_SYS_ADMIN")));

  caps = ApplyCapabilityChanges(DefaultCapabilities(), {.add = {"NET_RAW"}, .drop = {"all"}},
                                AllCapabilities());
  ASSERT_TRUE(caps.ok());
  EXPECT_THAT(*caps, ElementsAre("CAP_NET_RAW"));

  // A capability both added and dropped ends up dropped.
  caps = ApplyCapabilityChanges({}, {.add = {"SYS_TIME"}, .drop = {"SYS_TIME"}}, AllCapabilities());
  ASSERT_TRUE(caps.ok());
  EXPECT_TRUE(caps->empty());
}

TEST(CapabilitiesTest, AllMeansWhatTheNodeHasAndAddsStayWithinIt) {
  const std::vector<std::string> node = {"CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"};
  absl::StatusOr<std::vector<std::string>> caps =
      ApplyCapabilityChanges(DefaultCapabilities(), {.add = {"ALL"}}, node);
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(*caps, node);
  // This host lacks CAP_SYS_RESOURCE; runc would fail with EPERM.
  caps = ApplyCapabilityChanges(DefaultCapabilities(), {.add = {"SYS_RESOURCE"}}, node);
  EXPECT_EQ(caps.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(caps.status().message()), HasSubstr("CAP_SYS_RESOURCE"));
}

TEST(CapabilitiesTest, MaskAndCurrent) {
  EXPECT_THAT(CapabilitiesFromMask(0x1 | 0x20 | (uint64_t{1} << 40) | (uint64_t{1} << 50)),
              ElementsAre("CAP_CHOWN", "CAP_KILL", "CAP_CHECKPOINT_RESTORE"));
  absl::StatusOr<std::vector<std::string>> current = CurrentCapabilities();
  ASSERT_TRUE(current.ok()) << current.status();
  for (const std::string& cap : *current) EXPECT_THAT(AllCapabilities(), Contains(cap));
}

TEST(CapabilitiesTest, UnknownAddIsRefusedUnknownDropIgnored) {
  EXPECT_EQ(ApplyCapabilityChanges({}, {.add = {"WARP_DRIVE"}}, AllCapabilities()).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<std::string>> caps =
      ApplyCapabilityChanges(DefaultCapabilities(), {.drop = {"WARP_DRIVE"}}, AllCapabilities());
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(*caps, DefaultCapabilities());
}

}  // namespace
}  // namespace berth::container
