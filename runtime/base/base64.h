// Standard base64 (RFC 4648, with padding) over OpenSSL's EVP coder.
//
//   std::string header = "Basic " + Base64Encode("user:password");
//   std::optional<std::string> raw = Base64Decode(docker_auth);   // nullopt if malformed
#ifndef BERTH_RUNTIME_BASE_BASE64_H_
#define BERTH_RUNTIME_BASE_BASE64_H_

#include <optional>
#include <string>
#include <string_view>

namespace berth {

std::string Base64Encode(std::string_view data);
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace berth

#endif  // BERTH_RUNTIME_BASE_BASE64_H_
