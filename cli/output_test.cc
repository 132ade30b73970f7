#include "cli/output.h"

#include <chrono>

#include "api/runtime/v1/api.pb.h"
#include "gtest/gtest.h"

namespace berth::cli {
namespace {

TEST(OutputTest, ProtoToJsonUsesCamelCaseAndKeepsFalse) {
  runtime::v1::RuntimeCondition condition;
  condition.set_type("NetworkReady");
  condition.set_status(false);
  nlohmann::json json = ToJson(condition);
  EXPECT_EQ(json["type"], "NetworkReady");
  EXPECT_EQ(json["status"], false);

  runtime::v1::VersionResponse version;
  version.set_runtime_api_version("v1");
  EXPECT_EQ(ToJson(version)["runtimeApiVersion"], "v1");
}

TEST(OutputTest, YamlBlocksAndQuoting) {
  nlohmann::json value = {
      {"name", "berth"},       {"ready", true},
      {"version", "1.0"},      {"empty", nlohmann::json::object()},
      {"list", {"a", "b: c"}}, {"nested", {{"x", 1}, {"y", nullptr}, {"s", ""}}},
  };
  EXPECT_EQ(ToYaml(value),
            "empty: {}\n"
            "list:\n"
            "  - a\n"
            "  - \"b: c\"\n"
            "name: berth\n"
            "nested:\n"
            "  s: \"\"\n"
            "  x: 1\n"
            "  y: null\n"
            "ready: true\n"
            "version: \"1.0\"\n");
}

TEST(OutputTest, YamlListOfObjects) {
  nlohmann::json value = {{"items", {{{"id", "a"}, {"n", 1}}}}};
  EXPECT_EQ(ToYaml(value), "items:\n  -\n    id: a\n    n: 1\n");
}

TEST(OutputTest, TablePadsColumns) {
  Table table({"A", "LONGER"});
  table.AddRow({"value", "x"});
  EXPECT_EQ(table.Render(), "A       LONGER\nvalue   x\n");
}

TEST(OutputTest, UnknownFormatIsRejected) {
  EXPECT_FALSE(ParseOutputFormat("xml").ok());
  EXPECT_EQ(*ParseOutputFormat("yaml"), OutputFormat::kYaml);
}

TEST(OutputTest, InspectJsonNestsJsonInfoAndKeepsOtherStrings) {
  runtime::v1::ContainerStatus status;
  status.set_id("abc");
  google::protobuf::Map<std::string, std::string> info;
  info["info"] = R"({"pid": 42})";
  info["note"] = "not json";
  nlohmann::json out = InspectJson(status, info);
  EXPECT_EQ(out["status"]["id"], "abc");
  EXPECT_EQ(out["info"]["pid"], 42);
  EXPECT_EQ(out["note"], "not json");
}

TEST(OutputTest, TableCells) {
  EXPECT_EQ(ShortId("sha256:0123456789abcdef0123"), "0123456789abc");
  EXPECT_EQ(ShortId("fedcba9876543210fedc"), "fedcba9876543");
  EXPECT_EQ(HumanSize(999), "999B");
  EXPECT_EQ(HumanSize(1234567), "1.23MB");
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  EXPECT_EQ(Age(now - int64_t{90} * 1000000000), "1m ago");
  EXPECT_EQ(Age(now - int64_t{3} * 86400 * 1000000000), "3d ago");
}

}  // namespace
}  // namespace berth::cli
