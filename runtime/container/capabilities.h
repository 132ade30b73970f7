// Linux capability sets for a container's process, as containerd computes
// them from the CRI's add/drop lists.
//
//   ASSIGN_OR_RETURN(std::vector<std::string> caps,
//                    ApplyCapabilityChanges(DefaultCapabilities(), {.add = {"NET_ADMIN"}}));
//   // caps: the default set plus "CAP_NET_ADMIN"
//
// Names are kernel names with the "CAP_" prefix, in the OCI spec's spelling.
#ifndef BERTH_RUNTIME_CONTAINER_CAPABILITIES_H_
#define BERTH_RUNTIME_CONTAINER_CAPABILITIES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/container/container_spec.h"

namespace berth::container {

// Every capability Linux defines (CAP_CHOWN through CAP_CHECKPOINT_RESTORE),
// in kernel order, bit i being AllCapabilities()[i].
const std::vector<std::string>& AllCapabilities();

// The capabilities in a CapEff-style mask, in kernel order; bits Linux does
// not define (yet) are left out.
std::vector<std::string> CapabilitiesFromMask(uint64_t mask);

// What this process holds (CapEff in /proc/self/status). A privileged
// container or "add ALL" gets exactly these, as with containerd: runc cannot
// grant more, and on this host CAP_SYS_RESOURCE is missing (BRIEF §4).
absl::StatusOr<std::vector<std::string>> CurrentCapabilities();

// containerd's (and Docker's) default set for an unprivileged container:
// CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID,
// SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE.
const std::vector<std::string>& DefaultCapabilities();

// "net_admin" or "CAP_NET_ADMIN" -> "CAP_NET_ADMIN". InvalidArgument naming
// it when Linux has no such capability.
absl::StatusOr<std::string> NormalizeCapability(std::string_view name);

// containerd's rule, in this order: "ALL" in add starts from `available`
// (CurrentCapabilities()); "ALL" in drop starts from none; then each named add is
// appended (if missing); then each named drop is removed. So add ALL + drop
// CHOWN is everything but CHOWN, and a name both added and dropped is
// dropped. Adding an unknown name is InvalidArgument; adding one outside
// `available` is FailedPrecondition (runc would fail to apply it); dropping
// an unknown one is a no-op (it cannot be in the set).
absl::StatusOr<std::vector<std::string>> ApplyCapabilityChanges(
    std::vector<std::string> base, const Capabilities& changes,
    const std::vector<std::string>& available);

}  // namespace berth::container

#endif  // BERTH_RUNTIME_CONTAINER_CAPABILITIES_H_
