// PullImage: credentials from the CRI AuthConfig, then the core pulls.
#include "runtime/base/strings.h"
#include "server/grpc_status.h"
#include "server/image_service.h"

namespace berth::server {
namespace {

namespace v1 = ::runtime::v1;

// Decodes standard base64; nullopt when malformed.
std::optional<std::string> Base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0;
  uint32_t acc = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

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
