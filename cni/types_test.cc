#include "cni/cni.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::cni {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

TEST(ParseResultTest, ParsesA10Result) {
  json j = json::parse(R"({
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"},
                   {"name": "veth1", "mac": "11:22:33:44:55:66"},
                   {"name": "eth0", "mac": "22:33:44:55:66:77", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2},
            {"address": "fd00::5/64"}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.0.0.0/8", "gw": "10.88.0.254", "mtu": 1400}],
    "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local",
            "search": ["default.svc.cluster.local"], "options": ["ndots:5"]}})");
  absl::StatusOr<Result> r = ParseResult(j);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->cni_version, "1.0.0");
  ASSERT_THAT(r->interfaces, SizeIs(3));
  EXPECT_EQ(r->interfaces[2].name, "eth0");
  EXPECT_EQ(r->interfaces[2].sandbox, "/run/netns/x");
  EXPECT_EQ(r->interfaces[0].mac, "aa:bb:cc:dd:ee:ff");
  ASSERT_THAT(r->ips, SizeIs(2));
  EXPECT_EQ(r->ips[0].address, "10.88.0.5/16");
  EXPECT_EQ(r->ips[0].gateway, "10.88.0.1");
  EXPECT_EQ(r->ips[0].interface, 2);
  EXPECT_FALSE(r->ips[1].interface.has_value());
  ASSERT_THAT(r->routes, SizeIs(2));
  EXPECT_EQ(r->routes[1].gw, "10.88.0.254");
  EXPECT_EQ(r->routes[1].dst, "10.0.0.0/8");
  EXPECT_THAT(r->dns.nameservers, ElementsAre("10.96.0.10"));
  EXPECT_EQ(r->dns.domain, "cluster.local");
  EXPECT_THAT(r->dns.search, ElementsAre("default.svc.cluster.local"));
  EXPECT_THAT(r->dns.options, ElementsAre("ndots:5"));
  EXPECT_EQ(r->raw["routes"][1]["mtu"], 1400);  // 1.1 fields stay in raw
}

TEST(ParseResultTest, Parses04ResultsAndEmptyOnes) {
  absl::StatusOr<Result> r = ParseResult(json::parse(R"({"cniVersion": "0.4.0",
      "ips": [{"version": "4", "address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0}],
      "dns": {}})"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ips[0].address, "10.1.0.2/24");
  EXPECT_TRUE(ParseResult(json::object()).ok());
}

TEST(ParseResultTest, NamesTheMalformedField) {
  auto error = [](const char* text) {
    return std::string(ParseResult(json::parse(text)).status().message());
  };
  EXPECT_THAT(error(R"([])"), HasSubstr("not a JSON object"));
  EXPECT_THAT(error(R"({"ips": [{"gateway": "1.2.3.4"}]})"),
              HasSubstr("ips[0].address is missing"));
  EXPECT_THAT(error(R"({"ips": [{"address": 5}]})"), HasSubstr("ips[0].address is not a string"));
  EXPECT_THAT(error(R"({"ips": [{"address": "a", "interface": "x"}]})"),
              HasSubstr("ips[0].interface is not an index"));
  EXPECT_THAT(error(R"({"interfaces": {}})"), HasSubstr("interfaces is not a list"));
  EXPECT_THAT(error(R"({"routes": [{"gw": "1.1.1.1"}]})"), HasSubstr("routes[0].dst is missing"));
  EXPECT_THAT(error(R"({"dns": {"nameservers": [1]}})"), HasSubstr("dns.nameservers"));
}

TEST(CapabilityArgsTest, ConventionalNamesAndShapes) {
  RuntimeConfig config{
      .port_mappings =
          {{.host_port = 8080, .container_port = 80, .protocol = "TCP"},
           {.host_port = 0, .container_port = 81, .protocol = "tcp"},
           {.host_port = 5353, .container_port = 53, .protocol = "udp", .host_ip = "127.0.0.1"}},
      .dns = Dns{.nameservers = {"1.1.1.1"}, .search = {"a.b"}, .options = {"ndots:2"}},
      .cgroup_path = "/kubepods/pod1",
      .ips = {"10.88.0.9/16"},
      .mac = "c2:11:22:33:44:55",
      .bandwidth = Bandwidth{.ingress_rate = 1000, .ingress_burst = 2000},
      .extra = {{"aliases", json::array({"web"})}, {"mac", "ignored"}}};
  json args = CapabilityArgs(config);
  EXPECT_EQ(args, json::parse(R"({
    "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                     {"hostPort": 5353, "containerPort": 53, "protocol": "udp",
                      "hostIP": "127.0.0.1"}],
    "dns": {"servers": ["1.1.1.1"], "searches": ["a.b"], "options": ["ndots:2"]},
    "cgroupPath": "/kubepods/pod1",
    "ips": ["10.88.0.9/16"],
    "mac": "c2:11:22:33:44:55",
    "bandwidth": {"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 0, "egressBurst": 0},
    "aliases": ["web"]})"));
  EXPECT_EQ(CapabilityArgs(RuntimeConfig{}), json::object());

  RuntimeConfig back = RuntimeConfigFromCapabilityArgs(args);
  EXPECT_EQ(CapabilityArgs(back), args);
  ASSERT_THAT(back.port_mappings, SizeIs(2));
  EXPECT_EQ(back.port_mappings[1].host_ip, "127.0.0.1");
  EXPECT_EQ(back.mac, "c2:11:22:33:44:55");
  EXPECT_EQ(back.bandwidth->ingress_burst, 2000);
  EXPECT_EQ(back.extra.at("aliases"), json::array({"web"}));
}

}  // namespace
}  // namespace berth::cni
