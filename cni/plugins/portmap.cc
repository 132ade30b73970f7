#include "cni/plugins/portmap.h"

#include <fcntl.h>
#include <unistd.h>

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

absl::Status SetUpSharedChains(const Iptables& ipt, const PortmapConfig& c) {
  RETURN_IF_ERROR(ipt.EnsureChain("nat", kHostportDnat));
  for (const char* hook : {"PREROUTING", "OUTPUT"}) {
    RETURN_IF_ERROR(ipt.EnsureRule("nat", hook,
                                   {"-m", "addrtype", "--dst-type", "LOCAL", "-j", kHostportDnat}));
  }
  if (!c.snat) return absl::OkStatus();
  RETURN_IF_ERROR(ipt.EnsureChain("nat", kHostportSetmark));
  RETURN_IF_ERROR(
      ipt.EnsureRule("nat", kHostportSetmark, {"-j", "MARK", "--set-xmark", Mark(c.mark_bit)}));
  RETURN_IF_ERROR(ipt.EnsureChain("nat", kHostportMasq));
  RETURN_IF_ERROR(ipt.EnsureRule("nat", kHostportMasq,
                                 {"-m", "mark", "--mark", Mark(c.mark_bit), "-j", "MASQUERADE"}));
  // First in POSTROUTING: a bridge's per-pod masquerade chain ACCEPTs traffic within the pod
  // subnet, which would end the traversal before a hairpinned connection is masqueraded.
  return ipt.EnsureRule("nat", "POSTROUTING", {"-j", kHostportMasq}, /*first=*/true);
}

// route_localnet lets a packet from 127.0.0.1, DNATed to the pod, leave through this
// interface (the kernel drops it as martian otherwise); the MASQUERADE above then gives it
// the interface's address.
void AllowLocalnet(const std::vector<std::string>& interfaces) {
  for (const std::string& itf : interfaces) {
    if (itf.empty() || itf.find('/') != std::string::npos || itf == "." || itf == "..") continue;
    std::string path = StrCat("/proc/sys/net/ipv4/conf/", itf, "/route_localnet");
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) continue;  // not in this namespace (a pod-side name)
    (void)!write(fd, "1", 1);
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
  if (c.mappings.empty()) return prev;
  if (!c.pod_ip) return ConfigError("prevResult has no IPv4 address to map ports to");
  ASSIGN_OR_RETURN(Iptables ipt, Iptables::Find());
  RETURN_IF_ERROR(SetUpSharedChains(ipt, c));
  const std::string chain = DnatChain(c.network, args.container_id);
  const std::string comment = AttachmentComment(c.network, args.container_id);
  // A repeated ADD rebuilds the chain from scratch.
  RETURN_IF_ERROR(ipt.DeleteRulesJumpingTo("nat", kHostportDnat, chain));
  RETURN_IF_ERROR(ipt.DeleteChain("nat", chain));
  RETURN_IF_ERROR(ipt.EnsureChain("nat", chain));
  for (std::vector<std::string>& rule : DnatChainRules(c, comment)) {
    rule.insert(rule.begin(), {"-A", chain});
    RETURN_IF_ERROR(ipt.Run("nat", rule).status());
  }
  RETURN_IF_ERROR(
      ipt.EnsureRule("nat", kHostportDnat, {"-m", "comment", "--comment", comment, "-j", chain}));
  if (c.snat) AllowLocalnet(c.host_interfaces);
  return prev;
}

absl::Status PortmapDel(const CmdArgs& args) {
  ASSIGN_OR_RETURN(PortmapConfig c, ParsePortmapConfig(args.config));
  absl::StatusOr<Iptables> ipt = Iptables::Find();
  if (!ipt.ok()) return absl::OkStatus();  // no iptables: no rules of ours either
  const std::string chain = DnatChain(c.network, args.container_id);
  RETURN_IF_ERROR(ipt->DeleteRulesJumpingTo("nat", kHostportDnat, chain));
  return ipt->DeleteChain("nat", chain);
}

absl::Status PortmapCheck(const CmdArgs& args) {
  ASSIGN_OR_RETURN(PortmapConfig c, ParsePortmapConfig(args.config));
  if (c.mappings.empty()) return absl::OkStatus();
  if (!c.pod_ip) return ConfigError("prevResult has no IPv4 address");
  ASSIGN_OR_RETURN(Iptables ipt, Iptables::Find());
  const std::string chain = DnatChain(c.network, args.container_id);
  ASSIGN_OR_RETURN(bool exists, ipt.ChainExists("nat", chain));
  if (!exists) return absl::FailedPreconditionError(StrCat("chain ", chain, " is missing"));
  ASSIGN_OR_RETURN(std::string rules, ipt.Run("nat", {"-S", chain}));
  for (const HostPort& m : c.mappings) {
    std::string to = StrCat(FormatIp4(c.pod_ip->address), ":", m.container_port);
    std::string port = StrCat("--dport ", m.host_port, " ");
    if (rules.find(to) == std::string::npos || rules.find(port) == std::string::npos) {
      return absl::FailedPreconditionError(
          StrCat("no DNAT of ", m.protocol, " port ", m.host_port, " to ", to, " in ", chain));
    }
  }
  ASSIGN_OR_RETURN(std::string dnat, ipt.Run("nat", {"-S", kHostportDnat}));
  if (dnat.find(chain) == std::string::npos) {
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
