#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "runtime/oci/runc_runtime.h"

namespace berth::oci {
namespace {

TEST(RuncLogTest, ErrorsAreJoinedOnceInOrder) {
  std::string log =
      R"({"level":"warning","msg":"ignored","time":"2024-01-01T00:00:00Z"})"
      "\n"
      R"({"level":"error","msg":"runc run failed: unable to start container process: )"
      R"(exec: \"nope\": executable file not found in $PATH","time":"2024-01-01T00:00:00Z"})"
      "\n"
      "not json\n"
      R"({"level":"error","msg":"second","time":"2024-01-01T00:00:00Z"})"
      "\n"
      R"({"level":"error","msg":"second","time":"2024-01-01T00:00:00Z"})";
  EXPECT_EQ(RuncLogErrors(log),
            "runc run failed: unable to start container process: exec: \"nope\": executable "
            "file not found in $PATH; second");
  EXPECT_EQ(RuncLogErrors(""), "");
}

TEST(ContainerStateTest, ParsesRuncState) {
  absl::StatusOr<ContainerState> state = ParseContainerState(R"({
    "ociVersion": "1.0.2-dev", "id": "c1", "pid": 4242, "status": "running",
    "bundle": "/b", "rootfs": "/b/rootfs", "created": "2024-01-02T03:04:05.123456789Z",
    "owner": "", "annotations": {"a": "b"}})");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->id, "c1");
  EXPECT_EQ(state->pid, 4242);
  EXPECT_EQ(state->status, ContainerStatus::kRunning);
  EXPECT_EQ(state->bundle, "/b");
  EXPECT_EQ(state->rootfs, "/b/rootfs");
  EXPECT_EQ(state->annotations.at("a"), "b");
  EXPECT_EQ(absl::FormatTime(absl::RFC3339_full, state->created, absl::UTCTimeZone()),
            "2024-01-02T03:04:05.123456789+00:00");
}

TEST(ContainerStateTest, RejectsUnknownStatusAndGarbage) {
  EXPECT_FALSE(ParseContainerState(R"({"id":"c","status":"weird"})").ok());
  EXPECT_FALSE(ParseContainerState("nope").ok());
  EXPECT_EQ(ContainerStatusName(ContainerStatus::kCreated), "created");
}

// A stand-in runtime that hangs: every call must time out and leave no process behind.
TEST(RuncRuntimeTimeoutTest, AHungRuntimeIsKilled) {
  char dir[] = "/tmp/berth-runc-unit-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string script = std::string(dir) + "/hang-runtime";
  std::ofstream(script) << "#!/bin/sh\nexec sleep 30\n";
  chmod(script.c_str(), 0755);
  RuncRuntime runtime({.name = "hang",
                       .binary = script,
                       .root = std::string(dir) + "/root",
                       .timeout = absl::Milliseconds(300)});
  absl::Time start = absl::Now();
  absl::Status status = runtime.Start("c1");
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_NE(status.message().find("hang start c1: timed out"), std::string::npos) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  std::string cleanup = std::string("rm -rf ") + dir;
  EXPECT_EQ(system(cleanup.c_str()), 0);
}

TEST(RuncRuntimeTimeoutTest, ErrorsCarryTheRuntimesStderr) {
  char dir[] = "/tmp/berth-runc-unit-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string script = std::string(dir) + "/failing-runtime";
  std::ofstream(script) << "#!/bin/sh\necho 'container \"c9\" does not exist' >&2\nexit 1\n";
  chmod(script.c_str(), 0755);
  RuncRuntime runtime({.binary = script, .root = std::string(dir) + "/root"});
  absl::Status status = runtime.Kill("c9", SIGTERM, false);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_EQ(status.message(), "runc kill c9: container \"c9\" does not exist");
  std::string cleanup = std::string("rm -rf ") + dir;
  EXPECT_EQ(system(cleanup.c_str()), 0);
}

}  // namespace
}  // namespace berth::oci
