// berth-host-local: IPv4 addresses for pods from ranges of a subnet, kept as one file per
// address under a data directory, the layout of the reference host-local plugin (so a node
// can switch between the two without losing track of addresses).
//
//   ASSIGN_OR_RETURN(IpamConfig config, ParseIpamConfig(args.config));   // the network config
//   IpamStore store(config);
//   ASSIGN_OR_RETURN(std::vector<Allocation> got, store.Allocate(container_id, ifname));
//   nlohmann::json result = IpamResultJson(config, got);   // {"ips": [...], "routes": [...]}
//   ...
//   RETURN_IF_ERROR(store.Release(container_id, ifname));
//
// On disk, <dataDir>/<network name>/:
//   10.88.0.5              "<container id>\r\n<ifname>": the address is taken
//   last_reserved_ip.0     the address range set 0 handed out last (allocation goes round
//                          robin from there, so a released address is not reused at once)
//   lock                   flock()ed around every change: several plugin processes
//                          allocate concurrently without handing out one address twice
//
// Allocate is idempotent (the same container id + ifname gets its address back) and Release
// is too (nothing held is OK). Exhaustion is CNI error kAddressesExhausted.
#ifndef BERTH_CNI_PLUGINS_IPAM_H_
#define BERTH_CNI_PLUGINS_IPAM_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cni/plugins/ip.h"
#include "nlohmann/json.hpp"

namespace berth::cni::plugins {

struct IpamRange {
  Prefix4 subnet;        // the network: "10.88.0.0/16"
  uint32_t start = 0;    // "rangeStart", default: the subnet's first host address
  uint32_t end = 0;      // "rangeEnd", default: the last one before broadcast
  uint32_t gateway = 0;  // "gateway", default: the subnet's .1; never allocated
};

struct IpamRoute {
  Prefix4 dst;
  uint32_t gw = 0;  // 0: the interface's gateway
};

struct IpamConfig {
  std::string network;  // the network "name"
  std::string dir;      // <ipam.dataDir, default /var/lib/cni/networks>/<name>
  // "ranges": one address per range set; or ipam-level "subnet"/"rangeStart"/"rangeEnd"/
  // "gateway" as a single set with a single range.
  std::vector<std::vector<IpamRange>> range_sets;
  std::vector<IpamRoute> routes;  // "routes": [{"dst", "gw"?}]
  nlohmann::json dns;             // ipam "dns" passed through, null when absent
};

inline constexpr char kDefaultIpamDataDir[] = "/var/lib/cni/networks";

// The network configuration's "ipam" section. CNI error kInvalidNetworkConfig (or
// kUnsupportedField for IPv6) naming the bad field.
absl::StatusOr<IpamConfig> ParseIpamConfig(const nlohmann::json& net_config);

struct Allocation {
  Prefix4 address;       // with the subnet's prefix length: "10.88.0.5/16"
  uint32_t gateway = 0;  // the range's gateway
};

class IpamStore {
 public:
  explicit IpamStore(IpamConfig config) : config_(std::move(config)) {}

  // One address from each range set, or the ones this container id + ifname already has.
  absl::StatusOr<std::vector<Allocation>> Allocate(const std::string& container_id,
                                                   const std::string& ifname);
  // Frees every address held by container id + ifname.
  absl::Status Release(const std::string& container_id, const std::string& ifname);
  // What container id + ifname holds, in range set order (empty when nothing).
  absl::StatusOr<std::vector<Allocation>> Held(const std::string& container_id,
                                               const std::string& ifname);
  // Frees every address whose holder is not in `valid` (container id, ifname).
  absl::Status GarbageCollect(const std::vector<std::pair<std::string, std::string>>& valid);

 private:
  struct Entry {
    uint32_t ip;
    std::string container_id, ifname;
  };
  absl::StatusOr<std::vector<Entry>> ListLocked();
  std::string IpPath(uint32_t ip) const;

  IpamConfig config_;
};

// {"ips": [{"address", "gateway"}], "routes": [{"dst", "gw"?}], "dns"?} (no cniVersion).
nlohmann::json IpamResultJson(const IpamConfig& config, const std::vector<Allocation>& got);

}  // namespace berth::cni::plugins

#endif  // BERTH_CNI_PLUGINS_IPAM_H_
