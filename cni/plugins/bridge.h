// berth-bridge: a pod on a Linux bridge through a veth pair, with addresses from IPAM, a
// default route via the bridge, masquerading out and isolation from other berth bridges.
//
//   {"type": "berth-bridge", "bridge": "berth0", "isGateway": true, "ipMasq": true,
//    "hairpinMode": true, "mtu": 1500,
//    "ipam": {"type": "berth-host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]],
//             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/var/lib/berth/cni/ipam"}}
//
// ipam.type "berth-host-local" runs in-process (ipam.h); any other type is executed from
// CNI_PATH as a delegated IPAM plugin, as the reference bridge plugin does. docs/cni.md
// ("berth's plugins") lists every key and the iptables chains.
#ifndef BERTH_CNI_PLUGINS_BRIDGE_H_
#define BERTH_CNI_PLUGINS_BRIDGE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cni/plugins/skel.h"
#include "nlohmann/json.hpp"

namespace berth::cni::plugins {

inline constexpr char kDefaultBridge[] = "berth0";
inline constexpr char kInProcessIpam[] = "berth-host-local";

struct BridgeConfig {
  std::string network;
  std::string bridge = kDefaultBridge;  // "bridge"
  bool ip_masq = false;                 // "ipMasq"
  bool is_gateway = false;              // "isGateway", default: ipMasq
  bool is_default_gateway = false;      // "isDefaultGateway": implies isGateway, adds 0/0
  bool hairpin = false;                 // "hairpinMode"
  bool isolate = true;                  // "isolateBridges": no forwarding to other bridges
  int mtu = 0;                          // "mtu", 0: the kernel's default
  nlohmann::json ipam;                  // "ipam" (with "type"), null for an L2-only network
  nlohmann::json dns;                   // "dns", passed through to the result
};

// CNI error kInvalidNetworkConfig naming the bad key.
absl::StatusOr<BridgeConfig> ParseBridgeConfig(const nlohmann::json& config);

// The nat chain masquerading one attachment: "BERTH-MASQ-" + hash of network and container.
std::string MasqChain(const std::string& network, const std::string& container_id);

absl::StatusOr<nlohmann::json> BridgeAdd(const CmdArgs& args);
absl::Status BridgeDel(const CmdArgs& args);
absl::Status BridgeCheck(const CmdArgs& args);
absl::Status BridgeStatus(const CmdArgs& args);
absl::Status BridgeGc(const CmdArgs& args);

}  // namespace berth::cni::plugins

#endif  // BERTH_CNI_PLUGINS_BRIDGE_H_
