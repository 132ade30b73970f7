// What the lifecycle and network benchmarks both need from the host: files, /proc,
// temp dirs, cgroup parents, berthd's helpers, and a pause image made of berth-pause.
#ifndef BERTH_BENCH_BENCH_HOST_H_
#define BERTH_BENCH_BENCH_HOST_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "e2e/fixtures/image_kit.h"

namespace berth::bench {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start);
std::string ReadText(const std::string& path);
absl::Status WriteText(const std::string& path, const std::string& text, mode_t mode = 0644);
// The 1-minute load average, as /proc/loadavg prints it.
std::string LoadAverage();

// A fresh directory under /tmp, removed (with any mount below it) on destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The cgroup parents the benchmark's pods and containers go to, one per contender;
// removed from every hierarchy at the end (runc removes each container's own cgroup;
// what is left is empty unless a process survived).
class CgroupParents {
 public:
  explicit CgroupParents(std::string prefix) : prefix_(std::move(prefix)) {}
  ~CgroupParents();
  CgroupParents(const CgroupParents&) = delete;
  CgroupParents& operator=(const CgroupParents&) = delete;

  // "/<prefix>-<who>", as a CRI cgroup_parent or an OCI cgroupsPath prefix.
  std::string For(std::string_view who);

  // rmdir of every parent and the (empty) cgroups below it, deepest first; returns
  // the directories that could not be removed.
  std::vector<std::string> Remove();

 private:
  std::string prefix_;
  std::set<std::string> names_;
};

struct Proc {
  pid_t pid = 0;
  pid_t ppid = 0;
  std::string exe;      // resolved; "" for zombies and kernel threads
  std::string cmdline;  // arguments joined by spaces
  std::string comm;
};

std::vector<Proc> ListProcesses();

using ShimMatcher = std::function<bool(const Proc&)>;

// berthd finds its helpers beside its own executable (runtime/runtime.cc,
// FindHelperBinary): the same candidates, from the binary /proc/<berthd>/exe names.
absl::StatusOr<std::string> HelperOfBerthd(pid_t berthd, std::string_view package,
                                           std::string_view name);

// A pause image like registry.k8s.io/pause: one static binary at /pause, run as
// 65535. The binary is berth-pause (PID 1 that reaps and waits for SIGTERM).
absl::StatusOr<testing::OciImage> BuildPauseImage(const std::string& pause_binary,
                                                  const std::string& repository,
                                                  const std::string& tag);

}  // namespace berth::bench

#endif  // BERTH_BENCH_BENCH_HOST_H_
