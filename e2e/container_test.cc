// Containers as the kubelet runs them: a pod, an image pulled from a real
// registry, a container that prints and exits, one that is stopped, and a
// pod removal that takes its containers with it and leaves no mount behind.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "e2e/berthd_fixture.h"
#include "e2e/busybox_node.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;

class ContainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: containers run through runc";
    absl::StatusOr<BusyboxNode> node = StartBusyboxNode();
    ASSERT_TRUE(node.ok()) << node.status();
    registry_ = std::move(node->registry);
    berthd_ = std::move(node->berthd);
    logs_ = berthd_->dir() + "/logs";

    pod_config_.mutable_metadata()->set_name("ctr-pod");
    pod_config_.mutable_metadata()->set_uid("ctr-uid");
    pod_config_.mutable_metadata()->set_namespace_("default");
    pod_config_.set_hostname("ctr-pod");
    pod_config_.set_log_directory(logs_);
    // A parent of our own, so the test can check that it leaves no cgroup.
    cgroup_parent_ = "/berth-e2e-" + std::to_string(getpid());
    pod_config_.mutable_linux()->set_cgroup_parent(cgroup_parent_);
    pod_config_.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        v1::CONTAINER);
    grpc::ClientContext ctx;
    v1::RunPodSandboxRequest run;
    *run.mutable_config() = pod_config_;
    v1::RunPodSandboxResponse ran;
    grpc::Status s = berthd_->runtime().RunPodSandbox(&ctx, run, &ran);
    ASSERT_TRUE(s.ok()) << s.error_message();
    pod_ = ran.pod_sandbox_id();
  }

  void TearDown() override {
    if (berthd_ == nullptr || pod_.empty()) return;
    // Removing a pod removes its containers; nothing berth made stays.
    extra_pods_.push_back(pod_);
    for (const std::string& pod : extra_pods_) {
      grpc::ClientContext ctx;
      v1::RemovePodSandboxRequest request;
      request.set_pod_sandbox_id(pod);
      v1::RemovePodSandboxResponse response;
      grpc::Status s = berthd_->runtime().RemovePodSandbox(&ctx, request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    EXPECT_TRUE(List().empty());
    EXPECT_EQ(LeakCensus(berthd_->dir()), std::vector<std::string>{});
    // runc removed each container's cgroup; only our empty parent may remain.
    for (const auto& hierarchy : std::filesystem::directory_iterator("/sys/fs/cgroup")) {
      std::string parent = hierarchy.path().string() + cgroup_parent_;
      std::error_code ec;
      for (const auto& child : std::filesystem::directory_iterator(parent, ec)) {
        if (child.is_directory()) ADD_FAILURE() << "cgroup left behind: " << child.path();
      }
      rmdir(parent.c_str());
    }
  }

  // A second pod whose containers share its PID namespace (berth-pause is PID 1).
  std::string RunSharedPidPod() {
    v1::PodSandboxConfig config = pod_config_;
    config.mutable_metadata()->set_name("shared-pid-pod");
    config.mutable_metadata()->set_uid("shared-pid-uid");
    config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        v1::POD);
    grpc::ClientContext ctx;
    v1::RunPodSandboxRequest run;
    *run.mutable_config() = config;
    v1::RunPodSandboxResponse ran;
    grpc::Status s = berthd_->runtime().RunPodSandbox(&ctx, run, &ran);
    EXPECT_TRUE(s.ok()) << s.error_message();
    extra_pods_.push_back(ran.pod_sandbox_id());
    return ran.pod_sandbox_id();
  }

  std::string Create(const std::string& name, const std::vector<std::string>& command,
                     const std::string& pod = "",
                     v1::NamespaceMode pid_mode = v1::CONTAINER) {
    grpc::ClientContext ctx;
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(pod.empty() ? pod_ : pod);
    *request.mutable_sandbox_config() = pod_config_;
    v1::ContainerConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(name);
    config->mutable_image()->set_image("busybox:1.36");
    for (const std::string& c : command) config->add_command(c);
    config->set_log_path(name + ".log");
    (*config->mutable_labels())["name"] = name;
    config->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        pid_mode);
    v1::CreateContainerResponse response;
    grpc::Status s = berthd_->runtime().CreateContainer(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.container_id();
  }

  grpc::Status Start(const std::string& id) {
    grpc::ClientContext ctx;
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    return berthd_->runtime().StartContainer(&ctx, request, &response);
  }

  v1::ContainerStatus Status(const std::string& id) {
    grpc::ClientContext ctx;
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    v1::ContainerStatusResponse response;
    grpc::Status s = berthd_->runtime().ContainerStatus(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.status();
  }

  std::vector<v1::Container> List() {
    grpc::ClientContext ctx;
    v1::ListContainersResponse response;
    grpc::Status s =
        berthd_->runtime().ListContainers(&ctx, v1::ListContainersRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {response.containers().begin(), response.containers().end()};
  }

  grpc::Status ExecSync(const std::string& id, const std::vector<std::string>& cmd,
                        int64_t timeout, v1::ExecSyncResponse* response) {
    grpc::ClientContext ctx;
    v1::ExecSyncRequest request;
    request.set_container_id(id);
    for (const std::string& c : cmd) request.add_cmd(c);
    request.set_timeout(timeout);
    return berthd_->runtime().ExecSync(&ctx, request, response);
  }

  v1::ContainerStatus WaitExited(const std::string& id) {
    v1::ContainerStatus status;
    for (int i = 0; i < 500; ++i) {
      status = Status(id);
      if (status.state() == v1::CONTAINER_EXITED) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return status;
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<BerthdFixture> berthd_;
  v1::PodSandboxConfig pod_config_;
  std::string pod_, logs_, cgroup_parent_;
  std::vector<std::string> extra_pods_;
};

TEST_F(ContainerTest, RunsToCompletionWithItsExitCodeAndLog) {
  std::string id = Create("hello", {"sh", "-c", "echo hello; echo oops >&2; exit 3"});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_CREATED);
  grpc::Status started = Start(id);
  ASSERT_TRUE(started.ok()) << started.error_message();
  v1::ContainerStatus status = WaitExited(id);
  ASSERT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 3);
  EXPECT_EQ(status.reason(), "Error");
  EXPECT_GT(status.started_at(), 0);
  EXPECT_GE(status.finished_at(), status.started_at());
  EXPECT_EQ(status.labels().at("name"), "hello");
  EXPECT_EQ(status.log_path(), logs_ + "/hello.log");

  std::ifstream log(status.log_path());
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_NE(text.str().find(" stdout F hello\n"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find(" stderr F oops\n"), std::string::npos) << text.str();

  std::vector<v1::Container> all = List();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].pod_sandbox_id(), pod_);
  EXPECT_EQ(all[0].state(), v1::CONTAINER_EXITED);
}

TEST_F(ContainerTest, StopEndsALongRunningContainerAndRemoveCleansUp) {
  std::string id = Create("sleeper", {"sleep", "1000"});
  ASSERT_TRUE(Start(id).ok());
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
  grpc::ClientContext ctx;
  v1::StopContainerRequest stop;
  stop.set_container_id(id);
  stop.set_timeout(2);
  v1::StopContainerResponse stopped;
  ASSERT_TRUE(berthd_->runtime().StopContainer(&ctx, stop, &stopped).ok());
  v1::ContainerStatus status = Status(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_TRUE(status.exit_code() == 137 || status.exit_code() == 143) << status.exit_code();

  grpc::ClientContext rm_ctx;
  v1::RemoveContainerRequest remove;
  remove.set_container_id(id);
  v1::RemoveContainerResponse removed;
  ASSERT_TRUE(berthd_->runtime().RemoveContainer(&rm_ctx, remove, &removed).ok());
  EXPECT_TRUE(List().empty());
}

TEST_F(ContainerTest, KillNineLeavesTheContainerRunningAndRestartAdoptsIt) {
  std::string id = Create("survivor", {"sleep", "1000"});
  ASSERT_TRUE(Start(id).ok());
  berthd_->Kill9();
  ASSERT_TRUE(berthd_->Restart().ok());
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
  // TearDown removes the pod, which stops and removes the adopted container.
}

TEST_F(ContainerTest, ExecSyncKeepsStdoutAndStderrApartAndReturnsTheExitCode) {
  std::string id = Create("exec-target", {"sleep", "1000"});
  ASSERT_TRUE(Start(id).ok());
  v1::ExecSyncResponse response;
  grpc::Status s = ExecSync(id, {"sh", "-c", "echo out; echo err >&2; exit 7"}, 10, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.stdout(), "out\n");
  EXPECT_EQ(response.stderr(), "err\n");
  EXPECT_EQ(response.exit_code(), 7);

  // The exec runs with the container's own settings: its user, cwd and environment.
  ASSERT_TRUE(ExecSync(id, {"sh", "-c", "id -u; pwd; echo $PATH"}, 10, &response).ok());
  EXPECT_EQ(response.stdout().substr(0, 2), "0\n") << response.stdout();
  EXPECT_NE(response.stdout().find("/bin"), std::string::npos) << response.stdout();

  s = ExecSync(id, {}, 10, &response);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << s.error_message();
}

TEST_F(ContainerTest, ExecSyncTimeoutKillsTheProcess) {
  // In a shared PID namespace, as critest runs it: the killed process must be reaped
  // too, or pgrep (here: its /proc/<pid>/comm match) still finds its zombie.
  std::string pod = RunSharedPidPod();
  std::string id = Create("exec-timeout", {"tail", "-f", "/dev/null"}, pod, v1::POD);
  ASSERT_TRUE(Start(id).ok());
  v1::ExecSyncResponse response;
  grpc::Status s = ExecSync(id, {"sleep", "4321"}, 1, &response);
  EXPECT_EQ(s.error_code(), grpc::DEADLINE_EXCEEDED) << s.error_message();
  s = ExecSync(id, {"sh", "-c", "grep -lx sleep /proc/[0-9]*/comm || true"}, 10, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.stdout(), "");
  EXPECT_EQ(response.stderr(), "");
}

TEST_F(ContainerTest, ExecSyncInAContainerThatIsNotRunningFails) {
  std::string id = Create("exec-created", {"sleep", "1000"});
  v1::ExecSyncResponse response;
  grpc::Status s = ExecSync(id, {"true"}, 10, &response);
  EXPECT_EQ(s.error_code(), grpc::FAILED_PRECONDITION) << s.error_message();
  s = ExecSync("no-such-container", {"true"}, 10, &response);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND) << s.error_message();
}

TEST_F(ContainerTest, SharedPidNamespaceHasBerthPauseAsPidOne) {
  std::string pod = RunSharedPidPod();
  ASSERT_FALSE(pod.empty());
  std::string first = Create("first", {"sleep", "1000"}, pod, v1::POD);
  std::string second = Create("second", {"sleep", "2000"}, pod, v1::POD);
  ASSERT_TRUE(Start(first).ok());
  ASSERT_TRUE(Start(second).ok());
  v1::ExecSyncResponse response;
  ASSERT_TRUE(ExecSync(first, {"cat", "/proc/1/cmdline"}, 10, &response).ok());
  EXPECT_EQ(response.stdout(), std::string("/pause\0", 7));
  // Each container sees the other's process.
  ASSERT_TRUE(ExecSync(first, {"ps", "-o", "args"}, 10, &response).ok());
  EXPECT_NE(response.stdout().find("sleep 2000"), std::string::npos) << response.stdout();

  // Stopping the pod ends berth-pause and its shim too (TearDown's census checks).
  grpc::ClientContext ctx;
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(pod);
  v1::StopPodSandboxResponse stopped;
  ASSERT_TRUE(berthd_->runtime().StopPodSandbox(&ctx, stop, &stopped).ok());
  EXPECT_EQ(Status(first).state(), v1::CONTAINER_EXITED);
}

TEST_F(ContainerTest, UpdateContainerResourcesChangesTheCgroup) {
  std::string id = Create("resized", {"sleep", "1000"});
  ASSERT_TRUE(Start(id).ok());
  grpc::ClientContext ctx;
  v1::UpdateContainerResourcesRequest request;
  request.set_container_id(id);
  request.mutable_linux()->set_memory_limit_in_bytes(64 << 20);
  request.mutable_linux()->set_cpu_shares(512);
  v1::UpdateContainerResourcesResponse response;
  grpc::Status s = berthd_->runtime().UpdateContainerResources(&ctx, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::string memory = "/sys/fs/cgroup/memory" + cgroup_parent_ + "/" + id;
  if (!std::filesystem::exists(memory)) memory = "/sys/fs/cgroup" + cgroup_parent_ + "/" + id;
  std::ifstream limit(memory + (std::filesystem::exists(memory + "/memory.max")
                                    ? "/memory.max"
                                    : "/memory.limit_in_bytes"));
  int64_t bytes = 0;
  limit >> bytes;
  EXPECT_EQ(bytes, 64 << 20);
}

TEST_F(ContainerTest, ReopenContainerLogStartsANewFile) {
  std::string id = Create("rotated", {"sh", "-c", "while true; do echo tick; sleep 0.1; done"});
  ASSERT_TRUE(Start(id).ok());
  const std::string log = logs_ + "/rotated.log";
  for (int i = 0; i < 100 && !std::filesystem::exists(log); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(rename(log.c_str(), (log + ".1").c_str()), 0);
  grpc::ClientContext ctx;
  v1::ReopenContainerLogRequest request;
  request.set_container_id(id);
  v1::ReopenContainerLogResponse response;
  grpc::Status s = berthd_->runtime().ReopenContainerLog(&ctx, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::string text;
  for (int i = 0; i < 100 && text.find("stdout F tick") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(log);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  EXPECT_NE(text.find("stdout F tick"), std::string::npos) << text;
}

TEST_F(ContainerTest, StatsComeFromTheCgroupAndTheWritableLayer) {
  std::string id =
      Create("busy", {"sh", "-c", "head -c 1000000 /dev/zero > /big; while true; do :; done"});
  ASSERT_TRUE(Start(id).ok());
  v1::ContainerStatsResponse first;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    grpc::ClientContext ctx;
    v1::ContainerStatsRequest request;
    request.set_container_id(id);
    ASSERT_TRUE(berthd_->runtime().ContainerStats(&ctx, request, &first).ok());
    if (first.stats().writable_layer().used_bytes().value() >= 1000000) break;
  }
  const v1::ContainerStats& stats = first.stats();
  EXPECT_EQ(stats.attributes().id(), id);
  EXPECT_EQ(stats.attributes().metadata().name(), "busy");
  EXPECT_GT(stats.cpu().timestamp(), 0);
  EXPECT_GT(stats.cpu().usage_core_nano_seconds().value(), 0u);
  EXPECT_GT(stats.memory().timestamp(), 0);
  EXPECT_GT(stats.memory().working_set_bytes().value(), 0u);
  EXPECT_GE(stats.writable_layer().used_bytes().value(), 1000000u);
  EXPECT_GT(stats.writable_layer().inodes_used().value(), 0u);

  // A second sample has a rate: the busy loop uses a good part of a core.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  grpc::ClientContext ctx;
  v1::ListContainerStatsRequest request;
  request.mutable_filter()->set_pod_sandbox_id(pod_);
  v1::ListContainerStatsResponse listed;
  ASSERT_TRUE(berthd_->runtime().ListContainerStats(&ctx, request, &listed).ok());
  ASSERT_EQ(listed.stats_size(), 1);
  EXPECT_GT(listed.stats(0).cpu().usage_nano_cores().value(), 100'000'000u);
  EXPECT_GT(listed.stats(0).cpu().usage_core_nano_seconds().value(),
            stats.cpu().usage_core_nano_seconds().value());
}

TEST_F(ContainerTest, AMemoryHogOverItsLimitIsOomKilled) {
  grpc::ClientContext ctx;
  v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(pod_);
  *request.mutable_sandbox_config() = pod_config_;
  v1::ContainerConfig* config = request.mutable_config();
  config->mutable_metadata()->set_name("hog");
  config->mutable_image()->set_image("busybox:1.36");
  // dd allocates its whole block before reading into it.
  for (const char* arg : {"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"}) {
    config->add_command(arg);
  }
  config->mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(32 << 20);
  config->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      v1::CONTAINER);
  v1::CreateContainerResponse created;
  grpc::Status s = berthd_->runtime().CreateContainer(&ctx, request, &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Start(created.container_id()).ok());
  v1::ContainerStatus status = WaitExited(created.container_id());
  ASSERT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 137);
  EXPECT_EQ(status.reason(), "OOMKilled");
}

TEST_F(ContainerTest, GetContainerEventsStreamsTheLifecycleWithoutAnyPolling) {
  grpc::ClientContext stream_ctx;
  stream_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  std::unique_ptr<grpc::ClientReader<v1::ContainerEventResponse>> stream =
      berthd_->runtime().GetContainerEvents(&stream_ctx, v1::GetEventsRequest());
  std::vector<v1::ContainerEventResponse> seen;
  std::thread reader([&] {
    v1::ContainerEventResponse event;
    while (stream->Read(&event)) {
      seen.push_back(event);
      if (event.container_event_type() == v1::CONTAINER_DELETED_EVENT) break;
    }
  });
  // Events published before the server subscribed are not sent: give it a moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string id = Create("short", {"true"});
  ASSERT_TRUE(Start(id).ok());
  // No status call here: the exit watcher alone must produce the STOPPED event.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  grpc::ClientContext rm_ctx;
  v1::RemoveContainerRequest remove;
  remove.set_container_id(id);
  v1::RemoveContainerResponse removed;
  ASSERT_TRUE(berthd_->runtime().RemoveContainer(&rm_ctx, remove, &removed).ok());
  reader.join();
  stream_ctx.TryCancel();
  std::vector<v1::ContainerEventType> types;
  for (const v1::ContainerEventResponse& e : seen) {
    EXPECT_EQ(e.container_id(), id);
    EXPECT_GT(e.created_at(), 0);
    types.push_back(e.container_event_type());
  }
  EXPECT_EQ(types, (std::vector<v1::ContainerEventType>{
                       v1::CONTAINER_CREATED_EVENT, v1::CONTAINER_STARTED_EVENT,
                       v1::CONTAINER_STOPPED_EVENT, v1::CONTAINER_DELETED_EVENT}));
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen[2].pod_sandbox_status().id(), pod_);
  ASSERT_EQ(seen[2].containers_statuses_size(), 1);
  EXPECT_EQ(seen[2].containers_statuses(0).state(), v1::CONTAINER_EXITED);
}

}  // namespace
}  // namespace berth::testing
