// Parsing of berth-bridge's and berth-portmap's configurations, the portmap rules, address
// parsing and the iptables helpers that need no iptables. No root.
#include "cni/plugins/bridge.h"
#include "cni/plugins/ip.h"
#include "cni/plugins/iptables.h"
#include "cni/plugins/portmap.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::cni::plugins {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

TEST(IpTest, ParsesAndFormats) {
  EXPECT_EQ(ParseIp4("10.88.0.5"), 0x0a580005u);
  EXPECT_FALSE(ParseIp4("10.88.0").has_value());
  EXPECT_FALSE(ParseIp4("10.88.0.256").has_value());
  EXPECT_FALSE(ParseIp4("fd00::1").has_value());
  EXPECT_EQ(FormatIp4(0x0a580005), "10.88.0.5");
  absl::StatusOr<Prefix4> p = ParsePrefix4("10.88.3.5/16");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ToString(), "10.88.3.5/16");
  EXPECT_EQ(p->NetworkString(), "10.88.0.0/16");
  EXPECT_EQ(FormatIp4(p->Broadcast()), "10.88.255.255");
  EXPECT_TRUE(p->Contains(*ParseIp4("10.88.200.1")));
  EXPECT_FALSE(p->Contains(*ParseIp4("10.89.0.1")));
  EXPECT_EQ(ParsePrefix4("0.0.0.0/0")->Mask(), 0u);
  EXPECT_FALSE(ParsePrefix4("10.0.0.0/33").ok());
  EXPECT_FALSE(ParsePrefix4("10.0.0.0").ok());
  EXPECT_TRUE(absl::IsUnimplemented(ParsePrefix4("fd00::/64").status()));
}

TEST(BridgeConfigTest, DefaultsAndKeys) {
  nlohmann::json j = {{"cniVersion", "1.0.0"},
                      {"name", "pods"},
                      {"type", "berth-bridge"},
                      {"ipMasq", true},
                      {"ipam", {{"type", "berth-host-local"}, {"subnet", "10.88.0.0/16"}}}};
  absl::StatusOr<BridgeConfig> c = ParseBridgeConfig(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bridge, "berth0");
  EXPECT_TRUE(c->ip_masq);
  EXPECT_TRUE(c->is_gateway);  // follows ipMasq
  EXPECT_FALSE(c->hairpin);
  EXPECT_TRUE(c->isolate);
  EXPECT_EQ(c->mtu, 0);

  j["isGateway"] = false;
  j["bridge"] = "br9";
  j["mtu"] = 1400;
  j["hairpinMode"] = true;
  j["isolateBridges"] = false;
  j["dns"] = {{"nameservers", {"1.1.1.1"}}};
  c = ParseBridgeConfig(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->is_gateway);
  EXPECT_EQ(c->bridge, "br9");
  EXPECT_EQ(c->mtu, 1400);
  EXPECT_TRUE(c->hairpin);
  EXPECT_FALSE(c->isolate);
  EXPECT_EQ(c->dns["nameservers"][0], "1.1.1.1");

  j["isDefaultGateway"] = true;  // implies isGateway
  EXPECT_TRUE(ParseBridgeConfig(j)->is_gateway);
}

TEST(BridgeConfigTest, RejectsBadKeysWithAConfigError) {
  const nlohmann::json good = {{"name", "pods"},
                               {"ipam", {{"type", "berth-host-local"}, {"subnet", "10.1.0.0/24"}}}};
  std::vector<std::pair<std::string, nlohmann::json>> bad = {
      {"bridge", "a-name-longer-than-15"},
      {"bridge", "a/b"},
      {"bridge", 5},
      {"ipMasq", "yes"},
      {"mtu", -1},
      {"mtu", "1500"},
      {"ipam", {{"subnet", "10.1.0.0/24"}}},  // no type
      {"ipam", {{"type", "berth-host-local"}, {"subnet", "10.1.0.0/33"}}},
  };
  for (const auto& [key, value] : bad) {
    nlohmann::json j = good;
    j[key] = value;
    absl::StatusOr<BridgeConfig> c = ParseBridgeConfig(j);
    EXPECT_FALSE(c.ok()) << key << "=" << value;
    EXPECT_EQ(CniErrorCode(c.status()), kInvalidNetworkConfig) << c.status();
  }
  nlohmann::json no_ipam = {{"name", "l2"}, {"ipMasq", true}};
  EXPECT_FALSE(ParseBridgeConfig(no_ipam).ok());
  no_ipam["ipMasq"] = false;
  EXPECT_TRUE(ParseBridgeConfig(no_ipam).ok());  // an L2-only bridge
  // Another IPAM plugin is delegated to; its section is not ours to check.
  EXPECT_TRUE(ParseBridgeConfig({{"name", "n"}, {"ipam", {{"type", "host-local"}}}}).ok());
}

nlohmann::json PortmapJson() {
  return nlohmann::json::parse(R"({
    "cniVersion": "1.0.0", "name": "pods", "type": "berth-portmap",
    "runtimeConfig": {"portMappings": [
      {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
      {"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "192.0.2.7"},
      {"hostPort": 0, "containerPort": 9}, {"hostPort": 99, "containerPort": 9, "hostIP": "::1"}]},
    "prevResult": {"cniVersion": "1.0.0",
      "interfaces": [{"name": "berth0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
      "ips": [{"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2}]}})");
}

TEST(PortmapConfigTest, ParsesMappingsAndPrevResult) {
  absl::StatusOr<PortmapConfig> c = ParsePortmapConfig(PortmapJson());
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_THAT(c->mappings, SizeIs(2));  // hostPort 0 and the IPv6 hostIP publish nothing
  EXPECT_EQ(c->mappings[1].protocol, "udp");
  EXPECT_EQ(c->mappings[1].host_ip, "192.0.2.7");
  ASSERT_TRUE(c->pod_ip.has_value());
  EXPECT_EQ(c->pod_ip->ToString(), "10.88.0.5/16");
  EXPECT_THAT(c->host_interfaces, ElementsAre("berth0", "veth1"));
  EXPECT_TRUE(c->snat);

  nlohmann::json j = PortmapJson();
  j["runtimeConfig"]["portMappings"][0]["protocol"] = "icmp";
  EXPECT_EQ(CniErrorCode(ParsePortmapConfig(j).status()), kInvalidNetworkConfig);
  j = PortmapJson();
  j["runtimeConfig"]["portMappings"][0]["hostPort"] = 70000;
  EXPECT_FALSE(ParsePortmapConfig(j).ok());
  j = PortmapJson();
  j["markMasqBit"] = 40;
  EXPECT_FALSE(ParsePortmapConfig(j).ok());
}

TEST(PortmapConfigTest, RulesMarkHairpinAndLocalhostThenDnat) {
  PortmapConfig c = *ParsePortmapConfig(PortmapJson());
  std::vector<std::vector<std::string>> rules = DnatChainRules(c, "berth:pods:c1");
  ASSERT_THAT(rules, SizeIs(6));
  auto line = [&](int i) {
    std::string s;
    for (const std::string& w : rules[i]) s += w + " ";
    return s;
  };
  EXPECT_EQ(line(0),
            "-p tcp -m tcp --dport 8080 -m comment --comment berth:pods:c1 -s 10.88.0.0/16 -j "
            "BERTH-HOSTPORT-SETMARK ");
  EXPECT_THAT(line(1), HasSubstr("-s 127.0.0.0/8 -j BERTH-HOSTPORT-SETMARK"));
  EXPECT_THAT(line(2), HasSubstr("--dport 8080 -m comment --comment berth:pods:c1 -j DNAT "
                                 "--to-destination 10.88.0.5:80"));
  EXPECT_THAT(line(5), HasSubstr("-d 192.0.2.7/32 -p udp -m udp --dport 5353"));
  EXPECT_THAT(line(5), HasSubstr("--to-destination 10.88.0.5:53"));

  c.snat = false;
  EXPECT_THAT(DnatChainRules(c, "x"), SizeIs(2));
}

TEST(IptablesTest, ChainNamesFitAndDiffer) {
  std::string a = DnatChain("pods", "0123456789abcdef0123456789abcdef0123456789abcdef");
  EXPECT_LE(a.size(), 28u);
  EXPECT_EQ(a.rfind("BERTH-DN-", 0), 0u);
  EXPECT_LE(MasqChain("pods", "c").size(), 28u);
  EXPECT_NE(DnatChain("pods", "c1"), DnatChain("pods", "c2"));
  EXPECT_NE(DnatChain("ab", "c"), DnatChain("a", "bc"));
  EXPECT_EQ(MasqChain("pods", "c1"), MasqChain("pods", "c1"));
}

TEST(IptablesTest, SplitsSaveLinesAndReadsAttachmentComments) {
  std::vector<std::string> words = SplitRuleLine(
      R"(-A POSTROUTING -s 10.1.0.2/32 -m comment --comment "berth:pods:c1" -j BERTH-MASQ-1)");
  EXPECT_THAT(words, ElementsAre("-A", "POSTROUTING", "-s", "10.1.0.2/32", "-m", "comment",
                                 "--comment", "berth:pods:c1", "-j", "BERTH-MASQ-1"));
  EXPECT_THAT(SplitRuleLine(R"(-A X --comment "two words" -j Y)"),
              ElementsAre("-A", "X", "--comment", "two words", "-j", "Y"));
  std::optional<std::pair<std::string, std::string>> who =
      RuleAttachment({"-m", "comment", "--comment", "berth:pods:c1", "-j", "X"});
  ASSERT_TRUE(who.has_value());
  EXPECT_EQ(who->first, "pods");
  EXPECT_EQ(who->second, "c1");
  EXPECT_FALSE(RuleAttachment({"--comment", "kube:x"}).has_value());
  EXPECT_EQ(AttachmentComment("pods", "c1"), "berth:pods:c1");
}

// What iptables-save (nf_tables, 1.8.9) prints after berth-bridge and berth-portmap ADDs: the
// words berth asks for must compare equal to what it reads back, or shared rules would be
// added again for every pod.
constexpr char kSaved[] = R"(# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:BERTH-ISOLATION-1 - [0:0]
:BERTH-ISOLATION-2 - [0:0]
-A FORWARD -j BERTH-ISOLATION-1
-A BERTH-ISOLATION-1 -i cb0 ! -o cb0 -j BERTH-ISOLATION-2
-A BERTH-ISOLATION-2 -o cb0 -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:BERTH-EMPTY - [0:0]
:BERTH-MASQ-1 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j BERTH-HOSTPORT-DNAT
-A POSTROUTING -j BERTH-HOSTPORT-MASQ
-A POSTROUTING -s 10.77.0.2/32 -m comment --comment "berth:n:c1" -j BERTH-MASQ-1
-A BERTH-MASQ-1 ! -d 224.0.0.0/4 -m comment --comment "berth:n:c1" -j MASQUERADE
COMMIT
# Completed
)";

TEST(IptablesTest, ParsesIptablesSave) {
  IptablesState s = IptablesState::Parse(kSaved);
  EXPECT_TRUE(s.HasTable("filter"));
  EXPECT_FALSE(s.HasTable("mangle"));
  EXPECT_TRUE(s.HasChain("nat", "BERTH-EMPTY"));
  EXPECT_TRUE(s.Rules("nat", "BERTH-EMPTY").empty());
  EXPECT_FALSE(s.HasChain("filter", "BERTH-MASQ-1"));
  EXPECT_TRUE(s.HasRule("filter", "BERTH-ISOLATION-1",
                        {"-i", "cb0", "!", "-o", "cb0", "-j", "BERTH-ISOLATION-2"}));
  EXPECT_TRUE(s.HasRule("filter", "BERTH-ISOLATION-2", {"-o", "cb0", "-j", "DROP"}));
  EXPECT_FALSE(s.HasRule("filter", "BERTH-ISOLATION-2", {"-o", "cb1", "-j", "DROP"}));
  EXPECT_TRUE(s.HasRule("nat", "BERTH-MASQ-1",
                        {"!", "-d", "224.0.0.0/4", "-m", "comment", "--comment", "berth:n:c1",
                         "-j", "MASQUERADE"}));
  EXPECT_THAT(s.RulesJumpingTo("nat", "POSTROUTING", "BERTH-MASQ-1"),
              ElementsAre(ElementsAre("-s", "10.77.0.2/32", "-m", "comment", "--comment",
                                      "berth:n:c1", "-j", "BERTH-MASQ-1")));
  EXPECT_THAT(s.Rules("nat", "POSTROUTING"), SizeIs(2));
}

TEST(IptablesTest, BatchesBecomeOneRestoreScript) {
  IptablesState s = IptablesState::Parse(kSaved);
  IptablesBatch b;
  EXPECT_TRUE(b.empty());
  b.Check("filter", "FORWARD", {"-j", "BERTH-ISOLATION-1"});
  b.NewChain("nat", "BERTH-DN-2");
  b.Append("nat", "BERTH-DN-2", {"-m", "comment", "--comment", "two words", "-j", "ACCEPT"});
  b.DeclareChain("nat", "BERTH-MASQ-3");
  b.InsertFirst("nat", "POSTROUTING", {"-j", "X"});
  DeleteAttachmentChain(s, b, "nat", "POSTROUTING", "BERTH-MASQ-1");
  DeleteAttachmentChain(s, b, "nat", "POSTROUTING", "BERTH-MASQ-9");  // nothing there
  EXPECT_EQ(b.Script(),
            "*filter\n"
            "-C FORWARD -j BERTH-ISOLATION-1\n"
            "COMMIT\n"
            "*nat\n"
            ":BERTH-MASQ-3 - [0:0]\n"
            "-N BERTH-DN-2\n"
            "-A BERTH-DN-2 -m comment --comment \"two words\" -j ACCEPT\n"
            "-I POSTROUTING 1 -j X\n"
            "-D POSTROUTING -s 10.77.0.2/32 -m comment --comment berth:n:c1 -j BERTH-MASQ-1\n"
            "-F BERTH-MASQ-1\n"
            "-X BERTH-MASQ-1\n"
            "COMMIT\n");
}

TEST(IptablesTest, ReplaceJumpsKeepsWhatIsAlreadyRight) {
  IptablesState s = IptablesState::Parse(kSaved);
  const IptablesBatch::Rule jump = {"-s", "10.77.0.2/32", "-m", "comment", "--comment",
                                    "berth:n:c1", "-j", "BERTH-MASQ-1"};
  IptablesBatch same;
  ReplaceJumps(s, same, "nat", "POSTROUTING", "BERTH-MASQ-1", {jump});
  EXPECT_TRUE(same.empty());
  IptablesBatch moved;
  IptablesBatch::Rule other = jump;
  other[1] = "10.77.0.3/32";
  ReplaceJumps(s, moved, "nat", "POSTROUTING", "BERTH-MASQ-1", {other});
  EXPECT_THAT(moved.Script(), HasSubstr("-D POSTROUTING -s 10.77.0.2/32"));
  EXPECT_THAT(moved.Script(), HasSubstr("-A POSTROUTING -s 10.77.0.3/32"));
}

}  // namespace
}  // namespace berth::cni::plugins
