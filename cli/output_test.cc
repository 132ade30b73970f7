#include "cli/output.h"

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

}  // namespace
}  // namespace berth::cli
