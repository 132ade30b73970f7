#include "runtime/runtime.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "runtime/store/sqlite_store.h"

namespace berth {
namespace {

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-runtime-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Runtime> Make(const std::string& binary) {
    absl::StatusOr<store::StorePtr> store = store::SqliteStore::Open({.path = dir_ + "/db"});
    EXPECT_TRUE(store.ok()) << store.status();
    RuntimeOptions options{.root_dir = dir_, .state_dir = dir_, .default_handler = "runc"};
    // Never the node's /etc/berth; and no plugins, so the default network is not ready.
    options.cni_conf_dir = dir_ + "/net.d";
    options.cni_bin_dirs = {dir_ + "/cni-bin"};
    options.handlers["runc"] = {.name = "runc", .binary = binary, .root = dir_ + "/runc"};
    absl::StatusOr<std::unique_ptr<Runtime>> rt = Runtime::Create(options, *std::move(store));
    EXPECT_TRUE(rt.ok()) << rt.status();
    return rt.ok() ? *std::move(rt) : nullptr;
  }

  std::string dir_;
};

TEST(CidrTest, AcceptsNetworks) {
  EXPECT_TRUE(ValidateCidr("10.244.0.0/16").ok());
  EXPECT_TRUE(ValidateCidr("0.0.0.0/0").ok());
  EXPECT_TRUE(ValidateCidr("10.1.2.3/32").ok());
  EXPECT_TRUE(ValidateCidr("fd00:10:244::/64").ok());
}

TEST(CidrTest, RejectsMalformed) {
  for (const char* bad : {"10.244.0.0", "10.244.0.0/", "10.244.0.0/33", "10.244.0.1/16",
                          "10.244.0/16", "fd00::/129", "abc/8", "10.0.0.0/-1", "10.0.0.0/1x"}) {
    absl::Status s = ValidateCidr(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(bad), std::string::npos) << s;
  }
}

TEST_F(RuntimeTest, PodCidrIsStoredAndValidated) {
  std::unique_ptr<Runtime> rt = Make("/bin/true");
  ASSERT_NE(rt, nullptr);
  EXPECT_EQ(*rt->PodCidr(), "");
  ASSERT_TRUE(rt->SetPodCidr("10.244.1.0/24,fd00:1::/64").ok());
  EXPECT_EQ(*rt->PodCidr(), "10.244.1.0/24,fd00:1::/64");
  // Empty is ignored, not a reset: the kubelet sends it before the node has a CIDR.
  ASSERT_TRUE(rt->SetPodCidr("").ok());
  EXPECT_EQ(*rt->PodCidr(), "10.244.1.0/24,fd00:1::/64");

  absl::Status bad = rt->SetPodCidr("10.244.1.0/24,oops");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*rt->PodCidr(), "10.244.1.0/24,fd00:1::/64");
}

TEST_F(RuntimeTest, PodCidrSurvivesReopen) {
  ASSERT_TRUE(Make("/bin/true")->SetPodCidr("10.9.0.0/16").ok());
  EXPECT_EQ(*Make("/bin/true")->PodCidr(), "10.9.0.0/16");
}

TEST_F(RuntimeTest, RuntimeReadyFollowsTheHandlerBinary) {
  std::vector<Condition> conditions = Make("/bin/true")->Conditions();
  ASSERT_EQ(conditions.size(), 2u);
  EXPECT_EQ(conditions[0].type, "RuntimeReady");
  EXPECT_TRUE(conditions[0].ready);
  // The default network written on first start runs on berth's own plugins (found beside
  // the binary, a data dependency of this test), so it is ready.
  EXPECT_EQ(conditions[1].type, "NetworkReady");
  EXPECT_TRUE(conditions[1].ready) << conditions[1].message;

  conditions = Make("/nonexistent/runc")->Conditions();
  EXPECT_FALSE(conditions[0].ready);
  EXPECT_EQ(conditions[0].reason, "RuntimeBinaryNotFound");
  EXPECT_NE(conditions[0].message.find("/nonexistent/runc"), std::string::npos);
}

TEST_F(RuntimeTest, NetworkReadyNeedsTheDefaultNetworksPlugins) {
  std::filesystem::create_directories(dir_ + "/net.d");
  std::ofstream(dir_ + "/net.d/10-missing.conflist")
      << R"({"cniVersion": "1.0.0", "name": "missing", "plugins": [{"type": "no-such-plugin"}]})";
  std::vector<Condition> conditions = Make("/bin/true")->Conditions();
  ASSERT_EQ(conditions.size(), 2u);
  EXPECT_FALSE(conditions[1].ready);
  EXPECT_EQ(conditions[1].reason, "NetworkPluginNotReady");
  EXPECT_NE(conditions[1].message.find("no-such-plugin"), std::string::npos)
      << conditions[1].message;
}

TEST_F(RuntimeTest, ImageFsUsageMeasuresContentAndSnapshots) {
  std::unique_ptr<Runtime> rt = Make("/bin/true");
  absl::StatusOr<FilesystemUsage> dirs = rt->ImageFsUsage();
  ASSERT_TRUE(dirs.ok()) << dirs.status();
  EXPECT_EQ(dirs->mountpoint, dir_);
  EXPECT_GT(dirs->timestamp_ns, 0);
  ASSERT_TRUE(dirs.ok());
  // Runtime::Create made the content store and snapshotter directories.
  EXPECT_GT(dirs->inodes_used, 2);
}

}  // namespace
}  // namespace berth
