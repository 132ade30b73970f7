// Results and capability arguments: the JSON shapes of spec §5 and CONVENTIONS.md.
#include <algorithm>
#include <cctype>

#include "cni/cni.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cni {
namespace {

using nlohmann::json;

// An optional string member: absent or null leaves `out` alone; another type is an error.
absl::Status OptionalString(const json& object, const char* key, const std::string& where,
                            std::string& out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(StrCat("result: ", where, key, " is not a string"));
  }
  out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status OptionalStrings(const json& object, const char* key, const std::string& where,
                             std::vector<std::string>& out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) {
    return absl::InvalidArgumentError(StrCat("result: ", where, key, " is not a list"));
  }
  for (const json& s : *it) {
    if (!s.is_string()) {
      return absl::InvalidArgumentError(StrCat("result: ", where, key, " holds a non-string"));
    }
    out.push_back(s.get<std::string>());
  }
  return absl::OkStatus();
}

// The objects of an optional list member, or an error naming it.
absl::StatusOr<std::vector<const json*>> OptionalObjects(const json& object, const char* key) {
  std::vector<const json*> out;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return out;
  if (!it->is_array()) return absl::InvalidArgumentError(StrCat("result: ", key, " is not a list"));
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_object()) {
      return absl::InvalidArgumentError(StrCat("result: ", key, "[", i, "] is not an object"));
    }
    out.push_back(&(*it)[i]);
  }
  return out;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

template <typename T>
T NumberOr(const json& object, const char* key, T fallback) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<T>() : fallback;
}

std::string StringOr(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<std::string> StringsOr(const json& object, const char* key) {
  std::vector<std::string> out;
  auto it = object.find(key);
  if (it == object.end() || !it->is_array()) return out;
  for (const json& s : *it) {
    if (s.is_string()) out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace

absl::StatusOr<Result> ParseResult(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("result: not a JSON object");
  Result r;
  r.raw = j;
  RETURN_IF_ERROR(OptionalString(j, "cniVersion", "", r.cni_version));

  ASSIGN_OR_RETURN(std::vector<const json*> interfaces, OptionalObjects(j, "interfaces"));
  for (size_t i = 0; i < interfaces.size(); ++i) {
    const std::string where = StrCat("interfaces[", i, "].");
    Interface& itf = r.interfaces.emplace_back();
    RETURN_IF_ERROR(OptionalString(*interfaces[i], "name", where, itf.name));
    RETURN_IF_ERROR(OptionalString(*interfaces[i], "mac", where, itf.mac));
    RETURN_IF_ERROR(OptionalString(*interfaces[i], "sandbox", where, itf.sandbox));
  }

  ASSIGN_OR_RETURN(std::vector<const json*> ips, OptionalObjects(j, "ips"));
  for (size_t i = 0; i < ips.size(); ++i) {
    const std::string where = StrCat("ips[", i, "].");
    IpConfig& ip = r.ips.emplace_back();
    RETURN_IF_ERROR(OptionalString(*ips[i], "address", where, ip.address));
    if (ip.address.empty()) {
      return absl::InvalidArgumentError(StrCat("result: ", where, "address is missing"));
    }
    RETURN_IF_ERROR(OptionalString(*ips[i], "gateway", where, ip.gateway));
    if (auto it = ips[i]->find("interface"); it != ips[i]->end() && !it->is_null()) {
      if (!it->is_number_integer()) {
        return absl::InvalidArgumentError(StrCat("result: ", where, "interface is not an index"));
      }
      ip.interface = it->get<int>();
    }
  }

  ASSIGN_OR_RETURN(std::vector<const json*> routes, OptionalObjects(j, "routes"));
  for (size_t i = 0; i < routes.size(); ++i) {
    const std::string where = StrCat("routes[", i, "].");
    Route& route = r.routes.emplace_back();
    RETURN_IF_ERROR(OptionalString(*routes[i], "dst", where, route.dst));
    if (route.dst.empty()) {
      return absl::InvalidArgumentError(StrCat("result: ", where, "dst is missing"));
    }
    RETURN_IF_ERROR(OptionalString(*routes[i], "gw", where, route.gw));
  }

  if (auto it = j.find("dns"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return absl::InvalidArgumentError("result: dns is not an object");
    RETURN_IF_ERROR(OptionalStrings(*it, "nameservers", "dns.", r.dns.nameservers));
    RETURN_IF_ERROR(OptionalString(*it, "domain", "dns.", r.dns.domain));
    RETURN_IF_ERROR(OptionalStrings(*it, "search", "dns.", r.dns.search));
    RETURN_IF_ERROR(OptionalStrings(*it, "options", "dns.", r.dns.options));
  }
  return r;
}

json CapabilityArgs(const RuntimeConfig& config) {
  json args = json::object();
  for (const auto& [name, value] : config.extra) args[name] = value;

  json mappings = json::array();
  for (const PortMapping& m : config.port_mappings) {
    if (m.host_port <= 0) continue;  // containerd and CRI-O drop these too
    json mapping = {{"hostPort", m.host_port},
                    {"containerPort", m.container_port},
                    {"protocol", m.protocol.empty() ? "tcp" : Lower(m.protocol)}};
    if (!m.host_ip.empty()) mapping["hostIP"] = m.host_ip;
    mappings.push_back(mapping);
  }
  if (!mappings.empty()) args["portMappings"] = mappings;
  if (config.dns.has_value()) {
    args["dns"] = {{"servers", config.dns->nameservers},
                   {"searches", config.dns->search},
                   {"options", config.dns->options}};
  }
  if (!config.cgroup_path.empty()) args["cgroupPath"] = config.cgroup_path;
  if (!config.ips.empty()) args["ips"] = config.ips;
  if (!config.mac.empty()) args["mac"] = config.mac;
  if (config.bandwidth.has_value()) {
    args["bandwidth"] = {{"ingressRate", config.bandwidth->ingress_rate},
                         {"ingressBurst", config.bandwidth->ingress_burst},
                         {"egressRate", config.bandwidth->egress_rate},
                         {"egressBurst", config.bandwidth->egress_burst}};
  }
  return args;
}

RuntimeConfig RuntimeConfigFromCapabilityArgs(const json& args) {
  RuntimeConfig config;
  if (!args.is_object()) return config;
  for (const auto& [name, value] : args.items()) {
    if (name == "portMappings" && value.is_array()) {
      for (const json& m : value) {
        if (!m.is_object()) continue;
        config.port_mappings.push_back({.host_port = NumberOr(m, "hostPort", 0),
                                        .container_port = NumberOr(m, "containerPort", 0),
                                        .protocol = StringOr(m, "protocol"),
                                        .host_ip = StringOr(m, "hostIP")});
      }
    } else if (name == "dns" && value.is_object()) {
      config.dns = Dns{.nameservers = StringsOr(value, "servers"),
                       .search = StringsOr(value, "searches"),
                       .options = StringsOr(value, "options")};
    } else if (name == "cgroupPath" && value.is_string()) {
      config.cgroup_path = value.get<std::string>();
    } else if (name == "ips" && value.is_array()) {
      config.ips = StringsOr(args, "ips");
    } else if (name == "mac" && value.is_string()) {
      config.mac = value.get<std::string>();
    } else if (name == "bandwidth" && value.is_object()) {
      config.bandwidth = Bandwidth{.ingress_rate = NumberOr<int64_t>(value, "ingressRate", 0),
                                   .ingress_burst = NumberOr<int64_t>(value, "ingressBurst", 0),
                                   .egress_rate = NumberOr<int64_t>(value, "egressRate", 0),
                                   .egress_burst = NumberOr<int64_t>(value, "egressBurst", 0)};
    } else {
      config.extra[name] = value;
    }
  }
  return config;
}

}  // namespace berth::cni
