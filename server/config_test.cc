#include "server/config.h"

#include "gtest/gtest.h"

namespace berth::server {
namespace {

TEST(ConfigTest, EmptyFileGivesDefaults) {
  absl::StatusOr<DaemonConfig> config = ParseConfig("", "test.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->root_dir, "/var/lib/berth");
  EXPECT_EQ(config->state_dir, "/run/berth");
  EXPECT_EQ(config->socket_path, "/run/berth/berth.sock");
  EXPECT_EQ(config->log_level, "info");
  EXPECT_EQ(config->default_runtime_handler, "runc");
  ASSERT_EQ(config->runtime_handlers.count("runc"), 1u);
  EXPECT_EQ(config->runtime_handlers.at("runc").binary, "runc");
  EXPECT_TRUE(ValidateConfig(*config).ok());
}

TEST(ConfigTest, MissingOptionalFileGivesDefaults) {
  absl::StatusOr<DaemonConfig> config = LoadConfigFile("/nonexistent/berth.toml", false);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->root_dir, "/var/lib/berth");
}

TEST(ConfigTest, MissingNamedFileIsAnError) {
  absl::StatusOr<DaemonConfig> config = LoadConfigFile("/nonexistent/berth.toml", true);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(config.status().message().find("/nonexistent/berth.toml"), std::string::npos);
}

TEST(ConfigTest, ReadsEveryKey) {
  absl::StatusOr<DaemonConfig> config = ParseConfig(R"(
root = "/srv/berth"
state = "/run/b2"
socket = "/run/b2/b.sock"
log_level = "debug"
shutdown_grace_seconds = 3

[store]
sync = "full"

[runtime]
default_handler = "kata"

[runtime.handlers.kata]
binary = "/opt/kata/bin/kata-runtime"
root = "/run/kata-state"
)",
                                                    "test.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->root_dir, "/srv/berth");
  EXPECT_EQ(config->state_dir, "/run/b2");
  EXPECT_EQ(config->socket_path, "/run/b2/b.sock");
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(config->shutdown_grace_seconds, 3);
  EXPECT_EQ(config->store_sync, "full");
  EXPECT_EQ(config->default_runtime_handler, "kata");
  EXPECT_EQ(config->runtime_handlers.at("kata").binary, "/opt/kata/bin/kata-runtime");
  EXPECT_EQ(config->runtime_handlers.at("kata").root, "/run/kata-state");
  // The built-in runc handler stays available next to added ones.
  EXPECT_EQ(config->runtime_handlers.count("runc"), 1u);
  EXPECT_TRUE(ValidateConfig(*config).ok());
  nlohmann::json json = ToJson(*config);
  EXPECT_EQ(json["runtime"]["handlers"]["kata"]["binary"], "/opt/kata/bin/kata-runtime");
  EXPECT_EQ(json["store"]["sync"], "full");
}

TEST(ConfigTest, ReadsRegistriesAndRedactsPasswords) {
  absl::StatusOr<DaemonConfig> config = ParseConfig(R"(
[registries."registry.k8s.io"]
mirrors = ["http://127.0.0.1:5000", "https://mirror.example"]
insecure = true

[registries."*"]
mirrors = ["http://127.0.0.1:5000"]
username = "me"
password = "hunter2"

[images]
max_concurrent_downloads = 5
pull_progress_timeout_seconds = 30
)",
                                                    "test.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  const registry::RegistryHostConfig& k8s = config->registry.hosts.at("registry.k8s.io");
  EXPECT_EQ(k8s.mirrors.size(), 2u);
  EXPECT_TRUE(k8s.insecure);
  EXPECT_EQ(config->registry.hosts.at("*").credentials.password, "hunter2");
  EXPECT_EQ(config->registry.max_concurrent_downloads, 5);
  EXPECT_EQ(config->registry.progress_timeout_seconds, 30);
  std::string json = ToJson(*config).dump();
  EXPECT_EQ(json.find("hunter2"), std::string::npos) << json;
  EXPECT_NE(json.find("<redacted>"), std::string::npos);

  EXPECT_FALSE(ParseConfig("[registries.\"x\"]\nmirrors = [\"ftp://x\"]\n", "t").ok());
  EXPECT_FALSE(ParseConfig("[registries.\"x\"]\nmirror = []\n", "t").ok());
  EXPECT_FALSE(ParseConfig("[images]\nmax_concurrent_downloads = 0\n", "t").ok());
}

TEST(ConfigTest, UnknownKeysAreErrors) {
  absl::StatusOr<DaemonConfig> config = ParseConfig("sockett = \"/x\"\n", "test.toml");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("sockett"), std::string::npos) << config.status();

  config = ParseConfig("[store]\nsyncc = \"full\"\n", "test.toml");
  EXPECT_NE(config.status().message().find("[store]: unknown key \"syncc\""), std::string::npos)
      << config.status();
}

TEST(ConfigTest, WrongTypesAndSyntaxAreErrorsWithLocation) {
  absl::StatusOr<DaemonConfig> config = ParseConfig("root = 5\n", "test.toml");
  EXPECT_NE(config.status().message().find("\"root\" has the wrong type"), std::string::npos)
      << config.status();

  config = ParseConfig("root = \n", "my.toml");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("my.toml:1:"), std::string::npos) << config.status();
}

TEST(ConfigTest, ValidationCatchesBadValues) {
  DaemonConfig config;
  config.root_dir = "relative/dir";
  EXPECT_NE(ValidateConfig(config).message().find("root must be an absolute path"),
            std::string::npos);

  config = DaemonConfig{};
  config.socket_path = "/" + std::string(120, 's');
  EXPECT_NE(ValidateConfig(config).message().find("under 108"), std::string::npos);

  config = DaemonConfig{};
  config.log_level = "loud";
  EXPECT_FALSE(ValidateConfig(config).ok());

  config = DaemonConfig{};
  config.default_runtime_handler = "missing";
  EXPECT_NE(ValidateConfig(config).message().find("[runtime.handlers.missing]"), std::string::npos);

  config = DaemonConfig{};
  config.store_sync = "sometimes";
  EXPECT_FALSE(ValidateConfig(config).ok());
}

}  // namespace
}  // namespace berth::server

namespace berth::server {
namespace {

TEST(ConfigTest, ReadsTheNetworkTable) {
  absl::StatusOr<DaemonConfig> defaults = ParseConfig("", "test.toml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->cni_conf_dir, "/etc/berth/cni/net.d");
  EXPECT_EQ(defaults->cni_bin_dirs, (std::vector<std::string>{"/usr/lib/cni", "/opt/cni/bin"}));

  absl::StatusOr<DaemonConfig> config = ParseConfig(R"(
[network]
conf_dir = "/srv/cni"
bin_dirs = ["/srv/cni/bin"]
)",
                                                    "test.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cni_conf_dir, "/srv/cni");
  EXPECT_EQ(config->cni_bin_dirs, std::vector<std::string>{"/srv/cni/bin"});
  EXPECT_EQ(ToJson(*config)["network"]["conf_dir"], "/srv/cni");

  for (const char* bad : {"[network]\nconf_dir = \"relative\"\n",
                          "[network]\nbin_dirs = [\"relative\"]\n",
                          "[network]\nbin_dirs = \"/not/a/list\"\n",
                          "[network]\nplugins = 1\n"}) {
    EXPECT_EQ(ParseConfig(bad, "test.toml").status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace berth::server
