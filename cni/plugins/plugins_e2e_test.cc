// berth's CNI plugins (and, for comparison, Debian's from /usr/lib/cni) through berth's CNI
// caller in a throwaway network namespace: two pods ping each other over a bridge, a host
// port reaches a busybox httpd in a pod from 127.0.0.1, the bridge address, another host
// address, another pod and the pod itself; DEL leaves no veth, address file or iptables rule;
// a loopback-only pod has no way out; two berth bridges cannot reach each other.
//
// Root. The test process first moves into a network namespace of its own, the throwaway
// "host": bridges, veth host ends and every iptables rule live there and vanish with the
// process; the machine's own namespace and /etc are never touched. Pod namespaces are
// `ip netns` names with this process's pid ("bpl<pid><n>"), deleted even when a test fails,
// and left-overs of killed runs are swept at start. Servers run by pid and are SIGKILLed.
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

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

constexpr char kDebianDir[] = "/usr/lib/cni";
constexpr char kBusybox[] = "/bin/busybox";
constexpr char kOtherHostAddress[] = "198.51.100.7";  // on the test host's lo (TEST-NET-2)

std::string IpBinary() { return access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip"; }

struct Ran {
  bool ok = false;
  std::string out;
};
Ran RunCommand(std::vector<std::string> argv, absl::Duration timeout = absl::Seconds(30)) {
  absl::StatusOr<oci::SubprocessResult> r =
      oci::RunSubprocess({.argv = std::move(argv), .timeout = timeout});
  if (!r.ok()) return {false, std::string(r.status().message())};
  return {r->ExitCode() == 0 && !r->timed_out, r->out + r->err};
}

std::string Addr(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

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
  Ran Ip(std::vector<std::string> args) const {
    std::vector<std::string> argv = {IpBinary(), "-n", name_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  Ran Exec(std::vector<std::string> args) const {
    std::vector<std::string> argv = {IpBinary(), "netns", "exec", name_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  bool Ping(const std::string& ip) const {
    return Exec({kBusybox, "ping", "-c", "1", "-W", "2", ip}).ok;
  }

 private:
  std::string name_;
  bool created_ = false;
};

// busybox httpd in a pod serving one file; SIGKILLed by pid in the destructor (before the
// namespace it keeps alive is deleted: declare it after the PodNetns).
class PodHttpd {
 public:
  PodHttpd(const PodNetns& ns, const std::string& root, const std::string& body) {
    std::filesystem::create_directories(root);
    std::ofstream(root + "/index.html") << body;
    absl::StatusOr<pid_t> pid =
        oci::Spawn({.argv = {IpBinary(), "netns", "exec", ns.name(), kBusybox, "httpd", "-f", "-p",
                             "80", "-h", root}});
    pid_ = pid.value_or(-1);
  }
  ~PodHttpd() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

// GET http://<host>:<port>/ from the test host (ns == nullptr) or from a pod.
std::string Fetch(const PodNetns* ns, const std::string& host, int port) {
  // busybox nc, not wget: Debian's static busybox wget crashes in some environments.
  std::vector<std::string> argv = {
      kBusybox, "sh", "-c",
      StrCat("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | ", kBusybox, " nc -w 3 ", host, " ", port)};
  Ran r = ns ? ns->Exec(argv) : RunCommand(argv);
  return r.ok ? r.out : StrCat("<failed: ", r.out, ">");
}

// iptables-save of the test host without counters and comment lines: to compare states.
std::string IptablesState() {
  std::string out = RunCommand({"/usr/sbin/iptables-save"}).out;
  std::istringstream in(out);
  std::string result;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    size_t bracket = line.find(" [");
    if (line[0] == ':' && bracket != std::string::npos) line = line.substr(0, bracket);
    result += line + "\n";
  }
  return result;
}

void SweepStaleNamespaces() {
  DIR* d = opendir("/run/netns");
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("bpl", 0) != 0) continue;
    pid_t pid = atoi(name.c_str() + 3);
    if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  closedir(d);
  for (const std::string& name : stale) RunCommand({IpBinary(), "netns", "delete", name});
}

// One set of plugins: berth's (from this test's runfiles) or Debian's.
struct PluginSet {
  std::string label;
  bool berth = false;
  std::string bridge, ipam, portmap, loopback;
};

std::string BerthPluginDir() {
  const char* srcdir = getenv("TEST_SRCDIR");
  return StrCat(srcdir ? srcdir : ".", "/berth/cni/plugins");
}

class PluginsE2eTest : public ::testing::TestWithParam<PluginSet> {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) {
      skip_reason_ = "needs root (network namespaces, bridges, iptables)";
      return;
    }
    if (access(kBusybox, X_OK) != 0) {
      skip_reason_ = "/bin/busybox is missing: install busybox-static";
      return;
    }
    SweepStaleNamespaces();
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    const PluginSet& set = GetParam();
    bin_dir_ = set.berth ? BerthPluginDir() : kDebianDir;
    for (const std::string& p : {set.bridge, set.ipam, set.portmap, set.loopback}) {
      if (access(StrCat(bin_dir_, "/", p).c_str(), X_OK) != 0) {
        GTEST_SKIP() << bin_dir_ << "/" << p << " is missing"
                     << (set.berth ? "" : ": install Debian's containernetworking-plugins");
      }
    }
    // A fresh throwaway host per test, so one plugin set's rules cannot help or hinder the
    // other's: this thread (gtest runs every test on it) and what it spawns. The previous
    // one, with its bridges and rules, goes away with its last user.
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << strerror(errno);
    ASSERT_TRUE(RunCommand({IpBinary(), "link", "set", "lo", "up"}).ok);
    ASSERT_TRUE(
        RunCommand({IpBinary(), "addr", "add", StrCat(kOtherHostAddress, "/32"), "dev", "lo"}).ok);
    std::string tmpl = "/tmp/berth-cni-plugins-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    pid_ = std::to_string(getpid());
  }

  void TearDown() override {
    for (const std::string& b : bridges_) RunCommand({IpBinary(), "link", "delete", b});
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // A fresh bridge network: "bpl<pid><n>" on 10.<n>.<pid>.0/24; returns its name (= bridge).
  struct Net {
    std::string name, prefix;  // prefix: "10.x.y." (the subnet without the last byte)
    std::unique_ptr<Network> network;
  };
  Net BridgeNetwork(const std::string& cidr_last = "0/24", const std::string& version = "1.0.0") {
    int n = ++counter_;
    Net net;
    net.name = StrCat("bpl", pid_, "n", n);
    net.prefix = StrCat("10.", 200 + n, ".", getpid() % 250 + 1, ".");
    bridges_.push_back(net.name);
    const PluginSet& set = GetParam();
    nlohmann::json conf = {
        {"cniVersion", version},
        {"name", net.name},
        {"plugins",
         {{{"type", set.bridge},
           {"bridge", net.name},
           {"isGateway", true},
           {"ipMasq", true},
           {"hairpinMode", true},
           {"ipam",
            {{"type", set.ipam},
             {"ranges", {{{{"subnet", net.prefix + cidr_last}}}}},
             {"routes", {{{"dst", "0.0.0.0/0"}}}},
             {"dataDir", dir_ + "/ipam"}}}},
          {{"type", set.portmap}, {"capabilities", {{"portMappings", true}}}, {"snat", true}}}}};
    absl::StatusOr<NetworkConfig> parsed = ParseNetworkConfig(conf.dump(), "test");
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    net.network = std::make_unique<Network>(*parsed, Options());
    return net;
  }
  std::unique_ptr<Network> LoopbackNetwork() {
    nlohmann::json conf = {
        {"cniVersion", "1.0.0"}, {"name", StrCat("lo", pid_)}, {"type", GetParam().loopback}};
    return std::make_unique<Network>(*ParseNetworkConfig(conf.dump(), "test"), Options());
  }
  CniOptions Options() const {
    return {
        .bin_dirs = {bin_dir_}, .cache_dir = dir_ + "/cache", .plugin_timeout = absl::Seconds(30)};
  }
  static Attachment Pod(const std::string& id, const PodNetns& ns,
                        std::vector<PortMapping> ports = {}) {
    return {.container_id = id,
            .netns = ns.path(),
            .ifname = "eth0",
            .args = {{"K8S_POD_NAME", id}, {"K8S_POD_NAMESPACE", "default"}},
            .runtime_config = {.port_mappings = std::move(ports)}};
  }
  PodNetns NewNetns() { return PodNetns(StrCat("bpl", pid_, "p", ++counter_)); }
  static std::string HostVeth(const Result& r, const std::string& bridge) {
    for (const Interface& itf : r.interfaces) {
      if (itf.sandbox.empty() && itf.name != bridge) return itf.name;
    }
    return "";
  }
  std::string IpamFile(const Net& net, const std::string& cidr) const {
    return StrCat(dir_, "/ipam/", net.name, "/", Addr(cidr));
  }

  static std::string skip_reason_;
  static int counter_;
  std::string bin_dir_, dir_, pid_;
  std::vector<std::string> bridges_;
};

std::string PluginsE2eTest::skip_reason_;
int PluginsE2eTest::counter_ = 0;

TEST_P(PluginsE2eTest, PodsPingAndHostPortsReachAPodThenDelLeavesNothing) {
  Net net = BridgeNetwork();
  std::unique_ptr<Network> lo = LoopbackNetwork();
  PodNetns ns_a = NewNetns(), ns_b = NewNetns(), ns_c = NewNetns();
  ASSERT_TRUE(ns_a.created() && ns_b.created() && ns_c.created());
  const std::string gateway = net.prefix + "1";

  ASSERT_TRUE(lo->Add({.container_id = "pod-a", .netns = ns_a.path(), .ifname = "lo"}).ok());
  absl::StatusOr<Result> a =
      net.network->Add(Pod("pod-a", ns_a,
                           {{.host_port = 18080, .container_port = 80, .protocol = "tcp"},
                            {.host_port = 15353, .container_port = 53, .protocol = "udp"}}));
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<Result> b = net.network->Add(Pod("pod-b", ns_b));
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_THAT(a->ips, SizeIs(1));
  ASSERT_THAT(b->ips, SizeIs(1));
  const std::string ip_a = Addr(a->ips[0].address), ip_b = Addr(b->ips[0].address);
  EXPECT_NE(ip_a, ip_b);
  EXPECT_EQ(a->ips[0].gateway, gateway);
  ASSERT_TRUE(a->ips[0].interface.has_value());
  EXPECT_EQ(a->interfaces.at(*a->ips[0].interface).name, "eth0");
  EXPECT_EQ(a->interfaces.at(*a->ips[0].interface).sandbox, ns_a.path());
  EXPECT_THAT(ns_a.Ip({"-o", "addr", "show", "dev", "eth0"}).out,
              HasSubstr("inet " + a->ips[0].address));
  EXPECT_THAT(ns_a.Ip({"route", "show", "default"}).out, HasSubstr("via " + gateway));
  const std::string veth_a = HostVeth(*a, net.name);
  ASSERT_FALSE(veth_a.empty());
  EXPECT_THAT(RunCommand({IpBinary(), "link", "show", veth_a}).out,
              HasSubstr("master " + net.name));
  EXPECT_TRUE(std::filesystem::exists(IpamFile(net, a->ips[0].address)));
  EXPECT_THAT(IptablesState(), HasSubstr("--to-destination " + ip_a + ":53"));  // udp too

  // CHECK. Debian's portmap 1.1.1 fails it for IPv4-only pods (containernetworking/plugins#819).
  absl::Status check = net.network->Check(Pod("pod-a", ns_a));
  if (GetParam().berth) {
    EXPECT_TRUE(check.ok()) << check;
  } else if (!check.ok()) {
    EXPECT_THAT(check.message(), HasSubstr("could not check ipv6 dnat")) << check;
  }

  // Pod to pod, both ways.
  EXPECT_TRUE(ns_a.Ping(ip_b));
  EXPECT_TRUE(ns_b.Ping(ip_a));

  // A host port, from everywhere it should be reachable.
  PodHttpd httpd(ns_a, dir_ + "/www", "hello from pod-a\n");
  ASSERT_TRUE(httpd.started());
  std::string direct;
  for (int i = 0; i < 50 && direct.find("hello") == std::string::npos; ++i) {
    direct = Fetch(nullptr, ip_a, 80);
    if (direct.find("hello") == std::string::npos) usleep(100'000);
  }
  ASSERT_THAT(direct, HasSubstr("hello from pod-a"));
  EXPECT_THAT(Fetch(nullptr, "127.0.0.1", 18080), HasSubstr("hello from pod-a"));
  EXPECT_THAT(Fetch(nullptr, gateway, 18080), HasSubstr("hello from pod-a"));
  EXPECT_THAT(Fetch(nullptr, kOtherHostAddress, 18080), HasSubstr("hello from pod-a"));
  EXPECT_THAT(Fetch(&ns_b, ip_a, 80), HasSubstr("hello from pod-a"));
  EXPECT_THAT(Fetch(&ns_b, gateway, 18080), HasSubstr("hello from pod-a"));  // another pod
  EXPECT_THAT(Fetch(&ns_a, gateway, 18080), HasSubstr("hello from pod-a"));  // hairpin

  // ADD then DEL of a third pod with its own host port leaves iptables exactly as it was.
  const std::string before = IptablesState();
  absl::StatusOr<Result> c = net.network->Add(
      Pod("pod-c", ns_c, {{.host_port = 18082, .container_port = 80, .protocol = "tcp"}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(IptablesState(), HasSubstr("--dport 18082"));
  ASSERT_TRUE(net.network->Del(Pod("pod-c", ns_c)).ok());
  EXPECT_EQ(IptablesState(), before);
  EXPECT_FALSE(std::filesystem::exists(IpamFile(net, c->ips[0].address)));

  // DEL of pod-a: its veth, address file, rules and host port go; DEL again is fine.
  ASSERT_TRUE(net.network->Del(Pod("pod-a", ns_a)).ok());
  EXPECT_FALSE(ns_a.Ip({"link", "show", "eth0"}).ok);
  EXPECT_FALSE(RunCommand({IpBinary(), "link", "show", veth_a}).ok);
  EXPECT_FALSE(std::filesystem::exists(IpamFile(net, a->ips[0].address)));
  std::string after = IptablesState();
  EXPECT_THAT(after, Not(HasSubstr(ip_a + "/32")));
  EXPECT_THAT(after, Not(HasSubstr(ip_a + ":")));
  EXPECT_THAT(after, Not(HasSubstr("18080")));
  EXPECT_THAT(after, Not(HasSubstr("pod-a")));
  EXPECT_THAT(Fetch(nullptr, "127.0.0.1", 18080), HasSubstr("<failed"));
  EXPECT_TRUE(net.network->Del(Pod("pod-a", ns_a)).ok());
  EXPECT_TRUE(lo->Del({.container_id = "pod-a", .netns = ns_a.path(), .ifname = "lo"}).ok());

  // DEL of pod-b after its namespace is gone, knowing only the ids (a restarted daemon).
  const std::string veth_b = HostVeth(*b, net.name);
  ns_b.Delete();
  ASSERT_TRUE(
      net.network->Del({.container_id = "pod-b", .netns = ns_b.path(), .ifname = "eth0"}).ok());
  EXPECT_FALSE(RunCommand({IpBinary(), "link", "show", veth_b}).ok);
  EXPECT_FALSE(std::filesystem::exists(IpamFile(net, b->ips[0].address)));
  if (GetParam().berth) {
    // Debian's bridge 1.1.1 skips its masquerade teardown when CNI_NETNS is empty (the
    // namespace is gone) and leaks that rule; berth-bridge finds its chain by name.
    EXPECT_THAT(IptablesState(), Not(HasSubstr(ip_b)));
  }
  EXPECT_THAT(*net.network->CachedAttachments(), IsEmpty());
}

TEST_P(PluginsE2eTest, ALoopbackOnlyPodHasJustLoAndNoRouteOut) {
  std::unique_ptr<Network> lo = LoopbackNetwork();
  PodNetns ns = NewNetns();
  ASSERT_TRUE(ns.created());
  Attachment att{.container_id = "pod-lo", .netns = ns.path(), .ifname = "lo"};
  absl::StatusOr<Result> r = lo->Add(att);
  ASSERT_TRUE(r.ok()) << r.status();
  Ran links = ns.Ip({"-o", "link", "show"});
  ASSERT_TRUE(links.ok);
  EXPECT_EQ(std::count(links.out.begin(), links.out.end(), '\n'), 1) << links.out;
  EXPECT_THAT(links.out, HasSubstr("lo: <LOOPBACK,UP"));
  EXPECT_EQ(ns.Ip({"route", "show"}).out, "");
  EXPECT_TRUE(ns.Ping("127.0.0.1"));
  EXPECT_FALSE(ns.Ping(kOtherHostAddress));
  EXPECT_TRUE(lo->Check(att).ok());
  EXPECT_TRUE(lo->Del(att).ok());
  EXPECT_TRUE(lo->Del(att).ok());
}

// What only berth's plugins do: isolate bridges, speak CNI 1.1 (Debian's 1.1.1 plugins do
// neither), so these run for berth's set alone rather than skip for Debian's.
class BerthPluginsE2eTest : public PluginsE2eTest {};

TEST_P(BerthPluginsE2eTest, TwoBridgeNetworksCannotReachEachOther) {
  Net one = BridgeNetwork(), two = BridgeNetwork();
  PodNetns ns_x = NewNetns(), ns_y = NewNetns();
  ASSERT_TRUE(ns_x.created() && ns_y.created());
  absl::StatusOr<Result> x = one.network->Add(Pod("pod-x", ns_x));
  ASSERT_TRUE(x.ok()) << x.status();
  absl::StatusOr<Result> y = two.network->Add(Pod("pod-y", ns_y));
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_TRUE(ns_x.Ping(one.prefix + "1"));  // each reaches its own gateway...
  EXPECT_TRUE(ns_y.Ping(two.prefix + "1"));
  EXPECT_FALSE(ns_x.Ping(Addr(y->ips[0].address)));  // ...but not the other network
  EXPECT_FALSE(ns_y.Ping(Addr(x->ips[0].address)));
  EXPECT_TRUE(one.network->Del(Pod("pod-x", ns_x)).ok());
  EXPECT_TRUE(two.network->Del(Pod("pod-y", ns_y)).ok());
}

TEST_P(PluginsE2eTest, AnExhaustedRangeReachesTheCallerAndNothingLeaks) {
  Net net = BridgeNetwork("0/30");  // hosts .1 (the gateway) and .2
  PodNetns ns_1 = NewNetns(), ns_2 = NewNetns();
  ASSERT_TRUE(ns_1.created() && ns_2.created());
  ASSERT_TRUE(net.network->Add(Pod("pod-1", ns_1)).ok());
  absl::StatusOr<Result> r = net.network->Add(Pod("pod-2", ns_2));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no IP addresses available"));
  EXPECT_FALSE(ns_2.Ip({"link", "show", "eth0"}).ok);
  EXPECT_TRUE(net.network->Del(Pod("pod-1", ns_1)).ok());
}

// CNI 1.1 (berth's plugins only; Debian's speak up to 1.0.0): STATUS, and GC releasing what
// an attachment whose cache entry was lost still holds (address file, iptables chains).
TEST_P(BerthPluginsE2eTest, OnePointOneStatusAndGcReleaseWhatNoAttachmentHolds) {
  Net net = BridgeNetwork("0/24", "1.1.0");
  ASSERT_EQ(net.network->NegotiatedVersion().value_or("?"), "1.1.0");
  EXPECT_TRUE(net.network->Status().ok()) << net.network->Status();
  PodNetns ns_k = NewNetns(), ns_l = NewNetns();
  ASSERT_TRUE(ns_k.created() && ns_l.created());
  absl::StatusOr<Result> kept = net.network->Add(
      Pod("pod-kept", ns_k, {{.host_port = 18090, .container_port = 80, .protocol = "tcp"}}));
  ASSERT_TRUE(kept.ok()) << kept.status();
  absl::StatusOr<Result> lost = net.network->Add(
      Pod("pod-lost", ns_l, {{.host_port = 18091, .container_port = 80, .protocol = "tcp"}}));
  ASSERT_TRUE(lost.ok()) << lost.status();
  // The runtime lost pod-lost's cache entry: only the plugins' GC can find what it holds.
  ASSERT_TRUE(std::filesystem::remove(StrCat(dir_, "/cache/results/", net.name, "-pod-lost-eth0")));
  absl::Status gc = net.network->GarbageCollect({Pod("pod-kept", ns_k)});
  ASSERT_TRUE(gc.ok()) << gc;
  EXPECT_FALSE(std::filesystem::exists(IpamFile(net, lost->ips[0].address)));
  EXPECT_TRUE(std::filesystem::exists(IpamFile(net, kept->ips[0].address)));
  std::string state = IptablesState();
  EXPECT_THAT(state, Not(HasSubstr("pod-lost")));
  EXPECT_THAT(state, Not(HasSubstr("18091")));
  EXPECT_THAT(state, HasSubstr("berth:" + net.name + ":pod-kept"));
  EXPECT_THAT(state, HasSubstr("18090"));
  EXPECT_TRUE(net.network->Del(Pod("pod-kept", ns_k)).ok());
}

INSTANTIATE_TEST_SUITE_P(PluginSets, PluginsE2eTest,
                         ::testing::Values(PluginSet{.label = "berth",
                                                     .berth = true,
                                                     .bridge = "berth-bridge",
                                                     .ipam = "berth-host-local",
                                                     .portmap = "berth-portmap",
                                                     .loopback = "berth-loopback"},
                                           PluginSet{.label = "debian",
                                                     .berth = false,
                                                     .bridge = "bridge",
                                                     .ipam = "host-local",
                                                     .portmap = "portmap",
                                                     .loopback = "loopback"}),
                         [](const ::testing::TestParamInfo<PluginSet>& info) {
                           return info.param.label;
                         });
INSTANTIATE_TEST_SUITE_P(PluginSets, BerthPluginsE2eTest,
                         ::testing::Values(PluginSet{.label = "berth",
                                                     .berth = true,
                                                     .bridge = "berth-bridge",
                                                     .ipam = "berth-host-local",
                                                     .portmap = "berth-portmap",
                                                     .loopback = "berth-loopback"}),
                         [](const ::testing::TestParamInfo<PluginSet>& info) {
                           return info.param.label;
                         });

}  // namespace
}  // namespace berth::cni
