// berthctl as an operator types it, against a real berthd and registry.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "e2e/berthd_fixture.h"
#include "e2e/fixtures/image_kit.h"
#include "e2e/fixtures/registry.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/base/strings.h"

namespace berth::testing {
namespace {

std::string BerthctlPath() {
  return StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"), "/cli/berthctl");
}

struct CommandRun {
  int code;
  std::string out;
};

// Runs berthctl with args against the fixture's socket; stdout and stderr together.
CommandRun Berthctl(const BerthdFixture& berthd, const std::string& args) {
  std::string command = StrCat(BerthctlPath(), " -r unix://", berthd.socket(), " ", args, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(BerthctlTest, VersionInfoAndTheImageCommands) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: image layers are unpacked with ownership";
  absl::StatusOr<OciImage> busybox = BuildBusyboxImage();
  ASSERT_TRUE(busybox.ok());
  absl::StatusOr<std::unique_ptr<Registry>> registry = Registry::Start();
  ASSERT_TRUE(registry.ok()) << registry.status();
  ASSERT_TRUE((*registry)->Push(*busybox, "library/busybox", "1.36").ok());
  absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start(
      {.config_toml = "[registries.\"*\"]\nmirrors = [\"" + (*registry)->url() + "\"]\n"});
  ASSERT_TRUE(berthd.ok()) << berthd.status();
  BerthdFixture& d = **berthd;

  CommandRun version = Berthctl(d, "version");
  EXPECT_EQ(version.code, 0) << version.out;
  EXPECT_NE(version.out.find("RuntimeName:  berth"), std::string::npos) << version.out;

  CommandRun info = Berthctl(d, "-o json info");
  ASSERT_EQ(info.code, 0) << info.out;
  nlohmann::json json = nlohmann::json::parse(info.out);
  EXPECT_EQ(json["config"]["root"], d.root());
  EXPECT_EQ(json["daemon"]["pid"], std::to_string(d.pid()));

  CommandRun pull = Berthctl(d, "pull busybox:1.36");
  ASSERT_EQ(pull.code, 0) << pull.out;
  EXPECT_NE(pull.out.find(busybox->config.digest), std::string::npos) << pull.out;

  CommandRun images = Berthctl(d, "images");
  ASSERT_EQ(images.code, 0) << images.out;
  EXPECT_NE(images.out.find("docker.io/library/busybox"), std::string::npos) << images.out;
  EXPECT_NE(images.out.find("1.36"), std::string::npos) << images.out;

  CommandRun yaml = Berthctl(d, "-o yaml images");
  EXPECT_NE(yaml.out.find("repoTags:"), std::string::npos) << yaml.out;

  CommandRun inspect = Berthctl(d, "inspecti busybox:1.36");
  ASSERT_EQ(inspect.code, 0) << inspect.out;
  EXPECT_EQ(nlohmann::json::parse(inspect.out)["status"]["id"], busybox->config.digest);

  CommandRun fs = Berthctl(d, "imagefsinfo");
  EXPECT_EQ(fs.code, 0) << fs.out;
  EXPECT_NE(fs.out.find(d.root()), std::string::npos) << fs.out;

  CommandRun rmi = Berthctl(d, "rmi busybox:1.36");
  EXPECT_EQ(rmi.code, 0) << rmi.out;
  CommandRun again = Berthctl(d, "rmi busybox:1.36");
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_NE(again.out.find("no such image"), std::string::npos) << again.out;

  CommandRun bad = Berthctl(d, "pull Not:A:Ref");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("berthctl: PullImage"), std::string::npos) << bad.out;
}

TEST(BerthctlTest, PodCommands) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: pods pin namespaces with mounts";
  absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start();
  ASSERT_TRUE(berthd.ok()) << berthd.status();
  BerthdFixture& d = **berthd;
  std::string config = d.dir() + "/pod.json";
  std::ofstream(config) << R"({"metadata": {"name": "cli-pod", "namespace": "default",
                               "uid": "cli-uid", "attempt": 0},
                               "hostname": "cli-pod", "labels": {"app": "cli"}})";

  CommandRun runp = Berthctl(d, "runp " + config);
  ASSERT_EQ(runp.code, 0) << runp.out;
  std::string id = runp.out.substr(0, runp.out.find('\n'));
  EXPECT_EQ(id.size(), 64u) << runp.out;

  CommandRun pods = Berthctl(d, "pods");
  EXPECT_EQ(pods.code, 0) << pods.out;
  EXPECT_NE(pods.out.find(id.substr(0, 13)), std::string::npos) << pods.out;
  EXPECT_NE(pods.out.find("Ready"), std::string::npos) << pods.out;
  EXPECT_NE(pods.out.find("cli-pod"), std::string::npos) << pods.out;

  CommandRun inspect = Berthctl(d, "inspectp " + id.substr(0, 12));
  ASSERT_EQ(inspect.code, 0) << inspect.out;
  nlohmann::json status = nlohmann::json::parse(inspect.out);
  EXPECT_EQ(status["status"]["id"], id);
  EXPECT_EQ(status["status"]["labels"]["app"], "cli");

  EXPECT_EQ(Berthctl(d, "stopp " + id).code, 0);
  EXPECT_NE(Berthctl(d, "pods").out.find("NotReady"), std::string::npos);
  CommandRun rmp = Berthctl(d, "rmp " + id);
  EXPECT_EQ(rmp.code, 0) << rmp.out;
  EXPECT_EQ(Berthctl(d, "pods -q").out, "");

  std::ofstream(config) << "{not json";
  CommandRun bad = Berthctl(d, "runp " + config);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("not a PodSandboxConfig"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace berth::testing
