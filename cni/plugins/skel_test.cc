// The plugin protocol without a process: environment and stdin in, result or error JSON out.
#include "cni/plugins/skel.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::cni::plugins {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

Plugin Recorder(CmdArgs* seen) {
  return {.name = "test-plugin",
          .add = [seen](const CmdArgs& a) -> absl::StatusOr<nlohmann::json> {
            *seen = a;
            return nlohmann::json{{"ips", {{{"address", "10.1.2.3/24"}, {"interface", 0}}}}};
          },
          .del =
              [seen](const CmdArgs& a) {
                *seen = a;
                return CniError(kTryAgainLater, "busy", "try later");
              }};
}

Invocation Inv(std::string command, std::string config) {
  return {.env = {{"CNI_COMMAND", command},
                  {"CNI_CONTAINERID", "c1"},
                  {"CNI_NETNS", "/run/netns/x"},
                  {"CNI_IFNAME", "eth0"},
                  {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"},
                  {"CNI_PATH", "/a:/b"}},
          .stdin_data = std::move(config)};
}

nlohmann::json Json(const Outcome& o) { return nlohmann::json::parse(o.out); }

TEST(SkelTest, AddParsesTheEnvironmentAndPrintsTheResultForTheVersion) {
  CmdArgs seen;
  Outcome o = RunPlugin(Recorder(&seen), Inv("ADD", R"({"cniVersion": "1.0.0", "name": "n"})"));
  ASSERT_EQ(o.exit_code, 0) << o.out;
  EXPECT_EQ(seen.container_id, "c1");
  EXPECT_EQ(seen.netns, "/run/netns/x");
  EXPECT_EQ(seen.ifname, "eth0");
  EXPECT_THAT(seen.args, ElementsAre(Pair("IgnoreUnknown", "1"), Pair("K8S_POD_NAME", "web")));
  EXPECT_THAT(seen.path, ElementsAre("/a", "/b"));
  EXPECT_EQ(seen.config["name"], "n");
  nlohmann::json r = Json(o);
  EXPECT_EQ(r["cniVersion"], "1.0.0");
  EXPECT_FALSE(r["ips"][0].contains("version"));
  EXPECT_EQ(r["ips"][0]["interface"], 0);

  // 0.3.1 and 0.4.0 results carry "version" per address.
  o = RunPlugin(Recorder(&seen), Inv("ADD", R"({"cniVersion": "0.3.1", "name": "n"})"));
  ASSERT_EQ(o.exit_code, 0) << o.out;
  EXPECT_EQ(Json(o)["ips"][0]["version"], "4");
  EXPECT_EQ(Json(o)["cniVersion"], "0.3.1");
}

TEST(SkelTest, ErrorsAreTheSpecsJsonWithCodeAndNonZeroExit) {
  CmdArgs seen;
  Outcome o = RunPlugin(Recorder(&seen), Inv("DEL", R"({"cniVersion": "1.1.0", "name": "n"})"));
  EXPECT_EQ(o.exit_code, 1);
  nlohmann::json e = Json(o);
  EXPECT_EQ(e["cniVersion"], "1.1.0");
  EXPECT_EQ(e["code"], kTryAgainLater);
  EXPECT_EQ(e["msg"], "busy");
  EXPECT_EQ(e["details"], "try later");

  // A plain status is the generic code.
  Plugin failing{.name = "f", .add = [](const CmdArgs&) -> absl::StatusOr<nlohmann::json> {
                   return absl::InternalError("boom");
                 }};
  o = RunPlugin(failing, Inv("ADD", R"({"cniVersion": "1.0.0", "name": "n"})"));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(Json(o)["code"], kGenericFailure);
  EXPECT_EQ(Json(o)["msg"], "boom");
}

TEST(SkelTest, BadInputsGetTheirCodes) {
  CmdArgs seen;
  Plugin p = Recorder(&seen);
  EXPECT_EQ(Json(RunPlugin(p, Inv("ADD", "not json")))["code"], kDecodeFailure);
  EXPECT_EQ(Json(RunPlugin(p, Inv("ADD", R"({"name": "n"})")))["code"], kInvalidNetworkConfig);
  Outcome o = RunPlugin(p, Inv("ADD", R"({"cniVersion": "0.2.0", "name": "n"})"));
  EXPECT_EQ(Json(o)["code"], kIncompatibleVersion);
  EXPECT_THAT(Json(o)["msg"].get<std::string>(), HasSubstr("0.2.0"));
  EXPECT_EQ(Json(RunPlugin(p, Inv("FROB", R"({"cniVersion": "1.0.0"})")))["code"],
            kInvalidEnvironment);

  Invocation no_id = Inv("ADD", R"({"cniVersion": "1.0.0", "name": "n"})");
  no_id.env.erase("CNI_CONTAINERID");
  EXPECT_EQ(Json(RunPlugin(p, no_id))["code"], kInvalidEnvironment);
  Invocation no_netns = Inv("ADD", R"({"cniVersion": "1.0.0", "name": "n"})");
  no_netns.env.erase("CNI_NETNS");
  EXPECT_EQ(Json(RunPlugin(p, no_netns))["code"], kInvalidEnvironment);
  // DEL works without a namespace (it may be gone).
  no_netns.env["CNI_COMMAND"] = "DEL";
  EXPECT_EQ(Json(RunPlugin(p, no_netns))["code"], kTryAgainLater);
  Invocation bad_args = Inv("ADD", R"({"cniVersion": "1.0.0", "name": "n"})");
  bad_args.env["CNI_ARGS"] = "novalue";
  EXPECT_EQ(Json(RunPlugin(p, bad_args))["code"], kInvalidEnvironment);
  // A configuration whose fields have unexpected types is a decode failure, not a crash.
  Plugin strict{.name = "s", .add = [](const CmdArgs& a) -> absl::StatusOr<nlohmann::json> {
                  return nlohmann::json{{"x", a.config["ipam"]["type"].get<std::string>()}};
                }};
  o = RunPlugin(strict, Inv("ADD", R"({"cniVersion": "1.0.0", "ipam": {"type": 5}})"));
  EXPECT_EQ(Json(o)["code"], kDecodeFailure);
}

TEST(SkelTest, VersionAnswersEveryVersionWithOrWithoutConfig) {
  Plugin p{.name = "v"};
  Outcome o = RunPlugin(
      p, {.env = {{"CNI_COMMAND", "VERSION"}}, .stdin_data = R"({"cniVersion": "0.4.0"})"});
  ASSERT_EQ(o.exit_code, 0);
  EXPECT_EQ(Json(o)["cniVersion"], "0.4.0");
  EXPECT_THAT(Json(o)["supportedVersions"].get<std::vector<std::string>>(),
              ElementsAre("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"));
  o = RunPlugin(p, {.env = {{"CNI_COMMAND", "VERSION"}}, .stdin_data = ""});
  ASSERT_EQ(o.exit_code, 0);
  EXPECT_EQ(Json(o)["cniVersion"], "1.1.0");
}

TEST(SkelTest, StatusAndGcNeedOnePointOneAndMissingHandlersSucceed) {
  Plugin p{.name = "p"};
  Invocation status = {.env = {{"CNI_COMMAND", "STATUS"}},
                       .stdin_data = R"({"cniVersion": "1.1.0", "name": "n"})"};
  EXPECT_EQ(RunPlugin(p, status).exit_code, 0);
  status.stdin_data = R"({"cniVersion": "1.0.0", "name": "n"})";
  EXPECT_EQ(Json(RunPlugin(p, status))["code"], kIncompatibleVersion);

  CmdArgs seen;
  Plugin gc{.name = "g", .gc = [&seen](const CmdArgs& a) {
              seen = a;
              return absl::OkStatus();
            }};
  Outcome o = RunPlugin(
      gc, {.env = {{"CNI_COMMAND", "GC"}}, .stdin_data = R"({"cniVersion": "1.1.0", "name": "n",
                               "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]})"});
  EXPECT_EQ(o.exit_code, 0) << o.out;
  EXPECT_THAT(ValidAttachments(seen), ElementsAre(Pair("a", "eth0")));
}

TEST(SkelTest, CompareVersions) {
  EXPECT_LT(CompareVersions("0.4.0", "1.0.0"), 0);
  EXPECT_LT(CompareVersions("1.0.0", "1.1.0"), 0);
  EXPECT_EQ(CompareVersions("1.1.0", "1.1.0"), 0);
  EXPECT_GT(CompareVersions("1.1.0", "0.3.1"), 0);
}

}  // namespace
}  // namespace berth::cni::plugins
