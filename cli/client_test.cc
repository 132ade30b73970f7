#include "cli/client.h"

#include "gtest/gtest.h"

namespace berth::cli {
namespace {

TEST(GrpcTargetTest, AcceptsTheUnixForms) {
  EXPECT_EQ(*GrpcTarget("unix:///run/berth/berth.sock"), "unix:/run/berth/berth.sock");
  EXPECT_EQ(*GrpcTarget("unix:/run/berth/berth.sock"), "unix:/run/berth/berth.sock");
  EXPECT_EQ(*GrpcTarget("/run/containerd/containerd.sock"), "unix:/run/containerd/containerd.sock");
}

TEST(GrpcTargetTest, RejectsOthers) {
  for (const char* bad : {"tcp://127.0.0.1:1234", "relative.sock", "unix://relative", ""}) {
    absl::StatusOr<std::string> target = GrpcTarget(bad);
    EXPECT_EQ(target.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace berth::cli
