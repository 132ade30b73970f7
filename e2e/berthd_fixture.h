// BerthdFixture: a real berthd child process in a fresh temp root, state dir
// and socket, with CRI clients connected to it.
//
//   absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start();
//   ASSERT_TRUE(berthd.ok()) << berthd.status();
//   grpc::ClientContext ctx;
//   (*berthd)->runtime().Version(&ctx, request, &response);
//   (*berthd)->Kill9();              // the daemon dies; its files stay
//   ASSERT_TRUE((*berthd)->Restart().ok());
//
// Destruction stops the daemon by PID (SIGTERM, then SIGKILL), detaches any
// mount left under the temp dir, and removes the dir, also when the test
// failed half-way. The binary comes from the test's runfiles
// (data = ["//server:berthd"]) or $BERTHD_BINARY.
#ifndef BERTH_E2E_BERTHD_FIXTURE_H_
#define BERTH_E2E_BERTHD_FIXTURE_H_

#include <grpcpp/channel.h>
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/berth/v1/berth.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"

namespace berth::testing {

struct BerthdOptions {
  // Extra TOML appended to the generated config file. Without a [network]
  // table of its own, pods get a private loopback-only CNI network.
  std::string config_toml;
  std::vector<std::string> extra_args;
};

// How a berthd process ended.
struct ExitInfo {
  bool signaled = false;
  int code = 0;  // exit code, or the signal number when signaled
};

class BerthdFixture {
 public:
  static absl::StatusOr<std::unique_ptr<BerthdFixture>> Start(BerthdOptions options = {});
  ~BerthdFixture();

  runtime::v1::RuntimeService::Stub& runtime() { return *runtime_; }
  runtime::v1::ImageService::Stub& image() { return *image_; }
  berth::v1::Berth::Stub& berth() { return *berth_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  const std::string& root() const { return root_; }
  const std::string& state() const { return state_; }
  const std::string& socket() const { return socket_; }
  const std::string& config_path() const { return config_path_; }
  // Everything the daemon wrote to stdout and stderr, across restarts.
  std::string Log() const;

  // Sends sig and waits for the process to end (SIGKILL after the timeout).
  absl::StatusOr<ExitInfo> Stop(int sig = SIGTERM,
                                std::chrono::seconds timeout = std::chrono::seconds(20));
  // kill -9, as a crash would: nothing is cleaned up by the daemon.
  void Kill9();
  // Starts berthd again on the same directories and waits until it serves. `env`
  // ("K=V") is added to its environment for this run only (BERTH_CRASH_POINT).
  absl::Status Restart(std::vector<std::string> env = {});

  // Runs another berthd with these arguments to completion (for start-up
  // failures), returning how it ended and its combined output.
  absl::StatusOr<std::pair<ExitInfo, std::string>> RunBerthd(
      const std::vector<std::string>& args,
      std::chrono::seconds timeout = std::chrono::seconds(20));

  // The default arguments this fixture starts berthd with.
  std::vector<std::string> DefaultArgs() const;

  // Path of the berthd binary under test.
  static absl::StatusOr<std::string> BinaryPath();

 private:
  BerthdFixture() = default;
  absl::Status Launch();
  absl::Status WaitUntilServing(std::chrono::seconds timeout);

  BerthdOptions options_;
  std::vector<std::string> launch_env_;
  std::string dir_, root_, state_, socket_, config_path_, log_path_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<runtime::v1::RuntimeService::Stub> runtime_;
  std::unique_ptr<runtime::v1::ImageService::Stub> image_;
  std::unique_ptr<berth::v1::Berth::Stub> berth_;
};

// Mount points at or below dir, from this process's mount table.
std::vector<std::string> MountsUnder(const std::string& dir);

// What a berthd under `dir` (its root and state dirs) left behind once every pod is
// gone, one line per leak: mounts (rootfs, namespace pins, shm), processes whose command
// line names the dir (berth-shim, and through its shim each berth-pause), and runc
// containers in its runtime state roots. Empty when clean.
std::vector<std::string> LeakCensus(const std::string& dir);

// Detaches every mount at or below dir (deepest first), then removes dir.
void RemoveTree(const std::string& dir);

}  // namespace berth::testing

#endif  // BERTH_E2E_BERTHD_FIXTURE_H_
