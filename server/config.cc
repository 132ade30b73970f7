#include "server/config.h"

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::server {
namespace {

absl::Status UnknownKeys(const toml::table& table, const std::set<std::string>& known,
                         const std::string& where) {
  for (const auto& [key, value] : table) {
    if (!known.count(std::string(key.str()))) {
      return absl::InvalidArgumentError(StrCat(where, ": unknown key \"", key.str(), "\""));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Read(const toml::table& table, std::string_view key, const std::string& where,
                  T& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return absl::OkStatus();
  std::optional<T> value = node->value<T>();
  if (!value.has_value()) {
    return absl::InvalidArgumentError(StrCat(where, ": key \"", key, "\" has the wrong type"));
  }
  out = *value;
  return absl::OkStatus();
}

const toml::table* SubTable(const toml::table& table, std::string_view key) {
  const toml::node* node = table.get(key);
  return node ? node->as_table() : nullptr;
}

absl::Status ParseHandlers(const toml::table& runtime, const std::string& where,
                           DaemonConfig& config) {
  const toml::node* node = runtime.get("handlers");
  if (node == nullptr) return absl::OkStatus();
  const toml::table* handlers = node->as_table();
  if (handlers == nullptr) {
    return absl::InvalidArgumentError(StrCat(where, ": [runtime.handlers] must be a table"));
  }
  for (const auto& [name, value] : *handlers) {
    const toml::table* handler = value.as_table();
    std::string handler_where = StrCat(where, ": [runtime.handlers.", name.str(), "]");
    if (handler == nullptr) {
      return absl::InvalidArgumentError(StrCat(handler_where, " must be a table"));
    }
    RETURN_IF_ERROR(UnknownKeys(*handler, {"binary", "root"}, handler_where));
    RuntimeHandlerConfig& out = config.runtime_handlers[std::string(name.str())];
    RETURN_IF_ERROR(Read(*handler, "binary", handler_where, out.binary));
    RETURN_IF_ERROR(Read(*handler, "root", handler_where, out.root));
  }
  return absl::OkStatus();
}

absl::Status ParseRegistries(const toml::table& top, const std::string& origin,
                             DaemonConfig& config) {
  if (const toml::node* node = top.get("registries")) {
    const toml::table* hosts = node->as_table();
    if (hosts == nullptr) {
      return absl::InvalidArgumentError(StrCat(origin, ": [registries] must be a table"));
    }
    for (const auto& [host, value] : *hosts) {
      std::string where = StrCat(origin, ": [registries.\"", host.str(), "\"]");
      const toml::table* entry = value.as_table();
      if (entry == nullptr) return absl::InvalidArgumentError(where + " must be a table");
      RETURN_IF_ERROR(UnknownKeys(*entry, {"mirrors", "insecure", "username", "password"}, where));
      registry::RegistryHostConfig& out = config.registry.hosts[std::string(host.str())];
      if (const toml::node* mirrors = entry->get("mirrors")) {
        const toml::array* list = mirrors->as_array();
        if (list == nullptr) return absl::InvalidArgumentError(where + ": mirrors must be a list");
        for (const toml::node& mirror : *list) {
          std::optional<std::string> url = mirror.value<std::string>();
          if (!url) return absl::InvalidArgumentError(where + ": mirrors must be strings");
          absl::StatusOr<std::string> normalized = registry::NormalizeBaseUrl(*url);
          if (!normalized.ok()) {
            return absl::InvalidArgumentError(StrCat(where, ": ", normalized.status().message()));
          }
          out.mirrors.push_back(*url);
        }
      }
      RETURN_IF_ERROR(Read(*entry, "insecure", where, out.insecure));
      RETURN_IF_ERROR(Read(*entry, "username", where, out.credentials.username));
      RETURN_IF_ERROR(Read(*entry, "password", where, out.credentials.password));
    }
  }
  if (const toml::table* network = SubTable(top, "network")) {
    std::string where = origin + ": [network]";
    RETURN_IF_ERROR(UnknownKeys(*network, {"conf_dir", "bin_dirs"}, where));
    RETURN_IF_ERROR(Read(*network, "conf_dir", where, config.cni_conf_dir));
    if (const toml::node* dirs = network->get("bin_dirs")) {
      const toml::array* list = dirs->as_array();
      if (list == nullptr) return absl::InvalidArgumentError(where + ": bin_dirs must be a list");
      config.cni_bin_dirs.clear();
      for (const toml::node& dir : *list) {
        std::optional<std::string> path = dir.value<std::string>();
        if (!path || path->empty() || (*path)[0] != '/') {
          return absl::InvalidArgumentError(where + ": bin_dirs must be absolute paths");
        }
        config.cni_bin_dirs.push_back(*path);
      }
    }
    if (config.cni_conf_dir.empty() || config.cni_conf_dir[0] != '/') {
      return absl::InvalidArgumentError(where + ": conf_dir must be an absolute path");
    }
  }
  if (const toml::table* streaming = SubTable(top, "streaming")) {
    std::string where = origin + ": [streaming]";
    RETURN_IF_ERROR(UnknownKeys(*streaming,
                                {"address", "port", "token_ttl_seconds", "idle_timeout_seconds",
                                 "max_sessions"},
                                where));
    RETURN_IF_ERROR(Read(*streaming, "address", where, config.streaming_address));
    RETURN_IF_ERROR(Read(*streaming, "port", where, config.streaming_port));
    RETURN_IF_ERROR(Read(*streaming, "token_ttl_seconds", where, config.stream_token_ttl_seconds));
    RETURN_IF_ERROR(
        Read(*streaming, "idle_timeout_seconds", where, config.stream_idle_timeout_seconds));
    RETURN_IF_ERROR(Read(*streaming, "max_sessions", where, config.max_streaming_sessions));
    if (config.streaming_port < 0 || config.streaming_port > 65535) {
      return absl::InvalidArgumentError(where + ": port must be 0..65535");
    }
    if (config.stream_token_ttl_seconds < 1 || config.stream_idle_timeout_seconds < 1 ||
        config.max_streaming_sessions < 1) {
      return absl::InvalidArgumentError(
          where + ": token_ttl_seconds, idle_timeout_seconds and max_sessions must be positive");
    }
  }
  if (const toml::table* images = SubTable(top, "images")) {
    std::string where = origin + ": [images]";
    RETURN_IF_ERROR(
        UnknownKeys(*images, {"max_concurrent_downloads", "pull_progress_timeout_seconds"}, where));
    int64_t downloads = config.registry.max_concurrent_downloads;
    int64_t timeout = config.registry.progress_timeout_seconds;
    RETURN_IF_ERROR(Read(*images, "max_concurrent_downloads", where, downloads));
    RETURN_IF_ERROR(Read(*images, "pull_progress_timeout_seconds", where, timeout));
    if (downloads < 1 || downloads > 64) {
      return absl::InvalidArgumentError(where + ": max_concurrent_downloads must be 1..64");
    }
    if (timeout < 1) {
      return absl::InvalidArgumentError(where + ": pull_progress_timeout_seconds must be >= 1");
    }
    config.registry.max_concurrent_downloads = static_cast<int>(downloads);
    config.registry.progress_timeout_seconds = static_cast<int>(timeout);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DaemonConfig> ParseConfig(std::string_view toml_text, const std::string& origin) {
  // Debian builds toml++ with exceptions: a syntax error throws.
  toml::table top;
  try {
    top = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(StrCat(origin, ":", err.source().begin.line, ":",
                                             err.source().begin.column, ": ", err.description()));
  }
  DaemonConfig config;
  RETURN_IF_ERROR(UnknownKeys(top,
                              {"root", "state", "socket", "log_level", "shutdown_grace_seconds",
                               "store", "runtime", "registries", "images", "network", "streaming"},
                              origin));
  RETURN_IF_ERROR(Read(top, "root", origin, config.root_dir));
  RETURN_IF_ERROR(Read(top, "state", origin, config.state_dir));
  RETURN_IF_ERROR(Read(top, "socket", origin, config.socket_path));
  RETURN_IF_ERROR(Read(top, "log_level", origin, config.log_level));
  int64_t grace = config.shutdown_grace_seconds;
  RETURN_IF_ERROR(Read(top, "shutdown_grace_seconds", origin, grace));
  config.shutdown_grace_seconds = static_cast<int>(grace);

  if (const toml::table* store = SubTable(top, "store")) {
    std::string where = origin + ": [store]";
    RETURN_IF_ERROR(UnknownKeys(*store, {"sync"}, where));
    RETURN_IF_ERROR(Read(*store, "sync", where, config.store_sync));
  }
  if (const toml::table* runtime = SubTable(top, "runtime")) {
    std::string where = origin + ": [runtime]";
    RETURN_IF_ERROR(UnknownKeys(*runtime, {"default_handler", "handlers"}, where));
    RETURN_IF_ERROR(Read(*runtime, "default_handler", where, config.default_runtime_handler));
    RETURN_IF_ERROR(ParseHandlers(*runtime, where, config));
  }
  RETURN_IF_ERROR(ParseRegistries(top, origin, config));
  return config;
}

absl::StatusOr<DaemonConfig> LoadConfigFile(const std::string& path, bool must_exist) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (must_exist) return absl::NotFoundError(StrCat("config file ", path, " does not exist"));
    return DaemonConfig{};
  }
  std::ifstream file(path);
  if (!file.is_open()) return absl::PermissionDeniedError(StrCat("cannot read config file ", path));
  std::ostringstream text;
  text << file.rdbuf();
  return ParseConfig(text.str(), path);
}

absl::Status ValidateConfig(const DaemonConfig& config) {
  for (const auto& [key, path] : {std::pair<std::string, std::string>{"root", config.root_dir},
                                  {"state", config.state_dir},
                                  {"socket", config.socket_path}}) {
    if (path.empty() || path[0] != '/') {
      return absl::InvalidArgumentError(
          StrCat(key, " must be an absolute path, got \"", path, "\""));
    }
  }
  // sun_path holds 108 bytes including the terminating NUL.
  if (config.socket_path.size() > 107) {
    return absl::InvalidArgumentError(StrCat("socket path ", config.socket_path, " is ",
                                             config.socket_path.size(),
                                             " bytes; a unix socket path must be under 108"));
  }
  static const std::set<std::string> kLevels = {"trace", "debug",    "info", "warn",
                                                "error", "critical", "off"};
  if (!kLevels.count(config.log_level)) {
    return absl::InvalidArgumentError(StrCat("log_level \"", config.log_level,
                                             "\" is not one of trace, debug, info, warn, error, "
                                             "critical, off"));
  }
  if (config.store_sync != "normal" && config.store_sync != "full") {
    return absl::InvalidArgumentError(
        StrCat("[store] sync \"", config.store_sync, "\" is not one of normal, full"));
  }
  if (config.shutdown_grace_seconds < 0) {
    return absl::InvalidArgumentError("shutdown_grace_seconds must not be negative");
  }
  if (!config.runtime_handlers.count(config.default_runtime_handler)) {
    return absl::InvalidArgumentError(
        StrCat("[runtime] default_handler \"", config.default_runtime_handler,
               "\" has no [runtime.handlers.", config.default_runtime_handler, "] entry"));
  }
  for (const auto& [name, handler] : config.runtime_handlers) {
    if (handler.binary.empty()) {
      return absl::InvalidArgumentError(
          StrCat("[runtime.handlers.", name, "] binary must not be empty"));
    }
    if (!handler.root.empty() && handler.root[0] != '/') {
      return absl::InvalidArgumentError(
          StrCat("[runtime.handlers.", name, "] root must be an absolute path"));
    }
  }
  return absl::OkStatus();
}

nlohmann::json ToJson(const DaemonConfig& config) {
  nlohmann::json handlers = nlohmann::json::object();
  for (const auto& [name, handler] : config.runtime_handlers) {
    handlers[name] = {{"binary", handler.binary}, {"root", handler.root}};
  }
  nlohmann::json registries = nlohmann::json::object();
  for (const auto& [host, entry] : config.registry.hosts) {
    // Passwords never leave the daemon, not even in Status(verbose).
    registries[host] = {{"mirrors", entry.mirrors},
                        {"insecure", entry.insecure},
                        {"username", entry.credentials.username},
                        {"password", entry.credentials.password.empty() ? "" : "<redacted>"}};
  }
  return {
      {"registries", registries},
      {"images",
       {{"max_concurrent_downloads", config.registry.max_concurrent_downloads},
        {"pull_progress_timeout_seconds", config.registry.progress_timeout_seconds}}},
      {"root", config.root_dir},
      {"state", config.state_dir},
      {"socket", config.socket_path},
      {"log_level", config.log_level},
      {"shutdown_grace_seconds", config.shutdown_grace_seconds},
      {"store", {{"sync", config.store_sync}}},
      {"runtime", {{"default_handler", config.default_runtime_handler}, {"handlers", handlers}}},
      {"network", {{"conf_dir", config.cni_conf_dir}, {"bin_dirs", config.cni_bin_dirs}}},
      {"streaming",
       {{"address", config.streaming_address},
        {"port", config.streaming_port},
        {"token_ttl_seconds", config.stream_token_ttl_seconds},
        {"idle_timeout_seconds", config.stream_idle_timeout_seconds},
        {"max_sessions", config.max_streaming_sessions}}},
  };
}

}  // namespace berth::server
