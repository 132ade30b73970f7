// Pods on CNI networks through berthd, with berth's own plugins (cni/plugins) and with
// Debian's standard ones: addresses in PodSandboxStatus and /etc/hosts, pod-to-pod ping,
// loopback-only and host-network pods, hostPort reached from 127.0.0.1, from the host's
// address and from another pod, a pod on two networks, two bridges that cannot reach each
// other, kill -9 of berthd in the middle of a CNI ADD, and 100 run/stop cycles, none of
// which may leave a veth, an address allocation or an iptables rule behind.
//
// Every test runs in a network namespace of its own (unshare on the test's thread, which
// the registry and berthd inherit): bridges, veths and iptables rules live and die there,
// and the machine's own network is never touched.
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "e2e/berthd_fixture.h"
#include "e2e/busybox_node.h"
#include "e2e/http_probe.h"
#include "gtest/gtest.h"
#include "runtime/base/strings.h"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;

// The "host" address of the private namespace, on an interface of its own (a bridge with
// no ports: this kernel has no dummy driver).
constexpr char kHostIp[] = "192.0.2.10";

struct PluginSet {
  std::string name;
  std::string bridge, ipam, portmap;
  bool loopback = false;  // append berth-loopback to each list
};

void PrintTo(const PluginSet& set, std::ostream* os) { *os << set.name; }

const PluginSet kBerth{"berth", "berth-bridge", "berth-host-local", "berth-portmap", true};
const PluginSet kDebian{"debian", "bridge", "host-local", "portmap", false};

std::string Shell(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

// The namespace's iptables rules, without counters: what must come back after cleanup.
std::string IptablesRules() {
  std::string rules;
  std::istringstream in(Shell("iptables-save 2>/dev/null"));
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == ':') line = line.substr(0, line.find(' '));  // ":CHAIN POLICY [0:0]"
    rules += line + "\n";
  }
  return rules;
}

class NetworkTest : public ::testing::TestWithParam<PluginSet> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: network namespaces, bridges and iptables";
    if (GetParam().name == "debian" && access("/usr/lib/cni/bridge", X_OK) != 0) {
      FAIL() << "/usr/lib/cni/bridge is missing: bazel/install-deps.sh installs "
                "containernetworking-plugins";
    }
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << strerror(errno);
    ASSERT_EQ(system("ip link set lo up && ip link add hostif0 type bridge && "
                     "ip addr add 192.0.2.10/24 dev hostif0 && ip link set hostif0 up"),
              0);
    rules_before_ = IptablesRules();

    char conf[] = "/tmp/berth-net-conf-XXXXXX";
    ASSERT_NE(mkdtemp(conf), nullptr);
    conf_dir_ = conf;
    // Two bridge networks; the first (by file name) is the default.
    WriteNetwork("10-net-a.conflist", "net-a", "bta", "10.231.1.0/24");
    WriteNetwork("20-net-b.conflist", "net-b", "btb", "10.231.2.0/24");
    absl::StatusOr<BusyboxNode> node =
        StartBusyboxNode(StrCat("[network]\nconf_dir = \"", conf_dir_, "\"\n"));
    ASSERT_TRUE(node.ok()) << node.status();
    registry_ = std::move(node->registry);
    berthd_ = std::move(node->berthd);
  }

  void TearDown() override {
    if (berthd_ != nullptr) {
      for (const std::string& pod : pods_) RemovePod(pod);
      EXPECT_EQ(LeakCensus(berthd_->dir()), std::vector<std::string>{});
      ExpectNothingAttached();
      berthd_.reset();
    }
    registry_.reset();
    if (!conf_dir_.empty()) std::filesystem::remove_all(conf_dir_);
    // The namespace, its bridges and rules go with the last process in it.
  }

  void WriteNetwork(const std::string& file, const std::string& name, const std::string& bridge,
                    const std::string& subnet) {
    const PluginSet& set = GetParam();
    std::ofstream(conf_dir_ + "/" + file) << StrCat(
        R"({"cniVersion": "1.0.0", "name": ")", name, R"(", "plugins": [)",
        R"({"type": ")", set.bridge, R"(", "bridge": ")", bridge,
        R"(", "isGateway": true, "ipMasq": true, "hairpinMode": true,)",
        R"( "ipam": {"type": ")", set.ipam, R"(", "ranges": [[{"subnet": ")", subnet,
        R"("}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ")", conf_dir_, R"(/ipam"}},)",
        R"({"type": ")", set.portmap, R"(", "capabilities": {"portMappings": true}})",
        set.loopback ? R"(, {"type": "berth-loopback"})" : "", "]}");
  }

  // No veth, no address allocation, and the iptables rules as before any pod (the
  // chains plugins create once and share stay; nothing per pod does).
  void ExpectNothingAttached() {
    EXPECT_EQ(Shell("ip -o link show type veth"), "") << "veth left behind";
    std::error_code ec;
    for (const auto& net : std::filesystem::directory_iterator(conf_dir_ + "/ipam", ec)) {
      for (const auto& entry : std::filesystem::directory_iterator(net.path(), ec)) {
        std::string name = entry.path().filename();
        if (name.find('.') != std::string::npos && name.rfind("last_reserved", 0) != 0) {
          ADD_FAILURE() << "address still allocated: " << entry.path();
        }
      }
    }
    std::string rules = IptablesRules();
    std::istringstream in(rules);
    for (std::string line; std::getline(in, line);) {
      // A per-pod rule names the pod's address or a per-pod chain.
      if (line.find("10.231.") != std::string::npos && line.find("10.231.1.0/24") == std::string::npos &&
          line.find("10.231.2.0/24") == std::string::npos) {
        ADD_FAILURE() << "per-pod iptables rule left behind: " << line;
      }
    }
  }

  v1::PodSandboxConfig PodConfig(const std::string& name,
                                 const std::map<std::string, std::string>& annotations) {
    v1::PodSandboxConfig config;
    config.mutable_metadata()->set_name(name);
    config.mutable_metadata()->set_uid(name + "-uid");
    config.mutable_metadata()->set_namespace_("default");
    config.set_hostname(name);
    config.mutable_annotations()->insert(annotations.begin(), annotations.end());
    config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        v1::CONTAINER);
    return config;
  }

  grpc::Status TryRunPod(const v1::PodSandboxConfig& config, std::string* id) {
    grpc::ClientContext ctx;
    v1::RunPodSandboxRequest request;
    *request.mutable_config() = config;
    v1::RunPodSandboxResponse response;
    grpc::Status s = berthd_->runtime().RunPodSandbox(&ctx, request, &response);
    if (s.ok()) *id = response.pod_sandbox_id();
    return s;
  }

  std::string RunPod(const v1::PodSandboxConfig& config) {
    std::string id;
    grpc::Status s = TryRunPod(config, &id);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (s.ok()) pods_.push_back(id);
    return id;
  }
  std::string RunPod(const std::string& name,
                     const std::map<std::string, std::string>& annotations = {}) {
    return RunPod(PodConfig(name, annotations));
  }

  void RemovePod(const std::string& pod) {
    grpc::ClientContext ctx;
    v1::RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(pod);
    v1::RemovePodSandboxResponse response;
    grpc::Status s = berthd_->runtime().RemovePodSandbox(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  v1::PodSandboxNetworkStatus PodNetwork(const std::string& pod) {
    grpc::ClientContext ctx;
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(pod);
    v1::PodSandboxStatusResponse response;
    EXPECT_TRUE(berthd_->runtime().PodSandboxStatus(&ctx, request, &response).ok());
    return response.status().network();
  }
  std::string PodIp(const std::string& pod) { return PodNetwork(pod).ip(); }

  std::string StartContainer(const std::string& pod, const v1::PodSandboxConfig& pod_config,
                             const std::vector<std::string>& command) {
    grpc::ClientContext ctx;
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(pod);
    *request.mutable_sandbox_config() = pod_config;
    request.mutable_config()->mutable_metadata()->set_name("c");
    request.mutable_config()->mutable_image()->set_image("busybox:1.36");
    for (const std::string& c : command) request.mutable_config()->add_command(c);
    request.mutable_config()
        ->mutable_linux()
        ->mutable_security_context()
        ->mutable_namespace_options()
        ->set_pid(v1::CONTAINER);
    if (pod_config.linux().security_context().namespace_options().network() == v1::NODE) {
      request.mutable_config()
          ->mutable_linux()
          ->mutable_security_context()
          ->mutable_namespace_options()
          ->set_network(v1::NODE);
    }
    v1::CreateContainerResponse created;
    grpc::Status s = berthd_->runtime().CreateContainer(&ctx, request, &created);
    EXPECT_TRUE(s.ok()) << s.error_message();
    grpc::ClientContext start_ctx;
    v1::StartContainerRequest start;
    start.set_container_id(created.container_id());
    v1::StartContainerResponse started;
    EXPECT_TRUE(berthd_->runtime().StartContainer(&start_ctx, start, &started).ok());
    return created.container_id();
  }
  std::string StartSleeper(const std::string& pod, const std::string& name) {
    return StartContainer(pod, PodConfig(name, {}), {"sleep", "1000"});
  }

  v1::ExecSyncResponse Exec(const std::string& id, const std::vector<std::string>& cmd) {
    grpc::ClientContext ctx;
    v1::ExecSyncRequest request;
    request.set_container_id(id);
    for (const std::string& c : cmd) request.add_cmd(c);
    request.set_timeout(20);
    v1::ExecSyncResponse response;
    grpc::Status s = berthd_->runtime().ExecSync(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<BerthdFixture> berthd_;
  std::string conf_dir_, rules_before_;
  std::vector<std::string> pods_;
};

TEST_P(NetworkTest, PodsOnOneBridgeGetAddressesAndReachEachOther) {
  std::string a = RunPod("net-a-pod");
  std::string b = RunPod("net-b-pod");
  std::string ip_a = PodIp(a), ip_b = PodIp(b);
  EXPECT_EQ(ip_a.rfind("10.231.1.", 0), 0u) << ip_a;
  EXPECT_EQ(ip_b.rfind("10.231.1.", 0), 0u) << ip_b;
  EXPECT_NE(ip_a, ip_b);

  std::string in_a = StartSleeper(a, "net-a-pod");
  v1::ExecSyncResponse hosts = Exec(in_a, {"cat", "/etc/hosts"});
  EXPECT_NE(hosts.stdout().find(ip_a + "\tnet-a-pod"), std::string::npos) << hosts.stdout();
  v1::ExecSyncResponse hostname = Exec(in_a, {"hostname"});
  EXPECT_EQ(hostname.stdout(), "net-a-pod\n");
  v1::ExecSyncResponse addr = Exec(in_a, {"ip", "-4", "addr", "show", "eth0"});
  EXPECT_NE(addr.stdout().find(ip_a + "/24"), std::string::npos) << addr.stdout();
  v1::ExecSyncResponse ping = Exec(in_a, {"ping", "-c", "1", "-W", "5", ip_b});
  EXPECT_EQ(ping.exit_code(), 0) << ping.stdout() << ping.stderr();
  // Out through the gateway and NAT to the "host".
  v1::ExecSyncResponse out = Exec(in_a, {"ping", "-c", "1", "-W", "5", kHostIp});
  EXPECT_EQ(out.exit_code(), 0) << out.stdout() << out.stderr();
}

TEST_P(NetworkTest, NoneAnnotationGivesLoopbackOnlyAndNoRouteOut) {
  std::string pod = RunPod("net-none", {{"berth.io/network", "none"}});
  EXPECT_EQ(PodIp(pod), "");
  std::string in = StartSleeper(pod, "net-none");
  v1::ExecSyncResponse links = Exec(in, {"ip", "-o", "link"});
  EXPECT_NE(links.stdout().find("lo:"), std::string::npos) << links.stdout();
  EXPECT_EQ(links.stdout().find("eth0"), std::string::npos) << links.stdout();
  EXPECT_EQ(Exec(in, {"ip", "route"}).stdout(), "");
  v1::ExecSyncResponse ping = Exec(in, {"ping", "-c", "1", "-W", "2", kHostIp});
  EXPECT_NE(ping.exit_code(), 0) << "a none pod reached the host: " << ping.stdout();
}

TEST_P(NetworkTest, HostNetworkPodSeesTheHostsInterfaces) {
  v1::PodSandboxConfig config = PodConfig("net-host", {});
  config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
      v1::NODE);
  std::string pod = RunPod(config);
  EXPECT_EQ(PodIp(pod), "") << "no CNI for a host-network pod";
  std::string in = StartContainer(pod, config, {"sleep", "1000"});
  v1::ExecSyncResponse addr = Exec(in, {"ip", "-4", "addr"});
  EXPECT_NE(addr.stdout().find(std::string(kHostIp) + "/24"), std::string::npos) << addr.stdout();
  EXPECT_EQ(Shell("ip -o link show type veth"), "") << "a host-network pod got a veth";
}

TEST_P(NetworkTest, HostPortFromLoopbackTheHostsAddressAndAnotherPod) {
  v1::PodSandboxConfig config = PodConfig("net-web", {});
  v1::PortMapping* mapping = config.add_port_mappings();
  mapping->set_container_port(8080);
  mapping->set_host_port(18080);
  mapping->set_protocol(v1::TCP);
  std::string web = RunPod(config);
  StartContainer(web, config,
                 {"sh", "-c",
                  "mkdir -p /www && echo served-by-the-pod > /www/index.html && "
                  "httpd -f -p 8080 -h /www"});
  std::string body;
  for (int i = 0; i < 50 && body.find("served-by-the-pod") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    body = HttpGet(PodIp(web), 8080);
  }
  ASSERT_NE(body.find("served-by-the-pod"), std::string::npos) << "httpd never answered";
  EXPECT_NE(HttpGet("127.0.0.1", 18080).find("served-by-the-pod"), std::string::npos)
      << "hostPort from 127.0.0.1";
  EXPECT_NE(HttpGet(kHostIp, 18080).find("served-by-the-pod"), std::string::npos)
      << "hostPort from the host's address";
  std::string client = RunPod("net-client");
  std::string in = StartSleeper(client, "net-client");
  v1::ExecSyncResponse fetched =
      Exec(in, {"sh", "-c",
                StrCat("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc ", kHostIp, " 18080")});
  EXPECT_NE(fetched.stdout().find("served-by-the-pod"), std::string::npos)
      << "hostPort from another pod: " << fetched.stdout() << fetched.stderr();
}

TEST_P(NetworkTest, APodOnTwoNetworksGetsTwoInterfaces) {
  std::string pod = RunPod("net-both", {{"berth.io/networks", "net-a,net-b"}});
  v1::PodSandboxNetworkStatus network = PodNetwork(pod);
  EXPECT_EQ(network.ip().rfind("10.231.1.", 0), 0u) << network.ip();
  ASSERT_EQ(network.additional_ips_size(), 1);
  EXPECT_EQ(network.additional_ips(0).ip().rfind("10.231.2.", 0), 0u);
  std::string in = StartSleeper(pod, "net-both");
  v1::ExecSyncResponse eth0 = Exec(in, {"ip", "-4", "addr", "show", "eth0"});
  v1::ExecSyncResponse eth1 = Exec(in, {"ip", "-4", "addr", "show", "eth1"});
  EXPECT_NE(eth0.stdout().find(network.ip()), std::string::npos) << eth0.stdout();
  EXPECT_NE(eth1.stdout().find(network.additional_ips(0).ip()), std::string::npos)
      << eth1.stdout();
}

TEST_P(NetworkTest, AnUnknownNetworkIsNamedInTheError) {
  std::string id;
  grpc::Status s = TryRunPod(PodConfig("net-missing", {{"berth.io/network", "nosuchnet"}}), &id);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND) << s.error_message();
  EXPECT_NE(s.error_message().find("nosuchnet"), std::string::npos) << s.error_message();
}

TEST_P(NetworkTest, KillDuringCniAddLeaksNothing) {
  v1::PodSandboxConfig config = PodConfig("net-crash", {});
  v1::PortMapping* mapping = config.add_port_mappings();
  mapping->set_container_port(80);
  mapping->set_host_port(18081);
  for (const std::string point : {"cni.first_plugin_added", "pod.network_attached"}) {
    berthd_->Kill9();
    ASSERT_TRUE(berthd_->Restart({"BERTH_CRASH_POINT=" + point}).ok());
    std::string id;
    EXPECT_FALSE(TryRunPod(config, &id).ok()) << "berthd did not die at " << point;
    berthd_->Kill9();
    ASSERT_TRUE(berthd_->Restart().ok());
    // Start-up undid the half-made pod and everything its network had done.
    EXPECT_EQ(Shell("ip -o link show type veth"), "") << "after a crash at " << point;
    ExpectNothingAttached();
    EXPECT_EQ(IptablesRules().find("18081"), std::string::npos)
        << "hostPort rule left after a crash at " << point << ":\n" << IptablesRules();
  }
  // And the node still works.
  std::string pod = RunPod(config);
  EXPECT_EQ(PodIp(pod).rfind("10.231.1.", 0), 0u);
}

TEST_P(NetworkTest, HundredRunStopCyclesLeakNothing) {
  v1::PodSandboxConfig config = PodConfig("net-cycle", {});
  v1::PortMapping* mapping = config.add_port_mappings();
  mapping->set_container_port(80);
  mapping->set_host_port(18082);
  RemovePod(RunPod(config));  // the shared chains exist from here on
  pods_.clear();
  const std::string rules = IptablesRules();
  for (int i = 0; i < 100; ++i) {
    std::string id;
    grpc::Status s = TryRunPod(config, &id);
    ASSERT_TRUE(s.ok()) << "cycle " << i << ": " << s.error_message();
    ASSERT_FALSE(PodIp(id).empty());
    grpc::ClientContext ctx;
    v1::StopPodSandboxRequest stop;
    stop.set_pod_sandbox_id(id);
    v1::StopPodSandboxResponse stopped;
    ASSERT_TRUE(berthd_->runtime().StopPodSandbox(&ctx, stop, &stopped).ok());
    RemovePod(id);
  }
  EXPECT_EQ(IptablesRules(), rules) << "iptables rules changed over 100 cycles";
  ExpectNothingAttached();
}

// Only berth-bridge isolates bridges: Debian's bridge plugin 1.1.1 routes between them.
class BerthNetworkTest : public NetworkTest {};

TEST_P(BerthNetworkTest, TwoBridgeNetworksAreIsolated) {
  std::string a = RunPod("iso-a");
  std::string b = RunPod("iso-b", {{"berth.io/network", "net-b"}});
  std::string ip_b = PodIp(b);
  EXPECT_EQ(ip_b.rfind("10.231.2.", 0), 0u) << ip_b;
  std::string in_a = StartSleeper(a, "iso-a");
  std::string in_b = StartSleeper(b, "iso-b");
  v1::ExecSyncResponse across = Exec(in_a, {"ping", "-c", "1", "-W", "2", ip_b});
  EXPECT_NE(across.exit_code(), 0) << "pods on two bridges reached each other";
  v1::ExecSyncResponse back = Exec(in_b, {"ping", "-c", "1", "-W", "2", PodIp(a)});
  EXPECT_NE(back.exit_code(), 0);
  // Both still reach the host.
  EXPECT_EQ(Exec(in_b, {"ping", "-c", "1", "-W", "5", kHostIp}).exit_code(), 0);
}

INSTANTIATE_TEST_SUITE_P(Plugins, NetworkTest, ::testing::Values(kBerth, kDebian),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Plugins, BerthNetworkTest, ::testing::Values(kBerth),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace berth::testing
