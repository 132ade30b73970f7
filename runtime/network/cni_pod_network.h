// CniPodNetwork: berth's PodNetwork, through CNI plugins (cni/).
//
//   ASSIGN_OR_RETURN(auto network, CniPodNetwork::Create({
//       .conf_dir = "/etc/berth/cni/net.d", .bin_dirs = {"/usr/lib/cni"},
//       .state_dir = "/var/lib/berth/cni"}));
//   ASSIGN_OR_RETURN(std::vector<std::string> ips, network->Attach(request));
//
// A pod goes on the default network (the first configuration in the conf
// dir) as eth0, unless its annotations say otherwise:
//   berth.io/network: none   loopback only, no plugin runs;
//   berth.io/networks: a,b   the named networks, as eth0, eth1, ...
// A conf dir with no network at all gets berth's default "bridge" network
// (10.88.0.0/16 with NAT and port mappings) on Create, like Docker's bridge.
// Results are cached under state_dir, so Detach after a restart still knows
// what to undo.
#ifndef BERTH_RUNTIME_NETWORK_CNI_POD_NETWORK_H_
#define BERTH_RUNTIME_NETWORK_CNI_POD_NETWORK_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cni/cni.h"
#include "runtime/sandbox/pod_network.h"

namespace berth::network {

inline constexpr char kNetworkAnnotation[] = "berth.io/network";
inline constexpr char kNetworksAnnotation[] = "berth.io/networks";

struct CniPodNetworkOptions {
  std::string conf_dir;
  std::vector<std::string> bin_dirs;
  std::string state_dir;  // result cache and the default network's IP allocations
};

class CniPodNetwork : public sandbox::PodNetwork {
 public:
  static absl::StatusOr<std::unique_ptr<CniPodNetwork>> Create(CniPodNetworkOptions options);

  absl::StatusOr<std::vector<std::string>> Attach(
      const sandbox::NetworkAttachRequest& request) override;
  absl::Status Detach(const std::string& pod_id, const std::string& netns) override;
  absl::Status Ready() override;

  // Start-up: undoes every cached attachment of a pod not in `live_pod_ids` (an ADD a
  // crash cut short, a pod whose record is gone), then lets CNI 1.1 plugins collect
  // what they hold for anything else (spec GC). Errors are per network, joined.
  absl::Status GarbageCollect(const std::vector<std::string>& live_pod_ids);

  // The networks loaded from the conf dir, the default first.
  std::vector<std::string> NetworkNames();

  // What `berthctl network ls | inspect` shows: each network's configuration and what is
  // attached to it now (from the result cache).
  struct NetworkView {
    cni::NetworkConfig config;
    std::vector<cni::Attachment> attachments;
  };
  absl::StatusOr<std::vector<NetworkView>> Describe();
  const std::vector<std::string>& load_errors() const { return load_errors_; }
  const std::string& conf_dir() const { return options_.conf_dir; }

 private:
  explicit CniPodNetwork(CniPodNetworkOptions options) : options_(std::move(options)) {}
  absl::Status Load();
  cni::Network* Find(const std::string& name);

  const CniPodNetworkOptions options_;
  // Loaded once, at Create: a changed conf dir takes a berthd restart.
  std::vector<std::unique_ptr<cni::Network>> networks_;
  std::vector<std::string> load_errors_;
};

// The conflist berth writes into an empty conf dir: berth-bridge, berth-host-local,
// berth-portmap and berth-loopback (cni/plugins) when berth's plugins are in a bin dir,
// else Debian's bridge, host-local and portmap; allocations kept under ipam_dir.
std::string DefaultBridgeConflist(const std::string& ipam_dir, bool berth_plugins);

}  // namespace berth::network

#endif  // BERTH_RUNTIME_NETWORK_CNI_POD_NETWORK_H_
