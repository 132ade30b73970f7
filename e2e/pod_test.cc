// Pod sandboxes as the kubelet drives them: run, look inside the pinned
// namespaces, list with filters, retry after a timeout, stop, remove, and
// survive daemon crashes without leaking mounts.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "e2e/berthd_fixture.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/sandbox/namespace_pins.h"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;

v1::PodSandboxConfig PodConfig(const std::string& name, const std::string& uid = "uid-1") {
  v1::PodSandboxConfig config;
  config.mutable_metadata()->set_name(name);
  config.mutable_metadata()->set_uid(uid);
  config.mutable_metadata()->set_namespace_("default");
  config.set_hostname(name);
  (*config.mutable_labels())["app"] = name;
  (*config.mutable_annotations())["note"] = "kept verbatim";
  config.mutable_dns_config()->add_servers("10.96.0.10");
  config.mutable_dns_config()->add_searches("default.svc.cluster.local");
  config.mutable_dns_config()->add_options("ndots:5");
  // As the kubelet sends it: the pod's own PID namespace per container.
  config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      v1::CONTAINER);
  return config;
}

// What a process inside the pod's namespaces sees: hostname and whether lo is up.
std::pair<std::string, bool> LookInside(const std::string& netns, const std::string& utsns) {
  int out[2];
  EXPECT_EQ(pipe(out), 0);
  pid_t child = fork();
  if (child == 0) {
    int net = open(netns.c_str(), O_RDONLY);
    int uts = open(utsns.c_str(), O_RDONLY);
    if (net < 0 || uts < 0 || setns(net, CLONE_NEWNET) != 0 || setns(uts, CLONE_NEWUTS) != 0) {
      _exit(1);
    }
    char host[65] = {};
    gethostname(host, 64);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr{};
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool up = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
    std::string answer = std::string(up ? "1" : "0") + host;
    (void)!write(out[1], answer.data(), answer.size());
    _exit(0);
  }
  close(out[1]);
  char buf[128] = {};
  ssize_t n = read(out[0], buf, sizeof(buf) - 1);
  close(out[0]);
  int status;
  waitpid(child, &status, 0);
  if (n <= 0) return {"", false};
  return {std::string(buf + 1, n - 1), buf[0] == '1'};
}

class PodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: pods pin namespaces with mounts";
    absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start();
    ASSERT_TRUE(berthd.ok()) << berthd.status();
    berthd_ = *std::move(berthd);
  }

  // The leak census: once every pod is removed, nothing berth mounted stays.
  void TearDown() override {
    if (berthd_ == nullptr) return;
    for (const v1::PodSandbox& pod : List()) Remove(pod.id());
    EXPECT_TRUE(List().empty());
    EXPECT_EQ(LeakCensus(berthd_->dir()), std::vector<std::string>{});
  }

  grpc::Status Run(const v1::PodSandboxConfig& config, std::string* id,
                   const std::string& handler = "") {
    grpc::ClientContext ctx;
    v1::RunPodSandboxRequest request;
    *request.mutable_config() = config;
    request.set_runtime_handler(handler);
    v1::RunPodSandboxResponse response;
    grpc::Status s = berthd_->runtime().RunPodSandbox(&ctx, request, &response);
    *id = response.pod_sandbox_id();
    return s;
  }

  v1::PodSandboxStatusResponse Status(const std::string& id, grpc::Status* s = nullptr) {
    grpc::ClientContext ctx;
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    request.set_verbose(true);
    v1::PodSandboxStatusResponse response;
    grpc::Status status = berthd_->runtime().PodSandboxStatus(&ctx, request, &response);
    if (s) *s = status;
    return response;
  }

  grpc::Status Stop(const std::string& id) {
    grpc::ClientContext ctx;
    v1::StopPodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::StopPodSandboxResponse response;
    return berthd_->runtime().StopPodSandbox(&ctx, request, &response);
  }

  grpc::Status Remove(const std::string& id) {
    grpc::ClientContext ctx;
    v1::RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::RemovePodSandboxResponse response;
    return berthd_->runtime().RemovePodSandbox(&ctx, request, &response);
  }

  std::vector<v1::PodSandbox> List(const v1::PodSandboxFilter& filter = {}) {
    grpc::ClientContext ctx;
    v1::ListPodSandboxRequest request;
    *request.mutable_filter() = filter;
    v1::ListPodSandboxResponse response;
    grpc::Status s = berthd_->runtime().ListPodSandbox(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {response.items().begin(), response.items().end()};
  }

  std::unique_ptr<BerthdFixture> berthd_;
};

TEST_F(PodTest, RunGivesAReadyPodWithPinnedNamespacesHostnameAndLoopback) {
  std::string id;
  grpc::Status s = Run(PodConfig("web"), &id);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(id.size(), 64u);

  v1::PodSandboxStatusResponse status = Status(id);
  EXPECT_EQ(status.status().id(), id);
  EXPECT_EQ(status.status().state(), v1::SANDBOX_READY);
  EXPECT_EQ(status.status().metadata().name(), "web");
  EXPECT_EQ(status.status().labels().at("app"), "web");
  EXPECT_EQ(status.status().annotations().at("note"), "kept verbatim");
  EXPECT_GT(status.status().created_at(), 0);
  EXPECT_EQ(status.status().linux().namespaces().options().pid(), v1::CONTAINER);

  nlohmann::json info = nlohmann::json::parse(status.info().at("info"));
  std::string netns = info["netns"], utsns = info["utsns"], dir = info["dir"];
  EXPECT_TRUE(sandbox::IsPinned(netns));
  EXPECT_TRUE(sandbox::IsPinned(info["ipcns"]));
  auto [hostname, lo_up] = LookInside(netns, utsns);
  EXPECT_EQ(hostname, "web");
  EXPECT_TRUE(lo_up);

  std::ifstream resolv(dir + "/resolv.conf");
  std::stringstream text;
  text << resolv.rdbuf();
  EXPECT_EQ(text.str(),
            "nameserver 10.96.0.10\nsearch default.svc.cluster.local\noptions ndots:5\n");
  EXPECT_EQ(MountsUnder(dir).size(), 4u) << "net, ipc, uts pins and the shm tmpfs";
}

TEST_F(PodTest, RetryWithTheSameMetadataGetsTheSamePodEvenConcurrently) {
  std::vector<std::string> ids(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ids.size(); ++i) {
    threads.emplace_back([&, i] { EXPECT_TRUE(Run(PodConfig("retry"), &ids[i]).ok()); });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& id : ids) EXPECT_EQ(id, ids[0]);
  EXPECT_EQ(List().size(), 1u);
  // A new attempt is a new pod.
  v1::PodSandboxConfig next = PodConfig("retry");
  next.mutable_metadata()->set_attempt(1);
  std::string second;
  ASSERT_TRUE(Run(next, &second).ok());
  EXPECT_NE(second, ids[0]);
}

TEST_F(PodTest, ListFiltersByIdPrefixStateAndLabels) {
  std::string a, b;
  ASSERT_TRUE(Run(PodConfig("a", "ua"), &a).ok());
  ASSERT_TRUE(Run(PodConfig("b", "ub"), &b).ok());
  ASSERT_TRUE(Stop(b).ok());
  EXPECT_EQ(List().size(), 2u);

  v1::PodSandboxFilter by_id;
  by_id.set_id(a.substr(0, 12));
  ASSERT_EQ(List(by_id).size(), 1u);
  EXPECT_EQ(List(by_id)[0].id(), a);

  v1::PodSandboxFilter ready;
  ready.mutable_state()->set_state(v1::SANDBOX_READY);
  ASSERT_EQ(List(ready).size(), 1u);
  EXPECT_EQ(List(ready)[0].id(), a);

  v1::PodSandboxFilter labels;
  (*labels.mutable_label_selector())["app"] = "b";
  ASSERT_EQ(List(labels).size(), 1u);
  EXPECT_EQ(List(labels)[0].state(), v1::SANDBOX_NOTREADY);
  (*labels.mutable_label_selector())["other"] = "x";
  EXPECT_TRUE(List(labels).empty());
}

TEST_F(PodTest, StopAndRemoveAreIdempotentAndReleaseEverything) {
  std::string id;
  ASSERT_TRUE(Run(PodConfig("gone"), &id).ok());
  std::string dir = nlohmann::json::parse(Status(id).info().at("info"))["dir"];
  ASSERT_TRUE(Stop(id).ok());
  EXPECT_EQ(Status(id).status().state(), v1::SANDBOX_NOTREADY);
  EXPECT_TRUE(MountsUnder(dir).empty());
  EXPECT_TRUE(Stop(id).ok());
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_TRUE(Remove(id).ok());
  EXPECT_TRUE(Stop(id).ok()) << "stopping a removed pod succeeds";
  grpc::Status s;
  Status(id, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST_F(PodTest, HostNetworkPodUsesTheNodeNamespaces) {
  v1::PodSandboxConfig config = PodConfig("hostnet");
  auto* ns = config.mutable_linux()->mutable_security_context()->mutable_namespace_options();
  ns->set_network(v1::NODE);
  ns->set_ipc(v1::NODE);
  std::string id;
  ASSERT_TRUE(Run(config, &id).ok());
  nlohmann::json info = nlohmann::json::parse(Status(id).info().at("info"));
  EXPECT_EQ(info["netns"], "");
  EXPECT_EQ(info["ipcns"], "");
  char node[65] = {};
  gethostname(node, 64);
  std::ifstream hostname(info["dir"].get<std::string>() + "/hostname");
  std::string line;
  std::getline(hostname, line);
  EXPECT_EQ(line, node);
}

TEST_F(PodTest, BadRequestsAreInvalidArgument) {
  std::string id;
  v1::PodSandboxConfig nameless = PodConfig("");
  EXPECT_EQ(Run(nameless, &id).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Run(PodConfig("x/y"), &id).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status handler = Run(PodConfig("h"), &id, "no-such-handler");
  EXPECT_EQ(handler.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(handler.error_message().find("no-such-handler"), std::string::npos);
  grpc::Status s;
  Status("", &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(List().empty());
}

TEST_F(PodTest, KillNineKeepsReadyPodsAndTheirNamespaces) {
  std::string id;
  ASSERT_TRUE(Run(PodConfig("survivor"), &id).ok());
  std::string netns = nlohmann::json::parse(Status(id).info().at("info"))["netns"];
  berthd_->Kill9();
  ASSERT_TRUE(berthd_->Restart().ok());
  EXPECT_EQ(Status(id).status().state(), v1::SANDBOX_READY);
  EXPECT_TRUE(sandbox::IsPinned(netns));
  // The same metadata still answers with the same pod.
  std::string again;
  ASSERT_TRUE(Run(PodConfig("survivor"), &again).ok());
  EXPECT_EQ(again, id);
}

TEST_F(PodTest, AHalfMadePodFromACrashIsUndoneAtStartUp) {
  ASSERT_TRUE(berthd_->Stop(SIGTERM).ok());
  // What berthd leaves when killed inside RunPodSandbox: the "creating"
  // record, its name, and namespaces already pinned.
  std::string id(64, 'c');
  std::string dir = berthd_->state() + "/pods/" + id;
  absl::StatusOr<sandbox::NamespacePins> pins =
      sandbox::PinNamespaces(dir + "/ns", {.net = true, .ipc = true, .uts = true}, "half");
  ASSERT_TRUE(pins.ok()) << pins.status();
  // And a directory nobody recorded at all.
  std::string stray = berthd_->state() + "/pods/" + std::string(64, 'd');
  ASSERT_TRUE(sandbox::PinNamespaces(stray + "/ns", {.net = true}, "").ok());
  sqlite3* db;
  ASSERT_EQ(sqlite3_open((berthd_->root() + "/berth.db").c_str(), &db), SQLITE_OK);
  std::string sql =
      "INSERT INTO objects (kind, id, doc) VALUES ('pod', '" + id +
      "', '{\"state\":\"creating\",\"spec\":{\"name\":\"half\"}}');"
      "INSERT INTO objects (kind, id, doc) VALUES ('name', 'pod/half_default_u_0', '{\"id\":\"" +
      id +
      "\"}');"
      "INSERT INTO refs VALUES ('name', 'pod/half_default_u_0', 'pod', '" +
      id + "');";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  ASSERT_EQ(MountsUnder(berthd_->state()).size(), 4u);

  ASSERT_TRUE(berthd_->Restart().ok());
  EXPECT_TRUE(MountsUnder(berthd_->state()).empty());
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_FALSE(std::filesystem::exists(stray));
  EXPECT_TRUE(List().empty());
  // The name is free again.
  v1::PodSandboxConfig config = PodConfig("half", "u");
  std::string fresh;
  EXPECT_TRUE(Run(config, &fresh).ok());
}

TEST_F(PodTest, FiftyConcurrentPodsRunAndGoWithoutLeaks) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      std::string id;
      if (Run(PodConfig("load-" + std::to_string(i), "u" + std::to_string(i)), &id).ok()) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 50);
  EXPECT_EQ(List().size(), 50u);
  // TearDown removes them all and checks that no mount is left.
}

}  // namespace
}  // namespace berth::testing
