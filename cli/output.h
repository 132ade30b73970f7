// Output for berthctl: human tables by default, or -o json / -o yaml.
//
//   Table t({"TYPE", "STATUS"});
//   t.AddRow({"RuntimeReady", "true"});
//   std::cout << t.Render();
//   std::cout << Render(json_value, OutputFormat::kYaml);
#ifndef BERTH_CLI_OUTPUT_H_
#define BERTH_CLI_OUTPUT_H_

#include <google/protobuf/message.h>

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
