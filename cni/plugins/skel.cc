#include "cni/plugins/skel.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>

#include "absl/strings/cord.h"
#include "runtime/base/strings.h"

extern char** environ;

namespace berth::cni::plugins {
namespace {

constexpr char kCodeUrl[] = "berth.dev/cni-code";
constexpr char kDetailsUrl[] = "berth.dev/cni-details";

nlohmann::json ErrorJson(const std::string& version, int code, std::string_view msg,
                         std::string_view details) {
  nlohmann::json j = {{"cniVersion", version}, {"code", code}, {"msg", std::string(msg)}};
  if (!details.empty()) j["details"] = std::string(details);
  return j;
}

Outcome Fail(const std::string& version, int code, std::string_view msg,
             std::string_view details = "") {
  return {1, ErrorJson(version, code, msg, details).dump() + "\n"};
}

std::string Get(const Invocation& inv, const std::string& key) {
  auto it = inv.env.find(key);
  return it == inv.env.end() ? "" : it->second;
}

std::vector<std::string> SplitNonEmpty(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

bool Supported(const std::string& v) {
  for (const std::string& s : PluginVersions()) {
    if (s == v) return true;
  }
  return false;
}

}  // namespace

absl::Status CniError(int code, std::string_view msg, std::string_view details) {
  absl::Status s(code == kUnknownContainer ? absl::StatusCode::kNotFound
                                           : absl::StatusCode::kFailedPrecondition,
                 absl::string_view(msg.data(), msg.size()));
  s.SetPayload(kCodeUrl, absl::Cord(std::to_string(code)));
  if (!details.empty()) {
    s.SetPayload(kDetailsUrl, absl::Cord(absl::string_view(details.data(), details.size())));
  }
  return s;
}

int CniErrorCode(const absl::Status& status) {
  auto c = status.GetPayload(kCodeUrl);
  if (!c.has_value()) return kGenericFailure;
  return std::atoi(std::string(*c).c_str());
}

std::string CniErrorDetails(const absl::Status& status) {
  auto c = status.GetPayload(kDetailsUrl);
  return c.has_value() ? std::string(*c) : "";
}

const std::vector<std::string>& PluginVersions() {
  static const std::vector<std::string> v = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  return v;
}

int CompareVersions(std::string_view a, std::string_view b) {
  std::vector<std::string> pa = SplitNonEmpty(std::string(a), '.');
  std::vector<std::string> pb = SplitNonEmpty(std::string(b), '.');
  for (size_t i = 0; i < std::max(pa.size(), pb.size()); ++i) {
    int x = i < pa.size() ? std::atoi(pa[i].c_str()) : 0;
    int y = i < pb.size() ? std::atoi(pb[i].c_str()) : 0;
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

nlohmann::json ResultForVersion(nlohmann::json result, const std::string& version) {
  if (!result.is_object()) result = nlohmann::json::object();
  result["cniVersion"] = version;
  const bool old = CompareVersions(version, "1.0.0") < 0;
  if (result.contains("ips") && result["ips"].is_array()) {
    for (nlohmann::json& ip : result["ips"]) {
      if (old) {
        std::string addr = ip.value("address", "");
        ip["version"] = addr.find(':') == std::string::npos ? "4" : "6";
      } else {
        ip.erase("version");
      }
    }
  }
  return result;
}

const nlohmann::json& PrevResult(const CmdArgs& args) {
  static const nlohmann::json null;
  auto it = args.config.find("prevResult");
  return it == args.config.end() ? null : *it;
}

std::vector<std::pair<std::string, std::string>> ValidAttachments(const CmdArgs& args) {
  std::vector<std::pair<std::string, std::string>> out;
  auto it = args.config.find("cni.dev/valid-attachments");
  if (it == args.config.end() || !it->is_array()) return out;
  for (const nlohmann::json& a : *it) {
    if (!a.is_object()) continue;
    out.emplace_back(a.value("containerID", ""), a.value("ifname", ""));
  }
  return out;
}

Outcome RunPlugin(const Plugin& plugin, const Invocation& inv) {
  CmdArgs args;
  args.command = Get(inv, "CNI_COMMAND");
  std::string version = "1.1.0";  // of the error JSON until the config says otherwise

  // The configuration. VERSION may come with an empty or minimal one.
  nlohmann::json config = nlohmann::json::parse(inv.stdin_data, nullptr, false);
  if (args.command == "VERSION") {
    std::string asked = config.is_object() ? config.value("cniVersion", "") : "";
    nlohmann::json answer = {{"cniVersion", Supported(asked) ? asked : "1.1.0"},
                             {"supportedVersions", PluginVersions()}};
    return {0, answer.dump() + "\n"};
  }
  if (args.command.empty()) {
    return Fail(version, kInvalidEnvironment, "CNI_COMMAND is not set",
                StrCat(plugin.name, " speaks CNI ", nlohmann::json(PluginVersions()).dump()));
  }
  if (config.is_discarded() || !config.is_object()) {
    return Fail(version, kDecodeFailure, "the network configuration on stdin is not a JSON object");
  }
  if (config.contains("cniVersion") && config["cniVersion"].is_string()) {
    version = config["cniVersion"].get<std::string>();
  } else {
    return Fail(version, kInvalidNetworkConfig, "the network configuration has no cniVersion");
  }
  if (!Supported(version)) {
    std::string asked = version;
    version = "1.1.0";
    return Fail(version, kIncompatibleVersion,
                StrCat("incompatible CNI versions: config is \"", asked, "\", ", plugin.name,
                       " supports ", nlohmann::json(PluginVersions()).dump()));
  }
  args.config = std::move(config);
  args.cni_version = version;
  args.container_id = Get(inv, "CNI_CONTAINERID");
  args.netns = Get(inv, "CNI_NETNS");
  args.ifname = Get(inv, "CNI_IFNAME");
  args.path = SplitNonEmpty(Get(inv, "CNI_PATH"), ':');
  for (const std::string& kv : SplitNonEmpty(Get(inv, "CNI_ARGS"), ';')) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      return Fail(version, kInvalidEnvironment, StrCat("CNI_ARGS entry \"", kv, "\" has no '='"));
    }
    args.args.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }

  const std::string& cmd = args.command;
  const bool per_container = cmd == "ADD" || cmd == "DEL" || cmd == "CHECK";
  if (!per_container && cmd != "STATUS" && cmd != "GC") {
    return Fail(version, kInvalidEnvironment, StrCat("unknown CNI_COMMAND \"", cmd, "\""));
  }
  if (per_container) {
    if (args.container_id.empty()) {
      return Fail(version, kInvalidEnvironment, "CNI_CONTAINERID is not set");
    }
    if (args.ifname.empty()) return Fail(version, kInvalidEnvironment, "CNI_IFNAME is not set");
    if (cmd != "DEL" && args.netns.empty()) {
      return Fail(version, kInvalidEnvironment, "CNI_NETNS is not set");
    }
  }
  if ((cmd == "STATUS" || cmd == "GC") && CompareVersions(version, "1.1.0") < 0) {
    return Fail(version, kIncompatibleVersion,
                StrCat(cmd, " needs CNI 1.1.0, config is ", version));
  }
  if (cmd == "CHECK" && CompareVersions(version, "0.4.0") < 0) {
    return Fail(version, kIncompatibleVersion,
                StrCat("CHECK needs CNI 0.4.0, config is ", version));
  }

  absl::Status status;
  std::string out;
  // nlohmann::json throws on a value of an unexpected type deep in a configuration or
  // prevResult; that is a malformed input, reported as such rather than a crash.
  try {
    if (cmd == "ADD") {
      absl::StatusOr<nlohmann::json> result = plugin.add(args);
      if (result.ok()) {
        out = ResultForVersion(*std::move(result), version).dump() + "\n";
      } else {
        status = result.status();
      }
    } else {
      const std::function<absl::Status(const CmdArgs&)>* handler = cmd == "DEL"     ? &plugin.del
                                                                   : cmd == "CHECK" ? &plugin.check
                                                                   : cmd == "STATUS"
                                                                       ? &plugin.status
                                                                       : &plugin.gc;
      if (*handler) status = (*handler)(args);
    }
  } catch (const nlohmann::json::exception& e) {
    return Fail(version, kDecodeFailure, StrCat("malformed configuration: ", e.what()));
  }
  if (!status.ok()) {
    return Fail(version, CniErrorCode(status),
                std::string_view(status.message().data(), status.message().size()),
                CniErrorDetails(status));
  }
  return {0, out};
}

int PluginMain(const Plugin& plugin) {
  Invocation inv;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    // The first of two equal names wins, as in Go's os.Getenv and libcni's callers.
    if (eq != std::string::npos) inv.env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  if (inv.env.count("CNI_COMMAND") && inv.env["CNI_COMMAND"] != "VERSION" &&
      inv.env["CNI_COMMAND"] != "") {
    inv.stdin_data.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else if (!isatty(0)) {
    inv.stdin_data.assign(std::istreambuf_iterator<char>(std::cin), {});
  }
  Outcome o = RunPlugin(plugin, inv);
  std::fwrite(o.out.data(), 1, o.out.size(), stdout);
  std::fflush(stdout);
  return o.exit_code;
}

}  // namespace berth::cni::plugins
