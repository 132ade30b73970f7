// CPU and memory figures of one cgroup, read from the cgroup file system the way
// cAdvisor and containerd read them, for ContainerStats. Works on cgroup v1
// (this host's hybrid layout: one hierarchy per controller) and on v2.
//
//   ASSIGN_OR_RETURN(CgroupStats now, ReadCgroupStats("/berth/<container id>"));
//   uint64_t nano_cores = CpuNanoCores(previous, now);   // 0 without a previous sample
//
// The working set is usage minus the inactive file cache: what the kubelet
// evicts on, and what `kubectl top` shows.
#ifndef BERTH_RUNTIME_STATS_CGROUP_STATS_H_
#define BERTH_RUNTIME_STATS_CGROUP_STATS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace berth::stats {

struct CgroupStats {
  int64_t timestamp_ns = 0;       // when it was read (wall clock)
  uint64_t cpu_usage_ns = 0;      // cumulative CPU time of every task in it
  uint64_t memory_usage_bytes = 0;
  uint64_t memory_working_set_bytes = 0;
  uint64_t memory_rss_bytes = 0;  // anonymous memory
  uint64_t page_faults = 0;
  uint64_t major_page_faults = 0;
  // The limit minus the working set; nullopt without a limit.
  std::optional<uint64_t> memory_available_bytes;
};

// `cgroups_path` is the OCI linux.cgroupsPath (cgroupfs form, "/parent/id"); `root` the
// cgroup file system's mount point. NotFound when the cgroup does not exist (the
// container is not running).
absl::StatusOr<CgroupStats> ReadCgroupStats(const std::string& cgroups_path,
                                            const std::string& root = "/sys/fs/cgroup");

// How many times the kernel's OOM killer killed a task of the cgroup (v1
// memory.oom_control, v2 memory.events). NotFound when the cgroup is gone.
absl::StatusOr<uint64_t> ReadOomKills(const std::string& cgroups_path,
                                      const std::string& root = "/sys/fs/cgroup");

// Average CPU use between two samples of one cgroup, in billionths of a core; 0 when
// they are not in order (or the counter went back: a new cgroup with the same path).
uint64_t CpuNanoCores(const CgroupStats& earlier, const CgroupStats& later);

}  // namespace berth::stats

#endif  // BERTH_RUNTIME_STATS_CGROUP_STATS_H_
