#include "cni/plugins/ip.h"

#include <arpa/inet.h>

#include "runtime/base/strings.h"

namespace berth::cni::plugins {

std::optional<uint32_t> ParseIp4(std::string_view text) {
  if (text.empty() || text.size() > 15) return std::nullopt;
  std::string s(text);
  in_addr a{};
  // inet_pton takes exactly the dotted quad: no "10.1", no leading/trailing junk.
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string FormatIp4(uint32_t ip) {
  return StrCat(ip >> 24, ".", (ip >> 16) & 0xff, ".", (ip >> 8) & 0xff, ".", ip & 0xff);
}

std::string Prefix4::ToString() const { return StrCat(FormatIp4(address), "/", length); }
std::string Prefix4::NetworkString() const { return StrCat(FormatIp4(Network()), "/", length); }

absl::StatusOr<Prefix4> ParsePrefix4(std::string_view text) {
  if (LooksLikeIp6(text)) {
    return absl::UnimplementedError(StrCat("IPv6 is not supported: \"", text, "\""));
  }
  size_t slash = text.find('/');
  if (slash == text.npos) {
    return absl::InvalidArgumentError(StrCat("\"", text, "\" is not a CIDR (a.b.c.d/n)"));
  }
  std::optional<uint32_t> ip = ParseIp4(text.substr(0, slash));
  std::string_view len = text.substr(slash + 1);
  int n = 0;
  bool ok = ip.has_value() && !len.empty() && len.size() <= 2;
  for (char c : len) {
    if (c < '0' || c > '9') ok = false;
    n = n * 10 + (c - '0');
  }
  if (!ok || n > 32) {
    return absl::InvalidArgumentError(StrCat("\"", text, "\" is not a CIDR (a.b.c.d/n)"));
  }
  return Prefix4{.address = *ip, .length = n};
}

}  // namespace berth::cni::plugins
