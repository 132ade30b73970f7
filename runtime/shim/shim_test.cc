// berth-shim with real runc and busybox containers: the CRI log it writes, the exit it
// records, tty mode, attach and stdin, log reopening, and that it outlives whoever started
// it. Needs root and runc. Every test ends with a census: no runc state, cgroup, shim,
// runc or container process may be left.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/base/strings.h"
#include "runtime/oci/runc_runtime.h"
#include "runtime/oci/subprocess.h"
#include "runtime/oci/test_util.h"
#include "runtime/shim/shim_client.h"

namespace berth::shim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace ot = ::berth::oci::testing;

constexpr char kRunc[] = "/usr/sbin/runc";

struct Record {
  std::string stream;
  std::string tag;
  std::string text;
  bool operator==(const Record& o) const {
    return stream == o.stream && tag == o.tag && text == o.text;
  }
};

std::ostream& operator<<(std::ostream& os, const Record& r) {
  std::string text = r.text.size() > 40
                         ? r.text.substr(0, 20) + "...(" + std::to_string(r.text.size()) + " bytes)"
                         : r.text;
  return os << "{" << r.stream << " " << r.tag << " \"" << text << "\"}";
}

// Parses a CRI log, checking every line's shape; the timestamps must not go backwards.
std::vector<Record> ParseLog(const std::string& content) {
  static const std::regex kLine(
      R"(^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z) (stdout|stderr) ([PF]) (.*)$)");
  std::vector<Record> records;
  std::istringstream in(content);
  std::string line;
  absl::Time last = absl::InfinitePast();
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, kLine)) {
      ADD_FAILURE() << "not a CRI log line: \"" << line.substr(0, 100) << "\"";
      continue;
    }
    absl::Time ts;
    std::string err;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, m[1].str(), &ts, &err)) << err;
    EXPECT_GE(ts, last) << "timestamps go backwards at " << line.substr(0, 60);
    last = ts;
    records.push_back({m[3], m[4], m[5]});
  }
  EXPECT_TRUE(content.empty() || content.back() == '\n');
  return records;
}

std::vector<Record> OfStream(const std::vector<Record>& records, const std::string& stream) {
  std::vector<Record> out;
  for (const Record& r : records) {
    if (r.stream == stream) out.push_back(r);
  }
  return out;
}

std::string ShimBinary() {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) return "";
  return StrCat(srcdir, "/", workspace, "/runtime/shim/berth-shim");
}

// Reads attach frames until `want` shows up in the stream's bytes (or the deadline).
std::string ReadUntil(ShimConnection& conn, FrameType stream, const std::string& want,
                      absl::Duration timeout = absl::Seconds(10)) {
  std::string seen;
  absl::Time deadline = absl::Now() + timeout;
  while (seen.find(want) == std::string::npos && absl::Now() < deadline) {
    absl::StatusOr<ShimConnection::Frame> frame = conn.ReadFrame(deadline - absl::Now());
    if (!frame.ok()) break;
    if (frame->type == stream) seen += frame->payload;
  }
  return seen;
}

class ShimTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0 || access(kRunc, X_OK) != 0) return;
    rootfs_dir_ = new ot::TempDir();
    rootfs_ =
        new absl::StatusOr<std::string>(ot::MakeBusyboxRootfs(rootfs_dir_->path() + "/rootfs"));
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
    ASSERT_EQ(access(ShimBinary().c_str(), X_OK), 0) << ShimBinary();
    runc_ = std::make_unique<oci::RuncRuntime>(
        oci::RuncOptions{.binary = kRunc, .root = tmp_.path() + "/runc"});
    ASSERT_EQ(mkdir((tmp_.path() + "/logs").c_str(), 0755), 0);
  }

  void TearDown() override {
    if (runc_ == nullptr) return;
    absl::StatusOr<std::vector<oci::ContainerState>> left = runc_->List();
    EXPECT_TRUE(left.ok()) << left.status();
    if (left.ok()) {
      for (const oci::ContainerState& c : *left) {
        ADD_FAILURE() << "container left in runc state: " << c.id;
        (void)runc_->Delete(c.id, /*force=*/true);
      }
    }
    // Shims exit on their own once their container is gone; give them the drain time.
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!ot::ProcessesWithCmdline(tmp_.path()).empty() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    for (pid_t pid : ot::ProcessesWithCmdline(tmp_.path())) {
      ADD_FAILURE() << "process left: " << pid << " "
                    << ot::ReadFileOrEmpty(StrCat("/proc/", pid, "/cmdline"));
      kill(pid, SIGKILL);
    }
    EXPECT_THAT(cgroups_.Remove(), IsEmpty()) << "cgroups or container processes left";
  }

  ShimOptions Options(const std::string& id, const ot::BundleSpec& spec) {
    ot::BundleSpec with_cgroup = spec;
    with_cgroup.cgroups_path = cgroups_.PathFor(id);
    std::string bundle = tmp_.path() + "/bundles/" + id;
    absl::Status written = ot::WriteBundle(bundle, **rootfs_, with_cgroup);
    EXPECT_TRUE(written.ok()) << written;
    return ShimOptions{
        .shim_binary = ShimBinary(),
        .id = id,
        .bundle_dir = bundle,
        .state_dir = tmp_.path() + "/state/" + id,
        .log_path = tmp_.path() + "/logs/" + id + ".log",
        .runtime = {.binary = kRunc, .root = runc_->options().root},
        .tty = spec.terminal,
    };
  }

  // Starts a shim (runc create) and then the container (runc start).
  absl::StatusOr<ShimHandle> Run(const ShimOptions& options) {
    absl::StatusOr<ShimHandle> shim = StartShim(options);
    if (!shim.ok()) return shim;
    absl::Status started = runc_->Start(options.id);
    if (!started.ok()) return started;
    return shim;
  }

  // Waits for the exit, then removes the container from runc.
  absl::StatusOr<ExitStatus> WaitAndDelete(const ShimOptions& options,
                                           absl::Duration timeout = absl::Seconds(20)) {
    absl::StatusOr<ExitStatus> exit = WaitForExit(options.state_dir, timeout);
    absl::Status deleted = runc_->Delete(options.id, /*force=*/!exit.ok());
    EXPECT_TRUE(deleted.ok()) << deleted;
    return exit;
  }

  static ot::TempDir* rootfs_dir_;
  static absl::StatusOr<std::string>* rootfs_;
  ot::TempDir tmp_;
  ot::TestCgroupParent cgroups_;
  std::unique_ptr<oci::RuncRuntime> runc_;
};

ot::TempDir* ShimTest::rootfs_dir_ = nullptr;
absl::StatusOr<std::string>* ShimTest::rootfs_ = nullptr;

TEST_F(ShimTest, WritesTheCriLogExactly) {
  ShimOptions options = Options(
      "log", {.args = {"sh", "-c",
                       "echo out1; echo err1 >&2; head -c 40960 /dev/zero | tr '\\000' x; echo; "
                       "echo; echo err2 >&2; echo out2; printf 'tail without newline'"}});
  absl::Time before = absl::Now();
  absl::StatusOr<ShimHandle> shim = Run(options);
  ASSERT_TRUE(shim.ok()) << shim.status();
  EXPECT_GT(shim->container_pid, 0);
  EXPECT_GT(shim->shim_pid, 0);
  absl::StatusOr<ExitStatus> exit = WaitAndDelete(options);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_EQ(exit->pid, shim->container_pid);
  EXPECT_GE(exit->exited_at, before);
  EXPECT_LE(exit->exited_at, absl::Now());

  std::vector<Record> records = ParseLog(ot::ReadFileOrEmpty(options.log_path));
  const std::string x16k(16384, 'x');
  EXPECT_THAT(
      OfStream(records, "stdout"),
      ElementsAre(Record{"stdout", "F", "out1"}, Record{"stdout", "P", x16k},
                  Record{"stdout", "P", x16k}, Record{"stdout", "F", std::string(8192, 'x')},
                  Record{"stdout", "F", ""}, Record{"stdout", "F", "out2"},
                  Record{"stdout", "P", "tail without newline"}));
  EXPECT_THAT(OfStream(records, "stderr"),
              ElementsAre(Record{"stderr", "F", "err1"}, Record{"stderr", "F", "err2"}));
  // The shim is gone, and so is its socket; the exit record stays for berthd.
  EXPECT_FALSE(ShimAlive(options.state_dir));
  EXPECT_NE(access((options.state_dir + "/shim.sock").c_str(), F_OK), 0);
}

TEST_F(ShimTest, RecordsTheExitCode) {
  ShimOptions options = Options("exit3", {.args = {"sh", "-c", "exit 3"}});
  ASSERT_TRUE(Run(options).ok());
  absl::StatusOr<ExitStatus> exit = WaitAndDelete(options);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_FALSE(exit->oom_killed);
  EXPECT_THAT(
      ot::ReadFileOrEmpty(options.state_dir + "/exit"),
      ::testing::MatchesRegex(
          R"(\{"pid":[0-9]+,"exit_code":3,"signal":0,"exited_at":"[^"]+Z","oom_killed":false\}
)"));
  EXPECT_EQ(ot::ReadFileOrEmpty(options.log_path), "");
}

TEST_F(ShimTest, RecordsTheKillingSignal) {
  ShimOptions options = Options("killed", {.args = {"sleep", "100"}});
  ASSERT_TRUE(Run(options).ok());
  absl::StatusOr<ExitStatus> running = WaitForExit(options.state_dir, absl::Milliseconds(200));
  EXPECT_EQ(running.status().code(), absl::StatusCode::kDeadlineExceeded) << running.status();
  EXPECT_EQ(ReadExitFile(options.state_dir).status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(runc_->Kill("killed", SIGKILL, /*all=*/false).ok());
  absl::Time killed_at = absl::Now();
  absl::StatusOr<ExitStatus> exit = WaitForExit(options.state_dir, absl::Seconds(20));
  // inotify, not polling: the exit is seen as soon as the shim records it.
  EXPECT_LT(absl::Now() - killed_at, absl::Seconds(2));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->signal, 9);
  EXPECT_EQ(exit->exit_code, 137);
  ASSERT_TRUE(runc_->Delete("killed", /*force=*/false).ok());
}

TEST_F(ShimTest, ExitOfACreatedContainerThatNeverStarted) {
  ShimOptions options = Options("never", {.args = {"sleep", "100"}});
  absl::StatusOr<ShimHandle> shim = StartShim(options);
  ASSERT_TRUE(shim.ok()) << shim.status();
  absl::StatusOr<oci::ContainerState> state = runc_->State("never");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, oci::ContainerStatus::kCreated);
  EXPECT_EQ(state->pid, shim->container_pid);
  EXPECT_EQ(*ReadInitPid(options.state_dir), shim->container_pid);
  ASSERT_TRUE(runc_->Delete("never", /*force=*/true).ok());
  absl::StatusOr<ExitStatus> exit = WaitForExit(options.state_dir, absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->signal, 9);
}

TEST_F(ShimTest, TtyMode) {
  ShimOptions options =
      Options("tty", {.args = {"sh", "-c", "echo tty-out; echo tty-err >&2; tty; printf partial"},
                      .terminal = true});
  absl::StatusOr<ShimHandle> shim = Run(options);
  ASSERT_TRUE(shim.ok()) << shim.status();
  absl::StatusOr<ExitStatus> exit = WaitAndDelete(options);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0);
  // Everything is stdout; the terminal's "\r\n" ends lines like "\n".
  EXPECT_THAT(ParseLog(ot::ReadFileOrEmpty(options.log_path)),
              ElementsAre(Record{"stdout", "F", "tty-out"}, Record{"stdout", "F", "tty-err"},
                          Record{"stdout", "F", "/dev/pts/0"}, Record{"stdout", "P", "partial"}));
}

TEST_F(ShimTest, TtyResizeAndStdinThroughALongStatePath) {
  // A state dir too long for sockaddr_un: the shim and the client go through /proc.
  ShimOptions options = Options(
      "ttyin",
      {.args = {"sh", "-c", "read line; echo \"size $(stty size) line $line\""}, .terminal = true});
  options.state_dir = tmp_.path() + "/" + std::string(100, 'd') + "/ttyin";
  options.stdin = true;
  ASSERT_GT(options.state_dir.size() + sizeof("/shim.sock"), 108u);
  absl::StatusOr<ShimHandle> shim = Run(options);
  ASSERT_TRUE(shim.ok()) << shim.status();

  absl::StatusOr<ShimConnection> conn = ShimConnection::Connect(options.state_dir);
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE(conn->Attach(true, false, true).ok());
  ASSERT_TRUE(conn->Resize(/*width=*/123, /*height=*/45).ok());
  ASSERT_TRUE(conn->WriteStdin("hello\n").ok());
  EXPECT_THAT(ReadUntil(*conn, FrameType::kStdout, "line hello"),
              HasSubstr("size 45 123 line hello"));
  absl::StatusOr<ExitStatus> exit = WaitAndDelete(options);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0);
}

TEST_F(ShimTest, AttachReceivesOutputByStream) {
  ShimOptions options =
      Options("attach", {.args = {"sh", "-c",
                                  "i=0; while [ $i -lt 100 ]; do echo tick $i; echo tock $i >&2; "
                                  "i=$((i+1)); sleep 0.05; done"}});
  ASSERT_TRUE(Run(options).ok());
  absl::StatusOr<ShimConnection> out = ShimConnection::Connect(options.state_dir);
  absl::StatusOr<ShimConnection> err = ShimConnection::Connect(options.state_dir);
  ASSERT_TRUE(out.ok() && err.ok()) << out.status() << err.status();
  ASSERT_TRUE(out->Attach(true, false, false).ok());
  ASSERT_TRUE(err->Attach(false, true, false).ok());
  EXPECT_THAT(ReadUntil(*out, FrameType::kStdout, "tick 5\n"), HasSubstr("tick 5\n"));
  EXPECT_THAT(ReadUntil(*err, FrameType::kStderr, "tock 5\n"), HasSubstr("tock 5\n"));
  // Asking for stdin the container does not have is refused.
  absl::StatusOr<ShimConnection> in = ShimConnection::Connect(options.state_dir);
  ASSERT_TRUE(in.ok());
  absl::Status no_stdin = in->Attach(true, true, true);
  EXPECT_EQ(no_stdin.code(), absl::StatusCode::kFailedPrecondition) << no_stdin;
  EXPECT_THAT(no_stdin.message(), HasSubstr("no stdin"));

  ASSERT_TRUE(runc_->Kill("attach", SIGKILL, false).ok());
  // The last frame an attached client gets is the exit.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::string exit_json;
  while (absl::Now() < deadline) {
    absl::StatusOr<ShimConnection::Frame> frame = out->ReadFrame(deadline - absl::Now());
    ASSERT_TRUE(frame.ok()) << frame.status();
    if (frame->type == FrameType::kExit) {
      exit_json = frame->payload;
      break;
    }
    EXPECT_EQ(frame->type, FrameType::kStdout);
  }
  EXPECT_THAT(exit_json, HasSubstr("\"signal\":9"));
  EXPECT_EQ(out->ReadFrame(absl::Seconds(5)).status().code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(WaitAndDelete(options).ok());
}

TEST_F(ShimTest, StdinThroughAttachReachesTheContainer) {
  ShimOptions options = Options("cat", {.args = {"cat"}});
  options.stdin = true;
  ASSERT_TRUE(Run(options).ok());
  absl::StatusOr<ShimConnection> conn = ShimConnection::Connect(options.state_dir);
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE(conn->Attach(true, true, true).ok());
  ASSERT_TRUE(conn->WriteStdin("hello cat\n").ok());
  EXPECT_EQ(ReadUntil(*conn, FrameType::kStdout, "\n"), "hello cat\n");
  std::string big(200000, 'b');  // more than a pipe holds: the shim buffers and flushes
  ASSERT_TRUE(conn->WriteStdin(big + "\n").ok());
  EXPECT_EQ(ReadUntil(*conn, FrameType::kStdout, "\n").size(), big.size() + 1);
  ASSERT_TRUE(conn->CloseStdin().ok());  // cat sees EOF and exits 0
  absl::StatusOr<ExitStatus> exit = WaitAndDelete(options);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0);
  std::vector<Record> records = ParseLog(ot::ReadFileOrEmpty(options.log_path));
  ASSERT_GE(records.size(), 2u);
  EXPECT_EQ(records[0], (Record{"stdout", "F", "hello cat"}));
}

TEST_F(ShimTest, StdinOnceClosesStdinWhenTheFirstAttachEnds) {
  ShimOptions options = Options("once", {.args = {"sh", "-c", "cat; echo cat done"}});
  options.stdin = true;
  options.stdin_once = true;
  ASSERT_TRUE(Run(options).ok());
  {
    absl::StatusOr<ShimConnection> conn = ShimConnection::Connect(options.state_dir);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(conn->Attach(true, false, true).ok());
    ASSERT_TRUE(conn->WriteStdin("only once\n").ok());
    EXPECT_EQ(ReadUntil(*conn, FrameType::kStdout, "\n"), "only once\n");
  }  // disconnects
  absl::StatusOr<ExitStatus> exit = WaitAndDelete(options);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_THAT(ParseLog(ot::ReadFileOrEmpty(options.log_path)),
              ElementsAre(Record{"stdout", "F", "only once"}, Record{"stdout", "F", "cat done"}));
}

TEST_F(ShimTest, ReopensTheLog) {
  ShimOptions options = Options("reopen", {.args = {"cat"}});
  options.stdin = true;
  ASSERT_TRUE(Run(options).ok());
  absl::StatusOr<ShimConnection> conn = ShimConnection::Connect(options.state_dir);
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn->Attach(true, false, true).ok());
  auto echo = [&](const std::string& line) {
    ASSERT_TRUE(conn->WriteStdin(line + "\n").ok());
    ASSERT_EQ(ReadUntil(*conn, FrameType::kStdout, "\n"), line + "\n");
  };
  echo("first");
  // kubelet's rotation: rename, then ReopenContainerLog.
  ASSERT_EQ(rename(options.log_path.c_str(), (options.log_path + ".1").c_str()), 0);
  absl::Status reopened = ReopenLog(options.state_dir);
  ASSERT_TRUE(reopened.ok()) << reopened;
  EXPECT_EQ(access(options.log_path.c_str(), F_OK), 0) << "reopen returns once the file exists";
  echo("second");
  // SIGUSR1 does the same, asynchronously.
  ASSERT_EQ(rename(options.log_path.c_str(), (options.log_path + ".2").c_str()), 0);
  absl::StatusOr<pid_t> shim_pid = ReadShimPid(options.state_dir);
  ASSERT_TRUE(shim_pid.ok());
  ASSERT_EQ(kill(*shim_pid, SIGUSR1), 0);
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (access(options.log_path.c_str(), F_OK) != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  echo("third");
  // A reopen that cannot open the file reports why and keeps the old one.
  std::string logs = tmp_.path() + "/logs";
  ASSERT_EQ(rename(logs.c_str(), (logs + "-moved").c_str()), 0);
  absl::Status failed = ReopenLog(options.state_dir);
  EXPECT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition) << failed;
  EXPECT_THAT(failed.message(), HasSubstr("open log " + options.log_path));
  echo("fourth");
  ASSERT_EQ(rename((logs + "-moved").c_str(), logs.c_str()), 0);

  ASSERT_TRUE(conn->CloseStdin().ok());
  ASSERT_TRUE(WaitAndDelete(options).ok());
  EXPECT_THAT(ParseLog(ot::ReadFileOrEmpty(options.log_path + ".1")),
              ElementsAre(Record{"stdout", "F", "first"}));
  EXPECT_THAT(ParseLog(ot::ReadFileOrEmpty(options.log_path + ".2")),
              ElementsAre(Record{"stdout", "F", "second"}));
  EXPECT_THAT(ParseLog(ot::ReadFileOrEmpty(options.log_path)),
              ElementsAre(Record{"stdout", "F", "third"}, Record{"stdout", "F", "fourth"}));
}

// berthd is SIGKILLed right after starting a container: the shim and the container live
// on, and the exit is still recorded.
TEST_F(ShimTest, SurvivesTheDeathOfWhoStartedIt) {
  ShimOptions options = Options(
      "orphan", {.args = {"sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"}});
  absl::StatusOr<oci::Pipe> report = oci::MakePipe();
  ASSERT_TRUE(report.ok());
  pid_t fake_berthd = fork();
  ASSERT_GE(fake_berthd, 0);
  if (fake_berthd == 0) {
    absl::StatusOr<ShimHandle> shim = StartShim(options);
    std::string line = shim.ok() ? StrCat("ok ", shim->shim_pid, "\n") : "failed\n";
    (void)!write(report->write.get(), line.data(), line.size());
    pause();
    _exit(0);
  }
  report->write.reset();
  char buf[64] = {};
  ASSERT_GT(read(report->read.get(), buf, sizeof(buf) - 1), 0);
  ASSERT_EQ(std::string(buf).rfind("ok ", 0), 0u) << buf;
  pid_t shim_pid = atoi(buf + 3);
  ASSERT_TRUE(runc_->Start("orphan").ok());

  ASSERT_EQ(kill(fake_berthd, SIGKILL), 0);
  ASSERT_EQ(waitpid(fake_berthd, nullptr, 0), fake_berthd);
  absl::SleepFor(absl::Milliseconds(300));

  EXPECT_TRUE(ShimAlive(options.state_dir));
  EXPECT_EQ(kill(shim_pid, 0), 0);
  // Its own session: not in the dead parent's process group.
  EXPECT_NE(getpgid(shim_pid), getpgid(0));
  EXPECT_NE(getsid(shim_pid), getsid(0));
  absl::StatusOr<oci::ContainerState> state = runc_->State("orphan");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->status, oci::ContainerStatus::kRunning);
  // The shim ignores SIGTERM while its container runs.
  ASSERT_EQ(kill(shim_pid, SIGTERM), 0);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_TRUE(ShimAlive(options.state_dir));

  ASSERT_TRUE(runc_->Kill("orphan", SIGTERM, false).ok());
  absl::StatusOr<ExitStatus> exit = WaitAndDelete(options);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 42);
  EXPECT_THAT(ot::ReadFileOrEmpty(options.state_dir + "/shim.log"),
              HasSubstr("ignoring signal 15"));
}

TEST_F(ShimTest, AShimKilledWithoutRecordingIsReported) {
  ShimOptions options = Options("lost", {.args = {"sleep", "100"}});
  absl::StatusOr<ShimHandle> shim = Run(options);
  ASSERT_TRUE(shim.ok());
  absl::Time start = absl::Now();
  ASSERT_EQ(kill(shim->shim_pid, SIGKILL), 0);
  absl::StatusOr<ExitStatus> exit = WaitForExit(options.state_dir, absl::Seconds(10));
  EXPECT_EQ(exit.status().code(), absl::StatusCode::kUnavailable) << exit.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_FALSE(ShimAlive(options.state_dir));
  ASSERT_TRUE(runc_->Delete("lost", /*force=*/true).ok());
}

TEST_F(ShimTest, CreateFailuresCarryTheRuntimesMessage) {
  ShimOptions options = Options("bad", {.args = {"/no/such/binary"}});
  absl::StatusOr<ShimHandle> shim = StartShim(options);
  ASSERT_FALSE(shim.ok());
  EXPECT_THAT(shim.status().message(), HasSubstr("start shim for container bad: "));
  EXPECT_THAT(shim.status().message(), HasSubstr("/no/such/binary"));
  EXPECT_FALSE(ShimAlive(options.state_dir));
  EXPECT_NE(access((options.state_dir + "/shim.sock").c_str(), F_OK), 0);

  ShimOptions no_log_dir = Options("nolog", {.args = {"true"}});
  no_log_dir.log_path = tmp_.path() + "/missing/0.log";
  shim = StartShim(no_log_dir);
  ASSERT_FALSE(shim.ok());
  EXPECT_THAT(shim.status().message(), HasSubstr("open log " + no_log_dir.log_path));

  ShimOptions bad_runtime = Options("nort", {.args = {"true"}});
  bad_runtime.runtime.binary = "/no/such/runc";
  shim = StartShim(bad_runtime);
  ASSERT_FALSE(shim.ok());
  EXPECT_THAT(shim.status().message(), HasSubstr("/no/such/runc"));

  ShimOptions bad_tty = Options("badtty", {.args = {"true"}, .terminal = true});
  bad_tty.tty = false;  // config wants a terminal, but no console socket is given
  shim = StartShim(bad_tty);
  ASSERT_FALSE(shim.ok());
  EXPECT_THAT(shim.status().message(), HasSubstr("console"));
}

// The footprint of a shim that has logged a burst of output (long lines included) and
// served an attach client, measured while its container keeps running.
TEST_F(ShimTest, ResidentMemory) {
  ShimOptions options = Options(
      "rss", {.args = {"sh", "-c",
                       "read go; i=0; while [ $i -lt 20 ]; do echo line $i; i=$((i+1)); done; "
                       "head -c 300000 /dev/zero | tr '\\000' y; echo; echo done; sleep 100"}});
  options.stdin = true;
  absl::StatusOr<ShimHandle> shim = Run(options);
  ASSERT_TRUE(shim.ok()) << shim.status();
  absl::StatusOr<ShimConnection> conn = ShimConnection::Connect(options.state_dir);
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn->Attach(true, true, true).ok());
  ASSERT_TRUE(conn->Resize(80, 24).ok());
  ASSERT_TRUE(conn->WriteStdin("go\n").ok());
  EXPECT_THAT(ReadUntil(*conn, FrameType::kStdout, "done\n"), HasSubstr("done\n"));
  absl::SleepFor(absl::Milliseconds(200));
  std::string status = ot::ReadFileOrEmpty(StrCat("/proc/", shim->shim_pid, "/status"));
  std::string rollup = ot::ReadFileOrEmpty(StrCat("/proc/", shim->shim_pid, "/smaps_rollup"));
  long rss_kb = ot::VmRssKb(shim->shim_pid);
  auto field = [](const std::string& text, const std::string& name) {
    size_t pos = text.find(name + ":");
    if (pos == std::string::npos) return std::string("?");
    std::string line = text.substr(pos, text.find('\n', pos) - pos);
    line.erase(
        std::remove_if(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; }),
        line.end());
    return line;
  };
  std::cout << "berth-shim " << field(status, "VmRSS") << " " << field(status, "RssAnon") << " "
            << field(status, "RssFile") << " " << field(rollup, "Pss") << std::endl;
  RecordProperty("shim_vmrss_kb", static_cast<int>(rss_kb));
  EXPECT_GT(rss_kb, 0);
  EXPECT_LE(rss_kb, 1024) << "berth-shim's target is 1 MB resident";
  ASSERT_TRUE(runc_->Kill("rss", SIGKILL, false).ok());
  ASSERT_TRUE(WaitAndDelete(options).ok());
}

// Not a benchmark, a sanity figure: what the shim adds to `runc create` + `runc start`.
TEST_F(ShimTest, CreateAndStartCostNextToBareRunc) {
  constexpr int kRounds = 5;
  std::vector<double> bare_ms, shim_ms;
  for (int i = 0; i < kRounds; ++i) {
    std::string id = StrCat("bare", i);
    ShimOptions options = Options(id, {.args = {"true"}});
    absl::Time start = absl::Now();
    ASSERT_TRUE(runc_->Create(id, options.bundle_dir, {}).ok());
    ASSERT_TRUE(runc_->Start(id).ok());
    bare_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (runc_->State(id)->status != oci::ContainerStatus::kStopped && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_TRUE(runc_->Delete(id, /*force=*/true).ok());

    id = StrCat("shim", i);
    options = Options(id, {.args = {"true"}});
    start = absl::Now();
    ASSERT_TRUE(Run(options).ok());
    shim_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    ASSERT_TRUE(WaitAndDelete(options).ok());
  }
  std::sort(bare_ms.begin(), bare_ms.end());
  std::sort(shim_ms.begin(), shim_ms.end());
  std::cout << "create+start median: bare runc " << bare_ms[kRounds / 2]
            << " ms, through berth-shim " << shim_ms[kRounds / 2] << " ms" << std::endl;
  RecordProperty("bare_runc_ms", static_cast<int>(bare_ms[kRounds / 2]));
  RecordProperty("shim_ms", static_cast<int>(shim_ms[kRounds / 2]));
}

}  // namespace
}  // namespace berth::shim

namespace berth::shim {
namespace {

// `berth-shim --reap`: the wrapper berthd runs `runc exec` under.
TEST(ReaperTest, ExitsAsItsProgramDidAndReapsItsOrphans) {
  auto run = [](std::vector<std::string> program) {
    std::vector<std::string> argv = {ShimBinary(), "--reap", "--"};
    argv.insert(argv.end(), program.begin(), program.end());
    absl::StatusOr<oci::SubprocessResult> result =
        oci::RunSubprocess({.argv = argv, .timeout = absl::Seconds(30)});
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : oci::SubprocessResult{};
  };
  EXPECT_EQ(run({"/bin/sh", "-c", "exit 3"}).ExitCode(), 3);
  EXPECT_EQ(run({"/bin/sh", "-c", "kill -KILL $$"}).ExitCode(), 128 + SIGKILL);
  oci::SubprocessResult missing = run({"/nonexistent/program"});
  EXPECT_EQ(missing.ExitCode(), 127);
  EXPECT_NE(missing.err.find("/nonexistent/program"), std::string::npos) << missing.err;
  // A grandchild orphaned by the program, dead by the time the program ends, is reaped
  // by the wrapper: none is left as a zombie.
  oci::SubprocessResult orphaned =
      run({"/bin/sh", "-c", "(sh -c 'echo $$; exit 0') & sleep 0.2; exit 0"});
  EXPECT_EQ(orphaned.ExitCode(), 0);
  std::string pid = orphaned.out.substr(0, orphaned.out.find('\n'));
  ASSERT_FALSE(pid.empty());
  EXPECT_NE(access(("/proc/" + pid).c_str(), F_OK), 0) << "orphan " << pid << " not reaped";
}

}  // namespace
}  // namespace berth::shim
