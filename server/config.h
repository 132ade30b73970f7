// DaemonConfig: everything berthd can be told, from defaults, the TOML file
// and command-line flags, in that order of precedence (flags win).
//
//   absl::StatusOr<DaemonConfig> config = LoadConfigFile("/etc/berth/berth.toml",
//                                                         /*must_exist=*/false);
//   config->root_dir = "/tmp/r";           // a flag overrides the file
//   nlohmann::json effective = ToJson(*config);
//
// Every key and its default is documented in docs/config.md; keep the two in
// step. Unknown keys are an error, so a typo never silently means "default".
#ifndef BERTH_SERVER_CONFIG_H_
#define BERTH_SERVER_CONFIG_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/registry/registry_config.h"

namespace berth::server {

inline constexpr char kDefaultConfigPath[] = "/etc/berth/berth.toml";

struct RuntimeHandlerConfig {
  // The OCI runtime binary: an absolute path, or a name looked up in PATH.
  std::string binary = "runc";
  // The runtime's own state directory (runc --root); empty means
  // <state>/runtimes/<handler name>.
  std::string root;
};

struct DaemonConfig {
  std::string root_dir = "/var/lib/berth";
  std::string state_dir = "/run/berth";
  std::string socket_path = "/run/berth/berth.sock";
  std::string log_level = "info";

  // How hard a store commit waits for the disk: "normal" or "full" (docs/store.md).
  std::string store_sync = "normal";

  // Seconds SIGTERM waits for in-flight RPCs before cancelling them.
  int shutdown_grace_seconds = 10;

  // [registries."<host>"] and [images]: mirrors, credentials, download limits.
  registry::RegistryConfig registry;

  // [network]: CNI. conf_dir holds the networks (*.conflist, *.conf, *.json; the
  // first in sorted order is the default); plugins are looked up in bin_dirs.
  // An empty conf_dir gets berth's default "bridge" network on first start.
  std::string cni_conf_dir = "/etc/berth/cni/net.d";
  std::vector<std::string> cni_bin_dirs = {"/usr/lib/cni", "/opt/cni/bin"};

  // [streaming]: where the URLs of Exec, Attach and PortForward lead (docs/streaming.md).
  // Loopback on an ephemeral port by default, like containerd: the kubelet proxies.
  std::string streaming_address = "127.0.0.1";
  int64_t streaming_port = 0;
  int64_t stream_token_ttl_seconds = 60;
  int64_t stream_idle_timeout_seconds = 4 * 3600;
  int64_t max_streaming_sessions = 128;

  std::string default_runtime_handler = "runc";
  std::map<std::string, RuntimeHandlerConfig> runtime_handlers = {{"runc", {}}};
};

// Reads a TOML config file over the defaults. A missing file yields the
// defaults unless must_exist is set (the operator named it with --config).
absl::StatusOr<DaemonConfig> LoadConfigFile(const std::string& path, bool must_exist);

// Parses TOML text over the defaults; `origin` names it in error messages.
absl::StatusOr<DaemonConfig> ParseConfig(std::string_view toml_text, const std::string& origin);

// Checks relations between keys (absolute paths, a known default handler, ...).
absl::Status ValidateConfig(const DaemonConfig& config);

// The effective configuration, as Status(verbose) reports it.
nlohmann::json ToJson(const DaemonConfig& config);

}  // namespace berth::server

#endif  // BERTH_SERVER_CONFIG_H_
