#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "cni/cni.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::cni {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class ConfigDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::filesystem::temp_directory_path() / "berth-cni-conf-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  std::string dir_;
};

TEST_F(ConfigDirTest, LoadsInSortedOrderAndSkipsInvalidFiles) {
  Write("20-b.conflist", R"({"cniVersion": "1.0.0", "name": "b", "plugins": [
                              {"type": "bridge", "bridge": "cni0"},
                              {"type": "portmap", "capabilities": {"portMappings": true}}]})");
  Write("10-a.conf", R"({"cniVersion": "0.4.0", "name": "a", "type": "loopback"})");
  Write("30-c.json", R"({"cniVersion": "1.1.0", "name": "c", "type": "ptp"})");
  Write("05-notes.txt", "not a config");
  Write("40-garbage.conflist", "{nope");
  Write("41-noplugins.conflist", R"({"cniVersion": "1.0.0", "name": "x", "plugins": []})");
  Write("42-notype.conf", R"({"cniVersion": "1.0.0", "name": "y"})");
  Write("43-dup.conflist", R"({"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "x"}]})");
  Write("44-badname.conflist",
        R"({"cniVersion": "1.0.0", "name": "../etc", "plugins": [{"type": "x"}]})");
  Write("45-badtype.conflist",
        R"({"cniVersion": "1.0.0", "name": "z", "plugins": [{"type": "../../bin/sh"}]})");
  Write("46-oldversion.conf", R"({"cniVersion": "0.2.0", "name": "old", "type": "bridge"})");
  Write("47-array.json", "[1, 2]");
  std::filesystem::create_directory(dir_ + "/50-dir.conflist");

  LoadedConfigs loaded = LoadConfigDir(dir_);
  ASSERT_THAT(loaded.networks, SizeIs(3));
  EXPECT_EQ(loaded.networks[0].name, "a");
  EXPECT_EQ(loaded.networks[1].name, "b");
  EXPECT_EQ(loaded.networks[2].name, "c");
  EXPECT_EQ(loaded.networks[0].source_file, dir_ + "/10-a.conf");
  EXPECT_EQ(loaded.networks[0].cni_version, "0.4.0");
  ASSERT_THAT(loaded.networks[1].plugins, SizeIs(2));
  EXPECT_EQ(loaded.networks[1].plugins[1]["type"], "portmap");

  ASSERT_THAT(loaded.errors, SizeIs(8));
  EXPECT_THAT(loaded.errors[0], HasSubstr("40-garbage.conflist: not valid JSON"));
  EXPECT_THAT(loaded.errors[1], HasSubstr("41-noplugins.conflist: \"plugins\" is not a non-empty"));
  EXPECT_THAT(loaded.errors[2], HasSubstr("42-notype.conf: neither \"plugins\""));
  EXPECT_THAT(loaded.errors[3], HasSubstr("43-dup.conflist: network \"a\" is already defined by"));
  EXPECT_THAT(loaded.errors[3], HasSubstr("10-a.conf"));
  EXPECT_THAT(loaded.errors[4], HasSubstr("44-badname.conflist: network name \"../etc\""));
  EXPECT_THAT(loaded.errors[5], HasSubstr("45-badtype.conflist: plugins[0] type"));
  EXPECT_THAT(loaded.errors[6], HasSubstr("46-oldversion.conf: cniVersion 0.2.0 is not one"));
  EXPECT_THAT(loaded.errors[7], HasSubstr("47-array.json: not a JSON object"));
}

TEST_F(ConfigDirTest, AMissingDirIsAnError) {
  LoadedConfigs loaded = LoadConfigDir(dir_ + "/nope");
  EXPECT_THAT(loaded.networks, SizeIs(0));
  ASSERT_THAT(loaded.errors, SizeIs(1));
  EXPECT_THAT(loaded.errors[0], HasSubstr("nope"));
}

TEST(ParseNetworkConfigTest, ASinglePluginBecomesAOnePluginList) {
  absl::StatusOr<NetworkConfig> config = ParseNetworkConfig(
      R"({"cniVersion": "1.0.0", "name": "lo", "type": "loopback", "extra": 1})", "f.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "lo");
  ASSERT_THAT(config->plugins, SizeIs(1));
  EXPECT_EQ(config->plugins[0]["type"], "loopback");
  EXPECT_EQ(config->plugins[0]["extra"], 1);
  EXPECT_FALSE(config->disable_check);
}

TEST(ParseNetworkConfigTest, VersionsAndFlags) {
  absl::StatusOr<NetworkConfig> config = ParseNetworkConfig(
      R"({"cniVersions": ["0.2.0", "1.0.0", "1.1.0", "9.0.0"], "name": "n",
          "disableCheck": "true", "disableGC": true, "plugins": [{"type": "x"}]})",
      "f.conflist");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cni_version, "1.1.0");  // the highest berth speaks
  EXPECT_THAT(config->cni_versions, ElementsAre("0.2.0", "1.0.0", "1.1.0", "9.0.0"));
  EXPECT_TRUE(config->disable_check);
  EXPECT_TRUE(config->disable_gc);

  EXPECT_FALSE(ParseNetworkConfig(R"({"name": "n", "plugins": [{"type": "x"}]})", "").ok());
  EXPECT_FALSE(ParseNetworkConfig(
                   R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x"}],
                       "disableCheck": 3})",
                   "")
                   .ok());
  EXPECT_FALSE(
      ParseNetworkConfig(R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": ""}]})", "")
          .ok());
}

TEST(ParseNetworkConfigTest, NetworkConfigJsonRoundTrips) {
  absl::StatusOr<NetworkConfig> config = ParseNetworkConfig(
      R"({"cniVersion": "1.1.0", "name": "n", "disableCheck": true,
          "plugins": [{"type": "bridge", "ipam": {"type": "host-local"}}]})",
      "f.conflist");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<NetworkConfig> again =
      ParseNetworkConfig(NetworkConfigJson(*config, "1.0.0"), "cache");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->cni_version, "1.0.0");
  EXPECT_EQ(again->name, "n");
  EXPECT_TRUE(again->disable_check);
  EXPECT_EQ(again->plugins, config->plugins);
}

}  // namespace
}  // namespace berth::cni
