#include "cni/plugins/portmap.h"

#include <fcntl.h>
#include <unistd.h>

#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "cni/plugins/iptables.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cni::plugins {
namespace {

absl::Status ConfigError(std::string_view msg) { return CniError(kInvalidNetworkConfig, msg); }

std::string Mark(int bit) { return fmt::format("{:#x}/{:#x}", 1u << bit, 1u << bit); }

struct SharedRule {
  const char* chain;
  IptablesBatch::Rule rule;
  bool first = false;  // inserted at the top of the chain rather than appended
};

// The rules shared by every attachment, in the order they are added.
std::vector<SharedRule> SharedRules(const PortmapConfig& c) {
  std::vector<SharedRule> rules;
  for (const char* hook : {"PREROUTING", "OUTPUT"}) {
    rules.push_back({hook, {"-m", "addrtype", "--dst-type", "LOCAL", "-j", kHostportDnat}});
  }
  if (!c.snat) return rules;
  rules.push_back({kHostportSetmark, {"-j", "MARK", "--set-xmark", Mark(c.mark_bit)}});
  rules.push_back(
      {kHostportMasq, {"-m", "mark", "--mark", Mark(c.mark_bit), "-j", "MASQUERADE"}});
  // First in POSTROUTING: a bridge's per-pod masquerade chain ACCEPTs traffic within the pod
  // subnet, which would end the traversal before a hairpinned connection is masqueraded.
  rules.push_back({"POSTROUTING", {"-j", kHostportMasq}, /*first=*/true});
  return rules;
}

// The shared chains and rules, as far as `state` lacks them. Returns whether anything was.
bool AddSharedChains(const IptablesState& state, IptablesBatch& batch, const PortmapConfig& c) {
  bool missing = false;
  std::vector<const char*> chains = {kHostportDnat};
  if (c.snat) chains.insert(chains.end(), {kHostportSetmark, kHostportMasq});
  for (const char* chain : chains) {
    if (!state.HasChain("nat", chain)) {
      batch.NewChain("nat", chain);  // fails the batch if another plugin made it meanwhile
      missing = true;
    }
  }
  for (const SharedRule& r : SharedRules(c)) {
    if (state.HasRule("nat", r.chain, r.rule)) continue;
    if (r.first) {
      batch.InsertFirst("nat", r.chain, r.rule);
    } else {
      batch.Append("nat", r.chain, r.rule);
    }
    missing = true;
  }
  return missing;
}

// route_localnet lets a packet from 127.0.0.1, DNATed to the pod, leave through this
// interface (the kernel drops it as martian otherwise); the MASQUERADE above then gives it
// the interface's address.
void AllowLocalnet(const std::vector<std::string>& interfaces) {
  for (const std::string& itf : interfaces) {
    if (itf.empty() || itf.find('/') != std::string::npos || itf == "." || itf == "..") continue;
    std::string path = StrCat("/proc/sys/net/ipv4/conf/", itf, "/route_localnet");
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;  // not in this namespace (a pod-side name)
    char now = 0;
    if (read(fd, &now, 1) != 1 || now != '1') (void)!pwrite(fd, "1", 1, 0);
    close(fd);
  }
}

}  // namespace

std::string DnatChain(const std::string& network, const std::string& container_id) {
  return AttachmentChain("BERTH-DN-", network, container_id);
}

absl::StatusOr<PortmapConfig> ParsePortmapConfig(const nlohmann::json& j) {
  PortmapConfig c;
  if (!j.is_object()) return ConfigError("the network configuration is not an object");
  c.network = j.value("name", "");
  if (c.network.empty()) return ConfigError("the network configuration has no \"name\"");
  if (j.contains("snat")) {
    if (!j["snat"].is_boolean()) return ConfigError("\"snat\" must be true or false");
    c.snat = j["snat"].get<bool>();
  }
  if (j.contains("markMasqBit")) {
    if (!j["markMasqBit"].is_number_integer() || j["markMasqBit"].get<int>() < 0 ||
        j["markMasqBit"].get<int>() > 31) {
      return ConfigError("\"markMasqBit\" must be an integer 0..31");
    }
    c.mark_bit = j["markMasqBit"].get<int>();
  }
  const nlohmann::json rc = j.value("runtimeConfig", nlohmann::json::object());
  const nlohmann::json pm =
      rc.is_object() ? rc.value("portMappings", nlohmann::json::array()) : nlohmann::json::array();
  if (!pm.is_array()) return ConfigError("runtimeConfig.portMappings must be an array");
  for (const nlohmann::json& m : pm) {
    if (!m.is_object()) return ConfigError("a port mapping must be an object");
    HostPort p;
    if (!m.contains("hostPort") || !m["hostPort"].is_number_integer() ||
        !m.contains("containerPort") || !m["containerPort"].is_number_integer()) {
      return ConfigError("a port mapping needs integer hostPort and containerPort");
    }
    p.host_port = m["hostPort"].get<int>();
    p.container_port = m["containerPort"].get<int>();
    if (p.host_port <= 0) continue;  // publishes nothing (CRI: hostPort 0)
    if (p.host_port > 65535 || p.container_port <= 0 || p.container_port > 65535) {
      return ConfigError(
          StrCat("port mapping ", p.host_port, ":", p.container_port, " is out of range"));
    }
    std::string proto = m.value("protocol", "tcp");
    absl::AsciiStrToLower(&proto);
    if (proto.empty()) proto = "tcp";
    if (proto != "tcp" && proto != "udp" && proto != "sctp") {
      return ConfigError(StrCat("port mapping protocol \"", proto, "\" is not tcp, udp or sctp"));
    }
    p.protocol = proto;
    p.host_ip = m.value("hostIP", "");
    if (LooksLikeIp6(p.host_ip)) continue;  // IPv4-only: an IPv6 host address maps nothing
    if (!p.host_ip.empty() && p.host_ip != "0.0.0.0" && !ParseIp4(p.host_ip)) {
      return ConfigError(StrCat("port mapping hostIP \"", p.host_ip, "\" is not an address"));
    }
    if (p.host_ip == "0.0.0.0") p.host_ip.clear();
    c.mappings.push_back(p);
  }
  const nlohmann::json prev = j.value("prevResult", nlohmann::json());
  if (prev.is_object()) {
    for (const nlohmann::json& ip : prev.value("ips", nlohmann::json::array())) {
      absl::StatusOr<Prefix4> p = ParsePrefix4(ip.value("address", ""));
      if (p.ok()) {
        c.pod_ip = *p;
        break;
      }
    }
    for (const nlohmann::json& itf : prev.value("interfaces", nlohmann::json::array())) {
      if (itf.value("sandbox", "").empty() && !itf.value("name", "").empty()) {
        c.host_interfaces.push_back(itf.value("name", ""));
      }
    }
  }
  return c;
}

std::vector<std::vector<std::string>> DnatChainRules(const PortmapConfig& c,
                                                     const std::string& comment) {
  std::vector<std::vector<std::string>> rules;
  if (!c.pod_ip) return rules;
  for (const HostPort& m : c.mappings) {
    std::vector<std::string> base = {"-p",       m.protocol, "-m",
                                     m.protocol, "--dport",  std::to_string(m.host_port)};
    if (!m.host_ip.empty()) {
      base.insert(base.begin(), {"-d", m.host_ip + "/32"});
    }
    auto with = [&](std::vector<std::string> extra) {
      std::vector<std::string> rule = base;
      rule.insert(rule.end(), {"-m", "comment", "--comment", comment});
      rule.insert(rule.end(), extra.begin(), extra.end());
      return rule;
    };
    if (c.snat) {
      // Hairpin: from the pods' own subnet (the pod itself or a neighbour on the bridge), the
      // reply must come back through the host to be un-DNATed, so masquerade it.
      rules.push_back(with({"-s", c.pod_ip->NetworkString(), "-j", kHostportSetmark}));
      rules.push_back(with({"-s", "127.0.0.0/8", "-j", kHostportSetmark}));
    }
    rules.push_back(with({"-j", "DNAT", "--to-destination",
                          StrCat(FormatIp4(c.pod_ip->address), ":", m.container_port)}));
  }
  return rules;
}

absl::StatusOr<nlohmann::json> PortmapAdd(const CmdArgs& args) {
  ASSIGN_OR_RETURN(PortmapConfig c, ParsePortmapConfig(args.config));
  const nlohmann::json& prev = PrevResult(args);
  if (prev.is_null()) return ConfigError("berth-portmap must be chained: no prevResult");
  if (c.mappings.empty()) return prev;  // no iptables process at all
  if (!c.pod_ip) return ConfigError("prevResult has no IPv4 address to map ports to");
  ASSIGN_OR_RETURN(Iptables ipt, Iptables::Find());
  const std::string chain = DnatChain(c.network, args.container_id);
  const std::string comment = AttachmentComment(c.network, args.container_id);
  const IptablesBatch::Rule jump = {"-m", "comment", "--comment", comment, "-j", chain};
  // Usually one iptables-restore: the shared rules asserted (-C), the attachment's chain
  // created (-N; fails on a repeated ADD) and filled, and jumped to.
  IptablesBatch fast;
  for (const SharedRule& r : SharedRules(c)) fast.Check("nat", r.chain, r.rule);
  fast.NewChain("nat", chain);
  for (const std::vector<std::string>& rule : DnatChainRules(c, comment)) {
    fast.Append("nat", chain, rule);
  }
  fast.Append("nat", kHostportDnat, jump);
  absl::Status last = ipt.Restore(fast);
  // Else one read, one write: the shared chains where missing (under SharedSetupLock, after
  // a second read), the attachment's chain rebuilt from scratch (created or flushed), its
  // jump.
  std::optional<SharedSetupLock> lock;
  for (int attempt = 0; attempt < 4 && !last.ok(); ++attempt) {
    ASSIGN_OR_RETURN(IptablesState state, ipt.Save({"nat"}));
    IptablesBatch batch;
    if (AddSharedChains(state, batch, c) && !lock) {
      lock.emplace();
      continue;  // read again under the lock
    }
    batch.DeclareChain("nat", chain);
    for (const std::vector<std::string>& rule : DnatChainRules(c, comment)) {
      batch.Append("nat", chain, rule);
    }
    ReplaceJumps(state, batch, "nat", kHostportDnat, chain, {jump});
    last = ipt.Restore(batch);
  }
  RETURN_IF_ERROR(last);
  if (c.snat) AllowLocalnet(c.host_interfaces);
  return prev;
}

absl::Status PortmapDel(const CmdArgs& args) {
  ASSIGN_OR_RETURN(PortmapConfig c, ParsePortmapConfig(args.config));
  // As the reference plugin: DEL gets ADD's runtimeConfig, so without port mappings ADD made
  // no rule, and there is nothing to look for (no iptables process). GC collects leftovers.
  if (c.mappings.empty()) return absl::OkStatus();
  absl::StatusOr<Iptables> ipt = Iptables::Find();
  if (!ipt.ok()) return absl::OkStatus();  // no iptables: no rules of ours either
  const std::string chain = DnatChain(c.network, args.container_id);
  const std::string comment = AttachmentComment(c.network, args.container_id);
  // Usually one iptables-restore deleting exactly what ADD made; else read and delete what
  // is there.
  IptablesBatch batch;
  batch.Delete("nat", kHostportDnat, {"-m", "comment", "--comment", comment, "-j", chain});
  batch.FlushAndDeleteChain("nat", chain);
  if (ipt->Restore(batch).ok()) return absl::OkStatus();
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    ASSIGN_OR_RETURN(IptablesState state, ipt->Save({"nat"}));
    IptablesBatch del;
    DeleteAttachmentChain(state, del, "nat", kHostportDnat, chain);
    last = ipt->Restore(del);
    if (last.ok()) return last;
  }
  return last;
}

absl::Status PortmapCheck(const CmdArgs& args) {
  ASSIGN_OR_RETURN(PortmapConfig c, ParsePortmapConfig(args.config));
  if (c.mappings.empty()) return absl::OkStatus();
  if (!c.pod_ip) return ConfigError("prevResult has no IPv4 address");
  ASSIGN_OR_RETURN(Iptables ipt, Iptables::Find());
  const std::string chain = DnatChain(c.network, args.container_id);
  ASSIGN_OR_RETURN(IptablesState state, ipt.Save({"nat"}));
  if (!state.HasChain("nat", chain)) {
    return absl::FailedPreconditionError(StrCat("chain ", chain, " is missing"));
  }
  std::string rules;
  for (const std::vector<std::string>& rule : state.Rules("nat", chain)) {
    for (const std::string& w : rule) rules += w + " ";
    rules += "\n";
  }
  for (const HostPort& m : c.mappings) {
    std::string to = StrCat(FormatIp4(c.pod_ip->address), ":", m.container_port);
    std::string port = StrCat("--dport ", m.host_port, " ");
    if (rules.find(to) == std::string::npos || rules.find(port) == std::string::npos) {
      return absl::FailedPreconditionError(
          StrCat("no DNAT of ", m.protocol, " port ", m.host_port, " to ", to, " in ", chain));
    }
  }
  if (state.RulesJumpingTo("nat", kHostportDnat, chain).empty()) {
    return absl::FailedPreconditionError(StrCat(kHostportDnat, " does not jump to ", chain));
  }
  return absl::OkStatus();
}

absl::Status PortmapGc(const CmdArgs& args) {
  ASSIGN_OR_RETURN(PortmapConfig c, ParsePortmapConfig(args.config));
  absl::StatusOr<Iptables> ipt = Iptables::Find();
  if (!ipt.ok()) return absl::OkStatus();
  std::set<std::string> valid;
  for (const auto& [id, ifname] : ValidAttachments(args)) valid.insert(id);
  return CollectAttachmentChains(*ipt, "nat", kHostportDnat, c.network, valid);
}

}  // namespace berth::cni::plugins
