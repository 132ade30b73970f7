// Network: running a configuration's plugin chain for ADD, DEL, CHECK, STATUS and GC
// (spec §3), with the result cache and the locks the spec asks of a runtime.
#include <errno.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "cni/cni.h"
#include "cni/internal/locks.h"
#include "cni/internal/names.h"
#include "cni/internal/plugin_exec.h"
#include "cni/internal/result_cache.h"
#include "runtime/base/crash_point.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cni {

using internal::CacheEntry;
using nlohmann::json;

// A configuration ready to run: the version to speak and every plugin's binary.
struct Network::Prepared {
  std::string name;
  std::string version;
  std::vector<json> plugins;
  std::vector<std::string> paths;
  bool disable_check = false;
};

namespace {

bool AtLeast(const std::string& version, const char* minimum) {
  return internal::CompareVersions(version, minimum) >= 0;
}

bool IsSupported(const std::string& version) {
  const std::vector<std::string>& supported = SupportedVersions();
  return std::find(supported.begin(), supported.end(), version) != supported.end();
}

std::string Join(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : separator) + part;
  return out;
}

std::string Quoted(const std::string& network) { return StrCat("network \"", network, "\""); }

absl::Status Prefixed(const absl::Status& status, std::string_view prefix) {
  return absl::Status(status.code(), StrCat(prefix, status.message()));
}

// All of them in one status, with the first one's code.
absl::Status JoinErrors(const std::vector<absl::Status>& errors) {
  if (errors.empty()) return absl::OkStatus();
  std::string message;
  for (const absl::Status& e : errors) message += StrCat(message.empty() ? "" : "; ", e.message());
  return absl::Status(errors.front().code(), message);
}

// CNI_ARGS. The standard plugins fail on keys they do not know ("unknown args
// [K8S_POD_NAME]") unless IgnoreUnknown is set, so runtimes set it.
std::string CniArgs(const std::map<std::string, std::string>& args) {
  if (args.empty()) return "";
  std::string out = args.contains("IgnoreUnknown") ? "" : "IgnoreUnknown=1";
  for (const auto& [key, value] : args) out += (out.empty() ? "" : ";") + StrCat(key, "=", value);
  return out;
}

std::string TypeOf(const json& plugin) { return plugin.at("type").get<std::string>(); }

// The configuration a plugin reads on stdin (spec §3, "Deriving request configuration from
// plugin configuration"): the plugin's own object with name and cniVersion set, the
// capabilities it declares turned into runtimeConfig (and "capabilities" itself removed),
// and prevResult.
json RequestConfig(const json& plugin, const std::string& name, const std::string& version,
                   const json& capability_args, const json* prev_result, const json& extra_keys) {
  json request = plugin;
  json declared = request.contains("capabilities") ? request["capabilities"] : json();
  request.erase("capabilities");
  request["name"] = name;
  request["cniVersion"] = version;
  if (declared.is_object() && capability_args.is_object()) {
    json runtime_config = json::object();
    for (const auto& [capability, enabled] : declared.items()) {
      if (enabled == true && capability_args.contains(capability)) {
        runtime_config[capability] = capability_args[capability];
      }
    }
    if (!runtime_config.empty()) request["runtimeConfig"] = runtime_config;
  }
  if (prev_result != nullptr) request["prevResult"] = *prev_result;
  for (const auto& [key, value] : extra_keys.items()) request[key] = value;
  return request;
}

// True when `path` no longer names a network namespace: it does not exist, or it is a
// plain file whose nsfs bind mount is gone (a pod's pin after an unmount or a reboot), which
// the standard plugins refuse on DEL ("not a network namespace") where they accept a
// missing path.
bool NetnsGone(const std::string& path) {
  if (path.empty()) return false;
  struct statfs fs;
  if (statfs(path.c_str(), &fs) != 0) return errno == ENOENT;
  return fs.f_type != NSFS_MAGIC && fs.f_type != PROC_SUPER_MAGIC;
}

Attachment AttachmentFromCache(const CacheEntry& e) {
  Attachment a{.container_id = e.container_id, .netns = e.netns, .ifname = e.ifname};
  for (const auto& [key, value] : e.cni_args) a.args[key] = value;
  a.runtime_config = RuntimeConfigFromCapabilityArgs(e.capability_args);
  return a;
}

// What DEL and CHECK send: the spec wants the ADD's parameters; a caller that no longer
// has the args or capability arguments (after a restart) gets the cached ones.
Attachment FillFromCache(Attachment a, const CacheEntry& e) {
  if (a.args.empty()) {
    for (const auto& [key, value] : e.cni_args) a.args[key] = value;
  }
  if (CapabilityArgs(a.runtime_config).empty()) {
    a.runtime_config = RuntimeConfigFromCapabilityArgs(e.capability_args);
  }
  return a;
}

// The configuration the ADD ran with, when the cache has it: DEL and CHECK must undo and
// check what was done, even if the file changed since (or the version negotiated then
// differs from today's).
std::optional<NetworkConfig> CachedConfig(const CacheEntry& e, const std::string& name) {
  if (e.config.empty()) return std::nullopt;
  absl::StatusOr<NetworkConfig> config = ParseNetworkConfig(e.config, "(cache)");
  if (!config.ok() || config->name != name) return std::nullopt;
  return *std::move(config);
}

}  // namespace

Network::Network(NetworkConfig config, CniOptions options)
    : config_(std::move(config)), options_(std::move(options)) {}

absl::Status Network::ValidateAttachment(const Attachment& a, bool need_netns) const {
  const std::string net = Quoted(config_.name);
  if (!internal::IsValidNetworkName(config_.name)) {
    return absl::InvalidArgumentError(StrCat(net, ": invalid network name"));
  }
  if (options_.cache_dir.empty()) return absl::InvalidArgumentError(StrCat(net, ": no cache_dir"));
  if (!internal::IsValidContainerId(a.container_id)) {
    return absl::InvalidArgumentError(
        StrCat(net, ": container id \"", a.container_id, "\" is not [A-Za-z0-9][A-Za-z0-9_.-]*"));
  }
  if (!internal::IsValidIfName(a.ifname)) {
    return absl::InvalidArgumentError(
        StrCat(net, ": interface name \"", a.ifname,
               "\" is not 1-15 printable characters without '/', ':' or spaces"));
  }
  // The cache file "<network>-<id>-<ifname>" and its ".<name>.XXXXXX" temp file must fit
  // NAME_MAX.
  if (config_.name.size() + a.container_id.size() + a.ifname.size() + 2 + 8 > 255) {
    return absl::InvalidArgumentError(
        StrCat(net, ": container id \"", a.container_id, "\" is too long"));
  }
  if (need_netns && a.netns.empty()) {
    return absl::InvalidArgumentError(
        StrCat(net, ": container ", a.container_id, ": no network namespace"));
  }
  for (const auto& [key, value] : a.args) {
    if (key.empty() || key.find_first_of("=;") != std::string::npos ||
        value.find(';') != std::string::npos) {
      return absl::InvalidArgumentError(
          StrCat(net, ": CNI_ARGS entry \"", key, "=", value, "\" cannot be passed ('=' or ';')"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Network::Prepared> Network::Prepare(const NetworkConfig& config, bool negotiate) {
  const std::string net = Quoted(config.name);
  if (!internal::IsValidNetworkName(config.name)) {
    return absl::InvalidArgumentError(StrCat(net, ": invalid network name"));
  }
  if (config.plugins.empty()) return absl::InvalidArgumentError(StrCat(net, ": no plugins"));
  Prepared p{.name = config.name, .plugins = config.plugins, .disable_check = config.disable_check};
  for (const json& plugin : config.plugins) {
    if (!plugin.is_object() || !plugin.contains("type") || !plugin["type"].is_string()) {
      return absl::InvalidArgumentError(StrCat(net, ": a plugin has no \"type\""));
    }
    absl::StatusOr<std::string> path = internal::FindPlugin(TypeOf(plugin), options_.bin_dirs);
    if (!path.ok()) return Prefixed(path.status(), StrCat(net, ": "));
    p.paths.push_back(*std::move(path));
  }
  if (!negotiate) {
    p.version = config.cni_version;
    return p;
  }

  // The spec: the highest version of cniVersion and cniVersions that the runtime supports;
  // "runtimes MAY consider the set of supported plugin versions" -- berth does.
  std::vector<std::string> candidates = config.cni_versions;
  if (!config.cni_version.empty()) candidates.push_back(config.cni_version);
  std::erase_if(candidates, [](const std::string& v) { return !IsSupported(v); });
  std::sort(candidates.begin(), candidates.end(), [](const std::string& x, const std::string& y) {
    return internal::CompareVersions(x, y) > 0;
  });
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  if (candidates.empty()) {
    return absl::FailedPreconditionError(StrCat(net, ": cniVersion ", config.cni_version,
                                                " is not one berth speaks (",
                                                Join(SupportedVersions(), ", "), ")"));
  }
  std::vector<std::vector<std::string>> plugin_versions;
  const std::string cni_path = Join(options_.bin_dirs, ":");
  for (const std::string& path : p.paths) {
    absl::StatusOr<std::vector<std::string>> versions = internal::PluginSupportedVersions(
        path, candidates.front(), cni_path, options_.plugin_timeout);
    if (!versions.ok()) return Prefixed(versions.status(), StrCat(net, ": "));
    plugin_versions.push_back(*std::move(versions));
  }
  for (const std::string& candidate : candidates) {
    if (std::all_of(plugin_versions.begin(), plugin_versions.end(), [&](const auto& versions) {
          return std::find(versions.begin(), versions.end(), candidate) != versions.end();
        })) {
      p.version = candidate;
      return p;
    }
  }
  std::vector<std::string> lacking;
  for (size_t i = 0; i < p.paths.size(); ++i) {
    const std::vector<std::string>& v = plugin_versions[i];
    if (std::find(v.begin(), v.end(), candidates.front()) == v.end()) {
      lacking.push_back(
          StrCat(TypeOf(p.plugins[i]), " (", p.paths[i], ") supports only ", Join(v, ", ")));
    }
  }
  return absl::FailedPreconditionError(StrCat(net, ": no CNI version both the configuration (",
                                              Join(candidates, ", "),
                                              ") and every plugin support: ", Join(lacking, "; ")));
}

absl::StatusOr<std::string> Network::Invoke(const Prepared& p, size_t index,
                                            const std::string& command, const Attachment& a,
                                            const json* prev_result, const json& extra_keys) {
  const bool per_attachment = command == "ADD" || command == "DEL" || command == "CHECK";
  std::vector<std::string> env = {StrCat("CNI_COMMAND=", command),
                                  StrCat("CNI_PATH=", Join(options_.bin_dirs, ":"))};
  std::string what = StrCat(Quoted(p.name), ": plugin ", TypeOf(p.plugins[index]), " ", command);
  json capability_args;
  if (per_attachment) {
    env.push_back(StrCat("CNI_CONTAINERID=", a.container_id));
    env.push_back(StrCat("CNI_NETNS=", a.netns));
    env.push_back(StrCat("CNI_IFNAME=", a.ifname));
    env.push_back(StrCat("CNI_ARGS=", CniArgs(a.args)));
    what += StrCat(" (container ", a.container_id, ", ", a.ifname, ")");
    capability_args = CapabilityArgs(a.runtime_config);
  }
  json request =
      RequestConfig(p.plugins[index], p.name, p.version, capability_args, prev_result, extra_keys);
  return internal::RunPlugin({.path = p.paths[index],
                              .env = std::move(env),
                              .stdin_data = request.dump(),
                              .timeout = options_.plugin_timeout,
                              .what = what});
}

absl::StatusOr<Result> Network::Add(const Attachment& a) {
  RETURN_IF_ERROR(ValidateAttachment(a, /*need_netns=*/true));
  absl::ReaderMutexLock gc(&internal::NetworkGcMutex(config_.name));
  internal::ContainerLock lock(a.container_id);
  const std::string net = Quoted(config_.name);
  const std::string& cache_dir = options_.cache_dir;

  absl::StatusOr<CacheEntry> existing =
      internal::ReadCacheEntry(cache_dir, config_.name, a.container_id, a.ifname);
  if (existing.ok() && !existing->result.is_null()) {
    if (existing->netns != a.netns) {
      return absl::AlreadyExistsError(StrCat(net, ": container ", a.container_id,
                                             " is already attached as ", a.ifname, " in netns ",
                                             existing->netns, "; DEL it first"));
    }
    absl::StatusOr<Result> cached = ParseResult(existing->result);
    if (cached.ok()) return cached;
  }
  if (existing.ok() || !absl::IsNotFound(existing.status())) {
    // An ADD that never finished (berthd died in it) or an entry that cannot be read: the
    // spec allows no second ADD without a DEL in between.
    RETURN_IF_ERROR(DelLocked(a));
  }

  ASSIGN_OR_RETURN(Prepared p, Prepare(config_, /*negotiate=*/true));
  std::vector<std::pair<std::string, std::string>> args(a.args.begin(), a.args.end());
  CacheEntry entry{.network_name = config_.name,
                   .container_id = a.container_id,
                   .ifname = a.ifname,
                   .netns = a.netns,
                   .cni_args = std::move(args),
                   .capability_args = CapabilityArgs(a.runtime_config),
                   .config = NetworkConfigJson(config_, p.version)};
  // Recorded before anything runs: after a crash from here on, CachedAttachments shows the
  // attachment, and its Del cleans up whatever the plugins did.
  if (absl::Status written = internal::WriteCacheEntry(cache_dir, entry); !written.ok()) {
    return Prefixed(written, StrCat(net, ": result cache: "));
  }

  json prev;
  for (size_t i = 0; i < p.plugins.size(); ++i) {
    absl::StatusOr<std::string> out =
        Invoke(p, i, "ADD", a, i == 0 ? nullptr : &prev, json::object());
    if (!out.ok()) return UndoFailedAdd(a, out.status());
    // Fault injection: the first plugin has changed the host, the rest have not run.
    if (i == 0) CrashPoint("cni.first_plugin_added");
    json result = json::parse(*out, nullptr, /*allow_exceptions=*/false);
    if (result.is_discarded() || !result.is_object()) {
      return UndoFailedAdd(
          a, absl::InternalError(StrCat(net, ": plugin ", TypeOf(p.plugins[i]), " ADD (container ",
                                        a.container_id, ", ", a.ifname, "): printed no result: \"",
                                        out->substr(0, 200), "\"")));
    }
    prev = std::move(result);
  }
  absl::StatusOr<Result> result = ParseResult(prev);
  if (!result.ok()) {
    return UndoFailedAdd(
        a, Prefixed(result.status(), StrCat(net, ": plugin ", TypeOf(p.plugins.back()), " ADD: ")));
  }
  entry.result = prev;
  if (absl::Status written = internal::WriteCacheEntry(cache_dir, entry); !written.ok()) {
    return UndoFailedAdd(a, Prefixed(written, StrCat(net, ": result cache: ")));
  }
  return result;
}

absl::Status Network::UndoFailedAdd(const Attachment& a, absl::Status error) {
  absl::Status undo = DelLocked(a);
  if (undo.ok()) return error;
  return absl::Status(error.code(),
                      StrCat(error.message(), "; the DEL undoing it failed too (its cache entry ",
                             "stays for a later Del): ", undo.message()));
}

absl::Status Network::Del(const Attachment& a) {
  RETURN_IF_ERROR(ValidateAttachment(a, /*need_netns=*/false));
  absl::ReaderMutexLock gc(&internal::NetworkGcMutex(config_.name));
  internal::ContainerLock lock(a.container_id);
  return DelLocked(a);
}

absl::Status Network::DelLocked(const Attachment& a) {
  const std::string net = Quoted(config_.name);
  // Anything but a readable entry counts as nothing cached: DEL runs without prevResult.
  absl::StatusOr<CacheEntry> entry =
      internal::ReadCacheEntry(options_.cache_dir, config_.name, a.container_id, a.ifname);
  std::optional<NetworkConfig> cached =
      entry.ok() ? CachedConfig(*entry, config_.name) : std::nullopt;
  ASSIGN_OR_RETURN(Prepared p, Prepare(cached ? *cached : config_, /*negotiate=*/!cached));

  Attachment del = entry.ok() ? FillFromCache(a, *entry) : a;
  // A namespace that is gone is passed as "": the spec's signal to release what the plugin
  // can without it (a stale path would make the plugins fail to open it).
  if (NetnsGone(del.netns)) del.netns.clear();
  // prevResult on DEL exists since 0.4.0.
  const json* prev = entry.ok() && entry->result.is_object() && AtLeast(p.version, "0.4.0")
                         ? &entry->result
                         : nullptr;
  for (size_t i = p.plugins.size(); i-- > 0;) {
    absl::StatusOr<std::string> out = Invoke(p, i, "DEL", del, prev, json::object());
    // CNI error 3, "container unknown or does not exist": nothing left to clean up.
    if (!out.ok() && !absl::IsNotFound(out.status())) return out.status();
  }
  absl::Status removed =
      internal::RemoveCacheEntry(options_.cache_dir, config_.name, a.container_id, a.ifname);
  if (!removed.ok()) return Prefixed(removed, StrCat(net, ": result cache: "));
  return absl::OkStatus();
}

absl::Status Network::Check(const Attachment& a) {
  RETURN_IF_ERROR(ValidateAttachment(a, /*need_netns=*/true));
  absl::ReaderMutexLock gc(&internal::NetworkGcMutex(config_.name));
  internal::ContainerLock lock(a.container_id);
  const std::string net = Quoted(config_.name);
  absl::StatusOr<CacheEntry> entry =
      internal::ReadCacheEntry(options_.cache_dir, config_.name, a.container_id, a.ifname);
  if (absl::IsNotFound(entry.status())) {
    return absl::NotFoundError(StrCat(net, ": container ", a.container_id, " is not attached as ",
                                      a.ifname, " (nothing cached)"));
  }
  if (!entry.ok()) return Prefixed(entry.status(), StrCat(net, ": result cache: "));
  if (entry->result.is_null()) {
    return absl::FailedPreconditionError(
        StrCat(net, ": container ", a.container_id, " ", a.ifname, ": its ADD did not finish"));
  }
  std::optional<NetworkConfig> cached = CachedConfig(*entry, config_.name);
  ASSIGN_OR_RETURN(Prepared p, Prepare(cached ? *cached : config_, /*negotiate=*/!cached));
  if (config_.disable_check || p.disable_check || !AtLeast(p.version, "0.4.0")) {
    return absl::OkStatus();
  }
  Attachment check = FillFromCache(a, *entry);
  for (size_t i = 0; i < p.plugins.size(); ++i) {
    absl::StatusOr<std::string> out = Invoke(p, i, "CHECK", check, &entry->result, json::object());
    if (!out.ok()) return out.status();
  }
  return absl::OkStatus();
}

absl::Status Network::Status() {
  ASSIGN_OR_RETURN(Prepared p, Prepare(config_, /*negotiate=*/true));
  if (!AtLeast(p.version, "1.1.0")) return absl::OkStatus();  // STATUS is new in 1.1
  for (size_t i = 0; i < p.plugins.size(); ++i) {
    absl::StatusOr<std::string> out = Invoke(p, i, "STATUS", Attachment{}, nullptr, json::object());
    if (!out.ok()) return out.status();
  }
  return absl::OkStatus();
}

absl::Status Network::GarbageCollect(const std::vector<Attachment>& valid) {
  if (config_.disable_gc) return absl::OkStatus();
  const std::string net = Quoted(config_.name);
  if (options_.cache_dir.empty()) return absl::InvalidArgumentError(StrCat(net, ": no cache_dir"));
  // The spec: no ADD or DEL on the network while GC runs.
  absl::WriterMutexLock gc(&internal::NetworkGcMutex(config_.name));

  std::set<std::pair<std::string, std::string>> keep;
  json valid_json = json::array();
  for (const Attachment& a : valid) {
    keep.emplace(a.container_id, a.ifname);
    valid_json.push_back({{"containerID", a.container_id}, {"ifname", a.ifname}});
  }
  std::vector<absl::Status> errors;
  absl::StatusOr<std::vector<CacheEntry>> entries = internal::ListCacheEntries(options_.cache_dir);
  if (!entries.ok()) {
    errors.push_back(Prefixed(entries.status(), StrCat(net, ": result cache: ")));
  } else {
    for (const CacheEntry& e : *entries) {
      if (e.network_name != config_.name || keep.contains({e.container_id, e.ifname})) continue;
      Attachment stale = AttachmentFromCache(e);
      if (absl::Status ok = ValidateAttachment(stale, /*need_netns=*/false); !ok.ok()) {
        errors.push_back(ok);
        continue;
      }
      internal::ContainerLock lock(stale.container_id);
      if (absl::Status deleted = DelLocked(stale); !deleted.ok()) errors.push_back(deleted);
    }
  }

  absl::StatusOr<Prepared> p = Prepare(config_, /*negotiate=*/true);
  if (!p.ok()) {
    errors.push_back(p.status());
  } else if (AtLeast(p->version, "1.1.0")) {
    const json extra = {{"cni.dev/valid-attachments", valid_json}};
    for (size_t i = 0; i < p->plugins.size(); ++i) {
      absl::StatusOr<std::string> out = Invoke(*p, i, "GC", Attachment{}, nullptr, extra);
      if (!out.ok()) errors.push_back(out.status());  // the spec: continue, report them all
    }
  }
  return JoinErrors(errors);
}

absl::StatusOr<std::vector<std::string>> Network::PluginVersions(const std::string& type) {
  absl::StatusOr<std::string> path = internal::FindPlugin(type, options_.bin_dirs);
  if (!path.ok()) return Prefixed(path.status(), StrCat(Quoted(config_.name), ": "));
  const std::string version =
      config_.cni_version.empty() ? SupportedVersions().back() : config_.cni_version;
  return internal::PluginSupportedVersions(*path, version, Join(options_.bin_dirs, ":"),
                                           options_.plugin_timeout);
}

absl::StatusOr<std::string> Network::NegotiatedVersion() {
  ASSIGN_OR_RETURN(Prepared p, Prepare(config_, /*negotiate=*/true));
  return p.version;
}

absl::StatusOr<std::vector<Attachment>> Network::CachedAttachments() {
  const std::string net = Quoted(config_.name);
  if (options_.cache_dir.empty()) return absl::InvalidArgumentError(StrCat(net, ": no cache_dir"));
  absl::StatusOr<std::vector<CacheEntry>> entries = internal::ListCacheEntries(options_.cache_dir);
  if (!entries.ok()) return Prefixed(entries.status(), StrCat(net, ": result cache: "));
  std::vector<Attachment> attachments;
  for (const CacheEntry& e : *entries) {
    if (e.network_name == config_.name) attachments.push_back(AttachmentFromCache(e));
  }
  std::sort(attachments.begin(), attachments.end(), [](const Attachment& x, const Attachment& y) {
    return std::tie(x.container_id, x.ifname) < std::tie(y.container_id, y.ifname);
  });
  return attachments;
}

absl::StatusOr<std::vector<NetworkConfig>> CachedNetworkConfigs(const std::string& cache_dir) {
  ASSIGN_OR_RETURN(std::vector<CacheEntry> entries, internal::ListCacheEntries(cache_dir));
  std::vector<NetworkConfig> configs;
  std::set<std::string> seen;
  for (const CacheEntry& e : entries) {
    if (seen.contains(e.network_name)) continue;
    std::optional<NetworkConfig> config = CachedConfig(e, e.network_name);
    if (!config) continue;
    config->source_file =
        internal::CacheFilePath(cache_dir, e.network_name, e.container_id, e.ifname);
    seen.insert(e.network_name);
    configs.push_back(*std::move(config));
  }
  return configs;
}

}  // namespace berth::cni
