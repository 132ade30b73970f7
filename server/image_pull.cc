// PullImage: credentials from the CRI AuthConfig, then the core pulls.
#include "runtime/base/base64.h"
#include "runtime/base/strings.h"
#include "server/grpc_status.h"
#include "server/image_service.h"

namespace berth::server {
namespace {

namespace v1 = ::runtime::v1;

absl::StatusOr<registry::Credentials> FromAuthConfig(const v1::AuthConfig& auth) {
  registry::Credentials creds{.username = auth.username(),
                              .password = auth.password(),
                              .identity_token = auth.identity_token(),
                              .registry_token = auth.registry_token()};
  if (creds.username.empty() && !auth.auth().empty()) {
    // The docker config.json form: base64("user:password").
    std::optional<std::string> decoded = Base64Decode(auth.auth());
    size_t colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError("auth.auth is not base64 of \"username:password\"");
    }
    creds.username = decoded->substr(0, colon);
    creds.password = decoded->substr(colon + 1);
  }
  return creds;
}

}  // namespace

grpc::Status ImageServiceImpl::PullImage(grpc::ServerContext*, const v1::PullImageRequest* request,
                                         v1::PullImageResponse* response) {
  const std::string& ref = request->image().image();
  if (ref.empty()) return grpc::Status(grpc::INVALID_ARGUMENT, "image reference is empty");
  absl::StatusOr<registry::Credentials> creds = FromAuthConfig(request->auth());
  if (!creds.ok()) return ToGrpcStatus(creds.status());
  absl::StatusOr<std::string> id = runtime_.images().Pull(ref, *creds);
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_image_ref(*id);
  return grpc::Status::OK;
}

}  // namespace berth::server
