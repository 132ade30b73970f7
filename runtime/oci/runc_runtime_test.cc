// runc driven through RuncRuntime with real busybox containers: the lifecycle, exec,
// update, and the errors runc gives. Needs root and runc; cleans every container, cgroup
// and process it made, and fails when the code under test left any.
#include "runtime/oci/runc_runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/base/strings.h"
#include "runtime/oci/subprocess.h"
#include "runtime/oci/test_util.h"

namespace berth::oci {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kRunc[] = "/usr/sbin/runc";

std::string ReadSome(int fd, absl::Duration timeout) {
  std::string out;
  absl::Time deadline = absl::Now() + timeout;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  while (absl::Now() < deadline) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, n);
      if (out.back() == '\n') break;
    } else if (n == 0) {
      break;
    } else {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  return out;
}

class RuncRuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0 || access(kRunc, X_OK) != 0) return;
    rootfs_dir_ = new testing::TempDir();
    rootfs_ = new absl::StatusOr<std::string>(
        testing::MakeBusyboxRootfs(rootfs_dir_->path() + "/rootfs"));
  }
  static void TearDownTestSuite() {
    delete rootfs_;
    rootfs_ = nullptr;
    delete rootfs_dir_;
    rootfs_dir_ = nullptr;
  }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (runc, cgroups, namespaces)";
    if (access(kRunc, X_OK) != 0) GTEST_SKIP() << kRunc << " is not installed";
    ASSERT_TRUE(rootfs_->ok()) << rootfs_->status();
    runc_ = std::make_unique<RuncRuntime>(
        RuncOptions{.binary = kRunc, .root = tmp_.path() + "/runc", .timeout = absl::Seconds(30)});
  }

  void TearDown() override {
    if (runc_ == nullptr) return;
    absl::StatusOr<std::vector<ContainerState>> left = runc_->List();
    EXPECT_TRUE(left.ok()) << left.status();
    if (left.ok()) {
      for (const ContainerState& c : *left) {
        ADD_FAILURE() << "container left in runc state: " << c.id;
        EXPECT_TRUE(runc_->Delete(c.id, /*force=*/true).ok());
      }
    }
    EXPECT_THAT(cgroups_.Remove(), IsEmpty()) << "cgroups left behind";
    EXPECT_THAT(testing::ProcessesWithCmdline(tmp_.path()), IsEmpty()) << "runc processes left";
  }

  std::string Bundle(const std::string& id, testing::BundleSpec spec) {
    spec.cgroups_path = cgroups_.PathFor(id);
    std::string dir = tmp_.path() + "/bundles/" + id;
    absl::Status written = testing::WriteBundle(dir, **rootfs_, spec);
    EXPECT_TRUE(written.ok()) << written;
    return dir;
  }

  // Polls runc until the container reports `status` (tests may poll; berthd never does).
  absl::StatusOr<ContainerState> WaitForStatus(const std::string& id, ContainerStatus status) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (true) {
      absl::StatusOr<ContainerState> state = runc_->State(id);
      if (!state.ok() || state->status == status || absl::Now() > deadline) return state;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  static testing::TempDir* rootfs_dir_;
  static absl::StatusOr<std::string>* rootfs_;
  testing::TempDir tmp_;
  testing::TestCgroupParent cgroups_;
  std::unique_ptr<RuncRuntime> runc_;
};

testing::TempDir* RuncRuntimeTest::rootfs_dir_ = nullptr;
absl::StatusOr<std::string>* RuncRuntimeTest::rootfs_ = nullptr;

TEST_F(RuncRuntimeTest, CreateStartStateKillDelete) {
  std::string bundle =
      Bundle("life", {.args = {"sh", "-c", "echo hello from $(hostname); exec sleep 100"}});
  absl::StatusOr<Pipe> out = MakePipe();
  ASSERT_TRUE(out.ok());
  std::string pid_file = tmp_.path() + "/life.pid";
  absl::Status created =
      runc_->Create("life", bundle, {.pid_file = pid_file, .stdio = {.out = out->write.get()}});
  ASSERT_TRUE(created.ok()) << created;
  out->write.reset();

  absl::StatusOr<ContainerState> state = runc_->State("life");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->id, "life");
  EXPECT_EQ(state->status, ContainerStatus::kCreated);
  EXPECT_GT(state->pid, 0);
  EXPECT_EQ(state->bundle, bundle);
  EXPECT_LT(absl::Now() - state->created, absl::Minutes(1));
  EXPECT_EQ(testing::ReadFileOrEmpty(pid_file), std::to_string(state->pid));
  // The container's cgroup is where the config put it, in v1 and in the unified hierarchy.
  EXPECT_THAT(testing::ReadFileOrEmpty(StrCat("/proc/", state->pid, "/cgroup")),
              HasSubstr(cgroups_.PathFor("life")));

  ASSERT_TRUE(runc_->Start("life").ok());
  EXPECT_EQ(ReadSome(out->read.get(), absl::Seconds(10)), "hello from berth-test\n");
  state = runc_->State("life");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->status, ContainerStatus::kRunning);

  absl::Status again = runc_->Start("life");
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_THAT(again.message(), HasSubstr("runc start life: "));

  ASSERT_TRUE(runc_->Kill("life", SIGKILL, /*all=*/false).ok());
  state = WaitForStatus("life", ContainerStatus::kStopped);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->status, ContainerStatus::kStopped);
  EXPECT_EQ(state->pid, 0);

  absl::Status kill_stopped = runc_->Kill("life", SIGTERM, false);
  EXPECT_EQ(kill_stopped.code(), absl::StatusCode::kFailedPrecondition) << kill_stopped;

  ASSERT_TRUE(runc_->Delete("life", /*force=*/false).ok());
  absl::StatusOr<ContainerState> gone = runc_->State("life");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound) << gone.status();
  EXPECT_THAT(gone.status().message(), HasSubstr("runc state life: "));
  EXPECT_EQ(runc_->Delete("life", false).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(cgroups_.Leftovers(), IsEmpty()) << "runc delete removes the container's cgroups";
}

TEST_F(RuncRuntimeTest, DeleteForceKillsARunningContainer) {
  std::string bundle = Bundle("forced", {.args = {"sleep", "100"}});
  ASSERT_TRUE(runc_->Create("forced", bundle, {}).ok());
  ASSERT_TRUE(runc_->Start("forced").ok());
  absl::StatusOr<ContainerState> state = runc_->State("forced");
  ASSERT_TRUE(state.ok());
  int pid = state->pid;
  absl::Status not_stopped = runc_->Delete("forced", /*force=*/false);
  EXPECT_FALSE(not_stopped.ok());
  ASSERT_TRUE(runc_->Delete("forced", /*force=*/true).ok());
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_NE(kill(pid, 0), 0) << "container process " << pid << " survived delete --force";
}

TEST_F(RuncRuntimeTest, Exec) {
  std::string bundle = Bundle("ex", {.args = {"sleep", "100"}});
  ASSERT_TRUE(runc_->Create("ex", bundle, {}).ok());
  ASSERT_TRUE(runc_->Start("ex").ok());

  nlohmann::json process = {
      {"args", {"sh", "-c", "echo out-$(hostname); echo err >&2; exit 7"}},
      {"env", {"PATH=/bin"}},
      {"cwd", "/"},
      {"user", {{"uid", 0}, {"gid", 0}}},
  };
  absl::StatusOr<Pipe> out = MakePipe();
  absl::StatusOr<Pipe> err = MakePipe();
  ASSERT_TRUE(out.ok() && err.ok());
  absl::StatusOr<ExecResult> result = runc_->Exec(
      "ex", process.dump(),
      {.stdio = {.out = out->write.get(), .err = err->write.get()}, .timeout = absl::Seconds(20)});
  ASSERT_TRUE(result.ok()) << result.status();
  out->write.reset();
  err->write.reset();
  EXPECT_EQ(result->exit_code, 7);
  EXPECT_GT(result->pid, 0);
  EXPECT_EQ(ReadSome(out->read.get(), absl::Seconds(5)), "out-berth-test\n");
  EXPECT_EQ(ReadSome(err->read.get(), absl::Seconds(5)), "err\n");

  // Detached: returns at once with the pid of a process that keeps running.
  process["args"] = {"sleep", "100"};
  absl::StatusOr<ExecResult> detached = runc_->Exec("ex", process.dump(), {.detach = true});
  ASSERT_TRUE(detached.ok()) << detached.status();
  EXPECT_FALSE(detached->exit_code.has_value());
  EXPECT_GT(detached->pid, 0);
  EXPECT_EQ(kill(detached->pid, 0), 0);

  // A timeout kills the exec'd process itself, not just runc.
  std::string pid_file = tmp_.path() + "/exec-timeout.pid";
  absl::Time start = absl::Now();
  absl::StatusOr<ExecResult> slow =
      runc_->Exec("ex", process.dump(), {.pid_file = pid_file, .timeout = absl::Milliseconds(500)});
  EXPECT_EQ(slow.status().code(), absl::StatusCode::kDeadlineExceeded) << slow.status();
  EXPECT_THAT(slow.status().message(), HasSubstr("runc exec ex: timed out"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  int slow_pid = atoi(testing::ReadFileOrEmpty(pid_file).c_str());
  ASSERT_GT(slow_pid, 0);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_NE(kill(slow_pid, 0), 0) << "exec'd process " << slow_pid << " outlived its timeout";

  // A command that does not exist: runc's message, not just an exit code.
  process["args"] = {"/no/such/binary"};
  absl::StatusOr<ExecResult> missing = runc_->Exec("ex", process.dump(), {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("runc exec ex: "));
  EXPECT_THAT(missing.status().message(), HasSubstr("/no/such/binary"));

  ASSERT_TRUE(runc_->Delete("ex", /*force=*/true).ok());
  process["args"] = {"true"};
  absl::StatusOr<ExecResult> deleted = runc_->Exec("ex", process.dump(), {});
  EXPECT_EQ(deleted.status().code(), absl::StatusCode::kNotFound) << deleted.status();
}

TEST_F(RuncRuntimeTest, UpdateChangesCgroupLimits) {
  std::string bundle = Bundle("upd", {.args = {"sleep", "100"}});
  ASSERT_TRUE(runc_->Create("upd", bundle, {}).ok());
  ASSERT_TRUE(runc_->Start("upd").ok());
  absl::Status updated =
      runc_->Update("upd", R"({"memory": {"limit": 67108864}, "cpu": {"shares": 512}})");
  ASSERT_TRUE(updated.ok()) << updated;
  std::string dir = cgroups_.PathFor("upd");
  EXPECT_EQ(testing::ReadFileOrEmpty("/sys/fs/cgroup/memory" + dir + "/memory.limit_in_bytes"),
            "67108864\n");
  EXPECT_EQ(testing::ReadFileOrEmpty("/sys/fs/cgroup/cpu" + dir + "/cpu.shares"), "512\n");
  absl::Status bad = runc_->Update("upd", "{not json");
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.message(), HasSubstr("runc update upd: "));
  ASSERT_TRUE(runc_->Delete("upd", /*force=*/true).ok());
}

TEST_F(RuncRuntimeTest, ListShowsEveryContainer) {
  ASSERT_TRUE(runc_->Create("a", Bundle("a", {.args = {"sleep", "100"}}), {}).ok());
  ASSERT_TRUE(runc_->Create("b", Bundle("b", {.args = {"sleep", "100"}}), {}).ok());
  absl::StatusOr<std::vector<ContainerState>> list = runc_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  std::vector<std::string> ids;
  for (const ContainerState& c : *list) {
    ids.push_back(c.id);
    EXPECT_EQ(c.status, ContainerStatus::kCreated);
  }
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre("a", "b"));
  ASSERT_TRUE(runc_->Delete("a", /*force=*/true).ok());
  ASSERT_TRUE(runc_->Delete("b", /*force=*/true).ok());
  list = runc_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(*list, IsEmpty());
}

TEST_F(RuncRuntimeTest, BadConfigErrorsCarryRuncsMessage) {
  // An executable that is not in the rootfs: runc 1.1 checks it at create.
  absl::Status missing = runc_->Create("nox", Bundle("nox", {.args = {"/no/such/binary"}}), {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.message(), HasSubstr("runc create nox: "));
  EXPECT_THAT(missing.message(), HasSubstr("/no/such/binary"));

  // A namespace type runc does not know.
  std::string dir = tmp_.path() + "/bundles/badns";
  ASSERT_TRUE(
      testing::WriteBundle(dir, **rootfs_, {.cgroups_path = cgroups_.PathFor("badns")}).ok());
  nlohmann::json config = nlohmann::json::parse(testing::ReadFileOrEmpty(dir + "/config.json"));
  config["linux"]["namespaces"].push_back({{"type", "bogus"}});
  FILE* f = fopen((dir + "/config.json").c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs(config.dump().c_str(), f);
  fclose(f);
  absl::Status bad_ns = runc_->Create("badns", dir, {});
  ASSERT_FALSE(bad_ns.ok());
  EXPECT_THAT(bad_ns.message(), HasSubstr("runc create badns: "));
  EXPECT_THAT(bad_ns.message(), HasSubstr("bogus"));

  // No bundle at all.
  absl::Status no_bundle = runc_->Create("nob", tmp_.path() + "/nowhere", {});
  ASSERT_FALSE(no_bundle.ok());
  EXPECT_THAT(no_bundle.message(), HasSubstr("nowhere"));

  // runc cleans up after a failed create; nothing may be left in its state.
  absl::StatusOr<std::vector<ContainerState>> list = runc_->List();
  ASSERT_TRUE(list.ok());
  for (const ContainerState& c : *list) {
    ADD_FAILURE() << "left after failed create: " << c.id;
    (void)runc_->Delete(c.id, true);
  }
}

}  // namespace
}  // namespace berth::oci
