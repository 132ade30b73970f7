#include "runtime/stats/cgroup_stats.h"

#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "runtime/base/strings.h"

namespace berth::stats {
namespace {

// A file of "key value" lines (memory.stat, cpu.stat).
std::map<std::string, uint64_t> ReadKeyValues(const std::string& path) {
  std::map<std::string, uint64_t> values;
  std::ifstream in(path);
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) values[key] = value;
  return values;
}

// A file holding one number; nullopt when missing or "max".
std::optional<uint64_t> ReadNumber(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  if (!(in >> value)) return std::nullopt;
  return value;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

uint64_t Lookup(const std::map<std::string, uint64_t>& values, const std::string& key) {
  auto it = values.find(key);
  return it == values.end() ? 0 : it->second;
}

void SetWorkingSet(CgroupStats& stats, uint64_t inactive_file, std::optional<uint64_t> limit) {
  stats.memory_working_set_bytes =
      stats.memory_usage_bytes > inactive_file ? stats.memory_usage_bytes - inactive_file : 0;
  // v1 reports "no limit" as a huge page-rounded number; treat anything past 2^62 as none.
  if (limit.has_value() && *limit < (uint64_t{1} << 62)) {
    stats.memory_available_bytes =
        *limit > stats.memory_working_set_bytes ? *limit - stats.memory_working_set_bytes : 0;
  }
}

absl::StatusOr<CgroupStats> ReadV2(const std::string& dir) {
  CgroupStats stats;
  std::map<std::string, uint64_t> cpu = ReadKeyValues(dir + "/cpu.stat");
  stats.cpu_usage_ns = Lookup(cpu, "usage_usec") * 1000;
  stats.memory_usage_bytes = ReadNumber(dir + "/memory.current").value_or(0);
  std::map<std::string, uint64_t> memory = ReadKeyValues(dir + "/memory.stat");
  stats.memory_rss_bytes = Lookup(memory, "anon");
  stats.page_faults = Lookup(memory, "pgfault");
  stats.major_page_faults = Lookup(memory, "pgmajfault");
  SetWorkingSet(stats, Lookup(memory, "inactive_file"), ReadNumber(dir + "/memory.max"));
  return stats;
}

absl::StatusOr<CgroupStats> ReadV1(const std::string& root, const std::string& path) {
  std::string cpuacct = StrCat(root, "/cpuacct", path);
  if (!Exists(cpuacct)) cpuacct = StrCat(root, "/cpu,cpuacct", path);
  const std::string memory_dir = StrCat(root, "/memory", path);
  if (!Exists(cpuacct) && !Exists(memory_dir)) {
    return absl::NotFoundError(StrCat("cgroup ", path, " not found under ", root));
  }
  CgroupStats stats;
  stats.cpu_usage_ns = ReadNumber(cpuacct + "/cpuacct.usage").value_or(0);
  stats.memory_usage_bytes = ReadNumber(memory_dir + "/memory.usage_in_bytes").value_or(0);
  std::map<std::string, uint64_t> memory = ReadKeyValues(memory_dir + "/memory.stat");
  // total_*: this cgroup and its descendants, as the usage counter counts.
  stats.memory_rss_bytes = Lookup(memory, "total_rss");
  stats.page_faults = Lookup(memory, "total_pgfault");
  stats.major_page_faults = Lookup(memory, "total_pgmajfault");
  SetWorkingSet(stats, Lookup(memory, "total_inactive_file"),
                ReadNumber(memory_dir + "/memory.limit_in_bytes"));
  return stats;
}

}  // namespace

absl::StatusOr<CgroupStats> ReadCgroupStats(const std::string& cgroups_path,
                                            const std::string& root) {
  if (cgroups_path.empty() || cgroups_path[0] != '/' ||
      cgroups_path.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("cgroup path \"", cgroups_path, "\" is not an absolute cgroupfs path"));
  }
  const int64_t now = absl::ToUnixNanos(absl::Now());
  absl::StatusOr<CgroupStats> stats;
  if (Exists(root + "/cgroup.controllers")) {
    const std::string dir = root + cgroups_path;
    if (!Exists(dir)) return absl::NotFoundError(StrCat("cgroup ", dir, " not found"));
    stats = ReadV2(dir);
  } else {
    stats = ReadV1(root, cgroups_path);
  }
  if (stats.ok()) stats->timestamp_ns = now;
  return stats;
}

absl::StatusOr<uint64_t> ReadOomKills(const std::string& cgroups_path, const std::string& root) {
  if (cgroups_path.empty() || cgroups_path[0] != '/' ||
      cgroups_path.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("cgroup path \"", cgroups_path, "\" is not an absolute cgroupfs path"));
  }
  const bool v2 = Exists(root + "/cgroup.controllers");
  const std::string file = v2 ? StrCat(root, cgroups_path, "/memory.events")
                              : StrCat(root, "/memory", cgroups_path, "/memory.oom_control");
  if (!Exists(file)) return absl::NotFoundError(StrCat(file, " not found"));
  return Lookup(ReadKeyValues(file), "oom_kill");
}

uint64_t CpuNanoCores(const CgroupStats& earlier, const CgroupStats& later) {
  if (later.timestamp_ns <= earlier.timestamp_ns || later.cpu_usage_ns < earlier.cpu_usage_ns) {
    return 0;
  }
  const long double used = later.cpu_usage_ns - earlier.cpu_usage_ns;
  const long double elapsed = later.timestamp_ns - earlier.timestamp_ns;
  return static_cast<uint64_t>(used / elapsed * 1e9L);
}

}  // namespace berth::stats
