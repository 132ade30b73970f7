// Where and how berth reaches a registry: mirrors, TLS, credentials.
//
//   RegistryConfig config;                       // from berth.toml [registries."<host>"]
//   config.hosts["*"].mirrors = {"http://127.0.0.1:5000"};
//   ASSIGN_OR_RETURN(std::vector<Endpoint> endpoints, ResolveEndpoints(config, "registry.k8s.io"));
//
// The rule (docs/registries.md): the entry for the exact host applies, else
// the "*" entry, else defaults. When the entry lists mirrors, they are tried
// in order and REPLACE the upstream host, which is then never contacted:
// that is how berth runs offline with registry.k8s.io/... image names. With
// no mirrors, the upstream host itself is the only endpoint (docker.io's is
// registry-1.docker.io).
#ifndef BERTH_RUNTIME_REGISTRY_REGISTRY_CONFIG_H_
#define BERTH_RUNTIME_REGISTRY_REGISTRY_CONFIG_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::registry {

struct Credentials {
  std::string username;
  std::string password;
  // A refresh token for the bearer flow (CRI AuthConfig.identity_token).
  std::string identity_token;
  // A bearer token to send as is (CRI AuthConfig.registry_token).
  std::string registry_token;

  bool empty() const {
    return username.empty() && password.empty() && identity_token.empty() && registry_token.empty();
  }
};

struct RegistryHostConfig {
  // "http://host:port" or "https://host[:port]"; a bare host means https.
  std::vector<std::string> mirrors;
  // Accept unverified TLS certificates, and plain http for the upstream host.
  bool insecure = false;
  Credentials credentials;
};

struct RegistryConfig {
  // Keyed by registry host ("registry.k8s.io", "127.0.0.1:5000") or "*".
  std::map<std::string, RegistryHostConfig> hosts;
  int max_concurrent_downloads = 3;
  // A transfer with no progress for this long is aborted.
  int progress_timeout_seconds = 60;
  // Tries per request for 5xx answers and broken connections.
  int max_attempts = 4;
};

struct Endpoint {
  std::string base_url;  // "https://registry-1.docker.io", "http://127.0.0.1:5000"
  bool insecure = false;
  bool mirror = false;
  // Credentials configured for this endpoint's host, if any.
  Credentials credentials;
};

// The endpoints to try for images named under `domain`, in order.
absl::StatusOr<std::vector<Endpoint>> ResolveEndpoints(const RegistryConfig& config,
                                                       const std::string& domain);

// "http://h:p/" -> scheme and host; InvalidArgument for anything else.
absl::StatusOr<std::string> NormalizeBaseUrl(const std::string& url);

}  // namespace berth::registry

#endif  // BERTH_RUNTIME_REGISTRY_REGISTRY_CONFIG_H_
