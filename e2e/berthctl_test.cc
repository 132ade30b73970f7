// berthctl as an operator types it, against a real berthd and registry.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "e2e/berthd_fixture.h"
#include "e2e/busybox_node.h"
#include "e2e/http_probe.h"
#include "e2e/fixtures/image_kit.h"
#include "e2e/fixtures/registry.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/base/strings.h"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;

std::string BerthctlPath() {
  return StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"), "/cli/berthctl");
}

struct CommandRun {
  int code;
  std::string out;
  std::string err;  // empty unless asked for apart from out
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs berthctl with args (through sh, so they can be quoted) against the fixture's
// socket; stdout and stderr together in out, or stderr apart in err when `stderr_file`
// is given.
CommandRun Berthctl(const BerthdFixture& berthd, const std::string& args,
                    const std::string& stderr_file = "") {
  std::string command =
      StrCat(BerthctlPath(), " -r unix://", berthd.socket(), " ", args,
             stderr_file.empty() ? std::string(" 2>&1") : StrCat(" 2>", stderr_file));
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out,
          stderr_file.empty() ? "" : ReadFile(stderr_file)};
}

// A berthctl left running in the background (`events`), its stdout and stderr
// each in a file. Going out of scope kills it by its PID.
class BackgroundBerthctl {
 public:
  BackgroundBerthctl(const BerthdFixture& berthd, const std::vector<std::string>& args,
                     const std::string& out_file, const std::string& err_file)
      : out_file_(out_file), err_file_(err_file) {
    const std::string binary = BerthctlPath();
    std::vector<std::string> all = {binary, "-r", "unix://" + berthd.socket()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : all) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Dies with the test, so a crashed test leaves no berthctl behind.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(out, STDOUT_FILENO);
      dup2(err, STDERR_FILENO);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    close(out);
    close(err);
  }
  ~BackgroundBerthctl() { Kill(); }
  BackgroundBerthctl(const BackgroundBerthctl&) = delete;
  BackgroundBerthctl& operator=(const BackgroundBerthctl&) = delete;

  pid_t pid() const { return pid_; }
  std::string out() const { return ReadFile(out_file_); }
  std::string err() const { return ReadFile(err_file_); }

  // Waits until it has connected to its endpoint (it holds a socket), then
  // gives it `settle` for its call to reach the daemon.
  void WaitConnected(std::chrono::milliseconds settle) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!HoldsASocket() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(HoldsASocket()) << "berthctl never connected; stderr: " << err();
    std::this_thread::sleep_for(settle);
  }

  // Its exit code once it has ended on its own (-1 if a signal killed it), or
  // nullopt if it is still running after `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }

  // Interrupts it, as Ctrl-C would, and reaps it.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);
    if (!Wait(std::chrono::seconds(10)).has_value() && pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  bool HoldsASocket() const {
    std::error_code ec;
    for (const auto& fd : std::filesystem::directory_iterator(StrCat("/proc/", pid_, "/fd"), ec)) {
      std::error_code link_ec;
      if (std::filesystem::read_symlink(fd.path(), link_ec).string().rfind("socket:", 0) == 0) {
        return true;
      }
    }
    return false;
  }

  const std::string out_file_, err_file_;
  pid_t pid_ = -1;
};

TEST(BerthctlTest, VersionInfoAndTheImageCommands) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: image layers are unpacked with ownership";
  absl::StatusOr<OciImage> busybox = BuildBusyboxImage();
  ASSERT_TRUE(busybox.ok());
  absl::StatusOr<std::unique_ptr<Registry>> registry = Registry::Start();
  ASSERT_TRUE(registry.ok()) << registry.status();
  ASSERT_TRUE((*registry)->Push(*busybox, "library/busybox", "1.36").ok());
  absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start(
      {.config_toml = "[registries.\"*\"]\nmirrors = [\"" + (*registry)->url() + "\"]\n"});
  ASSERT_TRUE(berthd.ok()) << berthd.status();
  BerthdFixture& d = **berthd;

  CommandRun version = Berthctl(d, "version");
  EXPECT_EQ(version.code, 0) << version.out;
  EXPECT_NE(version.out.find("RuntimeName:  berth"), std::string::npos) << version.out;

  CommandRun info = Berthctl(d, "-o json info");
  ASSERT_EQ(info.code, 0) << info.out;
  nlohmann::json json = nlohmann::json::parse(info.out);
  EXPECT_EQ(json["config"]["root"], d.root());
  EXPECT_EQ(json["daemon"]["pid"], std::to_string(d.pid()));

  CommandRun pull = Berthctl(d, "pull busybox:1.36");
  ASSERT_EQ(pull.code, 0) << pull.out;
  EXPECT_NE(pull.out.find(busybox->config.digest), std::string::npos) << pull.out;

  CommandRun images = Berthctl(d, "images");
  ASSERT_EQ(images.code, 0) << images.out;
  EXPECT_NE(images.out.find("docker.io/library/busybox"), std::string::npos) << images.out;
  EXPECT_NE(images.out.find("1.36"), std::string::npos) << images.out;

  CommandRun yaml = Berthctl(d, "-o yaml images");
  EXPECT_NE(yaml.out.find("repoTags:"), std::string::npos) << yaml.out;

  CommandRun inspect = Berthctl(d, "inspecti busybox:1.36");
  ASSERT_EQ(inspect.code, 0) << inspect.out;
  EXPECT_EQ(nlohmann::json::parse(inspect.out)["status"]["id"], busybox->config.digest);

  CommandRun fs = Berthctl(d, "imagefsinfo");
  EXPECT_EQ(fs.code, 0) << fs.out;
  EXPECT_NE(fs.out.find(d.root()), std::string::npos) << fs.out;

  CommandRun rmi = Berthctl(d, "rmi busybox:1.36");
  EXPECT_EQ(rmi.code, 0) << rmi.out;
  CommandRun again = Berthctl(d, "rmi busybox:1.36");
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_NE(again.out.find("no such image"), std::string::npos) << again.out;

  CommandRun bad = Berthctl(d, "pull Not:A:Ref");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("berthctl: PullImage"), std::string::npos) << bad.out;
}

TEST(BerthctlTest, PodCommands) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: pods pin namespaces with mounts";
  absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start();
  ASSERT_TRUE(berthd.ok()) << berthd.status();
  BerthdFixture& d = **berthd;
  std::string config = d.dir() + "/pod.json";
  std::ofstream(config) << R"({"metadata": {"name": "cli-pod", "namespace": "default",
                               "uid": "cli-uid", "attempt": 0},
                               "hostname": "cli-pod", "labels": {"app": "cli"}})";

  CommandRun runp = Berthctl(d, "runp " + config);
  ASSERT_EQ(runp.code, 0) << runp.out;
  std::string id = runp.out.substr(0, runp.out.find('\n'));
  EXPECT_EQ(id.size(), 64u) << runp.out;

  CommandRun pods = Berthctl(d, "pods");
  EXPECT_EQ(pods.code, 0) << pods.out;
  EXPECT_NE(pods.out.find(id.substr(0, 13)), std::string::npos) << pods.out;
  EXPECT_NE(pods.out.find("Ready"), std::string::npos) << pods.out;
  EXPECT_NE(pods.out.find("cli-pod"), std::string::npos) << pods.out;

  CommandRun inspect = Berthctl(d, "inspectp " + id.substr(0, 12));
  ASSERT_EQ(inspect.code, 0) << inspect.out;
  nlohmann::json status = nlohmann::json::parse(inspect.out);
  EXPECT_EQ(status["status"]["id"], id);
  EXPECT_EQ(status["status"]["labels"]["app"], "cli");

  EXPECT_EQ(Berthctl(d, "stopp " + id).code, 0);
  EXPECT_NE(Berthctl(d, "pods").out.find("NotReady"), std::string::npos);
  CommandRun rmp = Berthctl(d, "rmp " + id);
  EXPECT_EQ(rmp.code, 0) << rmp.out;
  EXPECT_EQ(Berthctl(d, "pods -q").out, "");

  std::ofstream(config) << "{not json";
  CommandRun bad = Berthctl(d, "runp " + config);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("not a PodSandboxConfig"), std::string::npos) << bad.out;
}

// The container commands against a berthd whose registry mirror serves busybox:1.36
// (not pulled yet: `run` pulls it). Each test ends with every pod removed, whatever it
// left behind, and checks that berth left nothing behind either.
class BerthctlContainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: containers run through runc";
    absl::StatusOr<OciImage> busybox = BuildBusyboxImage();
    ASSERT_TRUE(busybox.ok()) << busybox.status();
    absl::StatusOr<std::unique_ptr<Registry>> registry = Registry::Start();
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Push(*busybox, "library/busybox", "1.36").ok());
    absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start(
        {.config_toml = "[registries.\"*\"]\nmirrors = [\"" + registry_->url() + "\"]\n"});
    ASSERT_TRUE(berthd.ok()) << berthd.status();
    berthd_ = *std::move(berthd);
    logs_ = berthd_->dir() + "/logs";
    pod_config_ = berthd_->dir() + "/pod.json";
    std::ofstream(pod_config_) << R"({"metadata": {"name": "cli-ctr-pod", "namespace": "default",
                                     "uid": "cli-ctr-uid"},
                                     "log_directory": ")"
                               << logs_ << R"("})";
  }

  void TearDown() override {
    if (berthd_ == nullptr) return;
    grpc::ClientContext list_ctx;
    v1::ListPodSandboxResponse pods;
    grpc::Status s =
        berthd_->runtime().ListPodSandbox(&list_ctx, v1::ListPodSandboxRequest(), &pods);
    EXPECT_TRUE(s.ok()) << s.error_message();
    for (const v1::PodSandbox& pod : pods.items()) {
      grpc::ClientContext ctx;
      v1::RemovePodSandboxRequest request;
      request.set_pod_sandbox_id(pod.id());
      v1::RemovePodSandboxResponse response;
      s = berthd_->runtime().RemovePodSandbox(&ctx, request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    EXPECT_EQ(LeakCensus(berthd_->dir()), std::vector<std::string>{});
    // What `run` without --pod-config made where the kubelet keeps pod logs.
    for (const std::string& dir : DefaultLogDirectories()) std::filesystem::remove_all(dir);
  }

  CommandRun Berthctl(const std::string& args) {
    return berth::testing::Berthctl(*berthd_, args, berthd_->dir() + "/berthctl.stderr");
  }

  // The pod log directories under /var/log/pods of pods named with this test's prefix.
  std::vector<std::string> DefaultLogDirectories() const {
    std::vector<std::string> dirs;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/var/log/pods", ec)) {
      if (entry.path().filename().string().rfind("default_" + name_prefix_, 0) == 0) {
        dirs.push_back(entry.path());
      }
    }
    return dirs;
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

  v1::ContainerStatus WaitExited(const std::string& id) {
    v1::ContainerStatus status;
    for (int i = 0; i < 500; ++i) {
      status = Status(id);
      if (status.state() == v1::CONTAINER_EXITED) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return status;
  }

  // `logs id` once its stdout ends with `last_line`.
  CommandRun WaitForLog(const std::string& id, const std::string& last_line) {
    CommandRun logs;
    for (int i = 0; i < 100; ++i) {
      logs = Berthctl("logs " + id);
      if (logs.out.size() >= last_line.size() &&
          logs.out.compare(logs.out.size() - last_line.size(), last_line.size(), last_line) == 0) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return logs;
  }

  std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<BerthdFixture> berthd_;
  std::string logs_, pod_config_;
  // Names of pods that `run` logs under /var/log/pods start with this.
  const std::string name_prefix_ = StrCat("berthctl-e2e-", getpid(), "-");
};

TEST_F(BerthctlContainerTest, RunDetachedThenPsInspectLogsStopAndRm) {
  CommandRun run = Berthctl(
      "run -d --name web --pod-config " + pod_config_ +
      " -e GREETING=hello busybox:1.36 --"
      // The shim reads stdout and stderr apart: the pause orders their records.
      " sh -c 'echo $GREETING; echo oops >&2; sleep 0.5; for i in 1 2 3 4 5; do echo line$i;"
      " done; exec sleep 1000'");
  ASSERT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_NE(run.err.find("pulling"), std::string::npos) << run.err;
  std::string id = FirstLine(run.out);
  ASSERT_EQ(id.size(), 64u) << run.out;

  CommandRun ps = Berthctl("ps");
  ASSERT_EQ(ps.code, 0) << ps.err;
  EXPECT_NE(ps.out.find("CONTAINER"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find(id.substr(0, 13) + " "), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("busybox:1.36"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("Running"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("web"), std::string::npos) << ps.out;
  EXPECT_EQ(Berthctl("ps -q").out, id + "\n");
  EXPECT_EQ(Berthctl("ps -q --name '^we'").out, id + "\n");
  EXPECT_EQ(Berthctl("ps -q --name '^eb'").out, "");

  CommandRun json = Berthctl("ps -o json");
  ASSERT_EQ(json.code, 0) << json.err;
  nlohmann::json listed = nlohmann::json::parse(json.out);
  ASSERT_EQ(listed["containers"].size(), 1u) << json.out;
  EXPECT_EQ(listed["containers"][0]["metadata"]["name"], "web");
  std::string pod_id = listed["containers"][0]["podSandboxId"];

  CommandRun inspect = Berthctl("inspect " + id.substr(0, 8));
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  nlohmann::json inspected = nlohmann::json::parse(inspect.out);
  EXPECT_EQ(inspected["status"]["id"], id);
  EXPECT_EQ(inspected["status"]["state"], "CONTAINER_RUNNING");
  EXPECT_EQ(inspected["status"]["logPath"], logs_ + "/web.log");
  // The runtime's verbose info comes nested as JSON, not as a string holding JSON.
  EXPECT_EQ(inspected["info"]["sandboxID"], pod_id) << inspect.out;
  EXPECT_NE(Berthctl("inspect -o yaml " + id).out.find("state: CONTAINER_RUNNING"),
            std::string::npos);

  // stdout lines to stdout, stderr lines to stderr.
  CommandRun logs = WaitForLog(id, "line5\n");
  EXPECT_EQ(logs.code, 0) << logs.err;
  EXPECT_EQ(logs.out, "hello\nline1\nline2\nline3\nline4\nline5\n");
  EXPECT_EQ(logs.err, "oops\n");
  CommandRun tail = Berthctl("logs --tail 2 " + id);
  EXPECT_EQ(tail.out, "line4\nline5\n");
  EXPECT_EQ(tail.err, "");
  CommandRun stamped = Berthctl("logs --timestamps --tail 1 " + id);
  EXPECT_TRUE(std::regex_match(stamped.out, std::regex(R"(\d{4}-\d\d-\d\dT[\d:.]+Z line5\n)")))
      << stamped.out;

  std::string prefix = id.substr(0, 12);
  CommandRun stop = Berthctl("stop -t 1 " + prefix);
  EXPECT_EQ(stop.code, 0) << stop.err;
  EXPECT_EQ(stop.out, prefix + "\n");
  EXPECT_EQ(Berthctl("ps -q").out, "");  // running ones only
  CommandRun all = Berthctl("ps -a");
  EXPECT_NE(all.out.find("Exited"), std::string::npos) << all.out;
  CommandRun rm = Berthctl("rm " + prefix);
  EXPECT_EQ(rm.code, 0) << rm.err;
  EXPECT_EQ(rm.out, prefix + "\n");
  EXPECT_EQ(Berthctl("ps -a -q").out, "");
  // Without --rm the pod stays; TearDown removes it.
  EXPECT_EQ(Berthctl("pods -q").out, pod_id + "\n");
}

TEST_F(BerthctlContainerTest, CreateAndStartFromJsonFilesAndLongLinesComeOutWhole) {
  ASSERT_EQ(Berthctl("pull busybox:1.36").code, 0);
  CommandRun runp = Berthctl("runp " + pod_config_);
  ASSERT_EQ(runp.code, 0) << runp.err;
  std::string pod_id = FirstLine(runp.out);

  // 40000 characters: the log holds them as 16 KiB P records ended by an F record.
  std::string container_config = berthd_->dir() + "/container.json";
  std::ofstream(container_config) << R"({"metadata": {"name": "json-ctr"},
      "image": {"image": "busybox:1.36"},
      "command": ["sh", "-c", "yes a | head -n 40000 | tr -d '\\n'; echo; echo done"],
      "labels": {"app": "json"}, "log_path": "json-ctr.log"})";
  CommandRun create = Berthctl(StrCat("create ", pod_id, " ", container_config, " ", pod_config_));
  ASSERT_EQ(create.code, 0) << create.err;
  std::string id = FirstLine(create.out);
  ASSERT_EQ(id.size(), 64u) << create.out;

  EXPECT_EQ(Berthctl("ps -q").out, "");
  EXPECT_NE(Berthctl("ps -a").out.find("Created"), std::string::npos);
  EXPECT_EQ(Berthctl("ps -q --state created").out, id + "\n");
  EXPECT_EQ(Berthctl("ps -a -q --label app=json --pod " + pod_id.substr(0, 6)).out, id + "\n");
  EXPECT_EQ(Berthctl("ps -a -q --label app=other").out, "");

  CommandRun start = Berthctl("start " + id);
  EXPECT_EQ(start.code, 0) << start.err;
  EXPECT_EQ(start.out, id + "\n");
  ASSERT_EQ(WaitExited(id).state(), v1::CONTAINER_EXITED);
  ASSERT_NE(ReadFile(logs_ + "/json-ctr.log").find(" stdout P "), std::string::npos);
  CommandRun logs = Berthctl("logs " + id);
  EXPECT_EQ(logs.out, std::string(40000, 'a') + "\ndone\n");
  EXPECT_EQ(Berthctl("logs --tail 1 " + id).out, "done\n");

  std::ofstream(container_config) << R"({"metadata": {"name": "typo"}, "imag": {}})";
  CommandRun bad = Berthctl(StrCat("create ", pod_id, " ", container_config, " ", pod_config_));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("is not a ContainerConfig"), std::string::npos) << bad.err;
  CommandRun bad_state = Berthctl("ps --state sleeping");
  EXPECT_EQ(bad_state.code, 1);
  EXPECT_NE(bad_state.err.find("not one of created, running, exited"), std::string::npos);
}

TEST_F(BerthctlContainerTest, RunRmPropagatesTheExitCodeAndLeavesNothing) {
  std::string name = name_prefix_ + "rm";
  CommandRun run = Berthctl(
      StrCat("run --rm --name ", name, " busybox:1.36 -- sh -c 'echo out; echo err >&2; exit 7'"));
  EXPECT_EQ(run.code, 7) << run.out << run.err;
  EXPECT_EQ(run.out, "out\n");
  EXPECT_NE(run.err.find("err\n"), std::string::npos) << run.err;
  EXPECT_EQ(Berthctl("pods -q").out, "");
  EXPECT_EQ(Berthctl("ps -a -q").out, "");
  // The pod's log directory went with it: no kubelet will clean up after `run`.
  EXPECT_EQ(DefaultLogDirectories(), std::vector<std::string>{});

  CommandRun ok = Berthctl(StrCat("run --rm --name ", name_prefix_, "ok busybox:1.36 -- true"));
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_EQ(Berthctl("pods -q").out, "");

  CommandRun both = Berthctl("run --rm -d busybox:1.36");
  EXPECT_EQ(both.code, 1);
  EXPECT_NE(both.err.find("--rm needs the foreground"), std::string::npos) << both.err;
}

TEST_F(BerthctlContainerTest, LogsFollowTheContainerAcrossALogRotation) {
  CommandRun run = Berthctl("run -d --name ticker --pod-config " + pod_config_ +
                            " busybox:1.36 --"
                            " sh -c 'i=0; while [ $i -lt 40 ]; do echo tick$i; i=$((i+1));"
                            " sleep 0.05; done'");
  ASSERT_EQ(run.code, 0) << run.err;
  std::string id = FirstLine(run.out);

  CommandRun follow;
  std::thread follower([&] {
    follow = berth::testing::Berthctl(*berthd_, "logs -f " + id, berthd_->dir() + "/follow.stderr");
  });
  // As the kubelet rotates: rename the file away, then have the runtime reopen the path.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  std::string log = logs_ + "/ticker.log";
  EXPECT_EQ(rename(log.c_str(), (log + ".1").c_str()), 0);
  grpc::ClientContext ctx;
  v1::ReopenContainerLogRequest reopen;
  reopen.set_container_id(id);
  v1::ReopenContainerLogResponse reopened;
  grpc::Status s = berthd_->runtime().ReopenContainerLog(&ctx, reopen, &reopened);
  EXPECT_TRUE(s.ok()) << s.error_message();
  follower.join();  // ends when the container exits

  std::string want;
  for (int i = 0; i < 40; ++i) want += StrCat("tick", i, "\n");
  EXPECT_EQ(follow.code, 0) << follow.err;
  EXPECT_EQ(follow.out, want);
  // Both files hold part of it, so the follower did read across the rotation.
  EXPECT_EQ(ReadFile(log + ".1").find("tick39"), std::string::npos);
  EXPECT_EQ(ReadFile(log).find("tick0\n"), std::string::npos);
}

TEST_F(BerthctlContainerTest, ExecRunsInTheContainerAndExitsWithItsCode) {
  CommandRun run = Berthctl("run -d --name exec-target --pod-config " + pod_config_ +
                            " busybox:1.36 -- sleep 1000");
  ASSERT_EQ(run.code, 0) << run.err;
  std::string id = FirstLine(run.out);
  CommandRun exec = Berthctl("exec --timeout 10 " + id.substr(0, 10) +
                             " -- sh -c 'echo out; echo err >&2; exit 3'");
  EXPECT_EQ(exec.code, 3) << exec.err;
  EXPECT_EQ(exec.out, "out\n");
  EXPECT_EQ(exec.err, "err\n");
  EXPECT_EQ(Berthctl("exec " + id + " -- true").code, 0);
}

TEST_F(BerthctlContainerTest, StatsShowsRunningContainersUnlessAll) {
  CommandRun busy = Berthctl("run -d --name busy --pod-config " + pod_config_ +
                             " busybox:1.36 -- sh -c 'echo data > /tmp/file; exec sleep 1000'");
  ASSERT_EQ(busy.code, 0) << busy.err;
  std::string busy_id = FirstLine(busy.out);
  CommandRun done =
      Berthctl("run -d --name done --pod-config " + pod_config_ + " busybox:1.36 -- true");
  ASSERT_EQ(done.code, 0) << done.err;
  std::string done_id = FirstLine(done.out);
  ASSERT_EQ(WaitExited(done_id).state(), v1::CONTAINER_EXITED);

  CommandRun stats = Berthctl("stats");
  ASSERT_EQ(stats.code, 0) << stats.err;
  EXPECT_EQ(stats.out.rfind("CONTAINER", 0), 0u) << stats.out;
  EXPECT_NE(stats.out.find("CPU %"), std::string::npos) << stats.out;
  EXPECT_NE(stats.out.find(busy_id.substr(0, 13) + "   busy"), std::string::npos) << stats.out;
  EXPECT_EQ(stats.out.find(done_id.substr(0, 13)), std::string::npos) << stats.out;
  CommandRun all = Berthctl("stats -a -o json");
  ASSERT_EQ(all.code, 0) << all.err;
  nlohmann::json listed = nlohmann::json::parse(all.out);
  std::set<std::string> ids;
  for (const nlohmann::json& entry : listed["stats"]) {
    ids.insert(entry["attributes"]["id"].get<std::string>());
  }
  EXPECT_EQ(ids, (std::set<std::string>{busy_id, done_id})) << all.out;
}

// The process of the berthctl whose command line holds `marker`, or -1.
pid_t FindBerthctl(const std::string& marker) {
  for (const auto& proc : std::filesystem::directory_iterator("/proc")) {
    std::string cmdline = ReadFile(proc.path() / "cmdline");
    std::string argv0 = cmdline.substr(0, cmdline.find('\0'));
    if (argv0.size() >= 9 && argv0.compare(argv0.size() - 9, 9, "/berthctl") == 0 &&
        cmdline.find(marker) != std::string::npos) {
      return std::stoi(proc.path().filename());
    }
  }
  return -1;
}

TEST_F(BerthctlContainerTest, InterruptingRunStopsTheContainerAndRmStillRemovesThePod) {
  std::string name = name_prefix_ + "interrupted";
  CommandRun run;
  std::thread runner([&] {
    run = berth::testing::Berthctl(
        *berthd_,
        StrCat("run --rm --name ", name,
               " busybox:1.36 -- sh -c 'trap \"echo bye; exit 0\" TERM; echo ready;"
               " while true; do sleep 0.1; done'"),
        berthd_->dir() + "/run.stderr");
  });
  std::string id;
  for (int i = 0; i < 200 && id.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    id = FirstLine(Berthctl("ps -q --name " + name).out);
  }
  EXPECT_FALSE(id.empty());
  if (!id.empty()) WaitForLog(id, "ready\n");
  pid_t berthctl = FindBerthctl(name);
  EXPECT_GT(berthctl, 0);
  if (berthctl > 0) kill(berthctl, SIGINT);
  runner.join();

  // The container got its stop signal, said goodbye, and its exit code is run's.
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "ready\nbye\n");
  EXPECT_NE(run.err.find("Stopping container"), std::string::npos) << run.err;
  EXPECT_EQ(Berthctl("pods -q").out, "");
  EXPECT_EQ(DefaultLogDirectories(), std::vector<std::string>{});
}

TEST_F(BerthctlContainerTest, AnUnknownContainerIsNamedAndARunningOneIsNotRemovedByAccident) {
  const std::string unknown = "0123456789ab";
  for (const char* command : {"inspect", "start", "stop", "rm", "logs"}) {
    CommandRun run = Berthctl(StrCat(command, " ", unknown));
    EXPECT_EQ(run.code, 1) << command;
    EXPECT_NE(run.err.find("container " + unknown + " not found"), std::string::npos)
        << command << ": " << run.err;
    EXPECT_EQ(run.out, "") << command;
  }
  CommandRun exec = Berthctl("exec " + unknown + " -- true");
  EXPECT_EQ(exec.code, 1);
  EXPECT_NE(exec.err.find("container " + unknown + " not found"), std::string::npos) << exec.err;

  CommandRun run =
      Berthctl("run -d --name busy --pod-config " + pod_config_ + " busybox:1.36 -- sleep 1000");
  ASSERT_EQ(run.code, 0) << run.err;
  std::string id = FirstLine(run.out);
  // A name works where an id does, as with docker.
  CommandRun by_name = Berthctl("exec busy -- echo named");
  EXPECT_EQ(by_name.code, 0) << by_name.err;
  EXPECT_EQ(by_name.out, "named\n");
  CommandRun rm = Berthctl("rm " + id);
  EXPECT_EQ(rm.code, 1);
  EXPECT_NE(rm.err.find("is running"), std::string::npos) << rm.err;
  CommandRun forced = Berthctl("rm -f " + id);
  EXPECT_EQ(forced.code, 0) << forced.err;
  EXPECT_EQ(Berthctl("ps -a -q").out, "");
}

// The lines of `text`, without their newlines.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_F(BerthctlContainerTest, EventsFollowARunFromCreatedToDeleted) {
  // Pulled first, so that the run below is quick and its events are all there are.
  ASSERT_EQ(Berthctl("pull busybox:1.36").code, 0);
  BackgroundBerthctl table(*berthd_, {"events"}, berthd_->dir() + "/events.out",
                           berthd_->dir() + "/events.err");
  BackgroundBerthctl json(*berthd_, {"-o", "json", "events"}, berthd_->dir() + "/events.json",
                          berthd_->dir() + "/events-json.err");
  // Events from before a subscription are not replayed: let both subscribe first.
  table.WaitConnected(std::chrono::milliseconds(300));
  json.WaitConnected(std::chrono::milliseconds(0));

  std::string name = name_prefix_ + "events";
  CommandRun run = Berthctl(StrCat("run --rm --name ", name, " busybox:1.36 -- true"));
  ASSERT_EQ(run.code, 0) << run.err;
  // The stream may lag the RPCs by a little.
  for (int i = 0; i < 100 && (Lines(json.out()).size() < 4 || Lines(table.out()).size() < 5); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  table.Kill();
  json.Kill();
  EXPECT_EQ(table.err(), "");
  EXPECT_EQ(json.err(), "");

  // -o json: one object per line, in the order the container lived.
  const std::vector<std::string> types = {"CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT",
                                          "CONTAINER_STOPPED_EVENT", "CONTAINER_DELETED_EVENT"};
  std::vector<std::string> json_lines = Lines(json.out());
  ASSERT_EQ(json_lines.size(), types.size()) << json.out();
  std::vector<nlohmann::json> events;
  for (const std::string& line : json_lines) {
    ASSERT_TRUE(nlohmann::json::accept(line)) << line;
    events.push_back(nlohmann::json::parse(line));
  }
  const std::string id = events[0].value("containerId", "");
  ASSERT_EQ(id.size(), 64u) << json_lines[0];
  const std::string pod_id = events[0]["podSandboxStatus"].value("id", "");
  ASSERT_EQ(pod_id.size(), 64u) << json_lines[0];
  // `run` names the pod and the container alike.
  EXPECT_EQ(events[0]["podSandboxStatus"]["metadata"]["name"], name) << json_lines[0];
  ASSERT_EQ(events[0]["containersStatuses"].size(), 1u) << json_lines[0];
  EXPECT_EQ(events[0]["containersStatuses"][0]["id"], id);
  EXPECT_EQ(events[0]["containersStatuses"][0]["metadata"]["name"], name);
  for (size_t i = 0; i < types.size(); ++i) {
    EXPECT_EQ(events[i].value("containerId", ""), id) << json_lines[i];
    EXPECT_EQ(events[i].value("containerEventType", ""), types[i]) << json_lines[i];
    EXPECT_GT(std::stoll(events[i].value("createdAt", "0")), 0) << json_lines[i];
  }

  // The table: a header, then one row per event, with the short ids.
  std::vector<std::string> rows = Lines(table.out());
  ASSERT_EQ(rows.size(), 1 + types.size()) << table.out();
  EXPECT_TRUE(std::regex_match(rows[0], std::regex("TIME +CONTAINER +EVENT +POD ID"))) << rows[0];
  for (size_t i = 0; i < types.size(); ++i) {
    std::string want = StrCat(R"(\d{4}-\d\d-\d\dT[\d:.]{18}Z   )", id.substr(0, 13), "   ",
                              types[i], "   ", pod_id.substr(0, 13));
    EXPECT_TRUE(std::regex_match(rows[i + 1], std::regex(want))) << rows[i + 1];
  }
}

TEST_F(BerthctlContainerTest, EventsEndWithAnErrorNamingTheRpcWhenBerthdDies) {
  BackgroundBerthctl events(*berthd_, {"events"}, berthd_->dir() + "/events.out",
                            berthd_->dir() + "/events.err");
  events.WaitConnected(std::chrono::milliseconds(300));
  berthd_->Kill9();
  std::optional<int> code = events.Wait(std::chrono::seconds(10));
  // TearDown removes what is left through the daemon.
  ASSERT_TRUE(berthd_->Restart().ok());

  ASSERT_TRUE(code.has_value()) << "berthctl events outlived berthd";
  EXPECT_EQ(*code, 1) << events.err();
  EXPECT_EQ(events.err().rfind("berthctl: GetContainerEvents on ", 0), 0u) << events.err();
  EXPECT_NE(events.err().find(berthd_->socket()), std::string::npos) << events.err();
  EXPECT_EQ(events.out(), "");  // no event, no header
}

// run -p/--network, network ls/inspect, exec -i, attach and port-forward against berthd,
// on a bridge network of berth's plugins, all inside a network namespace of the test's
// own (the registry, berthd and every berthctl inherit it).
TEST(BerthctlTest, NetworkAndStreamingCommands) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: network namespaces and containers";
  ASSERT_EQ(unshare(CLONE_NEWNET), 0) << strerror(errno);
  ASSERT_EQ(system("ip link set lo up"), 0);
  char conf[] = "/tmp/berthctl-net-XXXXXX";
  ASSERT_NE(mkdtemp(conf), nullptr);
  const std::string conf_dir = conf;
  std::ofstream(conf_dir + "/10-e2e.conflist") << StrCat(
      R"({"cniVersion": "1.0.0", "name": "net-e2e", "plugins": [)",
      R"({"type": "berth-bridge", "bridge": "bce0", "isGateway": true, "ipMasq": true,)",
      R"( "ipam": {"type": "berth-host-local", "ranges": [[{"subnet": "10.233.0.0/24"}]],)",
      R"( "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ")", conf_dir, R"(/ipam"}},)",
      R"({"type": "berth-portmap", "capabilities": {"portMappings": true}}]})");
  absl::StatusOr<BusyboxNode> node =
      StartBusyboxNode(StrCat("[network]\nconf_dir = \"", conf_dir, "\"\n"));
  ASSERT_TRUE(node.ok()) << node.status();
  BerthdFixture& d = *node->berthd;
  const std::string dir = d.dir();

  CommandRun web = Berthctl(
      d, "run -d --name web -p 18095:8080 --network net-e2e busybox:1.36 -- sh -c "
         "'mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 8080 -h /www'");
  ASSERT_EQ(web.code, 0) << web.out;
  EXPECT_NE(HttpGetEventually("127.0.0.1", 18095, "hello-from-web").find("hello-from-web"),
            std::string::npos)
      << "the published port from 127.0.0.1";

  CommandRun ls = Berthctl(d, "network ls");
  EXPECT_EQ(ls.code, 0) << ls.out;
  EXPECT_TRUE(std::regex_search(ls.out, std::regex("net-e2e +\\* +1\\.0\\.0 +berth-bridge,berth-portmap +1")))
      << ls.out;
  CommandRun inspect = Berthctl(d, "network inspect net-e2e");
  ASSERT_EQ(inspect.code, 0) << inspect.out;
  nlohmann::json network = nlohmann::json::parse(inspect.out);
  ASSERT_EQ(network["attachments"].size(), 1u) << inspect.out;
  EXPECT_EQ(network["attachments"][0]["podName"], "web");
  EXPECT_EQ(network["attachments"][0]["ip"].get<std::string>().rfind("10.233.0.", 0), 0u);
  EXPECT_EQ(Berthctl(d, "network inspect nosuch").code, 1);

  FILE* pipe = popen(StrCat("echo through-stdin | ", BerthctlPath(), " -r unix://", d.socket(),
                            " exec -i web -- cat").c_str(),
                     "r");
  char buffer[256] = {};
  size_t n = fread(buffer, 1, sizeof buffer - 1, pipe);
  EXPECT_EQ(WEXITSTATUS(pclose(pipe)), 0);
  EXPECT_EQ(std::string(buffer, n), "through-stdin\n");
  CommandRun failing = Berthctl(d, "exec -i web -- sh -c 'exit 6' </dev/null");
  EXPECT_EQ(failing.code, 6) << failing.out;

  {
    BackgroundBerthctl forward(d, {"port-forward", "web", "18096:8080"}, dir + "/pf.out",
                               dir + "/pf.err");
    EXPECT_NE(HttpGetEventually("127.0.0.1", 18096, "hello-from-web").find("hello-from-web"),
              std::string::npos)
        << forward.err();
    EXPECT_NE(forward.out().find("Forwarding from 127.0.0.1:18096 -> 8080"), std::string::npos)
        << forward.out();
  }

  CommandRun ticker = Berthctl(
      d, "run -d --name ticker --network none busybox:1.36 -- "
         "sh -c 'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done'");
  ASSERT_EQ(ticker.code, 0) << ticker.out;
  {
    BackgroundBerthctl attach(d, {"attach", "ticker"}, dir + "/attach.out", dir + "/attach.err");
    for (int i = 0; i < 100 && attach.out().find("tick") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_NE(attach.out().find("tick"), std::string::npos) << attach.err();
    kill(attach.pid(), SIGINT);
    EXPECT_EQ(attach.Wait(std::chrono::seconds(10)), 0) << attach.err();
  }
  CommandRun ps = Berthctl(d, "ps");
  EXPECT_TRUE(std::regex_search(ps.out, std::regex("Running +ticker"))) << ps.out;

  grpc::ClientContext list_ctx;
  v1::ListPodSandboxResponse pods;
  ASSERT_TRUE(d.runtime().ListPodSandbox(&list_ctx, v1::ListPodSandboxRequest(), &pods).ok());
  EXPECT_EQ(pods.items_size(), 2);
  for (const v1::PodSandbox& pod : pods.items()) {
    CommandRun rm = Berthctl(d, StrCat("stopp ", pod.id(), " && ", BerthctlPath(), " -r unix://",
                                       d.socket(), " rmp ", pod.id()));
    EXPECT_EQ(rm.code, 0) << rm.out;
  }
  EXPECT_EQ(LeakCensus(d.dir()), std::vector<std::string>{});
  std::filesystem::remove_all(conf_dir);
}

}  // namespace
}  // namespace berth::testing
