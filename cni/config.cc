// Network configuration files (spec §1) and the conf dir.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

#include "cni/cni.h"
#include "cni/internal/names.h"
#include "cni/internal/plugin_exec.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cni {
namespace {

using nlohmann::json;

bool IsSupported(const std::string& version) {
  const std::vector<std::string>& supported = SupportedVersions();
  return std::find(supported.begin(), supported.end(), version) != supported.end();
}

std::string SupportedList() {
  std::string out;
  for (const std::string& v : SupportedVersions()) out += (out.empty() ? "" : ", ") + v;
  return out;
}

// "disableCheck": true, and the string "true" that some generated configs carry.
absl::StatusOr<bool> OptionalBool(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string() && (*it == "true" || *it == "false")) return *it == "true";
  return absl::InvalidArgumentError(StrCat(key, " is not a boolean"));
}

// `where` names the plugin in messages: "plugins[2]", or "plugin" for a single one.
absl::Status CheckPlugin(const json& plugin, const std::string& where) {
  if (!plugin.is_object()) return absl::InvalidArgumentError(StrCat(where, " is not an object"));
  auto type = plugin.find("type");
  if (type == plugin.end() || !type->is_string() || type->get<std::string>().empty()) {
    return absl::InvalidArgumentError(StrCat(where, " has no \"type\""));
  }
  if (!internal::IsValidPluginType(type->get<std::string>())) {
    return absl::InvalidArgumentError(
        StrCat(where, " type \"", type->get<std::string>(), "\" is not a plain file name"));
  }
  if (auto caps = plugin.find("capabilities"); caps != plugin.end() && !caps->is_object()) {
    return absl::InvalidArgumentError(StrCat(where, " capabilities is not an object"));
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& SupportedVersions() {
  static const auto* versions =
      new std::vector<std::string>{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  return *versions;
}

absl::StatusOr<NetworkConfig> ParseNetworkConfig(std::string_view json_text,
                                                 const std::string& source_file) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("not a JSON object");

  NetworkConfig config;
  config.source_file = source_file;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string()) {
    return absl::InvalidArgumentError("no network \"name\"");
  }
  config.name = name->get<std::string>();
  if (!internal::IsValidNetworkName(config.name)) {
    return absl::InvalidArgumentError(
        StrCat("network name \"", config.name,
               "\" must be [A-Za-z0-9][A-Za-z0-9_.-]* (it names cache files)"));
  }

  // The versions: cniVersion, plus 1.1's cniVersions; berth must speak one of them.
  if (auto v = j.find("cniVersion"); v != j.end() && !v->is_null()) {
    if (!v->is_string()) return absl::InvalidArgumentError("cniVersion is not a string");
    config.cni_version = v->get<std::string>();
  }
  if (auto vs = j.find("cniVersions"); vs != j.end() && !vs->is_null()) {
    if (!vs->is_array()) return absl::InvalidArgumentError("cniVersions is not a list");
    for (const json& v : *vs) {
      if (!v.is_string()) return absl::InvalidArgumentError("cniVersions holds a non-string");
      config.cni_versions.push_back(v.get<std::string>());
    }
  }
  if (config.cni_version.empty() && config.cni_versions.empty()) {
    return absl::InvalidArgumentError("no cniVersion");
  }
  std::vector<std::string> all = config.cni_versions;
  if (!config.cni_version.empty()) all.push_back(config.cni_version);
  if (std::none_of(all.begin(), all.end(), IsSupported)) {
    return absl::InvalidArgumentError(StrCat("cniVersion ", config.cni_version,
                                             config.cni_versions.empty() ? "" : " (or cniVersions)",
                                             " is not one berth speaks: ", SupportedList()));
  }
  if (config.cni_version.empty()) {
    for (const std::string& v : config.cni_versions) {
      if (IsSupported(v) &&
          (config.cni_version.empty() || internal::CompareVersions(v, config.cni_version) > 0)) {
        config.cni_version = v;
      }
    }
  }

  if (j.contains("plugins")) {
    const json& plugins = j["plugins"];
    if (!plugins.is_array() || plugins.empty()) {
      return absl::InvalidArgumentError("\"plugins\" is not a non-empty list");
    }
    for (size_t i = 0; i < plugins.size(); ++i) {
      RETURN_IF_ERROR(CheckPlugin(plugins[i], StrCat("plugins[", i, "]")));
      config.plugins.push_back(plugins[i]);
    }
    absl::StatusOr<bool> disable_check = OptionalBool(j, "disableCheck");
    if (!disable_check.ok()) return disable_check.status();
    absl::StatusOr<bool> disable_gc = OptionalBool(j, "disableGC");
    if (!disable_gc.ok()) return disable_gc.status();
    config.disable_check = *disable_check;
    config.disable_gc = *disable_gc;
  } else if (j.contains("type")) {
    RETURN_IF_ERROR(CheckPlugin(j, "plugin"));
    config.plugins.push_back(j);
  } else {
    return absl::InvalidArgumentError(
        "neither \"plugins\" (a configuration list) nor \"type\" (a single plugin)");
  }
  return config;
}

std::string NetworkConfigJson(const NetworkConfig& config, const std::string& cni_version) {
  json j = {{"cniVersion", cni_version}, {"name", config.name}, {"plugins", config.plugins}};
  if (config.disable_check) j["disableCheck"] = true;
  if (config.disable_gc) j["disableGC"] = true;
  return j.dump();
}

LoadedConfigs LoadConfigDir(const std::string& dir) {
  namespace fs = std::filesystem;
  LoadedConfigs loaded;
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::string ext = it->path().extension().string();
    if (ext != ".conflist" && ext != ".conf" && ext != ".json") continue;
    if (it->is_directory(ec)) continue;
    names.push_back(name);
  }
  if (ec) {
    loaded.errors.push_back(StrCat(dir, ": ", ec.message()));
    return loaded;
  }
  std::sort(names.begin(), names.end());

  std::map<std::string, std::string> defined_in;  // network name -> file
  for (const std::string& name : names) {
    const std::string path = StrCat(dir, "/", name);
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    if (!in || !(text << in.rdbuf())) {
      loaded.errors.push_back(StrCat(path, ": cannot read"));
      continue;
    }
    absl::StatusOr<NetworkConfig> config = ParseNetworkConfig(text.str(), path);
    if (!config.ok()) {
      loaded.errors.push_back(StrCat(path, ": ", config.status().message()));
      continue;
    }
    auto [it, inserted] = defined_in.emplace(config->name, path);
    if (!inserted) {
      loaded.errors.push_back(
          StrCat(path, ": network \"", config->name, "\" is already defined by ", it->second));
      continue;
    }
    loaded.networks.push_back(*std::move(config));
  }
  return loaded;
}

}  // namespace berth::cni
