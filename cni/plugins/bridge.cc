#include "cni/plugins/bridge.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <set>

#include "cni/internal/plugin_exec.h"
#include "cni/plugins/ip.h"
#include "cni/plugins/ipam.h"
#include "cni/plugins/iptables.h"
#include "cni/plugins/netlink.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cni::plugins {
namespace {

// filter chains keeping berth bridges apart, as Docker's DOCKER-ISOLATION-STAGE-1/2: a packet
// that comes in on one berth bridge and goes out another is dropped.
constexpr char kIsolation1[] = "BERTH-ISOLATION-1";
constexpr char kIsolation2[] = "BERTH-ISOLATION-2";

absl::Status ConfigError(std::string_view msg) { return CniError(kInvalidNetworkConfig, msg); }

absl::StatusOr<bool> BoolField(const nlohmann::json& c, const char* key, bool dflt) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) return ConfigError(StrCat("\"", key, "\" must be true or false"));
  return it->get<bool>();
}

// What IPAM handed out, from its result JSON (in-process or delegated alike).
struct IpamOut {
  std::vector<std::pair<Prefix4, uint32_t>> ips;  // address, gateway (0: none)
  nlohmann::json routes = nlohmann::json::array();
  nlohmann::json dns;
};

absl::StatusOr<IpamOut> ParseIpamResult(const nlohmann::json& r) {
  IpamOut out;
  if (!r.is_object()) return absl::InternalError("IPAM result is not an object");
  for (const nlohmann::json& ip : r.value("ips", nlohmann::json::array())) {
    std::string addr = ip.value("address", "");
    if (LooksLikeIp6(addr)) continue;  // berth-bridge configures IPv4 only
    absl::StatusOr<Prefix4> p = ParsePrefix4(addr);
    if (!p.ok()) return absl::InternalError(StrCat("IPAM result: ", p.status().message()));
    uint32_t gw = ParseIp4(ip.value("gateway", "")).value_or(0);
    out.ips.emplace_back(*p, gw);
  }
  for (const nlohmann::json& route : r.value("routes", nlohmann::json::array())) {
    if (!LooksLikeIp6(route.value("dst", ""))) out.routes.push_back(route);
  }
  if (r.contains("dns")) out.dns = r["dns"];
  return out;
}

// Runs the IPAM step of `command`: in-process for berth-host-local, else the ipam plugin
// binary from CNI_PATH with the same configuration and environment.
absl::StatusOr<nlohmann::json> RunIpam(const CmdArgs& args, const BridgeConfig& c,
                                       const std::string& command) {
  const std::string type = c.ipam.value("type", "");
  if (type == kInProcessIpam) {
    ASSIGN_OR_RETURN(IpamConfig config, ParseIpamConfig(args.config));
    IpamStore store(config);
    if (command == "ADD") {
      ASSIGN_OR_RETURN(std::vector<Allocation> got, store.Allocate(args.container_id, args.ifname));
      return IpamResultJson(config, got);
    }
    if (command == "DEL") {
      RETURN_IF_ERROR(store.Release(args.container_id, args.ifname));
    } else if (command == "CHECK") {
      ASSIGN_OR_RETURN(std::vector<Allocation> held, store.Held(args.container_id, args.ifname));
      if (held.size() != config.range_sets.size()) {
        return absl::FailedPreconditionError(
            StrCat("IPAM holds no address for ", args.container_id, " ", args.ifname));
      }
    } else if (command == "GC") {
      RETURN_IF_ERROR(store.GarbageCollect(ValidAttachments(args)));
    }
    return nlohmann::json();
  }
  ASSIGN_OR_RETURN(std::string path, internal::FindPlugin(type, args.path));
  std::string cni_args;
  for (const auto& [k, v] : args.args) cni_args += StrCat(cni_args.empty() ? "" : ";", k, "=", v);
  std::string cni_path;
  for (const std::string& p : args.path) cni_path += StrCat(cni_path.empty() ? "" : ":", p);
  std::vector<std::string> env = {StrCat("CNI_COMMAND=", command), StrCat("CNI_PATH=", cni_path)};
  if (command == "ADD" || command == "DEL" || command == "CHECK") {
    env.push_back(StrCat("CNI_CONTAINERID=", args.container_id));
    env.push_back(StrCat("CNI_NETNS=", args.netns));
    env.push_back(StrCat("CNI_IFNAME=", args.ifname));
    env.push_back(StrCat("CNI_ARGS=", cni_args));
  }
  ASSIGN_OR_RETURN(std::string out,
                   internal::RunPlugin({.path = path,
                                        .env = env,
                                        .stdin_data = args.config.dump(),
                                        .timeout = absl::Seconds(55),
                                        .what = StrCat("ipam ", type, " ", command)}));
  if (command != "ADD") return nlohmann::json();
  nlohmann::json result = nlohmann::json::parse(out, nullptr, false);
  if (result.is_discarded()) {
    return absl::InternalError(StrCat("ipam ", type, " ADD printed no JSON: ", out));
  }
  return result;
}

absl::StatusOr<std::string> RandomVethName() {
  uint32_t r = 0;
  if (getrandom(&r, sizeof(r), 0) != sizeof(r)) return ErrnoStatus(errno, "getrandom");
  return fmt::format("veth{:08x}", r);
}

absl::Status WriteProc(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, StrCat("open ", path));
  ssize_t n = write(fd, value.data(), value.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) return ErrnoStatus(err, StrCat("write ", path));
  return absl::OkStatus();
}

// Writes a sysctl only when it does not already hold the value (a read is cheaper than a
// write, which may take the rtnl lock).
absl::Status EnsureProc(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[32];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    std::string_view have(buf, n > 0 ? n : 0);
    while (!have.empty() && have.back() == '\n') have.remove_suffix(1);
    if (have == value) return absl::OkStatus();
  }
  return WriteProc(path, value);
}

absl::StatusOr<Link> EnsureBridge(Netlink& nl, const BridgeConfig& c) {
  ASSIGN_OR_RETURN(std::optional<Link> br, nl.GetLink(c.bridge));
  if (!br) {
    absl::Status s = nl.CreateBridge(c.bridge, c.mtu);
    if (!s.ok() && !absl::IsAlreadyExists(s)) return s;  // AlreadyExists: another ADD won
    ASSIGN_OR_RETURN(br, nl.GetLink(c.bridge));
    if (!br) return absl::InternalError(StrCat("bridge ", c.bridge, " vanished after creation"));
  }
  if (br->kind != "bridge") {
    return ConfigError(StrCat("\"", c.bridge, "\" exists and is not a bridge (", br->kind, ")"));
  }
  if (!br->up) RETURN_IF_ERROR(nl.SetUp(br->index));
  return *br;
}

// The jumps from POSTROUTING to the attachment's masquerade chain, one per address.
std::vector<IptablesBatch::Rule> MasqJumps(const std::string& network,
                                           const std::string& container_id,
                                           const std::vector<std::pair<Prefix4, uint32_t>>& ips) {
  const std::string chain = MasqChain(network, container_id);
  const std::string comment = AttachmentComment(network, container_id);
  std::vector<IptablesBatch::Rule> jumps;
  for (const auto& [address, gw] : ips) {
    jumps.push_back({"-s", FormatIp4(address.address) + "/32", "-m", "comment", "--comment",
                     comment, "-j", chain});
  }
  return jumps;
}

// The rules of the attachment's masquerade chain.
std::vector<IptablesBatch::Rule> MasqRules(const std::string& network,
                                           const std::string& container_id,
                                           const std::vector<std::pair<Prefix4, uint32_t>>& ips) {
  const std::string comment = AttachmentComment(network, container_id);
  std::vector<IptablesBatch::Rule> rules;
  for (const auto& [address, gw] : ips) {
    rules.push_back({"-d", address.NetworkString(), "-m", "comment", "--comment", comment, "-j",
                     "ACCEPT"});
  }
  rules.push_back(
      {"!", "-d", "224.0.0.0/4", "-m", "comment", "--comment", comment, "-j", "MASQUERADE"});
  return rules;
}

// The attachment's masquerade chain and its jumps, as far as they are missing (a repeated
// ADD adds nothing).
void AddMasquerade(const IptablesState& state, IptablesBatch& batch, const CmdArgs& args,
                   const BridgeConfig& c, const IpamOut& ipam) {
  const std::string chain = MasqChain(c.network, args.container_id);
  if (!state.HasChain("nat", chain)) batch.NewChain("nat", chain);
  for (const IptablesBatch::Rule& rule : MasqRules(c.network, args.container_id, ipam.ips)) {
    if (!state.HasRule("nat", chain, rule)) batch.Append("nat", chain, rule);
  }
  for (const IptablesBatch::Rule& jump : MasqJumps(c.network, args.container_id, ipam.ips)) {
    if (!state.HasRule("nat", "POSTROUTING", jump)) batch.Append("nat", "POSTROUTING", jump);
  }
}

// The isolation chains and this bridge's rules in them, as far as they are missing. Returns
// whether anything was.
bool AddIsolation(const IptablesState& state, IptablesBatch& batch, const std::string& bridge) {
  bool missing = false;
  for (const char* chain : {kIsolation1, kIsolation2}) {
    if (!state.HasChain("filter", chain)) {
      batch.NewChain("filter", chain);  // fails the batch if another plugin made it meanwhile
      missing = true;
    }
  }
  if (state.RulesJumpingTo("filter", "FORWARD", kIsolation1).empty()) {
    batch.InsertFirst("filter", "FORWARD", {"-j", kIsolation1});
    missing = true;
  }
  const IptablesBatch::Rule out = {"-i", bridge, "!", "-o", bridge, "-j", kIsolation2};
  if (!state.HasRule("filter", kIsolation1, out)) {
    batch.Append("filter", kIsolation1, out);
    missing = true;
  }
  const IptablesBatch::Rule drop = {"-o", bridge, "-j", "DROP"};
  if (!state.HasRule("filter", kIsolation2, drop)) {
    batch.Append("filter", kIsolation2, drop);
    missing = true;
  }
  return missing;
}

// The optimistic ADD, one iptables-restore for a pod on a bridge that is already set up:
// asserts the isolation rules (-C; filter goes first, so a failed check stops the run before
// nat is touched), creates the attachment's chain (-N: fails on a repeated ADD), fills it and
// jumps to it.
IptablesBatch FastAdd(const CmdArgs& args, const BridgeConfig& c, const IpamOut& ipam) {
  IptablesBatch batch;
  if (c.isolate) {
    batch.Check("filter", "FORWARD", {"-j", kIsolation1});
    batch.Check("filter", kIsolation1, {"-i", c.bridge, "!", "-o", c.bridge, "-j", kIsolation2});
    batch.Check("filter", kIsolation2, {"-o", c.bridge, "-j", "DROP"});
  }
  if (c.ip_masq) {
    const std::string chain = MasqChain(c.network, args.container_id);
    batch.NewChain("nat", chain);
    for (const IptablesBatch::Rule& rule : MasqRules(c.network, args.container_id, ipam.ips)) {
      batch.Append("nat", chain, rule);
    }
    for (const IptablesBatch::Rule& jump : MasqJumps(c.network, args.container_id, ipam.ips)) {
      batch.Append("nat", "POSTROUTING", jump);
    }
  }
  return batch;
}

// Masquerade and isolation: usually FastAdd's one process. When that fails (the first pod
// on a bridge, a repeated ADD), one read (iptables-save) and one write (iptables-restore):
// the shared isolation rules that are missing are added under SharedSetupLock after a
// second read, and a transaction that still fails (a chain made meanwhile by something
// else) is retried on a fresh read.
absl::Status SetUpIptables(const Iptables& ipt, const CmdArgs& args, const BridgeConfig& c,
                           const IpamOut& ipam) {
  if (ipt.Restore(FastAdd(args, c, ipam)).ok()) return absl::OkStatus();
  std::vector<std::string> tables;
  if (c.ip_masq) tables.push_back("nat");
  if (c.isolate) tables.push_back("filter");
  std::optional<SharedSetupLock> lock;
  absl::Status last;
  for (int attempt = 0; attempt < 4; ++attempt) {
    ASSIGN_OR_RETURN(IptablesState state, ipt.Save(tables));
    IptablesBatch batch;
    if (c.isolate && AddIsolation(state, batch, c.bridge) && !lock) {
      lock.emplace();
      continue;  // read again under the lock
    }
    if (c.ip_masq) AddMasquerade(state, batch, args, c, ipam);
    last = ipt.Restore(batch);
    if (last.ok()) return last;
  }
  return last;
}

// The veth's host end in a result: the interface outside any sandbox that is not the bridge.
std::string HostVethOf(const nlohmann::json& result, const std::string& bridge) {
  if (!result.is_object() || !result.contains("interfaces") || !result["interfaces"].is_array()) {
    return "";
  }
  for (const nlohmann::json& itf : result.value("interfaces", nlohmann::json::array())) {
    if (itf.value("sandbox", "").empty() && itf.value("name", "") != bridge) {
      return itf.value("name", "");
    }
  }
  return "";
}

absl::StatusOr<nlohmann::json> AddWithIpam(const CmdArgs& args, const BridgeConfig& c,
                                           const IpamOut& ipam) {
  ASSIGN_OR_RETURN(NetlinkPtr host, Netlink::Open());
  ASSIGN_OR_RETURN(Link br, EnsureBridge(*host, c));
  ASSIGN_OR_RETURN(UniqueFd netns, OpenNetns(args.netns));
  ASSIGN_OR_RETURN(NetlinkPtr pod, Netlink::OpenInNetns(args.netns));
  ASSIGN_OR_RETURN(std::optional<Link> existing, pod->GetLink(args.ifname));
  if (existing) {
    return absl::AlreadyExistsError(
        StrCat("interface ", args.ifname, " already exists in ", args.netns));
  }

  // The pod's end is created inside its namespace directly (IFLA_NET_NS_FD), already named
  // CNI_IFNAME: no rename, no moment where it sits in the host namespace.
  std::string veth;
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(veth, RandomVethName());
    absl::Status s = host->CreateVeth(veth, args.ifname, netns.get(), c.mtu);
    if (s.ok()) break;
    if (!absl::IsAlreadyExists(s) || attempt == 4) return s;
  }
  ASSIGN_OR_RETURN(std::optional<Link> host_end, host->GetLink(veth));
  if (!host_end) return absl::InternalError(StrCat("veth ", veth, " vanished after creation"));
  RETURN_IF_ERROR(host->SetMaster(host_end->index, br.index));
  if (c.hairpin) RETURN_IF_ERROR(host->SetHairpin(host_end->index, true));
  RETURN_IF_ERROR(host->SetUp(host_end->index));

  ASSIGN_OR_RETURN(std::optional<Link> pod_end, pod->GetLink(args.ifname));
  if (!pod_end) return absl::InternalError(StrCat(args.ifname, " is not in ", args.netns));
  for (const auto& [address, gw] : ipam.ips) {
    RETURN_IF_ERROR(pod->AddAddr4(pod_end->index, address));
  }
  RETURN_IF_ERROR(pod->SetUp(pod_end->index));

  uint32_t gateway = 0;
  for (const auto& [address, gw] : ipam.ips) {
    if (gw != 0) {
      gateway = gw;
      break;
    }
  }
  nlohmann::json routes = ipam.routes;
  bool has_default = false;
  for (const nlohmann::json& r : routes) {
    ASSIGN_OR_RETURN(Prefix4 dst, ParsePrefix4(r.value("dst", "")));
    uint32_t gw = ParseIp4(r.value("gw", "")).value_or(gateway);
    if (dst.length == 0) has_default = true;
    RETURN_IF_ERROR(pod->AddRoute4({.dst = dst, .gw = gw, .oif = pod_end->index}));
  }
  if (c.is_default_gateway && gateway != 0 && !has_default) {
    RETURN_IF_ERROR(pod->AddRoute4({.dst = {}, .gw = gateway, .oif = pod_end->index}));
    routes.push_back({{"dst", "0.0.0.0/0"}, {"gw", FormatIp4(gateway)}});
  }

  if (c.is_gateway) {
    for (const auto& [address, gw] : ipam.ips) {
      if (gw != 0) RETURN_IF_ERROR(host->AddAddr4(br.index, {gw, address.length}));
    }
    RETURN_IF_ERROR(EnsureProc("/proc/sys/net/ipv4/ip_forward", "1"));
  }
  if (c.ip_masq || c.isolate) {
    ASSIGN_OR_RETURN(Iptables ipt, Iptables::Find());
    RETURN_IF_ERROR(SetUpIptables(ipt, args, c, ipam));
  }

  // The bridge's MAC may have changed when its first port joined: read it now.
  ASSIGN_OR_RETURN(br, host->GetLink(br.index));
  ASSIGN_OR_RETURN(Link host_now, host->GetLink(host_end->index));
  nlohmann::json ips = nlohmann::json::array();
  for (const auto& [address, gw] : ipam.ips) {
    nlohmann::json ip = {{"address", address.ToString()}, {"interface", 2}};
    if (gw != 0) ip["gateway"] = FormatIp4(gw);
    ips.push_back(ip);
  }
  nlohmann::json result = {
      {"interfaces",
       {{{"name", br.name}, {"mac", br.mac}},
        {{"name", host_now.name}, {"mac", host_now.mac}},
        {{"name", args.ifname}, {"mac", pod_end->mac}, {"sandbox", args.netns}}}},
      {"ips", ips},
      {"routes", routes},
      {"dns", !c.dns.is_null()     ? c.dns
              : ipam.dns.is_null() ? nlohmann::json::object()
                                   : ipam.dns}};
  if (c.mtu > 0) {
    for (nlohmann::json& itf : result["interfaces"]) {
      if (CompareVersions(args.cni_version, "1.1.0") >= 0) itf["mtu"] = c.mtu;
    }
  }
  return result;
}

// The attachment's masquerade chain and its jumps. With the addresses from prevResult the
// usual case is one iptables-restore that deletes exactly the jumps ADD made; if that fails
// (already gone, or made differently) it reads the table and deletes what is there.
absl::Status DeleteMasquerade(const Iptables& ipt, const CmdArgs& args, const BridgeConfig& c) {
  const std::string chain = MasqChain(c.network, args.container_id);
  absl::StatusOr<IpamOut> prev = ParseIpamResult(PrevResult(args));
  if (prev.ok() && !prev->ips.empty()) {
    IptablesBatch batch;
    for (const IptablesBatch::Rule& jump : MasqJumps(c.network, args.container_id, prev->ips)) {
      batch.Delete("nat", "POSTROUTING", jump);
    }
    batch.FlushAndDeleteChain("nat", chain);
    if (ipt.Restore(batch).ok()) return absl::OkStatus();
  }
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    ASSIGN_OR_RETURN(IptablesState state, ipt.Save({"nat"}));
    IptablesBatch batch;
    DeleteAttachmentChain(state, batch, "nat", "POSTROUTING", chain);
    last = ipt.Restore(batch);
    if (last.ok()) return last;
  }
  return last;
}

absl::Status DeletePodInterface(const CmdArgs& args) {
  if (args.netns.empty()) return absl::OkStatus();
  absl::StatusOr<NetlinkPtr> pod = Netlink::OpenInNetns(args.netns);
  // The namespace is gone (or a leftover file): so is the veth pair with it.
  if (absl::IsNotFound(pod.status()) || absl::IsFailedPrecondition(pod.status())) {
    return absl::OkStatus();
  }
  if (!pod.ok()) return pod.status();
  ASSIGN_OR_RETURN(std::optional<Link> link, (*pod)->GetLink(args.ifname));
  if (!link) return absl::OkStatus();
  absl::Status s = (*pod)->DeleteLink(link->index);
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

}  // namespace

std::string MasqChain(const std::string& network, const std::string& container_id) {
  return AttachmentChain("BERTH-MASQ-", network, container_id);
}

absl::StatusOr<BridgeConfig> ParseBridgeConfig(const nlohmann::json& j) {
  BridgeConfig c;
  if (!j.is_object()) return ConfigError("the network configuration is not an object");
  c.network = j.value("name", "");
  if (c.network.empty()) return ConfigError("the network configuration has no \"name\"");
  if (j.contains("bridge")) {
    if (!j["bridge"].is_string()) return ConfigError("\"bridge\" must be a string");
    c.bridge = j["bridge"].get<std::string>();
  }
  if (c.bridge.empty() || c.bridge.size() > 15 ||
      c.bridge.find_first_of("/: \t\n") != std::string::npos || c.bridge == "." ||
      c.bridge == "..") {
    return ConfigError(StrCat("\"bridge\": \"", c.bridge, "\" is not an interface name"));
  }
  ASSIGN_OR_RETURN(c.ip_masq, BoolField(j, "ipMasq", false));
  ASSIGN_OR_RETURN(c.is_default_gateway, BoolField(j, "isDefaultGateway", false));
  ASSIGN_OR_RETURN(c.is_gateway, BoolField(j, "isGateway", c.ip_masq || c.is_default_gateway));
  if (c.is_default_gateway) c.is_gateway = true;
  ASSIGN_OR_RETURN(c.hairpin, BoolField(j, "hairpinMode", false));
  ASSIGN_OR_RETURN(c.isolate, BoolField(j, "isolateBridges", true));
  if (j.contains("mtu")) {
    if (!j["mtu"].is_number_integer() || j["mtu"].get<int>() < 0 || j["mtu"].get<int>() > 65535) {
      return ConfigError("\"mtu\" must be an integer 0..65535");
    }
    c.mtu = j["mtu"].get<int>();
  }
  if (j.contains("ipam") && !j["ipam"].is_null()) {
    if (!j["ipam"].is_object()) return ConfigError("\"ipam\" must be an object");
    if (!j["ipam"].empty()) {
      if (!j["ipam"].contains("type") || !j["ipam"]["type"].is_string() ||
          j["ipam"]["type"].get<std::string>().empty()) {
        return ConfigError("\"ipam\" has no \"type\"");
      }
      c.ipam = j["ipam"];
    }
  }
  if (c.ipam.is_null() && (c.ip_masq || c.is_gateway)) {
    return ConfigError("ipMasq and isGateway need an \"ipam\" section");
  }
  if (j.contains("dns") && j["dns"].is_object()) c.dns = j["dns"];
  if (c.ipam.is_object() && c.ipam["type"] == kInProcessIpam) {
    // Fail on a bad ipam section before anything is created.
    RETURN_IF_ERROR(ParseIpamConfig(j).status());
  }
  return c;
}

absl::StatusOr<nlohmann::json> BridgeAdd(const CmdArgs& args) {
  ASSIGN_OR_RETURN(BridgeConfig c, ParseBridgeConfig(args.config));
  IpamOut ipam;
  if (!c.ipam.is_null()) {
    ASSIGN_OR_RETURN(nlohmann::json r, RunIpam(args, c, "ADD"));
    ASSIGN_OR_RETURN(ipam, ParseIpamResult(r));
    if (ipam.ips.empty()) return absl::InternalError("IPAM returned no IPv4 address");
  }
  absl::StatusOr<nlohmann::json> result = AddWithIpam(args, c, ipam);
  if (!result.ok()) {
    // Leave nothing behind: a failed ADD is DELeted by the runtime too, but a plugin should
    // not rely on it for what it created itself.
    (void)DeletePodInterface(args);
    if (!c.ipam.is_null()) (void)RunIpam(args, c, "DEL");
  }
  return result;
}

absl::Status BridgeDel(const CmdArgs& args) {
  ASSIGN_OR_RETURN(BridgeConfig c, ParseBridgeConfig(args.config));
  absl::Status first_error;
  auto note = [&](absl::Status s) {
    if (!s.ok() && first_error.ok()) first_error = s;
  };
  if (!c.ipam.is_null()) note(RunIpam(args, c, "DEL").status());
  note(DeletePodInterface(args));
  // With the namespace gone its veth is gone too; a host end left over (the namespace still
  // pinned elsewhere) is removed by its cached name, if it is still a port of our bridge.
  std::string veth = HostVethOf(PrevResult(args), c.bridge);
  if (!veth.empty()) {
    absl::StatusOr<NetlinkPtr> host = Netlink::Open();
    if (host.ok()) {
      absl::StatusOr<std::optional<Link>> link = (*host)->GetLink(veth);
      absl::StatusOr<std::optional<Link>> br = (*host)->GetLink(c.bridge);
      if (link.ok() && *link && br.ok() && *br && (*link)->master == (*br)->index) {
        absl::Status s = (*host)->DeleteLink((*link)->index);
        if (!absl::IsNotFound(s)) note(s);
      }
    }
  }
  if (c.ip_masq) {
    absl::StatusOr<Iptables> ipt = Iptables::Find();
    if (ipt.ok()) note(DeleteMasquerade(*ipt, args, c));
  }
  return first_error;
}

absl::Status BridgeCheck(const CmdArgs& args) {
  ASSIGN_OR_RETURN(BridgeConfig c, ParseBridgeConfig(args.config));
  const nlohmann::json& prev = PrevResult(args);
  if (prev.is_null()) return ConfigError("CHECK needs prevResult");
  if (!c.ipam.is_null()) RETURN_IF_ERROR(RunIpam(args, c, "CHECK").status());
  ASSIGN_OR_RETURN(NetlinkPtr host, Netlink::Open());
  ASSIGN_OR_RETURN(std::optional<Link> br, host->GetLink(c.bridge));
  if (!br || br->kind != "bridge") {
    return absl::FailedPreconditionError(StrCat("bridge ", c.bridge, " is missing"));
  }
  std::string veth = HostVethOf(prev, c.bridge);
  ASSIGN_OR_RETURN(std::optional<Link> host_end, host->GetLink(veth.empty() ? "-" : veth));
  if (!host_end || host_end->master != br->index) {
    return absl::FailedPreconditionError(StrCat("veth ", veth, " is not a port of ", c.bridge));
  }
  ASSIGN_OR_RETURN(NetlinkPtr pod, Netlink::OpenInNetns(args.netns));
  ASSIGN_OR_RETURN(std::optional<Link> pod_end, pod->GetLink(args.ifname));
  if (!pod_end || !pod_end->up) {
    return absl::FailedPreconditionError(
        StrCat(args.ifname, " is missing or down in ", args.netns));
  }
  ASSIGN_OR_RETURN(std::vector<Prefix4> addrs, pod->ListAddrs4(pod_end->index));
  ASSIGN_OR_RETURN(IpamOut want, ParseIpamResult(prev));
  for (const auto& [address, gw] : want.ips) {
    if (std::find(addrs.begin(), addrs.end(), address) == addrs.end()) {
      return absl::FailedPreconditionError(
          StrCat(args.ifname, " in ", args.netns, " lacks ", address.ToString()));
    }
  }
  if (c.ip_masq) {
    ASSIGN_OR_RETURN(Iptables ipt, Iptables::Find());
    ASSIGN_OR_RETURN(bool exists, ipt.ChainExists("nat", MasqChain(c.network, args.container_id)));
    if (!exists) return absl::FailedPreconditionError("the masquerade chain is missing");
  }
  return absl::OkStatus();
}

absl::Status BridgeStatus(const CmdArgs& args) {
  ASSIGN_OR_RETURN(BridgeConfig c, ParseBridgeConfig(args.config));
  if (c.ip_masq || c.isolate) {
    absl::StatusOr<Iptables> ipt = Iptables::Find();
    if (!ipt.ok()) return CniError(kNotAvailable, StrCat(ipt.status().message()));
  }
  if (!c.ipam.is_null() && c.ipam.value("type", "") != kInProcessIpam) {
    return RunIpam(args, c, "STATUS").status();
  }
  return absl::OkStatus();
}

absl::Status BridgeGc(const CmdArgs& args) {
  ASSIGN_OR_RETURN(BridgeConfig c, ParseBridgeConfig(args.config));
  absl::Status first_error;
  if (!c.ipam.is_null()) first_error = RunIpam(args, c, "GC").status();
  if (c.ip_masq) {
    std::set<std::string> valid;
    for (const auto& [id, ifname] : ValidAttachments(args)) valid.insert(id);
    absl::StatusOr<Iptables> ipt = Iptables::Find();
    if (ipt.ok()) {
      absl::Status s = CollectAttachmentChains(*ipt, "nat", "POSTROUTING", c.network, valid);
      if (!s.ok() && first_error.ok()) first_error = s;
    }
  }
  return first_error;
}

}  // namespace berth::cni::plugins
