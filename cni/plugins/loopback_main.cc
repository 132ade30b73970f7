// berth-loopback: brings up lo in the pod's network namespace. Alone it is the "none"
// network: the pod has lo and nothing else, no route out. DEL does nothing (lo goes with
// the namespace); CHECK says whether lo is up.
#include "cni/plugins/netlink.h"
#include "cni/plugins/skel.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cni::plugins {
namespace {

absl::StatusOr<Link> Loopback(Netlink& nl) {
  ASSIGN_OR_RETURN(std::optional<Link> lo, nl.GetLink("lo"));
  if (!lo) return absl::NotFoundError("the namespace has no lo");
  return *lo;
}

absl::StatusOr<nlohmann::json> Add(const CmdArgs& args) {
  ASSIGN_OR_RETURN(NetlinkPtr nl, Netlink::OpenInNetns(args.netns));
  ASSIGN_OR_RETURN(Link lo, Loopback(*nl));
  RETURN_IF_ERROR(nl->SetUp(lo.index));
  // Chained after another plugin, pass its result on; alone, describe lo.
  if (!PrevResult(args).is_null()) return PrevResult(args);
  return nlohmann::json{
      {"interfaces", {{{"name", "lo"}, {"mac", "00:00:00:00:00:00"}, {"sandbox", args.netns}}}},
      {"ips", {{{"address", "127.0.0.1/8"}, {"interface", 0}}}}};
}

absl::Status Check(const CmdArgs& args) {
  ASSIGN_OR_RETURN(NetlinkPtr nl, Netlink::OpenInNetns(args.netns));
  ASSIGN_OR_RETURN(Link lo, Loopback(*nl));
  if (!lo.up) return absl::FailedPreconditionError(StrCat("lo is down in ", args.netns));
  return absl::OkStatus();
}

}  // namespace
}  // namespace berth::cni::plugins

int main() {
  using namespace berth::cni::plugins;
  return PluginMain({.name = "berth-loopback",
                     .add = Add,
                     .del = [](const CmdArgs&) { return absl::OkStatus(); },
                     .check = Check});
}
