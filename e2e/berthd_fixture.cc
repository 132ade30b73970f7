#include "e2e/berthd_fixture.h"

#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "runtime/base/strings.h"

namespace berth::testing {
namespace {

ExitInfo Decode(int wstatus) {
  if (WIFSIGNALED(wstatus)) return {.signaled = true, .code = WTERMSIG(wstatus)};
  return {.signaled = false, .code = WEXITSTATUS(wstatus)};
}

// Waits for pid up to timeout; nullopt if it is still running.
std::optional<ExitInfo> WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int wstatus = 0;
    pid_t r = waitpid(pid, &wstatus, WNOHANG);
    if (r == pid) return Decode(wstatus);
    if (r < 0) return ExitInfo{.signaled = true, .code = 0};  // not our child any more
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// fork + exec with stdout and stderr appended to log_path. The child dies
// with the test process so a crashed test never leaves a daemon behind.
absl::StatusOr<pid_t> Spawn(const std::string& binary, const std::vector<std::string>& args,
                            const std::string& log_path, const std::vector<std::string>& env = {}) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(StrCat("open ", log_path));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    // The test blocks no signals the daemon relies on, but be explicit.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const std::string& entry : env) putenv(const_cast<char*>(entry.c_str()));
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(log_fd);
  return pid;
}

bool Connectable(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

std::string Tail(const std::string& text, size_t lines) {
  size_t pos = text.size();
  for (size_t n = 0; n <= lines && pos != std::string::npos && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
  }
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

}  // namespace

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> mounts;
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, devnums, root, mount_point;
    fields >> id >> parent >> devnums >> root >> mount_point;
    if (mount_point == dir || mount_point.rfind(dir + "/", 0) == 0) mounts.push_back(mount_point);
  }
  return mounts;
}

std::vector<std::string> LeakCensus(const std::string& dir) {
  std::vector<std::string> leaks;
  for (const std::string& m : MountsUnder(dir)) leaks.push_back("mount " + m);
  std::error_code ec;
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = proc.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(proc.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // berthd itself names its config file under dir; it is not a leak. (Its helpers may
    // run from berthd.runfiles/..., so look at the program's own name only.)
    const std::string program = cmdline.substr(0, cmdline.find('\0'));
    if (std::filesystem::path(program).filename() == "berthd") continue;
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(dir + "/") == std::string::npos) continue;
    leaks.push_back(StrCat("process ", pid, ": ", cmdline));
  }
  // runc keeps one directory per container in its --root, <state>/runtimes/<handler>.
  // Listed directly: a recursive walk stops at the first entry it cannot read.
  for (const auto& top : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code inner;
    for (const auto& handler :
         std::filesystem::directory_iterator(top.path() / "runtimes", inner)) {
      for (const auto& container : std::filesystem::directory_iterator(handler.path(), inner)) {
        if (std::filesystem::exists(container.path() / "state.json", inner)) {
          leaks.push_back("runc container " + container.path().string());
        }
      }
    }
  }
  return leaks;
}

void RemoveTree(const std::string& dir) {
  if (dir.empty()) return;
  std::vector<std::string> mounts = MountsUnder(dir);
  // Deepest first, so a parent is never busy because of a child.
  std::sort(mounts.begin(), mounts.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const std::string& m : mounts) umount2(m.c_str(), MNT_DETACH);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

absl::StatusOr<std::string> BerthdFixture::BinaryPath() {
  if (const char* env = std::getenv("BERTHD_BINARY"); env && *env) return std::string(env);
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir && workspace) {
    std::string path = StrCat(srcdir, "/", workspace, "/server/berthd");
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return absl::NotFoundError(
      "berthd binary not found: add data = [\"//server:berthd\"] to the test or set "
      "BERTHD_BINARY");
}

std::vector<std::string> BerthdFixture::DefaultArgs() const {
  std::vector<std::string> args = {"--config", config_path_, "--log-level", "debug"};
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  return args;
}

absl::StatusOr<std::unique_ptr<BerthdFixture>> BerthdFixture::Start(BerthdOptions options) {
  std::unique_ptr<BerthdFixture> f(new BerthdFixture());
  f->options_ = std::move(options);
  // /tmp rather than TEST_TMPDIR: a unix socket path must stay under 108 bytes.
  char tmpl[] = "/tmp/berth-e2e-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  f->dir_ = tmpl;
  f->root_ = f->dir_ + "/root";
  f->state_ = f->dir_ + "/state";
  f->socket_ = f->state_ + "/berth.sock";
  f->config_path_ = f->dir_ + "/berth.toml";
  f->log_path_ = f->dir_ + "/berthd.log";
  {
    std::ofstream config(f->config_path_);
    config << "root = \"" << f->root_ << "\"\n"
           << "state = \"" << f->state_ << "\"\n"
           << "socket = \"" << f->socket_ << "\"\n"
           << "shutdown_grace_seconds = 5\n"
           << f->options_.config_toml << "\n";
    if (f->options_.config_toml.find("[network]") == std::string::npos) {
      // A private loopback-only network: tests must not share the node's
      // default bridge, nor write into /etc/berth.
      const std::string conf_dir = f->dir_ + "/net.d";
      std::filesystem::create_directories(conf_dir);
      std::ofstream(conf_dir + "/00-loopback.conflist")
          << R"({"cniVersion": "1.0.0", "name": "loopback", "plugins": [{"type": "loopback"}]})";
      config << "[network]\nconf_dir = \"" << conf_dir << "\"\n";
    }
    if (!config) return absl::InternalError("write " + f->config_path_);
  }
  if (absl::Status s = f->Launch(); !s.ok()) return s;
  return f;
}

absl::Status BerthdFixture::Launch() {
  absl::StatusOr<std::string> binary = BinaryPath();
  if (!binary.ok()) return binary.status();
  absl::StatusOr<pid_t> pid = Spawn(*binary, DefaultArgs(), log_path_, launch_env_);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  return WaitUntilServing(std::chrono::seconds(30));
}

absl::Status BerthdFixture::WaitUntilServing(std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::optional<ExitInfo> exited = WaitFor(pid_, std::chrono::milliseconds(0))) {
      pid_ = -1;
      return absl::FailedPreconditionError(StrCat("berthd exited during start-up (",
                                                  exited->signaled ? "signal " : "code ",
                                                  exited->code, "); log tail:\n", Tail(Log(), 20)));
    }
    // Probe with a plain connect(): a gRPC channel that failed to connect
    // backs off for seconds before it tries again.
    if (Connectable(socket_)) {
      channel_ = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
      runtime_ = runtime::v1::RuntimeService::NewStub(channel_);
      image_ = runtime::v1::ImageService::NewStub(channel_);
      berth_ = berth::v1::Berth::NewStub(channel_);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      runtime::v1::VersionResponse response;
      grpc::Status s = runtime_->Version(&ctx, runtime::v1::VersionRequest(), &response);
      if (s.ok()) return absl::OkStatus();
      return absl::UnavailableError(StrCat("berthd accepts connections on ", socket_,
                                           " but Version failed: ", s.error_message()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::DeadlineExceededError(StrCat("berthd did not serve ", socket_, " within ",
                                            timeout.count(), "s; log tail:\n", Tail(Log(), 20)));
}

std::string BerthdFixture::Log() const {
  std::ifstream log(log_path_);
  std::stringstream text;
  text << log.rdbuf();
  return text.str();
}

absl::StatusOr<ExitInfo> BerthdFixture::Stop(int sig, std::chrono::seconds timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("berthd is not running");
  kill(pid_, sig);
  std::optional<ExitInfo> exited = WaitFor(pid_, timeout);
  if (!exited) {
    kill(pid_, SIGKILL);
    WaitFor(pid_, std::chrono::seconds(10));
    pid_ = -1;
    return absl::DeadlineExceededError(
        StrCat("berthd did not exit within ", timeout.count(), "s of signal ", sig));
  }
  pid_ = -1;
  return *exited;
}

void BerthdFixture::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  WaitFor(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

absl::Status BerthdFixture::Restart(std::vector<std::string> env) {
  if (pid_ > 0) return absl::FailedPreconditionError("berthd is still running");
  launch_env_ = std::move(env);
  absl::Status launched = Launch();
  launch_env_.clear();
  return launched;
}

absl::StatusOr<std::pair<ExitInfo, std::string>> BerthdFixture::RunBerthd(
    const std::vector<std::string>& args, std::chrono::seconds timeout) {
  absl::StatusOr<std::string> binary = BinaryPath();
  if (!binary.ok()) return binary.status();
  std::string log =
      StrCat(dir_, "/run-", std::chrono::steady_clock::now().time_since_epoch().count(), ".log");
  absl::StatusOr<pid_t> pid = Spawn(*binary, args, log);
  if (!pid.ok()) return pid.status();
  std::optional<ExitInfo> exited = WaitFor(*pid, timeout);
  if (!exited) {
    kill(*pid, SIGKILL);
    WaitFor(*pid, std::chrono::seconds(10));
    return absl::DeadlineExceededError(StrCat("berthd still running after ", timeout.count(), "s"));
  }
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  return std::make_pair(*exited, text.str());
}

BerthdFixture::~BerthdFixture() {
  if (pid_ > 0) (void)Stop(SIGTERM, std::chrono::seconds(10));
  // The log goes with the temp dir: show it while it still exists.
  if (::testing::Test::HasFailure() || std::getenv("BERTH_E2E_SHOW_LOG") != nullptr) {
    std::cerr << "---- berthd log (" << log_path_ << ") ----\n" << Tail(Log(), 60) << "----\n";
  }
  RemoveTree(dir_);
}

}  // namespace berth::testing
