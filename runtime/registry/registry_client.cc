#include "runtime/registry/registry_client.h"

#include <chrono>
#include <thread>

#include "nlohmann/json.hpp"
#include "runtime/base/base64.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/image/digest.h"

namespace berth::registry {
namespace {

std::string AcceptManifests() {
  std::string accept = "Accept: ";
  bool first = true;
  for (std::string_view type : image::kAcceptedManifestTypes) {
    if (!first) accept += ", ";
    accept += type;
    first = false;
  }
  return accept;
}

bool Retryable(const absl::StatusOr<HttpResponse>& r) {
  if (!r.ok()) return r.status().code() == absl::StatusCode::kUnavailable;
  return r->status == 429 || (r->status >= 500 && r->status != 501);
}

std::string Snippet(const std::string& body) {
  std::string s = body.substr(0, 300);
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

absl::Status HttpError(const HttpRequest& request, const HttpResponse& response) {
  std::string what = StrCat(request.method, " ", request.url, ": HTTP ", response.status,
                            response.body.empty() ? "" : StrCat(" ", Snippet(response.body)));
  switch (response.status) {
    case 401:
      return absl::UnauthenticatedError(what);
    case 403:
      return absl::PermissionDeniedError(what);
    case 404:
      return absl::NotFoundError(what);
    case 429:
      return absl::ResourceExhaustedError(what);
    default:
      return absl::UnavailableError(what);
  }
}

}  // namespace

const Credentials& EffectiveCredentials(const Endpoint& endpoint, const Credentials& request) {
  return request.empty() ? endpoint.credentials : request;
}

absl::Status RegistryClient::Authorize(const Endpoint& endpoint, const image::Reference& ref,
                                       const HttpResponse& challenge_response,
                                       const Credentials& credentials) {
  const Credentials& creds = EffectiveCredentials(endpoint, credentials);
  std::string header;
  for (const Challenge& challenge :
       ParseChallenges(challenge_response.Header("www-authenticate"))) {
    if (challenge.scheme == "bearer") {
      if (!creds.registry_token.empty()) {
        header = "Authorization: Bearer " + creds.registry_token;
        break;
      }
      auto realm = challenge.params.find("realm");
      if (realm == challenge.params.end() || realm->second.empty()) continue;
      std::string url = realm->second;
      url += url.find('?') == std::string::npos ? "?" : "&";
      if (auto service = challenge.params.find("service"); service != challenge.params.end()) {
        url += "service=" + UrlEncode(service->second) + "&";
      }
      url += "scope=" + UrlEncode(StrCat("repository:", ref.path, ":pull"));
      HttpRequest token_request{.url = url,
                                .insecure = endpoint.insecure,
                                .max_body = 1 << 20,
                                .progress_timeout_seconds = config_.progress_timeout_seconds};
      if (!creds.username.empty()) {
        token_request.basic_auth = StrCat(creds.username, ":", creds.password);
      }
      std::string body;
      token_request.on_body = [&](std::string_view chunk) {
        body.append(chunk);
        return absl::OkStatus();
      };
      ASSIGN_OR_RETURN(HttpResponse token_response, Perform(token_request));
      if (token_response.status != 200) {
        return absl::UnauthenticatedError(StrCat("token from ", realm->second, " for ",
                                                 ref.Repository(), ": HTTP ", token_response.status,
                                                 " ", Snippet(token_response.body)));
      }
      nlohmann::json json = nlohmann::json::parse(body, nullptr, false);
      std::string token;
      if (json.is_object()) {
        if (json.contains("token") && json["token"].is_string()) token = json["token"];
        if (token.empty() && json.contains("access_token") && json["access_token"].is_string()) {
          token = json["access_token"];
        }
      }
      if (token.empty()) {
        return absl::UnauthenticatedError(
            StrCat("token endpoint ", realm->second, " returned no token"));
      }
      header = "Authorization: Bearer " + token;
      break;
    }
    if (challenge.scheme == "basic") {
      if (creds.username.empty() && creds.password.empty()) {
        return absl::UnauthenticatedError(StrCat(endpoint.base_url, " requires credentials for ",
                                                 ref.Repository(),
                                                 " (basic auth) and none were given"));
      }
      // A header rather than CURLOPT_USERPWD keeps both schemes in one cache.
      header = "Authorization: Basic " + Base64Encode(StrCat(creds.username, ":", creds.password));
      break;
    }
  }
  if (header.empty()) {
    return absl::UnauthenticatedError(StrCat(endpoint.base_url, " answered 401 for ",
                                             ref.Repository(),
                                             " without a usable WWW-Authenticate challenge"));
  }
  absl::MutexLock lock(&mu_);
  auth_headers_[{endpoint.base_url, ref.path}] = header;
  return absl::OkStatus();
}

absl::StatusOr<HttpResponse> RegistryClient::Send(const Endpoint& endpoint,
                                                  const image::Reference& ref, HttpRequest request,
                                                  const Credentials& credentials) {
  request.url = endpoint.base_url + request.url;
  request.insecure = endpoint.insecure;
  request.progress_timeout_seconds = config_.progress_timeout_seconds;
  const size_t base_headers = request.headers.size();
  bool authorized_once = false;
  absl::StatusOr<HttpResponse> response;
  for (int attempt = 1;; ++attempt) {
    request.headers.resize(base_headers);
    {
      absl::MutexLock lock(&mu_);
      auto it = auth_headers_.find({endpoint.base_url, ref.path});
      if (it != auth_headers_.end()) request.headers.push_back(it->second);
    }
    response = Perform(request);
    if (response.ok() && response->status == 401 && !authorized_once) {
      authorized_once = true;
      RETURN_IF_ERROR(Authorize(endpoint, ref, *response, credentials));
      --attempt;  // answering a challenge is not a failed try
      continue;
    }
    bool delivered = response.ok() && response->body_bytes > 0;
    if (delivered || !Retryable(response) || attempt >= config_.max_attempts) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200 << (attempt - 1)));
  }
  if (!response.ok()) return response.status();
  if (response->status < 200 || response->status >= 300) return HttpError(request, *response);
  return response;
}

absl::StatusOr<FetchedManifest> RegistryClient::FetchManifestFrom(const Endpoint& endpoint,
                                                                  const image::Reference& ref,
                                                                  std::string_view reference,
                                                                  const Credentials& creds) {
  FetchedManifest out{.endpoint = endpoint};
  HttpRequest request{.url = StrCat("/v2/", ref.path, "/manifests/", reference),
                      .headers = {AcceptManifests()},
                      .max_body = kMaxManifestBytes};
  request.on_body = [&](std::string_view chunk) {
    out.body.append(chunk);
    return absl::OkStatus();
  };
  absl::StatusOr<HttpResponse> response = Send(endpoint, ref, std::move(request), creds);
  if (!response.ok()) {
    if (response.status().code() == absl::StatusCode::kOutOfRange) {
      return absl::InvalidArgumentError(
          StrCat("manifest ", ref.Repository(), ":", reference, " is larger than 4 MiB"));
    }
    return response.status();
  }
  out.digest = image::Sha256Digest(out.body);
  if (reference.rfind("sha256:", 0) == 0 && out.digest != reference) {
    return absl::DataLossError(StrCat("manifest ", ref.Repository(), "@", reference, " from ",
                                      endpoint.base_url, " has digest ", out.digest));
  }
  out.media_type = image::DetectMediaType(out.body, response->Header("content-type"));
  return out;
}

absl::StatusOr<FetchedManifest> RegistryClient::FetchManifest(const image::Reference& ref,
                                                              std::string_view tag_or_digest,
                                                              const Credentials& credentials) {
  ASSIGN_OR_RETURN(std::vector<Endpoint> endpoints, ResolveEndpoints(config_, ref.domain));
  absl::Status last;
  for (const Endpoint& endpoint : endpoints) {
    absl::StatusOr<FetchedManifest> manifest =
        FetchManifestFrom(endpoint, ref, tag_or_digest, credentials);
    if (manifest.ok()) return manifest;
    last = manifest.status();
    // Auth failures and corrupt answers are final; a miss or an outage lets
    // the next mirror try.
    if (last.code() != absl::StatusCode::kNotFound &&
        last.code() != absl::StatusCode::kUnavailable &&
        last.code() != absl::StatusCode::kDeadlineExceeded) {
      break;
    }
  }
  return absl::Status(last.code(), StrCat("pull ", ref.String(), ": ", last.message()));
}

absl::Status RegistryClient::FetchBlob(
    const Endpoint& endpoint, const image::Reference& ref, const image::Descriptor& blob,
    const Credentials& credentials, const std::function<absl::Status(std::string_view)>& on_chunk) {
  image::Sha256Hasher hasher;
  int64_t received = 0;
  HttpRequest request{.url = StrCat("/v2/", ref.path, "/blobs/", blob.digest),
                      .max_body = blob.size};
  request.on_body = [&](std::string_view chunk) {
    hasher.Update(chunk);
    received += static_cast<int64_t>(chunk.size());
    return on_chunk(chunk);
  };
  absl::StatusOr<HttpResponse> response = Send(endpoint, ref, std::move(request), credentials);
  if (!response.ok()) {
    if (response.status().code() == absl::StatusCode::kOutOfRange) {
      return absl::DataLossError(StrCat("blob ", blob.digest, " from ", endpoint.base_url,
                                        " is larger than its descriptor's ", blob.size, " bytes"));
    }
    return response.status();
  }
  if (received != blob.size) {
    return absl::DataLossError(StrCat("blob ", blob.digest, " from ", endpoint.base_url, ": got ",
                                      received, " of ", blob.size, " bytes"));
  }
  std::string digest = hasher.Digest();
  if (digest != blob.digest) {
    return absl::DataLossError(
        StrCat("blob ", blob.digest, " from ", endpoint.base_url, " has digest ", digest));
  }
  return absl::OkStatus();
}

}  // namespace berth::registry
