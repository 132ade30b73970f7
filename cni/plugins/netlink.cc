#include "cni/plugins/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>

#include <array>
#include <cstring>
#include <functional>
#include <thread>

#include "runtime/base/errno_status.h"
#include "runtime/base/strings.h"

namespace berth::cni::plugins {
namespace {

using AttrTable = std::array<const nlattr*, 256>;

int CollectAttr(const nlattr* attr, void* data) {
  auto* table = static_cast<AttrTable*>(data);
  unsigned type = mnl_attr_get_type(attr);
  if (type < table->size()) (*table)[type] = attr;
  return MNL_CB_OK;
}

int Dispatch(const nlmsghdr* nlh, void* data) {
  auto* fn = static_cast<const std::function<void(const nlmsghdr*)>*>(data);
  if (*fn) (*fn)(nlh);
  return MNL_CB_OK;
}

std::string FormatMac(const nlattr* attr) {
  const auto* b = static_cast<const uint8_t*>(mnl_attr_get_payload(attr));
  std::string out;
  for (uint16_t i = 0; i < mnl_attr_get_payload_len(attr); ++i) {
    static const char kHex[] = "0123456789abcdef";
    if (i) out += ':';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 15];
  }
  return out;
}

Link ParseLink(const nlmsghdr* nlh) {
  const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  AttrTable tb{};
  mnl_attr_parse(nlh, sizeof(*ifm), CollectAttr, &tb);
  Link link;
  link.index = ifm->ifi_index;
  link.up = (ifm->ifi_flags & IFF_UP) != 0;
  if (tb[IFLA_IFNAME]) link.name = mnl_attr_get_str(tb[IFLA_IFNAME]);
  if (tb[IFLA_MTU]) link.mtu = static_cast<int>(mnl_attr_get_u32(tb[IFLA_MTU]));
  if (tb[IFLA_MASTER]) link.master = static_cast<int>(mnl_attr_get_u32(tb[IFLA_MASTER]));
  if (tb[IFLA_ADDRESS]) link.mac = FormatMac(tb[IFLA_ADDRESS]);
  if (tb[IFLA_LINKINFO]) {
    AttrTable info{};
    mnl_attr_parse_nested(tb[IFLA_LINKINFO], CollectAttr, &info);
    if (info[IFLA_INFO_KIND]) link.kind = mnl_attr_get_str(info[IFLA_INFO_KIND]);
  }
  return link;
}

ifinfomsg* PutLinkHeader(nlmsghdr* nlh, uint16_t type, uint16_t flags, int index) {
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = index;
  return ifm;
}

}  // namespace

absl::StatusOr<UniqueFd> OpenNetns(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("open netns ", path));
  return fd;
}

Netlink::Netlink(mnl_socket* nl)
    : nl_(nl), seq_(static_cast<uint32_t>(time(nullptr))), portid_(mnl_socket_get_portid(nl)) {}

Netlink::~Netlink() { mnl_socket_close(nl_); }

absl::StatusOr<NetlinkPtr> Netlink::Open() {
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (nl == nullptr) return ErrnoStatus(errno, "open a netlink socket");
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(nl);
    return ErrnoStatus(err, "bind a netlink socket");
  }
  return NetlinkPtr(new Netlink(nl));
}

absl::StatusOr<NetlinkPtr> Netlink::OpenInNetns(const std::string& path) {
  absl::StatusOr<UniqueFd> ns = OpenNetns(path);
  if (!ns.ok()) return ns.status();
  absl::StatusOr<NetlinkPtr> result = absl::InternalError("unreachable");
  // setns() changes only the calling thread's namespace; this thread dies right after, so
  // nothing else of the process ever runs in the pod's namespace.
  std::thread t([&] {
    if (setns(ns->get(), CLONE_NEWNET) != 0) {
      int err = errno;
      result = err == EINVAL
                   ? absl::FailedPreconditionError(StrCat(path, " is not a network namespace"))
                   : ErrnoStatus(err, StrCat("setns ", path));
      return;
    }
    result = Open();
  });
  t.join();
  return result;
}

absl::Status Netlink::Exchange(nlmsghdr* nlh, const std::string& what,
                               const std::function<void(const nlmsghdr*)>& on_message) {
  nlh->nlmsg_seq = ++seq_;
  const bool dump = (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  if (!dump) nlh->nlmsg_flags |= NLM_F_ACK;
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) {
    return ErrnoStatus(errno, StrCat(what, ": netlink send"));
  }
  std::vector<char> buf(32768);  // MNL_SOCKET_DUMP_SIZE of newer libmnl
  while (true) {
    ssize_t n = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
    if (n < 0) return ErrnoStatus(errno, StrCat(what, ": netlink receive"));
    int r = mnl_cb_run(buf.data(), n, nlh->nlmsg_seq, portid_, Dispatch,
                       const_cast<std::function<void(const nlmsghdr*)>*>(&on_message));
    if (r == MNL_CB_ERROR) {
      last_errno_ = errno;
      if (last_errno_ == ENODEV) return absl::NotFoundError(StrCat(what, ": no such device"));
      return ErrnoStatus(last_errno_, what);
    }
    if (r == MNL_CB_STOP) return absl::OkStatus();
  }
}

absl::StatusOr<std::optional<Link>> Netlink::GetLink(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(StrCat("bad interface name \"", name, "\""));
  }
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  PutLinkHeader(nlh, RTM_GETLINK, 0, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  std::optional<Link> link;
  absl::Status s =
      Exchange(nlh, StrCat("get link ", name), [&](const nlmsghdr* m) { link = ParseLink(m); });
  if (absl::IsNotFound(s)) return std::optional<Link>();
  if (!s.ok()) return s;
  return link;
}

absl::StatusOr<Link> Netlink::GetLink(int index) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  PutLinkHeader(nlh, RTM_GETLINK, 0, index);
  std::optional<Link> link;
  absl::Status s =
      Exchange(nlh, StrCat("get link #", index), [&](const nlmsghdr* m) { link = ParseLink(m); });
  if (!s.ok()) return s;
  if (!link.has_value()) return absl::NotFoundError(StrCat("link #", index));
  return *link;
}

absl::StatusOr<std::vector<Link>> Netlink::ListLinks() {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  PutLinkHeader(nlh, RTM_GETLINK, NLM_F_DUMP, 0);
  std::vector<Link> links;
  absl::Status s =
      Exchange(nlh, "list links", [&](const nlmsghdr* m) { links.push_back(ParseLink(m)); });
  if (!s.ok()) return s;
  return links;
}

absl::Status Netlink::CreateBridge(const std::string& name, int mtu) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  PutLinkHeader(nlh, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  if (mtu > 0) mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
  nlattr* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
  mnl_attr_nest_end(nlh, info);
  return Exchange(nlh, StrCat("create bridge ", name));
}

absl::Status Netlink::CreateVeth(const std::string& name, const std::string& peer_name,
                                 int peer_netns_fd, int mtu) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  PutLinkHeader(nlh, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  if (mtu > 0) mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
  nlattr* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  // The peer's attributes follow an ifinfomsg of their own, as in an RTM_NEWLINK.
  auto* peer_ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  peer_ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, peer_name.c_str());
  if (mtu > 0) mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
  if (peer_netns_fd >= 0) mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, peer_netns_fd);
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, info);
  return Exchange(nlh, StrCat("create veth ", name, " (peer ", peer_name, ")"));
}

absl::Status Netlink::DeleteLink(int index) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  PutLinkHeader(nlh, RTM_DELLINK, 0, index);
  return Exchange(nlh, StrCat("delete link #", index));
}

absl::Status Netlink::SetLink(int index, unsigned flags, unsigned change, int master,
                              const std::string& what) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  ifinfomsg* ifm = PutLinkHeader(nlh, RTM_NEWLINK, 0, index);
  ifm->ifi_flags = flags;
  ifm->ifi_change = change;
  if (master >= 0) mnl_attr_put_u32(nlh, IFLA_MASTER, master);
  return Exchange(nlh, what);
}

absl::Status Netlink::SetUp(int index) {
  return SetLink(index, IFF_UP, IFF_UP, -1, StrCat("set link #", index, " up"));
}

absl::Status Netlink::SetMaster(int index, int master_index) {
  return SetLink(index, 0, 0, master_index,
                 StrCat("attach link #", index, " to bridge #", master_index));
}

absl::Status Netlink::SetHairpin(int index, bool on) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  ifinfomsg* ifm = PutLinkHeader(nlh, RTM_SETLINK, 0, index);
  ifm->ifi_family = AF_BRIDGE;  // bridge port attributes, as `bridge link set ... hairpin on`
  nlattr* prot = mnl_attr_nest_start(nlh, IFLA_PROTINFO);
  prot->nla_type |= NLA_F_NESTED;
  mnl_attr_put_u8(nlh, IFLA_BRPORT_MODE, on ? 1 : 0);
  mnl_attr_nest_end(nlh, prot);
  return Exchange(nlh, StrCat("set hairpin mode on link #", index));
}

absl::StatusOr<std::vector<Prefix4>> Netlink::ListAddrs4(int index) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_GETADDR;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  std::vector<Prefix4> out;
  absl::Status s = Exchange(nlh, StrCat("list addresses of link #", index), [&](const nlmsghdr* m) {
    const auto* a = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m));
    if (static_cast<int>(a->ifa_index) != index) return;
    AttrTable tb{};
    mnl_attr_parse(m, sizeof(*a), CollectAttr, &tb);
    const nlattr* at = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (at == nullptr) return;
    out.push_back({.address = ntohl(mnl_attr_get_u32(at)), .length = a->ifa_prefixlen});
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status Netlink::AddAddr4(int index, const Prefix4& address) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWADDR;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = address.length;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = index;
  mnl_attr_put_u32(nlh, IFA_LOCAL, htonl(address.address));
  mnl_attr_put_u32(nlh, IFA_ADDRESS, htonl(address.address));
  if (address.length < 31) mnl_attr_put_u32(nlh, IFA_BROADCAST, htonl(address.Broadcast()));
  absl::Status s = Exchange(nlh, StrCat("add address ", address.ToString(), " to link #", index));
  if (absl::IsAlreadyExists(s)) return absl::OkStatus();
  return s;
}

absl::Status Netlink::AddRoute4(const Route4& route) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = route.dst.length;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = route.gw != 0 ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  if (route.dst.length > 0) mnl_attr_put_u32(nlh, RTA_DST, htonl(route.dst.Network()));
  if (route.gw != 0) mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(route.gw));
  if (route.oif > 0) mnl_attr_put_u32(nlh, RTA_OIF, route.oif);
  absl::Status s =
      Exchange(nlh, StrCat("add route ", route.dst.NetworkString(), " via ",
                           route.gw ? FormatIp4(route.gw) : "link", " dev #", route.oif));
  if (absl::IsAlreadyExists(s)) return absl::OkStatus();
  return s;
}

absl::StatusOr<std::vector<Route4>> Netlink::ListRoutes4() {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  std::vector<Route4> out;
  absl::Status s = Exchange(nlh, "list routes", [&](const nlmsghdr* m) {
    const auto* r = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(m));
    if (r->rtm_table != RT_TABLE_MAIN || r->rtm_type != RTN_UNICAST) return;
    AttrTable tb{};
    mnl_attr_parse(m, sizeof(*r), CollectAttr, &tb);
    Route4 route;
    route.dst.length = r->rtm_dst_len;
    if (tb[RTA_DST]) route.dst.address = ntohl(mnl_attr_get_u32(tb[RTA_DST]));
    if (tb[RTA_GATEWAY]) route.gw = ntohl(mnl_attr_get_u32(tb[RTA_GATEWAY]));
    if (tb[RTA_OIF]) route.oif = static_cast<int>(mnl_attr_get_u32(tb[RTA_OIF]));
    out.push_back(route);
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace berth::cni::plugins
