// The CNI caller with Debian's real plugins from /usr/lib/cni (bridge, host-local, portmap,
// loopback): pods in two network namespaces get addresses on one bridge and reach each
// other; DEL, a DEL after the namespace is gone and GC leave no veth, address, iptables rule
// or cache entry behind.
//
// Root. The test process first moves into a network namespace of its own, the throwaway
// "host" of docs/cni.md: the bridge, the host ends of the veths and portmap's rules live
// there and vanish with the process, so the machine's own network is never touched. Pod
// namespaces are `ip netns` names with this process's pid in them, deleted even when a test
// fails (and left-overs of killed runs are swept at start).
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cni/cni.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/base/strings.h"
#include "runtime/oci/subprocess.h"

namespace berth::cni {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kPluginDir[] = "/usr/lib/cni";

std::string IpBinary() { return access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip"; }

// Runs a command; "" and a failure on error, else its stdout.
struct Ran {
  bool ok = false;
  std::string out;
};
Ran RunCommand(std::vector<std::string> argv) {
  absl::StatusOr<oci::SubprocessResult> r =
      oci::RunSubprocess({.argv = std::move(argv), .timeout = absl::Seconds(30)});
  if (!r.ok()) return {false, std::string(r.status().message())};
  return {r->ExitCode() == 0 && !r->timed_out, r->out + r->err};
}

// A pod network namespace, /run/netns/<name>, deleted by the destructor.
class PodNetns {
 public:
  explicit PodNetns(std::string name) : name_(std::move(name)) {
    created_ = RunCommand({IpBinary(), "netns", "add", name_}).ok;
  }
  ~PodNetns() { Delete(); }
  void Delete() {
    if (created_) RunCommand({IpBinary(), "netns", "delete", name_});
    created_ = false;
  }
  bool created() const { return created_; }
  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  // `ip <args>` inside the namespace.
  Ran Ip(std::vector<std::string> args) const {
    std::vector<std::string> argv = {IpBinary(), "-n", name_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

 private:
  std::string name_;
  bool created_ = false;
};

// Namespaces left by an earlier run that was killed: "bcni<pid><letter>" of a dead pid.
void SweepStaleNamespaces() {
  DIR* d = opendir("/run/netns");
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("bcni", 0) != 0) continue;
    pid_t pid = atoi(name.c_str() + 4);
    if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  closedir(d);
  for (const std::string& name : stale) RunCommand({IpBinary(), "netns", "delete", name});
}

class CniE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) {
      skip_reason_ = "needs root (network namespaces, bridges, iptables)";
      return;
    }
    for (const char* plugin : {"bridge", "host-local", "portmap", "loopback"}) {
      if (access(StrCat(kPluginDir, "/", plugin).c_str(), X_OK) != 0) {
        skip_reason_ = StrCat(kPluginDir, "/", plugin,
                              " is missing: install Debian's containernetworking-plugins");
        return;
      }
    }
    SweepStaleNamespaces();
    // The throwaway host: this thread (gtest runs every test on it) and what it spawns.
    if (unshare(CLONE_NEWNET) != 0) {
      skip_reason_ = StrCat("unshare(CLONE_NEWNET): ", strerror(errno));
      return;
    }
    RunCommand({IpBinary(), "link", "set", "lo", "up"});
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    std::string tmpl = "/tmp/berth-cni-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/conf");
    pid_ = std::to_string(getpid());
    bridge_ = "bcni" + pid_;
    subnet_prefix_ = StrCat("10.222.", getpid() % 250 + 1, ".");
    std::ofstream(dir_ + "/conf/10-bridge.conflist")
        << StrCat(R"({
      "cniVersion": "1.0.0", "name": ")",
                  bridge_, R"(", "plugins": [
        {"type": "bridge", "bridge": ")",
                  bridge_, R"(", "isGateway": true, "ipMasq": true,
         "hairpinMode": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": ")",
                  subnet_prefix_, R"(0/24"}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ")",
                  dir_, R"(/ipam"}},
        {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]})");
    std::ofstream(dir_ + "/conf/99-loopback.conf")
        << R"({"cniVersion": "1.0.0", "name": "lo)" << pid_ << R"(", "type": "loopback"})";
  }

  void TearDown() override {
    if (!bridge_.empty()) RunCommand({IpBinary(), "link", "delete", bridge_});
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  CniOptions Options() const {
    return {.bin_dirs = {kPluginDir},
            .cache_dir = dir_ + "/cache",
            .plugin_timeout = absl::Seconds(30)};
  }
  Attachment Pod(const std::string& id, const PodNetns& ns) const {
    return {.container_id = id,
            .netns = ns.path(),
            .ifname = "eth0",
            .args = {{"K8S_POD_NAME", id},
                     {"K8S_POD_NAMESPACE", "default"},
                     {"K8S_POD_INFRA_CONTAINER_ID", id}},
            .runtime_config = {
                .port_mappings = {{.host_port = 18080, .container_port = 80, .protocol = "tcp"}}}};
  }
  // The host end of the pod's veth: the interface of the result outside any sandbox that is
  // not the bridge.
  std::string HostVeth(const Result& r) const {
    for (const Interface& itf : r.interfaces) {
      if (itf.sandbox.empty() && itf.name != bridge_) return itf.name;
    }
    return "";
  }
  std::string IpamFile(const std::string& address) const {
    return StrCat(dir_, "/ipam/", bridge_, "/", address.substr(0, address.find('/')));
  }
  std::string CacheFile(const std::string& id) const {
    return StrCat(dir_, "/cache/results/", bridge_, "-", id, "-eth0");
  }
  static std::string NatRules() {
    return RunCommand({"/usr/sbin/iptables", "-t", "nat", "-S"}).out;
  }

  static std::string skip_reason_;
  std::string dir_, pid_, bridge_, subnet_prefix_;
};

std::string CniE2eTest::skip_reason_;

TEST_F(CniE2eTest, TwoPodsOnABridgeThenDelGcAndNothingLeft) {
  LoadedConfigs loaded = LoadConfigDir(dir_ + "/conf");
  ASSERT_THAT(loaded.errors, IsEmpty());
  ASSERT_THAT(loaded.networks, SizeIs(2));
  Network bridge(loaded.networks[0], Options());
  Network loopback(loaded.networks[1], Options());
  ASSERT_EQ(bridge.name(), bridge_);
  ASSERT_TRUE(bridge.Status().ok()) << bridge.Status();
  EXPECT_EQ(bridge.NegotiatedVersion().value_or("?"), "1.0.0");

  PodNetns ns_a("bcni" + pid_ + "a"), ns_b("bcni" + pid_ + "b"), ns_c("bcni" + pid_ + "c");
  ASSERT_TRUE(ns_a.created() && ns_b.created() && ns_c.created());

  // ADD: eth0 on the bridge with an address from the range, lo up, the port mapped.
  absl::StatusOr<Result> a = bridge.Add(Pod("pod-a", ns_a));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_THAT(a->ips, SizeIs(1));
  const std::string ip_a = a->ips[0].address;
  EXPECT_THAT(ip_a, HasSubstr(subnet_prefix_));
  EXPECT_EQ(a->ips[0].gateway, subnet_prefix_ + "1");
  ASSERT_TRUE(a->ips[0].interface.has_value());
  EXPECT_EQ(a->interfaces.at(*a->ips[0].interface).name, "eth0");
  EXPECT_EQ(a->interfaces.at(*a->ips[0].interface).sandbox, ns_a.path());
  const std::string veth_a = HostVeth(*a);
  ASSERT_FALSE(veth_a.empty());
  EXPECT_THAT(ns_a.Ip({"-o", "addr", "show", "dev", "eth0"}).out, HasSubstr("inet " + ip_a));
  EXPECT_THAT(ns_a.Ip({"route", "show", "default"}).out, HasSubstr(subnet_prefix_ + "1"));
  EXPECT_TRUE(RunCommand({IpBinary(), "link", "show", veth_a}).ok);
  EXPECT_TRUE(std::filesystem::exists(IpamFile(ip_a)));
  EXPECT_THAT(NatRules(), HasSubstr("--dport 18080"));
  ASSERT_TRUE(std::filesystem::exists(CacheFile("pod-a")));

  Attachment lo_a{.container_id = "pod-a", .netns = ns_a.path(), .ifname = "lo"};
  ASSERT_TRUE(loopback.Add(lo_a).ok());
  EXPECT_THAT(ns_a.Ip({"link", "show", "lo"}).out, HasSubstr(",UP"));

  // CHECK runs bridge, then portmap. Debian's portmap 1.1.1 fails CHECK on an IPv4-only pod,
  // looking for IPv6 rules it never made (containernetworking/plugins#819, fixed upstream);
  // an error from it says bridge's CHECK passed.
  absl::Status check = bridge.Check(Pod("pod-a", ns_a));
  if (!check.ok()) {
    EXPECT_THAT(check.message(), HasSubstr("plugin portmap CHECK (container pod-a, eth0): could "
                                           "not check ipv6 dnat"))
        << check;
  }
  EXPECT_TRUE(loopback.Check(lo_a).ok()) << loopback.Check(lo_a);

  // A second pod on the same bridge is reachable from the first.
  absl::StatusOr<Result> b = bridge.Add(Pod("pod-b", ns_b));
  ASSERT_TRUE(b.ok()) << b.status();
  const std::string ip_b = b->ips[0].address;
  EXPECT_NE(ip_a, ip_b);
  if (access("/bin/busybox", X_OK) == 0) {
    std::string target = ip_b.substr(0, ip_b.find('/'));
    Ran ping = RunCommand({IpBinary(), "netns", "exec", ns_a.name(), "/bin/busybox", "ping", "-c",
                           "1", "-W", "3", target});
    EXPECT_TRUE(ping.ok) << ping.out;
  } else {
    ADD_FAILURE() << "/bin/busybox is missing (busybox-static): no ping between the pods";
  }
  absl::StatusOr<std::vector<Attachment>> cached = bridge.CachedAttachments();
  ASSERT_TRUE(cached.ok()) << cached.status();
  ASSERT_THAT(*cached, SizeIs(2));
  EXPECT_EQ((*cached)[0].container_id, "pod-a");
  EXPECT_EQ((*cached)[1].netns, ns_b.path());

  // DEL with the namespace alive: eth0, the veth, the address, the rule and the entry go.
  ASSERT_TRUE(bridge.Del(Pod("pod-a", ns_a)).ok());
  EXPECT_FALSE(ns_a.Ip({"link", "show", "eth0"}).ok);
  EXPECT_FALSE(RunCommand({IpBinary(), "link", "show", veth_a}).ok);
  EXPECT_FALSE(std::filesystem::exists(IpamFile(ip_a)));
  EXPECT_FALSE(std::filesystem::exists(CacheFile("pod-a")));
  EXPECT_TRUE(bridge.Del(Pod("pod-a", ns_a)).ok());  // again: idempotent
  ASSERT_TRUE(loopback.Del(lo_a).ok());

  // DEL after the namespace is gone, knowing only the ids (a restarted daemon).
  const std::string veth_b = HostVeth(*b);
  ns_b.Delete();
  Network restarted(LoadConfigDir(dir_ + "/conf").networks[0], Options());
  ASSERT_TRUE(
      restarted.Del({.container_id = "pod-b", .netns = ns_b.path(), .ifname = "eth0"}).ok());
  EXPECT_FALSE(RunCommand({IpBinary(), "link", "show", veth_b}).ok);
  EXPECT_FALSE(std::filesystem::exists(IpamFile(ip_b)));
  EXPECT_FALSE(std::filesystem::exists(CacheFile("pod-b")));
  EXPECT_THAT(NatRules(), Not(HasSubstr("--dport 18080")));

  // GC: an attachment nobody claims is deleted.
  absl::StatusOr<Result> c = bridge.Add(Pod("pod-c", ns_c));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(bridge.GarbageCollect({}).ok());
  EXPECT_FALSE(ns_c.Ip({"link", "show", "eth0"}).ok);
  EXPECT_FALSE(std::filesystem::exists(IpamFile(c->ips[0].address)));
  EXPECT_THAT(*bridge.CachedAttachments(), IsEmpty());
}

TEST_F(CniE2eTest, APluginErrorReachesTheCallerAndNothingLeaks) {
  // A second network whose range is the first one's gateway only: host-local cannot
  // allocate, the bridge plugin reports its error JSON, and the undoing DEL cleans up.
  std::ofstream(dir_ + "/conf/10-bridge.conflist")
      << StrCat(R"({
      "cniVersion": "1.0.0", "name": ")",
                bridge_, R"(", "plugins": [
        {"type": "bridge", "bridge": ")",
                bridge_, R"(", "isGateway": true,
         "ipam": {"type": "host-local", "dataDir": ")",
                dir_, R"(/ipam",
                  "ranges": [[{"subnet": ")",
                subnet_prefix_, R"(0/24", "rangeStart": ")", subnet_prefix_, R"(1",
                               "rangeEnd": ")",
                subnet_prefix_, R"(1"}]]}}]})");
  LoadedConfigs loaded = LoadConfigDir(dir_ + "/conf");
  ASSERT_THAT(loaded.errors, IsEmpty());
  Network bridge(loaded.networks[0], Options());
  PodNetns ns("bcni" + pid_ + "e");
  ASSERT_TRUE(ns.created());
  absl::StatusOr<Result> r = bridge.Add(Pod("pod-e", ns));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("plugin bridge ADD (container pod-e, eth0)"));
  EXPECT_THAT(r.status().message(), HasSubstr("(CNI error"));
  EXPECT_FALSE(ns.Ip({"link", "show", "eth0"}).ok);
  EXPECT_FALSE(std::filesystem::exists(CacheFile("pod-e")));
}

}  // namespace
}  // namespace berth::cni
