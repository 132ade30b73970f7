// RegistryClient: the OCI distribution API v2, as a puller needs it.
//
//   RegistryClient client(config);
//   ASSIGN_OR_RETURN(FetchedManifest top, client.FetchManifest(ref, ref.tag, credentials));
//   // ... pick a platform manifest from an index, then its blobs, from the same endpoint:
//   RETURN_IF_ERROR(client.FetchBlob(top.endpoint, ref, layer, credentials, on_chunk));
//
// Endpoints come from ResolveEndpoints (mirrors replace the upstream). Auth:
// on a 401 the WWW-Authenticate challenge is answered with a bearer token
// from the realm (basic credentials sent to the realm when present) or with
// basic auth; tokens are cached per endpoint and repository. Requests are
// retried with backoff on 5xx, 429 and broken connections, but never after
// body bytes were delivered: a consumer that already saw data must restart
// on its own terms. Every blob is checked against its size and SHA-256 as it
// streams; manifests are capped at 4 MiB and checked against a pinned digest.
//
// Thread-safe: one client serves concurrent pulls.
#ifndef BERTH_RUNTIME_REGISTRY_REGISTRY_CLIENT_H_
#define BERTH_RUNTIME_REGISTRY_REGISTRY_CLIENT_H_

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/image/manifest.h"
#include "runtime/image/reference.h"
#include "runtime/registry/http.h"
#include "runtime/registry/registry_config.h"

namespace berth::registry {

inline constexpr int64_t kMaxManifestBytes = 4 << 20;

struct FetchedManifest {
  std::string media_type;
  std::string body;
  std::string digest;  // sha256 of body
  Endpoint endpoint;   // where it came from; fetch its children and blobs there
};

class RegistryClient {
 public:
  explicit RegistryClient(RegistryConfig config) : config_(std::move(config)) {}

  const RegistryConfig& config() const { return config_; }

  // GET /v2/<path>/manifests/<tag_or_digest>, trying each endpoint of
  // ref.domain in order until one has it.
  absl::StatusOr<FetchedManifest> FetchManifest(const image::Reference& ref,
                                                std::string_view tag_or_digest,
                                                const Credentials& credentials);

  // A manifest by digest from a known endpoint (an index's child).
  absl::StatusOr<FetchedManifest> FetchManifestFrom(const Endpoint& endpoint,
                                                    const image::Reference& ref,
                                                    std::string_view digest,
                                                    const Credentials& credentials);

  // Streams the blob to on_chunk. DataLoss when size or digest differ.
  absl::Status FetchBlob(const Endpoint& endpoint, const image::Reference& ref,
                         const image::Descriptor& blob, const Credentials& credentials,
                         const std::function<absl::Status(std::string_view)>& on_chunk);

 private:
  // Sends with auth and retries; the request's URL is a path under the endpoint.
  absl::StatusOr<HttpResponse> Send(const Endpoint& endpoint, const image::Reference& ref,
                                    HttpRequest request, const Credentials& credentials);
  absl::Status Authorize(const Endpoint& endpoint, const image::Reference& ref,
                         const HttpResponse& challenge_response, const Credentials& credentials);

  const RegistryConfig config_;
  absl::Mutex mu_;
  // "Authorization: ..." header per endpoint base URL and repository path.
  std::map<std::pair<std::string, std::string>, std::string> auth_headers_ ABSL_GUARDED_BY(mu_);
};

// Credentials to use at an endpoint: the request's when given, else the ones
// configured for the endpoint.
const Credentials& EffectiveCredentials(const Endpoint& endpoint, const Credentials& request);

}  // namespace berth::registry

#endif  // BERTH_RUNTIME_REGISTRY_REGISTRY_CLIENT_H_
