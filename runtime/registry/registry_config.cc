#include "runtime/registry/registry_config.h"

#include "runtime/base/strings.h"

namespace berth::registry {
namespace {

// The host part of a base URL: "https://h:5000" -> "h:5000".
std::string HostOf(const std::string& base_url) {
  size_t start = base_url.find("://");
  return start == std::string::npos ? base_url : base_url.substr(start + 3);
}

const RegistryHostConfig* Lookup(const RegistryConfig& config, const std::string& host) {
  if (auto it = config.hosts.find(host); it != config.hosts.end()) return &it->second;
  return nullptr;
}

}  // namespace

absl::StatusOr<std::string> NormalizeBaseUrl(const std::string& url) {
  std::string out = url.find("://") == std::string::npos ? "https://" + url : url;
  if (out.rfind("http://", 0) != 0 && out.rfind("https://", 0) != 0) {
    return absl::InvalidArgumentError(
        StrCat("registry URL \"", url, "\" must use http:// or https://"));
  }
  size_t host_start = out.find("://") + 3;
  while (out.size() > host_start && out.back() == '/') out.pop_back();
  std::string host = out.substr(host_start);
  if (host.empty() || host.find('/') != std::string::npos || host.find('@') != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("registry URL \"", url, "\" must be scheme://host[:port] with no path or user"));
  }
  return out;
}

absl::StatusOr<std::vector<Endpoint>> ResolveEndpoints(const RegistryConfig& config,
                                                       const std::string& domain) {
  const RegistryHostConfig* entry = Lookup(config, domain);
  if (entry == nullptr) entry = Lookup(config, "*");
  static const RegistryHostConfig kDefaults;
  if (entry == nullptr) entry = &kDefaults;

  std::vector<Endpoint> endpoints;
  for (const std::string& mirror : entry->mirrors) {
    absl::StatusOr<std::string> base = NormalizeBaseUrl(mirror);
    if (!base.ok()) return base.status();
    Endpoint endpoint{.base_url = *base, .insecure = entry->insecure, .mirror = true};
    // A mirror's own entry, if any, says how to log in to it.
    if (const RegistryHostConfig* own = Lookup(config, HostOf(*base))) {
      endpoint.credentials = own->credentials;
      endpoint.insecure = endpoint.insecure || own->insecure;
    }
    endpoints.push_back(std::move(endpoint));
  }
  if (!endpoints.empty()) return endpoints;

  std::string upstream = domain == "docker.io" ? "registry-1.docker.io" : domain;
  endpoints.push_back({.base_url = StrCat("https://", upstream),
                       .insecure = entry->insecure,
                       .mirror = false,
                       .credentials = entry->credentials});
  if (entry->insecure) {
    // "insecure" also allows a registry that speaks plain http only.
    endpoints.push_back({.base_url = StrCat("http://", upstream),
                         .insecure = true,
                         .mirror = false,
                         .credentials = entry->credentials});
  }
  return endpoints;
}

}  // namespace berth::registry
