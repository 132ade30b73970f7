// berth-portmap: hostPort -> pod DNAT for TCP, UDP and SCTP with iptables, chained after a
// plugin that gave the pod an address (its prevResult).
//
//   {"type": "berth-portmap", "capabilities": {"portMappings": true}, "snat": true}
//   runtimeConfig: {"portMappings": [{"hostPort": 8080, "containerPort": 80,
//                                     "protocol": "tcp", "hostIP": ""}]}
//
// nat chains (the reference plugin's layout, with berth's names):
//   PREROUTING, OUTPUT  -m addrtype --dst-type LOCAL -j BERTH-HOSTPORT-DNAT
//   BERTH-HOSTPORT-DNAT -m comment --comment berth:<network>:<id> -j BERTH-DN-<hash>
//   BERTH-DN-<hash>     per mapping: mark (for SNAT) what comes from the pods' subnet
//                       (hairpin: a pod to its own or a neighbour's host port) and from
//                       127.0.0.0/8, then DNAT to <pod ip>:<containerPort>
//   BERTH-HOSTPORT-SETMARK  -j MARK --set-xmark <bit>/<bit>
//   POSTROUTING -j BERTH-HOSTPORT-MASQ;  BERTH-HOSTPORT-MASQ -m mark --mark <bit> -j MASQUERADE
// and net.ipv4.conf.<host interface>.route_localnet=1 so 127.0.0.1:<hostPort> reaches the
// pod. DEL removes the per-attachment chain and its jump; the shared chains stay.
#ifndef BERTH_CNI_PLUGINS_PORTMAP_H_
#define BERTH_CNI_PLUGINS_PORTMAP_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cni/plugins/ip.h"
#include "cni/plugins/skel.h"
#include "nlohmann/json.hpp"

namespace berth::cni::plugins {

inline constexpr char kHostportDnat[] = "BERTH-HOSTPORT-DNAT";
inline constexpr char kHostportSetmark[] = "BERTH-HOSTPORT-SETMARK";
inline constexpr char kHostportMasq[] = "BERTH-HOSTPORT-MASQ";

struct HostPort {
  int host_port = 0;
  int container_port = 0;
  std::string protocol = "tcp";  // lower-case
  std::string host_ip;           // "" = every local address
};

struct PortmapConfig {
  std::string network;
  bool snat = true;                          // "snat"
  int mark_bit = 13;                         // "markMasqBit"
  std::vector<HostPort> mappings;            // runtimeConfig.portMappings (IPv6 hostIPs skipped)
  std::optional<Prefix4> pod_ip;             // first IPv4 of prevResult
  std::vector<std::string> host_interfaces;  // prevResult interfaces outside any sandbox
};

// CNI error kInvalidNetworkConfig naming the bad field.
absl::StatusOr<PortmapConfig> ParsePortmapConfig(const nlohmann::json& config);

// "BERTH-DN-" + hash of network and container id.
std::string DnatChain(const std::string& network, const std::string& container_id);

// The rules of the attachment's DNAT chain (without "-A <chain>"), in order.
std::vector<std::vector<std::string>> DnatChainRules(const PortmapConfig& config,
                                                     const std::string& comment);

absl::StatusOr<nlohmann::json> PortmapAdd(const CmdArgs& args);
absl::Status PortmapDel(const CmdArgs& args);
absl::Status PortmapCheck(const CmdArgs& args);
absl::Status PortmapGc(const CmdArgs& args);

}  // namespace berth::cni::plugins

#endif  // BERTH_CNI_PLUGINS_PORTMAP_H_
