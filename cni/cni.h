// The CNI caller: puts a container's network namespace on a network by running CNI plugins
// (spec 1.0.0 and 1.1.0; 0.3.x and 0.4.0 configurations are accepted too), the way libcni
// does for containerd and CRI-O. No gRPC types; errors are absl::Status.
//
//   LoadedConfigs loaded = LoadConfigDir("/etc/berth/cni/net.d");
//   for (const std::string& error : loaded.errors) log(error);     // skipped files
//   Network net(loaded.networks.front(),                             // the default network
//               {.bin_dirs = {"/usr/lib/cni"}, .cache_dir = "/var/lib/berth/cni"});
//   Attachment a{.container_id = pod_id, .netns = "/run/berth/pods/<id>/ns/net",
//                .ifname = "eth0",
//                .args = {{"K8S_POD_NAME", "web"}, {"K8S_POD_NAMESPACE", "default"}},
//                .runtime_config = {.port_mappings = {{.host_port = 8080,
//                                                      .container_port = 80,
//                                                      .protocol = "tcp"}}}};
//   ASSIGN_OR_RETURN(Result result, net.Add(a));   // result.ips[0].address: "10.88.0.5/16"
//   ...
//   RETURN_IF_ERROR(net.Del(a));   // idempotent; fine when the netns is already gone
//
// After a restart, CachedAttachments() lists what was added to a network (including an ADD
// that was interrupted half-way); Del() of each one the runtime no longer wants cleans the
// host up, with the cached result as prevResult. GarbageCollect() does that for everything
// outside a list of valid attachments and then asks 1.1 plugins to GC.
//
// Guarantees: every plugin call has a timeout; two operations on one container id never run
// at the same time in this process (whatever Network object they go through); GarbageCollect
// runs alone on its network (no Add/Del/Check of that network meanwhile). A failed Add is
// undone with DEL before it returns. Network is thread-safe. docs/cni.md has the details.
#ifndef BERTH_CNI_CNI_H_
#define BERTH_CNI_CNI_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace berth::cni {

// ---- What ADD returns: the final plugin's result (spec §5, "Success").

struct IpConfig {
  std::string address;           // CIDR: "10.88.0.5/16"
  std::string gateway;           // "" when none
  std::optional<int> interface;  // index into Result::interfaces
};

struct Interface {
  std::string name, mac, sandbox;  // sandbox: the netns path; "" for a host-side interface
};

struct Route {
  std::string dst, gw;  // gw "" means the interface's default gateway
};

struct Dns {
  std::vector<std::string> nameservers, search, options;
  std::string domain;
};

struct Result {
  std::string cni_version;
  std::vector<Interface> interfaces;
  std::vector<IpConfig> ips;
  std::vector<Route> routes;
  Dns dns;
  nlohmann::json raw;  // as the plugin printed it (keeps 1.1 fields: mtu, route tables, ...)
};

// Parses a result printed by a plugin (1.x, and 0.3.x/0.4.0 whose "version" fields are
// ignored). InvalidArgument names the malformed field.
absl::StatusOr<Result> ParseResult(const nlohmann::json& json);

// ---- What the runtime passes per attachment.

struct PortMapping {
  int host_port = 0;  // mappings with host_port <= 0 publish nothing and are not passed on
  int container_port = 0;
  std::string protocol;  // "tcp", "udp", "sctp"; "" means tcp; sent lower-case
  std::string host_ip;   // "" = every host address
};

// The "bandwidth" capability (CONVENTIONS.md): rates in bits per second, bursts in bits.
struct Bandwidth {
  int64_t ingress_rate = 0;
  int64_t ingress_burst = 0;
  int64_t egress_rate = 0;
  int64_t egress_burst = 0;
};

// Capability arguments. A plugin gets, as its "runtimeConfig", exactly the non-empty ones
// it declares in its "capabilities" (CNI CONVENTIONS.md names in quotes).
struct RuntimeConfig {
  std::vector<PortMapping> port_mappings;  // "portMappings"
  std::optional<Dns> dns;                  // "dns": servers, searches, options (no domain)
  std::string cgroup_path;                 // "cgroupPath"
  std::vector<std::string> ips;            // "ips": requested addresses, "10.88.0.9/16"
  std::string mac;                         // "mac"
  std::optional<Bandwidth> bandwidth;      // "bandwidth"
  // Any other capability by its conventional name ("ipRanges", "aliases",
  // "io.kubernetes.cri.pod-annotations", ...), passed as is. A field above that is set
  // wins over the same name here.
  std::map<std::string, nlohmann::json> extra;
};

// The capability arguments as JSON ({"portMappings": [...], ...}; empty ones left out), and
// back (unknown names land in extra). This is also their form in the result cache.
nlohmann::json CapabilityArgs(const RuntimeConfig& config);
RuntimeConfig RuntimeConfigFromCapabilityArgs(const nlohmann::json& args);

struct Attachment {
  // [A-Za-z0-9][A-Za-z0-9_.-]*; it names the cache file, so nothing else is accepted.
  std::string container_id;
  std::string netns;   // the namespace path; may name a removed namespace for Del
  std::string ifname;  // "eth0": 1-15 characters, no '/', ':' or whitespace, not "." or ".."
  // CNI_ARGS ("K8S_POD_NAME=web;..."); "IgnoreUnknown=1" is added when there are args, as
  // containerd and CRI-O do, since the standard plugins reject keys they do not know.
  std::map<std::string, std::string> args;
  RuntimeConfig runtime_config;
};

// ---- Network configurations (spec §1).

// The CNI versions berth speaks, oldest first.
const std::vector<std::string>& SupportedVersions();

struct NetworkConfig {
  std::string name;
  std::string cni_version;              // "cniVersion" (or the highest of cniVersions when absent)
  std::vector<nlohmann::json> plugins;  // each has a "type"
  std::string source_file;
  std::vector<std::string> cni_versions;  // "cniVersions" (1.1), may be empty
  bool disable_check = false;             // "disableCheck": Check() does nothing
  bool disable_gc = false;                // "disableGC": GarbageCollect() does nothing
};

// A .conflist (has "plugins") or a single plugin's .conf/.json (has "type"; it becomes a
// one-plugin list), whatever the file is called. InvalidArgument says what is wrong: no or a
// malformed name, no version berth speaks, no plugins, a plugin type that is not a plain
// file name.
absl::StatusOr<NetworkConfig> ParseNetworkConfig(std::string_view json_text,
                                                 const std::string& source_file);

// The configuration as a .conflist document, with `cni_version` as its cniVersion.
std::string NetworkConfigJson(const NetworkConfig& config, const std::string& cni_version);

struct LoadedConfigs {
  std::vector<NetworkConfig> networks;  // the first one is the default network
  std::vector<std::string> errors;      // "<file>: <why it was skipped>"
};

// Loads *.conflist, *.conf and *.json from dir (not its subdirectories) in sorted file name
// order. Invalid files, and a second file defining a name already loaded, are skipped and
// reported in `errors`; so is a missing or unreadable dir.
LoadedConfigs LoadConfigDir(const std::string& dir);

// ---- Running the plugins.

struct CniOptions {
  std::vector<std::string> bin_dirs;  // searched in order for a plugin's "type"; CNI_PATH
  std::string cache_dir;              // results live in <cache_dir>/results (libcni's layout)
  absl::Duration plugin_timeout = absl::Seconds(60);  // per plugin execution
};

// One network configuration and the plugins it runs. Cheap to construct; the per-container
// locks, the GC exclusion and the plugins' VERSION answers are process-wide, so building a
// new Network for every call loses nothing.
//
// Errors name the network, plugin, command and attachment: `network "pods": plugin bridge
// ADD (container 5f3c..., eth0): failed to allocate ...: no IP addresses available (CNI
// error 11)`. A plugin's error code maps to: 1 (incompatible version) FailedPrecondition;
// 2, 4, 6, 7 (bad field, environment, content, config) InvalidArgument; 3 (unknown
// container) NotFound; 11 (try again later), 50 and 51 (STATUS: not available) Unavailable;
// anything else Internal. A timeout is DeadlineExceeded; a missing plugin binary or a
// version nobody shares FailedPrecondition; a bad attachment InvalidArgument.
class Network {
 public:
  Network(NetworkConfig config, CniOptions options);

  const std::string& name() const { return config_.name; }
  const NetworkConfig& config() const { return config_; }

  // ADD through the plugin chain, each plugin getting the previous one's result as
  // prevResult; returns the last result. The attachment is recorded in the cache before the
  // first plugin runs (so an ADD cut short by a crash shows up in CachedAttachments) and
  // gets its result atomically once the chain succeeds. When a plugin fails, the whole
  // chain is DELeted (spec: "a delete must still be executed even if the add fails") and
  // the entry removed; if that DEL fails too the entry stays, for a later Del.
  // Adding an attachment that is already complete with the same netns returns the cached
  // result without running plugins; with another netns it is AlreadyExists. An entry left
  // by an interrupted ADD is DELeted first.
  absl::StatusOr<Result> Add(const Attachment& a);

  // DEL through the plugins in reverse order with the cached result as prevResult, using
  // the configuration the ADD used (from the cache) when there is one. Empty args and
  // runtime_config are taken from the cache too. Idempotent: OK when nothing is cached
  // (the plugins still run, without prevResult, to release what a lost ADD may hold), when
  // the netns is gone or is a plain file whose nsfs mount is gone (CNI_NETNS is then passed
  // empty), and when a plugin answers "unknown container" (CNI error 3). Removes the cache
  // entry when every plugin succeeded.
  absl::Status Del(const Attachment& a);

  // CHECK through the plugins in order with the cached result as prevResult. NotFound when
  // nothing is cached, FailedPrecondition when the ADD never finished; OK without running
  // anything for disableCheck and for versions before 0.4.0, which have no CHECK.
  absl::Status Check(const Attachment& a);

  // Whether the network can take ADDs (the NetworkReady condition): the version is
  // negotiated (every plugin binary found and answering VERSION), then, when that version
  // is 1.1.0 or later, every plugin answers STATUS.
  absl::Status Status();

  // DELs every cached attachment of this network that is not in `valid` (matched by
  // container id and ifname), then, at 1.1.0 and later, runs GC on every plugin with
  // "cni.dev/valid-attachments". Continues past errors and returns them all. Nothing for
  // disableGC.
  absl::Status GarbageCollect(const std::vector<Attachment>& valid);

  // VERSION of a plugin (cached per binary, until the file changes): its supportedVersions.
  absl::StatusOr<std::vector<std::string>> PluginVersions(const std::string& type);

  // The highest version in cniVersion/cniVersions that berth and every plugin support.
  absl::StatusOr<std::string> NegotiatedVersion();

  // The attachments cached for this network (container id, netns, ifname, args and
  // runtime config as given to Add), in container id order.
  absl::StatusOr<std::vector<Attachment>> CachedAttachments();

 private:
  struct Prepared;  // a config ready to run: version, plugins and their binaries

  absl::Status ValidateAttachment(const Attachment& a, bool need_netns) const;
  absl::StatusOr<Prepared> Prepare(const NetworkConfig& config, bool negotiate);
  absl::StatusOr<std::string> Invoke(const Prepared& p, size_t index, const std::string& command,
                                     const Attachment& a, const nlohmann::json* prev_result,
                                     const nlohmann::json& extra_keys);
  absl::Status DelLocked(const Attachment& a);
  absl::Status UndoFailedAdd(const Attachment& a, absl::Status error);

  NetworkConfig config_;
  CniOptions options_;
};

// The networks with attachments cached under cache_dir, each with the configuration cached
// with one of its attachments (source_file: that cache file): to Del the attachments of a
// network whose file was removed meanwhile.
absl::StatusOr<std::vector<NetworkConfig>> CachedNetworkConfigs(const std::string& cache_dir);

}  // namespace berth::cni

#endif  // BERTH_CNI_CNI_H_
