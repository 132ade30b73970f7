// IPv4 addresses and prefixes as the plugins use them: parsed from and printed to the dotted
// forms CNI configurations and results carry. Values are in host byte order.
//
//   ASSIGN_OR_RETURN(Prefix4 p, ParsePrefix4("10.88.0.5/16"));
//   p.address;          // 10.88.0.5
//   p.Network();        // 10.88.0.0
//   p.ToString();       // "10.88.0.5/16"
//   FormatIp4(p.Broadcast());  // "10.88.255.255"
#ifndef BERTH_CNI_PLUGINS_IP_H_
#define BERTH_CNI_PLUGINS_IP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace berth::cni::plugins {

// "10.88.0.5" -> 0x0a580005; nullopt for anything else (IPv6 included).
std::optional<uint32_t> ParseIp4(std::string_view text);
std::string FormatIp4(uint32_t ip);

struct Prefix4 {
  uint32_t address = 0;  // may have host bits set ("10.88.0.5/16" keeps the .5)
  int length = 0;        // 0..32

  uint32_t Mask() const { return length == 0 ? 0 : ~uint32_t{0} << (32 - length); }
  uint32_t Network() const { return address & Mask(); }
  uint32_t Broadcast() const { return Network() | ~Mask(); }
  bool Contains(uint32_t ip) const { return (ip & Mask()) == Network(); }
  std::string ToString() const;       // "10.88.0.5/16"
  std::string NetworkString() const;  // "10.88.0.0/16"
  bool operator==(const Prefix4&) const = default;
};

// "10.88.0.5/16". InvalidArgument naming the text otherwise; IPv6 is Unimplemented.
absl::StatusOr<Prefix4> ParsePrefix4(std::string_view text);

// Whether the text looks like an IPv6 address or prefix (it has a ':').
inline bool LooksLikeIp6(std::string_view text) { return text.find(':') != text.npos; }

}  // namespace berth::cni::plugins

#endif  // BERTH_CNI_PLUGINS_IP_H_
