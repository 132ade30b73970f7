// berth-host-local: the IPAM plugin (see ipam.h). ADD hands out one address per range set,
// DEL frees the container's addresses, CHECK says whether it holds any, GC frees what no
// valid attachment holds.
#include <set>

#include "cni/plugins/ipam.h"
#include "cni/plugins/skel.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cni::plugins {
namespace {

absl::StatusOr<nlohmann::json> Add(const CmdArgs& args) {
  ASSIGN_OR_RETURN(IpamConfig config, ParseIpamConfig(args.config));
  IpamStore store(config);
  ASSIGN_OR_RETURN(std::vector<Allocation> got, store.Allocate(args.container_id, args.ifname));
  return IpamResultJson(config, got);
}

absl::Status Del(const CmdArgs& args) {
  ASSIGN_OR_RETURN(IpamConfig config, ParseIpamConfig(args.config));
  return IpamStore(config).Release(args.container_id, args.ifname);
}

absl::Status Check(const CmdArgs& args) {
  ASSIGN_OR_RETURN(IpamConfig config, ParseIpamConfig(args.config));
  ASSIGN_OR_RETURN(std::vector<Allocation> held,
                   IpamStore(config).Held(args.container_id, args.ifname));
  if (held.size() != config.range_sets.size()) {
    return absl::FailedPreconditionError(StrCat("container ", args.container_id, " ", args.ifname,
                                                " holds no address in ", config.dir));
  }
  return absl::OkStatus();
}

absl::Status Gc(const CmdArgs& args) {
  ASSIGN_OR_RETURN(IpamConfig config, ParseIpamConfig(args.config));
  return IpamStore(config).GarbageCollect(ValidAttachments(args));
}

}  // namespace
}  // namespace berth::cni::plugins

int main() {
  using namespace berth::cni::plugins;
  return PluginMain({.name = "berth-host-local",
                     .add = Add,
                     .del = Del,
                     .check = Check,
                     .status = [](const CmdArgs& args) -> absl::Status {
                       return ParseIpamConfig(args.config).status();
                     },
                     .gc = Gc});
}
