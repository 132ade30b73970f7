// The rtnetlink operations the plugins need (links, veths, bridges, IPv4 addresses and
// routes), over libmnl. No `ip` subprocesses.
//
//   ASSIGN_OR_RETURN(NetlinkPtr host, Netlink::Open());             // this process's netns
//   ASSIGN_OR_RETURN(NetlinkPtr pod, Netlink::OpenInNetns(netns));   // the pod's netns
//   ASSIGN_OR_RETURN(std::optional<Link> lo, pod->GetLink("lo"));
//   RETURN_IF_ERROR(pod->SetUp(lo->index));
//
// A netlink socket keeps the network namespace it was created in: OpenInNetns creates it on
// a short-lived thread that setns()es into the namespace, so the calling thread (and the
// process) never leave their own namespace. Errors name the operation and the interface.
// Not thread-safe: one Netlink per thread.
#ifndef BERTH_CNI_PLUGINS_NETLINK_H_
#define BERTH_CNI_PLUGINS_NETLINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cni/plugins/ip.h"
#include "runtime/base/unique_fd.h"

struct mnl_socket;
struct nlmsghdr;

namespace berth::cni::plugins {

struct Link {
  int index = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: "bridge", "veth", ... ("" for lo and plain devices)
  std::string mac;   // "aa:bb:cc:dd:ee:ff"
  int mtu = 0;
  bool up = false;  // IFF_UP
  int master = 0;   // index of the bridge this is a port of, 0 for none
};

struct Route4 {
  Prefix4 dst;      // 0.0.0.0/0 for the default route
  uint32_t gw = 0;  // 0: on-link
  int oif = 0;
};

// Opens a network namespace file (/run/netns/x, /proc/<pid>/ns/net) for setns or
// IFLA_NET_NS_FD. NotFound when the path is gone; FailedPrecondition when it is not a network
// namespace (a plain file left after its nsfs mount went away).
absl::StatusOr<UniqueFd> OpenNetns(const std::string& path);

class Netlink;
using NetlinkPtr = std::unique_ptr<Netlink>;

class Netlink {
 public:
  static absl::StatusOr<NetlinkPtr> Open();
  // A socket inside the namespace at `path` (errors as OpenNetns).
  static absl::StatusOr<NetlinkPtr> OpenInNetns(const std::string& path);
  ~Netlink();
  Netlink(const Netlink&) = delete;
  Netlink& operator=(const Netlink&) = delete;

  // nullopt when there is no such link.
  absl::StatusOr<std::optional<Link>> GetLink(const std::string& name);
  absl::StatusOr<Link> GetLink(int index);
  absl::StatusOr<std::vector<Link>> ListLinks();

  // AlreadyExists when the name is taken.
  absl::Status CreateBridge(const std::string& name, int mtu);
  // A veth pair: `name` here, `peer_name` in the namespace `peer_netns_fd` (-1: here too).
  absl::Status CreateVeth(const std::string& name, const std::string& peer_name, int peer_netns_fd,
                          int mtu);
  // NotFound when there is no such link.
  absl::Status DeleteLink(int index);
  absl::Status SetUp(int index);
  absl::Status SetMaster(int index, int master_index);
  // The bridge port's hairpin mode (IFLA_BRPORT_MODE): frames may go back out the port they
  // came in on, so a pod reaches itself through a NATed host port.
  absl::Status SetHairpin(int index, bool on);

  absl::StatusOr<std::vector<Prefix4>> ListAddrs4(int index);
  // Adding an address or a route that is already there is OK.
  absl::Status AddAddr4(int index, const Prefix4& address);
  absl::Status AddRoute4(const Route4& route);
  absl::StatusOr<std::vector<Route4>> ListRoutes4();

 private:
  explicit Netlink(mnl_socket* nl);
  // Sends a request (sequence number and NLM_F_ACK/NLM_F_DUMP as given) and reads until the
  // ack or the end of the dump, calling on_message for each data message.
  absl::Status Exchange(nlmsghdr* nlh, const std::string& what,
                        const std::function<void(const nlmsghdr*)>& on_message = nullptr);
  absl::Status SetLink(int index, unsigned flags, unsigned change, int master,
                       const std::string& what);

  mnl_socket* nl_;
  int last_errno_ = 0;  // of the last failed Exchange
  uint32_t seq_;
  uint32_t portid_;
};

}  // namespace berth::cni::plugins

#endif  // BERTH_CNI_PLUGINS_NETLINK_H_
