// The daemon as an operator meets it: a real berthd on a real unix socket,
// asked by a real gRPC client, killed and restarted.
#include <grpcpp/generic/generic_stub.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "e2e/berthd_fixture.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;

std::unique_ptr<BerthdFixture> StartOrDie(BerthdOptions options = {}) {
  absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start(options);
  EXPECT_TRUE(berthd.ok()) << berthd.status();
  return berthd.ok() ? *std::move(berthd) : nullptr;
}

grpc::Status Version(BerthdFixture& berthd, v1::VersionResponse* response) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return berthd.runtime().Version(&ctx, v1::VersionRequest(), response);
}

v1::StatusResponse Status(BerthdFixture& berthd, bool verbose) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::StatusRequest request;
  request.set_verbose(verbose);
  v1::StatusResponse response;
  grpc::Status s = berthd.runtime().Status(&ctx, request, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return response;
}

grpc::Status SetPodCidr(BerthdFixture& berthd, const std::string& cidr) {
  grpc::ClientContext ctx;
  v1::UpdateRuntimeConfigRequest request;
  request.mutable_runtime_config()->mutable_network_config()->set_pod_cidr(cidr);
  v1::UpdateRuntimeConfigResponse response;
  return berthd.runtime().UpdateRuntimeConfig(&ctx, request, &response);
}

TEST(DaemonTest, VersionOverTheSocket) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  v1::VersionResponse version;
  ASSERT_TRUE(Version(*berthd, &version).ok());
  EXPECT_EQ(version.runtime_name(), "berth");
  EXPECT_EQ(version.runtime_api_version(), "v1");
  EXPECT_EQ(version.version(), "0.1.0");
  EXPECT_FALSE(version.runtime_version().empty());

  struct stat st;
  ASSERT_EQ(stat(berthd->socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST(DaemonTest, StatusReportsConditionsAndEffectiveConfig) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  v1::StatusResponse status = Status(*berthd, /*verbose=*/true);
  ASSERT_EQ(status.status().conditions_size(), 2);
  const v1::RuntimeCondition& runtime_ready = status.status().conditions(0);
  const v1::RuntimeCondition& network_ready = status.status().conditions(1);
  EXPECT_EQ(runtime_ready.type(), "RuntimeReady");
  // runc is one of the packages bazel/install-deps.sh installs.
  EXPECT_TRUE(runtime_ready.status()) << runtime_ready.reason() << ": " << runtime_ready.message();
  EXPECT_EQ(network_ready.type(), "NetworkReady");
  // The fixture's private loopback network, with Debian's CNI plugins.
  EXPECT_TRUE(network_ready.status()) << network_ready.reason() << ": " << network_ready.message();

  ASSERT_EQ(status.info().count("config"), 1u);
  nlohmann::json config = nlohmann::json::parse(status.info().at("config"));
  EXPECT_EQ(config["root"], berthd->root());
  EXPECT_EQ(config["socket"], berthd->socket());
  EXPECT_EQ(config["runtime"]["default_handler"], "runc");
  // Defaults are shown resolved, not as the empty string they are configured as.
  EXPECT_EQ(config["runtime"]["handlers"]["runc"]["root"], berthd->state() + "/runtimes/runc");

  // Without verbose there is no info.
  EXPECT_TRUE(Status(*berthd, /*verbose=*/false).info().empty());
}

TEST(DaemonTest, RuntimeReadyIsFalseWhenTheRuntimeBinaryIsMissing) {
  auto berthd =
      StartOrDie({.config_toml = "[runtime.handlers.runc]\nbinary = \"/nonexistent/runc\"\n"});
  ASSERT_NE(berthd, nullptr);
  v1::StatusResponse status = Status(*berthd, false);
  ASSERT_GE(status.status().conditions_size(), 1);
  EXPECT_FALSE(status.status().conditions(0).status());
  EXPECT_EQ(status.status().conditions(0).reason(), "RuntimeBinaryNotFound");
}

TEST(DaemonTest, RuntimeConfigIsCgroupfs) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  grpc::ClientContext ctx;
  v1::RuntimeConfigResponse response;
  ASSERT_TRUE(berthd->runtime().RuntimeConfig(&ctx, v1::RuntimeConfigRequest(), &response).ok());
  EXPECT_EQ(response.linux().cgroup_driver(), v1::CgroupDriver::CGROUPFS);
}

TEST(DaemonTest, PodCidrIsStoredAndSurvivesKillNine) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  ASSERT_TRUE(SetPodCidr(*berthd, "10.244.3.0/24").ok());
  EXPECT_EQ(Status(*berthd, true).info().at("podCIDR"), "10.244.3.0/24");

  grpc::Status bad = SetPodCidr(*berthd, "10.244.3.0/33");
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("10.244.3.0/33"), std::string::npos) << bad.error_message();

  berthd->Kill9();
  ASSERT_TRUE(berthd->Restart().ok());
  EXPECT_EQ(Status(*berthd, true).info().at("podCIDR"), "10.244.3.0/24");
}

TEST(DaemonTest, NetworkIsNotReadyWhenTheDefaultNetworksPluginIsMissing) {
  char dir[] = "/tmp/berth-cni-conf-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::ofstream(std::string(dir) + "/10-broken.conflist")
      << R"({"cniVersion": "1.0.0", "name": "broken", "plugins": [{"type": "no-such-plugin"}]})";
  auto berthd = BerthdFixture::Start(
      {.config_toml = "[network]\nconf_dir = \"" + std::string(dir) + "\"\n"});
  ASSERT_TRUE(berthd.ok()) << berthd.status();
  grpc::ClientContext ctx;
  v1::StatusRequest request;
  v1::StatusResponse status;
  ASSERT_TRUE((*berthd)->runtime().Status(&ctx, request, &status).ok());
  const v1::RuntimeCondition& network_ready = status.status().conditions(1);
  EXPECT_EQ(network_ready.type(), "NetworkReady");
  EXPECT_FALSE(network_ready.status());
  EXPECT_EQ(network_ready.reason(), "NetworkPluginNotReady");
  EXPECT_NE(network_ready.message().find("no-such-plugin"), std::string::npos)
      << network_ready.message();
  RemoveTree(dir);
}

TEST(DaemonTest, UnservedRpcsAreUnimplementedAndNamed) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  {
    grpc::ClientContext ctx;
    v1::PodSandboxStatsResponse response;
    grpc::Status s =
        berthd->runtime().PodSandboxStats(&ctx, v1::PodSandboxStatsRequest(), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
    EXPECT_NE(s.error_message().find("RuntimeService/PodSandboxStats"), std::string::npos);
  }
  {
    // A server-streaming RPC.
    grpc::ClientContext ctx;
    auto reader =
        berthd->runtime().StreamContainerStats(&ctx, v1::StreamContainerStatsRequest());
    v1::StreamContainerStatsResponse event;
    EXPECT_FALSE(reader->Read(&event));
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
    EXPECT_NE(s.error_message().find("StreamContainerStats"), std::string::npos);
  }
}

TEST(DaemonTest, ImageFsInfoReportsTheRoot) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  grpc::ClientContext ctx;
  v1::ImageFsInfoResponse response;
  grpc::Status s = berthd->image().ImageFsInfo(&ctx, v1::ImageFsInfoRequest(), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(response.image_filesystems_size(), 1);
  EXPECT_EQ(response.image_filesystems(0).fs_id().mountpoint(), berthd->root());
  EXPECT_GT(response.image_filesystems(0).timestamp(), 0);
  EXPECT_TRUE(response.image_filesystems(0).has_used_bytes());
}

TEST(DaemonTest, MalformedRequestBytesAreInvalidArgument) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  grpc::GenericStub stub(berthd->channel());
  // Field 1 declared as a length-delimited string of 100 bytes, with 2 present.
  const char garbage[] = {0x0a, 0x64, 'x', 'y'};
  grpc::Slice slice(garbage, sizeof(garbage));
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, "/runtime.v1.RuntimeService/UpdateRuntimeConfig", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = s;
                   done = true;
                   cv.notify_one();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("UpdateRuntimeConfig"), std::string::npos)
      << status.error_message();
  // And the daemon keeps serving.
  v1::VersionResponse version;
  EXPECT_TRUE(Version(*berthd, &version).ok());
}

TEST(DaemonTest, KillNineLeavesAStaleSocketThatRestartReplaces) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  berthd->Kill9();
  // A killed daemon cannot clean up: its socket file is still there.
  ASSERT_TRUE(std::filesystem::exists(berthd->socket()));
  ASSERT_TRUE(berthd->Restart().ok());
  v1::VersionResponse version;
  EXPECT_TRUE(Version(*berthd, &version).ok());
  EXPECT_NE(berthd->Log().find("event=stale_socket_removed"), std::string::npos);
}

TEST(DaemonTest, SecondDaemonOnALiveSocketIsRefused) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  // Another root, the same socket.
  absl::StatusOr<std::pair<ExitInfo, std::string>> second =
      berthd->RunBerthd({"--config", berthd->config_path(), "--root", berthd->dir() + "/root2"});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->first.signaled);
  EXPECT_EQ(second->first.code, 1);
  EXPECT_NE(second->second.find("already serving " + berthd->socket()), std::string::npos)
      << second->second;
  EXPECT_NE(second->second.find("pid " + std::to_string(berthd->pid())), std::string::npos)
      << second->second;

  // The same root, another socket.
  second = berthd->RunBerthd(
      {"--config", berthd->config_path(), "--socket", berthd->dir() + "/other.sock"});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->first.code, 1);
  EXPECT_NE(second->second.find("already serving root " + berthd->root()), std::string::npos)
      << second->second;

  // The first daemon is untouched.
  v1::VersionResponse version;
  EXPECT_TRUE(Version(*berthd, &version).ok());
}

TEST(DaemonTest, SigtermAndSigintExitZeroAndRemoveTheSocket) {
  for (int sig : {SIGTERM, SIGINT}) {
    auto berthd = StartOrDie();
    ASSERT_NE(berthd, nullptr);
    absl::StatusOr<ExitInfo> exit = berthd->Stop(sig);
    ASSERT_TRUE(exit.ok()) << exit.status();
    EXPECT_FALSE(exit->signaled) << "killed by signal " << exit->code;
    EXPECT_EQ(exit->code, 0);
    EXPECT_FALSE(std::filesystem::exists(berthd->socket()));
    EXPECT_NE(berthd->Log().find("event=shutdown_done"), std::string::npos);
  }
}

TEST(DaemonTest, SigtermLetsAnRpcInFlightFinish) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  // Hold the store's write lock from this process so UpdateRuntimeConfig is
  // still waiting inside berthd (its busy timeout is 5 s) when SIGTERM comes.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((berthd->root() + "/berth.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

  grpc::Status in_flight;
  std::thread rpc([&] { in_flight = SetPodCidr(*berthd, "10.7.0.0/16"); });
  // Give the request time to reach the daemon; this only orders events, the
  // test asserts no duration.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  ASSERT_EQ(kill(berthd->pid(), SIGTERM), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  rpc.join();
  EXPECT_TRUE(in_flight.ok()) << in_flight.error_message();

  absl::StatusOr<ExitInfo> exit = berthd->Stop(SIGTERM);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->code, 0);
  // The drained RPC's write was committed.
  ASSERT_TRUE(berthd->Restart().ok());
  EXPECT_EQ(Status(*berthd, true).info().at("podCIDR"), "10.7.0.0/16");
}

TEST(DaemonTest, BadConfigFileFailsStartWithItsLocation) {
  auto berthd = StartOrDie();
  ASSERT_NE(berthd, nullptr);
  std::string bad = berthd->dir() + "/bad.toml";
  std::ofstream(bad) << "root = \"/tmp/x\"\nsocket = \n";
  absl::StatusOr<std::pair<ExitInfo, std::string>> run = berthd->RunBerthd({"--config", bad});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->first.code, 1);
  EXPECT_NE(run->second.find(bad + ":2:"), std::string::npos) << run->second;

  run = berthd->RunBerthd({"--config", berthd->dir() + "/missing.toml"});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->first.code, 1);
  EXPECT_NE(run->second.find("does not exist"), std::string::npos) << run->second;
}

}  // namespace
}  // namespace berth::testing
