// `berthctl run`'s Docker-style network flags, turned into the pod's PodSandboxConfig.
//
//   -p 8080:80            hostPort 8080 -> containerPort 80, TCP, every host address
//   -p 127.0.0.1:8053:53/udp
//   --network none | host | NAME | NAME1,NAME2
#ifndef BERTH_CLI_RUN_FLAGS_H_
#define BERTH_CLI_RUN_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "api/runtime/v1/api.pb.h"

namespace berth::cli {

// Adds a port mapping for each -p value. InvalidArgument names the bad value.
absl::Status ApplyPublish(const std::vector<std::string>& publish,
                          runtime::v1::PodSandboxConfig& pod);

// "" leaves the pod on the default network; "host" gives it the node's network
// (NamespaceMode NODE); "none" loopback only; a name (or comma-separated names) the
// berth.io/network(s) annotation.
absl::Status ApplyNetwork(const std::string& network, runtime::v1::PodSandboxConfig& pod);

}  // namespace berth::cli

#endif  // BERTH_CLI_RUN_FLAGS_H_
