// Output for berthctl: human tables by default, or -o json / -o yaml.
//
//   Table t({"TYPE", "STATUS"});
//   t.AddRow({"RuntimeReady", "true"});
//   std::cout << t.Render();
//   std::cout << Render(json_value, OutputFormat::kYaml);
#ifndef BERTH_CLI_OUTPUT_H_
#define BERTH_CLI_OUTPUT_H_

#include <google/protobuf/map.h>
#include <google/protobuf/message.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace berth::cli {

enum class OutputFormat { kTable, kJson, kYaml };

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& name);

// A protobuf message as JSON with the proto field names (as crictl prints them).
nlohmann::json ToJson(const google::protobuf::Message& message);

// JSON or YAML text of a value; kTable is not valid here.
std::string Render(const nlohmann::json& value, OutputFormat format);

// YAML for a JSON value: block style, strings quoted only when YAML would
// read them as something else.
std::string ToYaml(const nlohmann::json& value);

// What the inspect commands print, as crictl does: {"status": <status>, <key>: <value>...}
// for each verbose info entry, with values that hold JSON (as runtimes encode them)
// nested as JSON and any other value kept as a string.
nlohmann::json InspectJson(const google::protobuf::Message& status,
                           const google::protobuf::Map<std::string, std::string>& info);

// Table cells.
// "sha256:0123456789abcdef..." or a pod/container id -> its first 13 hex digits.
std::string ShortId(const std::string& id);
// 1234567 -> "1.23MB" (SI units, as crictl and docker print sizes).
std::string HumanSize(uint64_t bytes);
// How long ago a time in ns since the epoch was: "42s ago", "5m ago", "3h ago", "2d ago".
std::string Age(int64_t unix_nanos);

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Columns padded to their widest cell, separated by three spaces.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace berth::cli

#endif  // BERTH_CLI_OUTPUT_H_
