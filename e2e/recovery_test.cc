// berthd killed with SIGKILL (a crash) in the middle of RunPodSandbox and
// CreateContainer, and while containers run: after a restart nothing of the
// half-made objects is left (mounts, namespace pins, runc state, shims,
// berth-pause), their names can be used again, and containers that ran on keep
// running or report how they ended. docs/recovery.md states the rules.
#include <unistd.h>

#include <thread>

#include "e2e/berthd_fixture.h"
#include "e2e/busybox_node.h"
#include "gtest/gtest.h"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;

class RecoveryTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: pods and containers run through runc";
    absl::StatusOr<BusyboxNode> node = StartBusyboxNode();
    ASSERT_TRUE(node.ok()) << node.status();
    registry_ = std::move(node->registry);
    berthd_ = std::move(node->berthd);

    pod_config_.mutable_metadata()->set_name("recovered");
    pod_config_.mutable_metadata()->set_uid("recovered-uid");
    pod_config_.mutable_metadata()->set_namespace_("default");
    pod_config_.set_log_directory(berthd_->dir() + "/logs");
    // POD: the pod gets berth-pause, so a crash can leave an infra process too.
    pod_config_.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        v1::POD);
  }

  void TearDown() override {
    if (berthd_ == nullptr) return;
    for (const v1::PodSandbox& pod : ListPods()) {
      grpc::ClientContext ctx;
      v1::RemovePodSandboxRequest request;
      request.set_pod_sandbox_id(pod.id());
      v1::RemovePodSandboxResponse response;
      grpc::Status s = berthd_->runtime().RemovePodSandbox(&ctx, request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    EXPECT_EQ(LeakCensus(berthd_->dir()), std::vector<std::string>{});
  }

  grpc::Status RunPod(std::string* id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::RunPodSandboxRequest request;
    *request.mutable_config() = pod_config_;
    v1::RunPodSandboxResponse response;
    grpc::Status s = berthd_->runtime().RunPodSandbox(&ctx, request, &response);
    *id = response.pod_sandbox_id();
    return s;
  }

  grpc::Status CreateContainer(const std::string& pod, const std::vector<std::string>& command,
                               std::string* id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(pod);
    *request.mutable_sandbox_config() = pod_config_;
    v1::ContainerConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name("worker");
    config->mutable_image()->set_image("busybox:1.36");
    for (const std::string& c : command) config->add_command(c);
    config->set_log_path("worker.log");
    v1::CreateContainerResponse response;
    grpc::Status s = berthd_->runtime().CreateContainer(&ctx, request, &response);
    *id = response.container_id();
    return s;
  }

  grpc::Status StartContainer(const std::string& id) {
    grpc::ClientContext ctx;
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    return berthd_->runtime().StartContainer(&ctx, request, &response);
  }

  v1::ContainerStatus ContainerStatus(const std::string& id) {
    grpc::ClientContext ctx;
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    v1::ContainerStatusResponse response;
    grpc::Status s = berthd_->runtime().ContainerStatus(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.status();
  }

  std::vector<v1::PodSandbox> ListPods() {
    grpc::ClientContext ctx;
    v1::ListPodSandboxResponse response;
    grpc::Status s =
        berthd_->runtime().ListPodSandbox(&ctx, v1::ListPodSandboxRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {response.items().begin(), response.items().end()};
  }

  std::vector<v1::Container> ListContainers() {
    grpc::ClientContext ctx;
    v1::ListContainersResponse response;
    grpc::Status s =
        berthd_->runtime().ListContainers(&ctx, v1::ListContainersRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {response.containers().begin(), response.containers().end()};
  }

  // Restarts berthd armed to die at `point`, runs `operation` (which must fail: the
  // daemon is gone), then restarts it plainly.
  void CrashInside(const std::string& point, const std::function<grpc::Status()>& operation) {
    berthd_->Kill9();
    ASSERT_TRUE(berthd_->Restart({"BERTH_CRASH_POINT=" + point}).ok());
    grpc::Status s = operation();
    EXPECT_FALSE(s.ok()) << "berthd did not die at " << point;
    berthd_->Kill9();  // reaps the dead daemon
    ASSERT_TRUE(berthd_->Restart().ok());
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<BerthdFixture> berthd_;
  v1::PodSandboxConfig pod_config_;
};

class CrashInRunPodSandbox : public RecoveryTest {};

TEST_P(CrashInRunPodSandbox, LeavesNothingAndTheNameIsFree) {
  std::string pod;
  CrashInside(GetParam(), [&] { return RunPod(&pod); });
  EXPECT_TRUE(ListPods().empty());
  EXPECT_EQ(LeakCensus(berthd_->dir()), std::vector<std::string>{});
  // The kubelet's retry with the same metadata now succeeds.
  grpc::Status s = RunPod(&pod);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(ListPods().size(), 1u);
  EXPECT_EQ(ListPods()[0].state(), v1::SANDBOX_READY);
}

INSTANTIATE_TEST_SUITE_P(Points, CrashInRunPodSandbox,
                         ::testing::Values("pod.pinned", "pod.infra_started"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

class CrashInCreateContainer : public RecoveryTest {};

TEST_P(CrashInCreateContainer, LeavesThePodAndNothingOfTheContainer) {
  std::string pod;
  ASSERT_TRUE(RunPod(&pod).ok());
  std::string container;
  CrashInside(GetParam(), [&] { return CreateContainer(pod, {"sleep", "1000"}, &container); });
  EXPECT_TRUE(ListContainers().empty());
  ASSERT_EQ(ListPods().size(), 1u);
  EXPECT_EQ(ListPods()[0].state(), v1::SANDBOX_READY);
  // Only the pod's own things remain: its 3 pins and shm, and berth-pause (its
  // shim and its runc container).
  std::vector<std::string> left = LeakCensus(berthd_->dir());
  EXPECT_EQ(left.size(), 6u) << ::testing::PrintToString(left);
  grpc::Status s = CreateContainer(pod, {"sleep", "1000"}, &container);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(StartContainer(container).ok());
  EXPECT_EQ(ContainerStatus(container).state(), v1::CONTAINER_RUNNING);
}

INSTANTIATE_TEST_SUITE_P(Points, CrashInCreateContainer,
                         ::testing::Values("container.mounted", "container.shim_started"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

TEST_F(RecoveryTest, ContainersOutliveACrashAndReportExitsThatHappenedMeanwhile) {
  std::string pod, runner, quitter;
  ASSERT_TRUE(RunPod(&pod).ok());
  ASSERT_TRUE(CreateContainer(pod, {"sleep", "1000"}, &runner).ok());
  ASSERT_TRUE(StartContainer(runner).ok());
  grpc::ClientContext ctx;
  v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(pod);
  request.mutable_config()->mutable_metadata()->set_name("quitter");
  request.mutable_config()->mutable_image()->set_image("busybox:1.36");
  for (const char* c : {"sh", "-c", "sleep 1; exit 5"}) request.mutable_config()->add_command(c);
  v1::CreateContainerResponse created;
  ASSERT_TRUE(berthd_->runtime().CreateContainer(&ctx, request, &created).ok());
  quitter = created.container_id();
  ASSERT_TRUE(StartContainer(quitter).ok());

  berthd_->Kill9();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the quitter exits meanwhile
  ASSERT_TRUE(berthd_->Restart().ok());

  v1::ContainerStatus quit = ContainerStatus(quitter);
  EXPECT_EQ(quit.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(quit.exit_code(), 5);
  EXPECT_EQ(quit.reason(), "Error");
  EXPECT_EQ(ContainerStatus(runner).state(), v1::CONTAINER_RUNNING);
  // The adopted container can be stopped.
  grpc::ClientContext stop_ctx;
  v1::StopContainerRequest stop;
  stop.set_container_id(runner);
  stop.set_timeout(1);
  v1::StopContainerResponse stopped;
  ASSERT_TRUE(berthd_->runtime().StopContainer(&stop_ctx, stop, &stopped).ok());
  EXPECT_EQ(ContainerStatus(runner).state(), v1::CONTAINER_EXITED);
}

}  // namespace
}  // namespace berth::testing
