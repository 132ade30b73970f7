#include "runtime/stats/cgroup_stats.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::stats {
namespace {

class CgroupStatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/cgroup-stats-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void Write(const std::string& relative, const std::string& content) {
    std::filesystem::path path = root_ + "/" + relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << content;
  }

  std::string root_;
};

TEST_F(CgroupStatsTest, ReadsCgroupV1Hierarchies) {
  Write("cpuacct/berth/c1/cpuacct.usage", "123456789\n");
  Write("memory/berth/c1/memory.usage_in_bytes", "10000\n");
  Write("memory/berth/c1/memory.limit_in_bytes", "50000\n");
  Write("memory/berth/c1/memory.stat",
        "cache 4000\nrss 100\ninactive_file 9\ntotal_rss 6000\ntotal_inactive_file 3000\n"
        "total_pgfault 77\ntotal_pgmajfault 2\n");
  absl::StatusOr<CgroupStats> stats = ReadCgroupStats("/berth/c1", root_);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->timestamp_ns, 0);
  EXPECT_EQ(stats->cpu_usage_ns, 123456789u);
  EXPECT_EQ(stats->memory_usage_bytes, 10000u);
  EXPECT_EQ(stats->memory_working_set_bytes, 7000u);
  EXPECT_EQ(stats->memory_rss_bytes, 6000u);
  EXPECT_EQ(stats->page_faults, 77u);
  EXPECT_EQ(stats->major_page_faults, 2u);
  EXPECT_EQ(stats->memory_available_bytes, 43000u);
}

TEST_F(CgroupStatsTest, V1WithoutALimitHasNoAvailableFigure) {
  Write("cpu,cpuacct/berth/c1/cpuacct.usage", "5\n");
  Write("memory/berth/c1/memory.usage_in_bytes", "100\n");
  Write("memory/berth/c1/memory.limit_in_bytes", "9223372036854771712\n");
  absl::StatusOr<CgroupStats> stats = ReadCgroupStats("/berth/c1", root_);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->cpu_usage_ns, 5u);
  EXPECT_EQ(stats->memory_working_set_bytes, 100u);
  EXPECT_FALSE(stats->memory_available_bytes.has_value());
}

TEST_F(CgroupStatsTest, ReadsCgroupV2) {
  Write("cgroup.controllers", "cpu memory pids\n");
  Write("berth/c1/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
  Write("berth/c1/memory.current", "8192\n");
  Write("berth/c1/memory.max", "max\n");
  Write("berth/c1/memory.stat", "anon 4096\ninactive_file 1024\npgfault 10\npgmajfault 1\n");
  absl::StatusOr<CgroupStats> stats = ReadCgroupStats("/berth/c1", root_);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->cpu_usage_ns, 1500000u);
  EXPECT_EQ(stats->memory_usage_bytes, 8192u);
  EXPECT_EQ(stats->memory_working_set_bytes, 7168u);
  EXPECT_EQ(stats->memory_rss_bytes, 4096u);
  EXPECT_EQ(stats->page_faults, 10u);
  EXPECT_FALSE(stats->memory_available_bytes.has_value());
}

TEST_F(CgroupStatsTest, MissingCgroupIsNotFoundAndBadPathsAreRefused) {
  Write("memory/other/memory.usage_in_bytes", "1\n");
  EXPECT_EQ(ReadCgroupStats("/berth/gone", root_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadCgroupStats("berth/c1", root_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadCgroupStats("/berth/../../etc", root_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CgroupStatsTest, CountsOomKillsOnV1AndV2) {
  Write("memory/berth/c1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  absl::StatusOr<uint64_t> kills = ReadOomKills("/berth/c1", root_);
  ASSERT_TRUE(kills.ok()) << kills.status();
  EXPECT_EQ(*kills, 2u);
  EXPECT_EQ(ReadOomKills("/berth/gone", root_).status().code(), absl::StatusCode::kNotFound);

  Write("cgroup.controllers", "memory\n");
  Write("berth/c2/memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n");
  kills = ReadOomKills("/berth/c2", root_);
  ASSERT_TRUE(kills.ok()) << kills.status();
  EXPECT_EQ(*kills, 1u);
}

TEST(CpuNanoCoresTest, IsTheAverageRateBetweenSamples) {
  CgroupStats earlier{.timestamp_ns = 1'000'000'000, .cpu_usage_ns = 0};
  CgroupStats later{.timestamp_ns = 3'000'000'000, .cpu_usage_ns = 1'000'000'000};
  EXPECT_EQ(CpuNanoCores(earlier, later), 500'000'000u);  // half a core
  EXPECT_EQ(CpuNanoCores(later, earlier), 0u);
  CgroupStats reset{.timestamp_ns = 4'000'000'000, .cpu_usage_ns = 10};
  EXPECT_EQ(CpuNanoCores(later, reset), 0u);
}

}  // namespace
}  // namespace berth::stats
