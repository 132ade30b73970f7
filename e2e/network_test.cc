// Pods on CNI networks through berthd, with Debian's standard plugins: a
// private bridge network per test run, pod IPs in PodSandboxStatus and
// /etc/hosts, pods on one bridge reaching each other, and the
// berth.io/network: none annotation for a loopback-only pod.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "e2e/berthd_fixture.h"
#include "e2e/busybox_node.h"
#include "gtest/gtest.h"
#include "runtime/base/strings.h"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;

class NetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: network namespaces, bridges and iptables";
    if (access("/usr/lib/cni/bridge", X_OK) != 0) {
      GTEST_SKIP() << "LOUD SKIP: /usr/lib/cni/bridge is missing (Debian containernetworking-plugins)";
    }
    // A bridge and subnet of this test process alone.
    bridge_ = StrCat("bt", getpid() % 100000);
    subnet_ = StrCat("10.231.", getpid() % 250, ".0/24");
    char conf[] = "/tmp/berth-net-conf-XXXXXX";
    ASSERT_NE(mkdtemp(conf), nullptr);
    conf_dir_ = conf;
    std::ofstream(conf_dir_ + "/10-test.conflist") << StrCat(
        R"({"cniVersion": "1.0.0", "name": "testnet", "plugins": [)",
        R"({"type": "bridge", "bridge": ")", bridge_,
        R"(", "isGateway": true, "ipMasq": false, "ipam": {"type": "host-local", "ranges": [[{"subnet": ")",
        subnet_, R"("}]], "dataDir": ")", conf_dir_, R"(/ipam"}},)",
        R"({"type": "portmap", "capabilities": {"portMappings": true}}]})");
    absl::StatusOr<BusyboxNode> node =
        StartBusyboxNode(StrCat("[network]\nconf_dir = \"", conf_dir_, "\"\n"));
    ASSERT_TRUE(node.ok()) << node.status();
    registry_ = std::move(node->registry);
    berthd_ = std::move(node->berthd);
  }

  void TearDown() override {
    if (berthd_ != nullptr) {
      for (const std::string& pod : pods_) {
        grpc::ClientContext ctx;
        v1::RemovePodSandboxRequest request;
        request.set_pod_sandbox_id(pod);
        v1::RemovePodSandboxResponse response;
        grpc::Status s = berthd_->runtime().RemovePodSandbox(&ctx, request, &response);
        EXPECT_TRUE(s.ok()) << s.error_message();
      }
      EXPECT_EQ(LeakCensus(berthd_->dir()), std::vector<std::string>{});
      // DEL released every address (host-local keeps one file per address).
      std::error_code ec;
      for (const auto& entry :
           std::filesystem::directory_iterator(conf_dir_ + "/ipam/testnet", ec)) {
        std::string name = entry.path().filename();
        if (name.find('.') != std::string::npos && name.rfind("last_reserved", 0) != 0 &&
            name != "lock") {
          ADD_FAILURE() << "address still allocated: " << name;
        }
      }
    }
    // The bridge plugin leaves its bridge behind on DEL, as docker0 stays.
    if (!bridge_.empty()) {
      std::string command = StrCat("ip link del ", bridge_, " 2>/dev/null");
      (void)!system(command.c_str());
    }
    if (!conf_dir_.empty()) std::filesystem::remove_all(conf_dir_);
  }

  std::string RunPod(const std::string& name, const std::map<std::string, std::string>& annotations) {
    v1::RunPodSandboxRequest request;
    v1::PodSandboxConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(name);
    config->mutable_metadata()->set_uid(name + "-uid");
    config->mutable_metadata()->set_namespace_("default");
    config->set_hostname(name);
    config->mutable_annotations()->insert(annotations.begin(), annotations.end());
    config->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        v1::CONTAINER);
    grpc::ClientContext ctx;
    v1::RunPodSandboxResponse response;
    grpc::Status s = berthd_->runtime().RunPodSandbox(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (s.ok()) pods_.push_back(response.pod_sandbox_id());
    return response.pod_sandbox_id();
  }

  std::string PodIp(const std::string& pod) {
    grpc::ClientContext ctx;
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(pod);
    v1::PodSandboxStatusResponse response;
    EXPECT_TRUE(berthd_->runtime().PodSandboxStatus(&ctx, request, &response).ok());
    return response.status().network().ip();
  }

  std::string StartSleeper(const std::string& pod) {
    grpc::ClientContext ctx;
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(pod);
    request.mutable_config()->mutable_metadata()->set_name("sleeper");
    request.mutable_config()->mutable_image()->set_image("busybox:1.36");
    for (const char* c : {"sleep", "1000"}) request.mutable_config()->add_command(c);
    request.mutable_config()
        ->mutable_linux()
        ->mutable_security_context()
        ->mutable_namespace_options()
        ->set_pid(v1::CONTAINER);
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
  std::string bridge_, subnet_, conf_dir_;
  std::vector<std::string> pods_;
};

TEST_F(NetworkTest, PodsOnOneBridgeGetAddressesAndReachEachOther) {
  std::string a = RunPod("net-a", {});
  std::string b = RunPod("net-b", {});
  std::string ip_a = PodIp(a), ip_b = PodIp(b);
  const std::string prefix = subnet_.substr(0, subnet_.rfind('.') + 1);
  EXPECT_EQ(ip_a.rfind(prefix, 0), 0u) << ip_a;
  EXPECT_EQ(ip_b.rfind(prefix, 0), 0u) << ip_b;
  EXPECT_NE(ip_a, ip_b);

  std::string in_a = StartSleeper(a);
  v1::ExecSyncResponse hosts = Exec(in_a, {"cat", "/etc/hosts"});
  EXPECT_NE(hosts.stdout().find(ip_a + "\tnet-a"), std::string::npos) << hosts.stdout();
  v1::ExecSyncResponse addr = Exec(in_a, {"ip", "-4", "addr", "show", "eth0"});
  EXPECT_NE(addr.stdout().find(ip_a + "/"), std::string::npos) << addr.stdout();
  v1::ExecSyncResponse ping = Exec(in_a, {"ping", "-c", "1", "-W", "5", ip_b});
  EXPECT_EQ(ping.exit_code(), 0) << ping.stdout() << ping.stderr();
}

TEST_F(NetworkTest, NoneAnnotationGivesLoopbackOnly) {
  std::string pod = RunPod("net-none", {{"berth.io/network", "none"}});
  EXPECT_EQ(PodIp(pod), "");
  std::string in = StartSleeper(pod);
  v1::ExecSyncResponse links = Exec(in, {"ip", "-o", "link"});
  EXPECT_NE(links.stdout().find("lo:"), std::string::npos) << links.stdout();
  EXPECT_EQ(links.stdout().find("eth0"), std::string::npos) << links.stdout();
}

TEST_F(NetworkTest, AnUnknownNetworkIsNamedInTheError) {
  v1::RunPodSandboxRequest request;
  v1::PodSandboxConfig* config = request.mutable_config();
  config->mutable_metadata()->set_name("net-missing");
  config->mutable_metadata()->set_uid("net-missing-uid");
  config->mutable_metadata()->set_namespace_("default");
  (*config->mutable_annotations())["berth.io/network"] = "nosuchnet";
  grpc::ClientContext ctx;
  v1::RunPodSandboxResponse response;
  grpc::Status s = berthd_->runtime().RunPodSandbox(&ctx, request, &response);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND) << s.error_message();
  EXPECT_NE(s.error_message().find("nosuchnet"), std::string::npos) << s.error_message();
}

}  // namespace
}  // namespace berth::testing
