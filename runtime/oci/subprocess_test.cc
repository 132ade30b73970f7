#include "runtime/oci/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace berth::oci {
namespace {

TEST(SubprocessTest, CapturesOutputAndExitCode) {
  absl::StatusOr<SubprocessResult> r = RunSubprocess(
      {.argv = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, .timeout = absl::Seconds(10)});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_EQ(r->ExitCode(), 3);
  EXPECT_EQ(r->Describe(), "exit status 3");
  EXPECT_FALSE(r->timed_out);
}

TEST(SubprocessTest, TimeoutKillsTheChildAndCallsBack) {
  bool called = false;
  absl::Time start = absl::Now();
  absl::StatusOr<SubprocessResult> r = RunSubprocess({.argv = {"/bin/sleep", "30"},
                                                      .timeout = absl::Milliseconds(200),
                                                      .on_timeout = [&] { called = true; }});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timed_out);
  EXPECT_TRUE(called);
  EXPECT_EQ(r->ExitCode(), 128 + SIGKILL);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_NE(kill(r->pid, 0), 0);  // reaped
}

TEST(SubprocessTest, AGrandchildHoldingThePipeDoesNotBlock) {
  absl::Time start = absl::Now();
  absl::StatusOr<SubprocessResult> r = RunSubprocess(
      {.argv = {"/bin/sh", "-c", "echo hi; sleep 3 & exit 0"}, .timeout = absl::Seconds(10)});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "hi\n");
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(SubprocessTest, ChildGetsOnlyTheGivenFds) {
  int leaked = open("/dev/null", O_RDONLY);  // deliberately not close-on-exec
  ASSERT_GE(leaked, 3);
  absl::StatusOr<SubprocessResult> r = RunSubprocess(
      {.argv = {"/bin/sh", "-c", "ls /proc/self/fd | wc -l"}, .timeout = absl::Seconds(10)});
  close(leaked);
  ASSERT_TRUE(r.ok()) << r.status();
  // 0, 1, 2 and the directory fd ls has open while listing.
  EXPECT_EQ(r->out, "4\n");
}

TEST(SubprocessTest, SignalsAreReset) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  signal(SIGINT, SIG_IGN);
  absl::StatusOr<SubprocessResult> r =
      RunSubprocess({.argv = {"/bin/sh", "-c", "grep -E 'SigBlk|SigIgn' /proc/self/status"},
                     .timeout = absl::Seconds(10)});
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  signal(SIGINT, SIG_DFL);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->out.find("SigBlk:\t0000000000000000"), std::string::npos) << r->out;
}

TEST(SubprocessTest, SpawnFdTable) {
  absl::StatusOr<Pipe> p = MakePipe();
  ASSERT_TRUE(p.ok());
  absl::StatusOr<pid_t> pid = Spawn({.argv = {"/bin/sh", "-c", "echo to-fd-3 >&3"},
                                     .fds = {kDevNull, kDevNull, kDevNull, p->write.get()}});
  ASSERT_TRUE(pid.ok()) << pid.status();
  p->write.reset();
  char buf[64] = {};
  ssize_t n = read(p->read.get(), buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "to-fd-3\n");
  int status;
  waitpid(*pid, &status, 0);
  EXPECT_EQ(WaitStatusExitCode(status), 0);
}

TEST(SubprocessTest, MissingBinaryIsNotFound) {
  absl::StatusOr<SubprocessResult> r = RunSubprocess({.argv = {"/nonexistent/berth-x"}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
}

}  // namespace
}  // namespace berth::oci
