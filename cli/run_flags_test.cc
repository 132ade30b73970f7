#include "cli/run_flags.h"

#include "gtest/gtest.h"

namespace berth::cli {
namespace {

namespace v1 = ::runtime::v1;

TEST(RunFlagsTest, PublishParsesDockerSyntax) {
  v1::PodSandboxConfig pod;
  ASSERT_TRUE(ApplyPublish({"8080:80", "127.0.0.1:8053:53/udp", "[::1]:9000:90/sctp"}, pod).ok());
  ASSERT_EQ(pod.port_mappings_size(), 3);
  EXPECT_EQ(pod.port_mappings(0).host_port(), 8080);
  EXPECT_EQ(pod.port_mappings(0).container_port(), 80);
  EXPECT_EQ(pod.port_mappings(0).protocol(), v1::TCP);
  EXPECT_EQ(pod.port_mappings(0).host_ip(), "");
  EXPECT_EQ(pod.port_mappings(1).host_ip(), "127.0.0.1");
  EXPECT_EQ(pod.port_mappings(1).protocol(), v1::UDP);
  EXPECT_EQ(pod.port_mappings(2).host_ip(), "::1");
  EXPECT_EQ(pod.port_mappings(2).protocol(), v1::SCTP);
}

TEST(RunFlagsTest, PublishRefusesBadValuesAndAddsNothing) {
  for (const char* bad : {"80", "x:80", "8080:", "8080:70000", "8080:80/icmp", ":8080:80", "0:80"}) {
    v1::PodSandboxConfig pod;
    absl::Status s = ApplyPublish({bad}, pod);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(std::string(s.message()).find(bad), std::string::npos) << s.message();
    EXPECT_EQ(pod.port_mappings_size(), 0) << bad;
  }
}

TEST(RunFlagsTest, NetworkChoices) {
  v1::PodSandboxConfig host;
  ASSERT_TRUE(ApplyNetwork("host", host).ok());
  EXPECT_EQ(host.linux().security_context().namespace_options().network(), v1::NODE);

  v1::PodSandboxConfig none;
  ASSERT_TRUE(ApplyNetwork("none", none).ok());
  EXPECT_EQ(none.annotations().at("berth.io/network"), "none");

  v1::PodSandboxConfig two;
  ASSERT_TRUE(ApplyNetwork("front,back", two).ok());
  EXPECT_EQ(two.annotations().at("berth.io/networks"), "front,back");

  v1::PodSandboxConfig bad;
  EXPECT_FALSE(ApplyNetwork("a,,b", bad).ok());
  EXPECT_FALSE(ApplyNetwork("../x", bad).ok());
  EXPECT_FALSE(ApplyNetwork("none,a", bad).ok());
  EXPECT_TRUE(bad.annotations().empty());

  v1::PodSandboxConfig unchanged;
  ASSERT_TRUE(ApplyNetwork("", unchanged).ok());
  EXPECT_TRUE(unchanged.annotations().empty());
}

}  // namespace
}  // namespace berth::cli
