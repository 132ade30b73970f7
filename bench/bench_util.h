// Small helpers shared by berth's benchmarks: child processes stopped by PID,
// PATH lookup, disk usage, median/p90/mean summaries of timed rounds, Ctrl-C
// handling, and where berthd is.
//
//   absl::StatusOr<pid_t> pid = Spawn("/usr/bin/containerd", {"--config", path}, log_path);
//   ...
//   StopProcess(*pid, std::chrono::seconds(10));   // SIGTERM, SIGKILL after the grace
//
//   Summary s = Summarize({1.2, 1.1, 1.3});          // s.median == 1.2, s.min == 1.1
//
//   HandleStopSignals("stopping after the current pull");   // first, in main()
//   while (...) { if (Interrupted()) break; ... }            // then clean up and return
//
// Benchmarks print ratios against a baseline measured in the same run; nothing
// here compares against a wall-clock threshold.
#ifndef BERTH_BENCH_BENCH_UTIL_H_
#define BERTH_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::bench {

// fork + exec of `binary` with `args`. stdout and stderr are appended to `log_path`
// (or go to /dev/null when it is empty); stdin is `stdin_fd` (or /dev/null when -1).
// The child gets PR_SET_PDEATHSIG(SIGKILL): if the benchmark dies, so does the child.
// That signal follows the calling *thread*, so spawn from the main thread.
absl::StatusOr<pid_t> Spawn(const std::string& binary, const std::vector<std::string>& args,
                            const std::string& log_path, int stdin_fd = -1);

// Sends SIGTERM to `pid` (our child) and reaps it; SIGKILL if it has not exited
// after `grace`. Returns false when SIGKILL was needed.
bool StopProcess(pid_t pid, std::chrono::milliseconds grace);

// Waits for our child `pid` to exit on its own; an error names `what` and the exit
// status unless it exited 0.
absl::Status WaitForExit(pid_t pid, std::string_view what);

// Runs argv[0] (looked up on PATH) to completion, output discarded; OK iff it exits 0.
absl::Status RunCommand(const std::vector<std::string>& argv);

// The first executable `name` on $PATH, or nullopt.
std::optional<std::string> FindOnPath(std::string_view name);

// Total size of the regular files under `dir` (symlinks not followed).
int64_t BytesUnder(const std::string& dir);

// The last `max_bytes` of a file, for error messages.
std::string FileTail(const std::string& path, size_t max_bytes = 2048);

// Seconds elapsed since `start` on the steady clock.
double SecondsSince(std::chrono::steady_clock::time_point start);

struct Summary {
  double median = 0;
  double min = 0;
  double max = 0;
  double mean = 0;
  double p90 = 0;  // nearest rank: the smallest sample >= 90% of the samples
  size_t count = 0;
};

// Median (mean of the middle two for an even count), min, max, mean and p90.
// Empty input: all 0.
Summary Summarize(std::vector<double> samples);

// Blocks SIGINT, SIGTERM and SIGHUP in every thread (call it in main() before any
// thread starts) and takes them on a thread of its own: the first one makes
// Interrupted() true and prints "interrupted: <what_happens_now> ..." so the
// benchmark can stop at a safe point and clean up; a second one kills at once.
void HandleStopSignals(std::string_view what_happens_now);
bool Interrupted();

// berthd from `flag`, $BERTHD_BINARY, or the runfiles of this binary (bazel test
// sets TEST_SRCDIR; bazel run sets neither, but runs us from <binary>.runfiles/berth
// and may set RUNFILES_DIR). The result is absolute. `target` names the bazel
// target for the error message ("//bench:pull_bench").
absl::StatusOr<std::string> FindBerthd(const std::string& flag, const char* argv0,
                                       std::string_view target);

}  // namespace berth::bench

#endif  // BERTH_BENCH_BENCH_UTIL_H_
