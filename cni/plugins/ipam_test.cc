// berth-host-local's configuration and allocator: ranges, exhaustion, release, round robin,
// idempotence, GC, and several processes allocating at once. No root.
#include "cni/plugins/ipam.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cni/plugins/skel.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/base/strings.h"

namespace berth::cni::plugins {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

class IpamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-ipam-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  nlohmann::json Net(nlohmann::json ipam) {
    ipam["type"] = "berth-host-local";
    ipam["dataDir"] = dir_;
    return {{"cniVersion", "1.0.0"}, {"name", "net"}, {"ipam", ipam}};
  }
  IpamConfig Config(nlohmann::json ipam) {
    absl::StatusOr<IpamConfig> c = ParseIpamConfig(Net(std::move(ipam)));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.value_or(IpamConfig{});
  }
  std::string Holder(const std::string& ip) {
    std::ifstream in(dir_ + "/net/" + ip);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string dir_;
};

TEST_F(IpamTest, ParsesRangesAndDefaults) {
  IpamConfig c = Config(
      {{"ranges", {{{{"subnet", "10.88.0.0/16"}}}}},
       {"routes", {{{"dst", "0.0.0.0/0"}}, {{"dst", "10.9.0.0/16"}, {"gw", "10.88.0.254"}}}}});
  ASSERT_THAT(c.range_sets, SizeIs(1));
  const IpamRange& r = c.range_sets[0][0];
  EXPECT_EQ(FormatIp4(r.start), "10.88.0.1");
  EXPECT_EQ(FormatIp4(r.end), "10.88.255.254");
  EXPECT_EQ(FormatIp4(r.gateway), "10.88.0.1");
  EXPECT_EQ(c.dir, dir_ + "/net");
  ASSERT_THAT(c.routes, SizeIs(2));
  EXPECT_EQ(c.routes[1].dst.NetworkString(), "10.9.0.0/16");
  EXPECT_EQ(FormatIp4(c.routes[1].gw), "10.88.0.254");

  // The legacy single-range form and explicit bounds.
  c = Config({{"subnet", "192.168.5.0/24"},
              {"rangeStart", "192.168.5.10"},
              {"rangeEnd", "192.168.5.20"},
              {"gateway", "192.168.5.254"}});
  ASSERT_THAT(c.range_sets, SizeIs(1));
  EXPECT_EQ(FormatIp4(c.range_sets[0][0].start), "192.168.5.10");
  EXPECT_EQ(FormatIp4(c.range_sets[0][0].gateway), "192.168.5.254");

  // The default data dir.
  nlohmann::json net = Net({{"subnet", "10.1.0.0/24"}});
  net["ipam"].erase("dataDir");
  EXPECT_EQ(ParseIpamConfig(net)->dir, "/var/lib/cni/networks/net");
}

TEST_F(IpamTest, RejectsBadConfigurationsWithAConfigError) {
  for (nlohmann::json bad : {
           nlohmann::json{{"ranges", nlohmann::json::array()}},
           nlohmann::json{{"ranges", {{{{"subnet", "10.1.0.0"}}}}}},
           nlohmann::json{{"ranges", {{{{"subnet", "10.1.0.0/24"}, {"rangeStart", "10.2.0.1"}}}}}},
           nlohmann::json{
               {"subnet", "10.1.0.0/24"}, {"rangeStart", "10.1.0.9"}, {"rangeEnd", "10.1.0.5"}},
           nlohmann::json{{"subnet", "10.1.0.0/24"}, {"gateway", "10.7.0.1"}},
           nlohmann::json{{"ranges", {{{{"subnet", "10.1.0.0/24"}}, {{"subnet", "10.1.0.0/25"}}}}}},
           nlohmann::json{{"routes", {{{"dst", "0.0.0.0/0"}}}}},  // no subnet at all
       }) {
    absl::StatusOr<IpamConfig> c = ParseIpamConfig(Net(bad));
    EXPECT_FALSE(c.ok()) << bad;
    EXPECT_EQ(CniErrorCode(c.status()), kInvalidNetworkConfig) << c.status();
  }
  absl::StatusOr<IpamConfig> v6 = ParseIpamConfig(Net({{"subnet", "fd00::/64"}}));
  EXPECT_EQ(CniErrorCode(v6.status()), kUnsupportedField) << v6.status();
  EXPECT_FALSE(ParseIpamConfig({{"name", "n"}}).ok());
}

TEST_F(IpamTest, AllocatesSkipsTheGatewayIsIdempotentAndReleases) {
  IpamStore store(Config({{"subnet", "10.5.0.0/29"}}));  // hosts .1-.6, gateway .1
  absl::StatusOr<std::vector<Allocation>> a = store.Allocate("pod-a", "eth0");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_THAT(*a, SizeIs(1));
  EXPECT_EQ((*a)[0].address.ToString(), "10.5.0.2/29");
  EXPECT_EQ(FormatIp4((*a)[0].gateway), "10.5.0.1");
  EXPECT_EQ(Holder("10.5.0.2"), "pod-a\r\neth0");

  // Again: the same address. Another ifname of the same pod: another address.
  EXPECT_EQ(store.Allocate("pod-a", "eth0")->at(0).address.ToString(), "10.5.0.2/29");
  EXPECT_EQ(store.Allocate("pod-a", "net1")->at(0).address.ToString(), "10.5.0.3/29");
  EXPECT_THAT(*store.Held("pod-a", "eth0"), SizeIs(1));

  ASSERT_TRUE(store.Release("pod-a", "eth0").ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/net/10.5.0.2"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/net/10.5.0.3"));
  EXPECT_THAT(*store.Held("pod-a", "eth0"), SizeIs(0));
  EXPECT_TRUE(store.Release("pod-a", "eth0").ok());  // idempotent
  EXPECT_TRUE(IpamStore(Config({{"subnet", "10.6.0.0/24"}})).Release("never", "eth0").ok());
}

TEST_F(IpamTest, RoundRobinDoesNotReuseAReleasedAddressAtOnce) {
  IpamStore store(Config({{"subnet", "10.5.0.0/29"}}));
  EXPECT_EQ(store.Allocate("a", "eth0")->at(0).address.ToString(), "10.5.0.2/29");
  ASSERT_TRUE(store.Release("a", "eth0").ok());
  EXPECT_EQ(store.Allocate("b", "eth0")->at(0).address.ToString(), "10.5.0.3/29");
  // A new store (a new plugin process) continues from last_reserved_ip.0.
  IpamStore again(Config({{"subnet", "10.5.0.0/29"}}));
  EXPECT_EQ(again.Allocate("c", "eth0")->at(0).address.ToString(), "10.5.0.4/29");
}

TEST_F(IpamTest, ExhaustionIsAClearErrorAndWrapsAroundToFreedAddresses) {
  IpamStore store(Config({{"subnet", "10.5.0.0/29"}}));  // 5 usable: .2-.6
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store.Allocate(StrCat("p", i), "eth0").ok()) << i;
  }
  absl::StatusOr<std::vector<Allocation>> full = store.Allocate("p5", "eth0");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(CniErrorCode(full.status()), kAddressesExhausted);
  EXPECT_THAT(full.status().message(),
              HasSubstr("no IP addresses available in range set: 10.5.0.1-10.5.0.6"));
  ASSERT_TRUE(store.Release("p1", "eth0").ok());  // frees .3
  EXPECT_EQ(store.Allocate("p5", "eth0")->at(0).address.ToString(), "10.5.0.3/29");
}

TEST_F(IpamTest, OneAddressPerRangeSetAndRollbackWhenASetIsFull) {
  IpamStore store(Config(
      {{"ranges",
        {{{{"subnet", "10.7.0.0/24"}}}, {{{"subnet", "10.8.0.0/30"}}}}}}));  // second set: .2 only
  absl::StatusOr<std::vector<Allocation>> a = store.Allocate("a", "eth0");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_THAT(*a, SizeIs(2));
  EXPECT_EQ((*a)[0].address.ToString(), "10.7.0.2/24");
  EXPECT_EQ((*a)[1].address.ToString(), "10.8.0.2/30");
  absl::StatusOr<std::vector<Allocation>> b = store.Allocate("b", "eth0");
  ASSERT_FALSE(b.ok());
  // b's address from the first set was given back.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/net/10.7.0.3"));
}

TEST_F(IpamTest, GarbageCollectKeepsOnlyValidAttachments) {
  IpamStore store(Config({{"subnet", "10.5.0.0/24"}}));
  ASSERT_TRUE(store.Allocate("keep", "eth0").ok());
  ASSERT_TRUE(store.Allocate("drop", "eth0").ok());
  ASSERT_TRUE(store.GarbageCollect({{"keep", "eth0"}}).ok());
  EXPECT_THAT(*store.Held("keep", "eth0"), SizeIs(1));
  EXPECT_THAT(*store.Held("drop", "eth0"), SizeIs(0));
}

TEST_F(IpamTest, IpamResultJson) {
  IpamConfig c = Config({{"subnet", "10.5.0.0/24"},
                         {"routes", {{{"dst", "0.0.0.0/0"}}}},
                         {"dns", {{"nameservers", {"10.5.0.1"}}}}});
  nlohmann::json r = IpamResultJson(c, {{{0x0a050007, 24}, 0x0a050001}});
  EXPECT_EQ(r, nlohmann::json::parse(R"({"ips": [{"address": "10.5.0.7/24", "gateway": "10.5.0.1"}],
      "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.5.0.1"]}})"));
}

// Several processes (as several plugin executions would be) allocate at once from one data
// dir: the flock'ed lock file keeps every address unique.
TEST_F(IpamTest, ConcurrentProcessesNeverShareAnAddress) {
  constexpr int kProcs = 6, kEach = 15;
  const nlohmann::json ipam = {{"subnet", "10.9.0.0/24"}};
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      absl::StatusOr<IpamConfig> c = ParseIpamConfig(Net(ipam));
      if (!c.ok()) _exit(2);
      std::ofstream out(StrCat(dir_, "/got.", p));
      for (int i = 0; i < kEach; ++i) {
        IpamStore store(*c);  // a fresh store each time, as a fresh process would have
        absl::StatusOr<std::vector<Allocation>> a = store.Allocate(StrCat("p", p, "-", i), "eth0");
        if (!a.ok()) _exit(3);
        out << FormatIp4((*a)[0].address.address) << "\n";
      }
      out.close();
      _exit(out ? 0 : 4);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  std::set<std::string> all;
  int lines = 0;
  for (int p = 0; p < kProcs; ++p) {
    std::ifstream in(StrCat(dir_, "/got.", p));
    for (std::string ip; std::getline(in, ip);) {
      ++lines;
      all.insert(ip);
    }
  }
  EXPECT_EQ(lines, kProcs * kEach);
  EXPECT_EQ(all.size(), static_cast<size_t>(kProcs * kEach)) << "an address was handed out twice";
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/net")) {
    if (ParseIp4(e.path().filename().string())) ++files;
  }
  EXPECT_EQ(files, kProcs * kEach);
}

}  // namespace
}  // namespace berth::cni::plugins
