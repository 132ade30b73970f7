// PodNetwork: what puts a pod's network namespace on a network, and takes it
// off again. berth's implementation calls CNI plugins (runtime/network); the
// sandbox code knows only this interface.
#ifndef BERTH_RUNTIME_SANDBOX_POD_NETWORK_H_
#define BERTH_RUNTIME_SANDBOX_POD_NETWORK_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/container/container_spec.h"

namespace berth::sandbox {

struct NetworkAttachRequest {
  std::string pod_id;
  std::string netns;  // the pinned network namespace
  std::string pod_name, pod_namespace, pod_uid;
  std::vector<container::PortMapping> port_mappings;
  container::DnsConfig dns;
  std::map<std::string, std::string> annotations;  // berth.io/network, berth.io/networks
  std::string cgroup_parent;
};

class PodNetwork {
 public:
  virtual ~PodNetwork() = default;

  // Attaches the pod; returns its IP addresses, the primary first (empty: the
  // pod keeps loopback only, as with berth.io/network: none).
  virtual absl::StatusOr<std::vector<std::string>> Attach(const NetworkAttachRequest& request) = 0;
  // Detaches whatever Attach made for the pod, also after a berthd restart and
  // when the namespace is already gone. OK when there is nothing to do.
  virtual absl::Status Detach(const std::string& pod_id, const std::string& netns) = 0;
  // Whether pods can be attached now (the NetworkReady condition).
  virtual absl::Status Ready() = 0;
};

}  // namespace berth::sandbox

#endif  // BERTH_RUNTIME_SANDBOX_POD_NETWORK_H_
