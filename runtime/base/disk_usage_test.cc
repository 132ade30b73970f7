#include "runtime/base/disk_usage.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace berth {
namespace {

TEST(DiskUsageTest, CountsBlocksAndInodesOnceForHardLinks) {
  char tmpl[] = "/tmp/berth-du-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::filesystem::create_directory(dir + "/sub");
  std::ofstream(dir + "/sub/big") << std::string(64 * 1024, 'x');
  ASSERT_EQ(link((dir + "/sub/big").c_str(), (dir + "/again").c_str()), 0);
  ASSERT_EQ(symlink("/etc", (dir + "/link").c_str()), 0);

  absl::StatusOr<DiskUsage> usage = MeasureDiskUsage(dir);
  ASSERT_TRUE(usage.ok()) << usage.status();
  // dir, sub, big (once), link.
  EXPECT_EQ(usage->inodes, 4);
  EXPECT_GE(usage->bytes, 64 * 1024);
  EXPECT_LT(usage->bytes, 2 * 64 * 1024);  // the hard link is not counted twice
  std::filesystem::remove_all(dir);
}

TEST(DiskUsageTest, MissingPathIsZero) {
  absl::StatusOr<DiskUsage> usage = MeasureDiskUsage("/nonexistent/berth/path");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->bytes, 0);
  EXPECT_EQ(usage->inodes, 0);
}

}  // namespace
}  // namespace berth
