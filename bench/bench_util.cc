#include "bench/bench_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>
#include <thread>

#include "runtime/base/strings.h"

namespace berth::bench {
namespace {

// Reaps `pid` if it has exited within `timeout`; returns its wait status.
std::optional<int> Reap(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int wstatus = 0;
    pid_t r = waitpid(pid, &wstatus, WNOHANG);
    if (r == pid) return wstatus;
    if (r < 0) return 0;  // not our child (any more)
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string DescribeExit(int wstatus) {
  if (WIFSIGNALED(wstatus)) return StrCat("killed by signal ", WTERMSIG(wstatus));
  return StrCat("exit code ", WEXITSTATUS(wstatus));
}

}  // namespace

absl::StatusOr<pid_t> Spawn(const std::string& binary, const std::vector<std::string>& args,
                            const std::string& log_path, int stdin_fd) {
  // Everything the child touches is prepared before fork: after it, only
  // async-signal-safe calls (gRPC threads may hold locks in the parent).
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string out_path = log_path.empty() ? "/dev/null" : log_path;
  int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd < 0) return absl::InternalError(StrCat("open ", out_path, ": ", strerror(errno)));
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(out_fd);
    if (null_fd >= 0) close(null_fd);
    return absl::InternalError(StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(stdin_fd >= 0 ? stdin_fd : null_fd, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp(binary.c_str(), argv.data());
    _exit(127);
  }
  close(out_fd);
  if (null_fd >= 0) close(null_fd);
  return pid;
}

bool StopProcess(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return true;
  kill(pid, SIGTERM);
  if (Reap(pid, grace)) return true;
  kill(pid, SIGKILL);
  Reap(pid, std::chrono::seconds(10));
  return false;
}

absl::Status WaitForExit(pid_t pid, std::string_view what) {
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return absl::InternalError(StrCat(what, ": waitpid: ", strerror(errno)));
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return absl::OkStatus();
  return absl::InternalError(StrCat(what, ": ", DescribeExit(wstatus)));
}

absl::Status RunCommand(const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("RunCommand: empty argv");
  absl::StatusOr<pid_t> pid =
      Spawn(argv[0], std::vector<std::string>(argv.begin() + 1, argv.end()), "");
  if (!pid.ok()) return pid.status();
  std::string what;
  for (const std::string& a : argv) what += (what.empty() ? "" : " ") + a;
  return WaitForExit(*pid, what);
}

std::optional<std::string> FindOnPath(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream in(dirs);
  std::string dir;
  while (std::getline(in, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(candidate)) {
      return candidate;
    }
  }
  return std::nullopt;
}

int64_t BytesUnder(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec) && !it->is_symlink(size_ec)) {
      uintmax_t size = it->file_size(size_ec);
      if (!size_ec) total += static_cast<int64_t>(size);
    }
  }
  return total;
}

std::string FileTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  return s.size() <= max_bytes ? s : s.substr(s.size() - max_bytes);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Summary Summarize(std::vector<double> samples) {
  Summary s;
  s.count = samples.size();
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  size_t n = samples.size();
  s.median = n % 2 == 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
  s.min = samples.front();
  s.max = samples.back();
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(n);
  size_t rank = static_cast<size_t>(std::ceil(0.9 * static_cast<double>(n)));
  s.p90 = samples[std::clamp<size_t>(rank, 1, n) - 1];
  return s;
}

namespace {
std::atomic<bool> interrupted{false};
}  // namespace

void HandleStopSignals(std::string_view what_happens_now) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, message = std::string(what_happens_now)] {
    int sig = 0;
    sigwait(&set, &sig);
    interrupted = true;
    std::cerr << "\ninterrupted: " << message << " (again to quit at once)\n";
    sigwait(&set, &sig);
    signal(sig, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    raise(sig);
  }).detach();
}

bool Interrupted() { return interrupted; }

absl::StatusOr<std::string> FindBerthd(const std::string& flag, const char* argv0,
                                       std::string_view target) {
  std::vector<std::string> candidates;
  if (!flag.empty()) candidates.push_back(flag);
  if (const char* env = getenv("BERTHD_BINARY"); env && *env) candidates.push_back(env);
  if (const char* env = getenv("RUNFILES_DIR"); env && *env) {
    candidates.push_back(StrCat(env, "/berth/server/berthd"));
  }
  if (const char* env = getenv("TEST_SRCDIR"); env && *env) {
    candidates.push_back(StrCat(env, "/berth/server/berthd"));
  }
  candidates.push_back(StrCat(argv0, ".runfiles/berth/server/berthd"));
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(self.string() + ".runfiles/berth/server/berthd");
  candidates.push_back("server/berthd");  // cwd is the runfiles tree under bazel run
  for (const std::string& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) return std::filesystem::absolute(c).string();
    if (c == flag) return absl::NotFoundError(StrCat("--berthd ", flag, " is not executable"));
  }
  return absl::NotFoundError(
      StrCat("berthd not found: use bazel run ", target, ", --berthd PATH or BERTHD_BINARY"));
}

}  // namespace berth::bench
