#include "cli/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "runtime/base/strings.h"

namespace berth::cli {
namespace {

bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  static const char* kWords[] = {"true", "false", "null", "yes", "no", "on", "off", "~",
                                 "True", "False", "Null", "Yes", "No", "On", "Off"};
  for (const char* word : kWords) {
    if (s == word) return true;
  }
  if (s.find_first_not_of("0123456789.+-eE") == std::string::npos) return true;  // a number
  if (std::string(":-?[]{},#&*!|>'\"%@`").find(s[0]) != std::string::npos) return true;
  if (s.front() == ' ' || s.back() == ' ') return true;
  return s.find(": ") != std::string::npos || s.find(" #") != std::string::npos ||
         s.find('\n') != std::string::npos || s.back() == ':';
}

std::string Scalar(const nlohmann::json& value) {
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    // JSON string escaping is valid YAML double-quoted style.
    return NeedsQuotes(s) ? value.dump() : s;
  }
  return value.dump();
}

bool IsEmptyContainer(const nlohmann::json& v) {
  return (v.is_object() || v.is_array()) && v.empty();
}

void EmitYaml(const nlohmann::json& value, int indent, std::ostringstream& out);

void EmitChild(const nlohmann::json& child, int indent, std::ostringstream& out) {
  if (IsEmptyContainer(child)) {
    out << (child.is_object() ? " {}" : " []") << "\n";
  } else if (child.is_object() || child.is_array()) {
    out << "\n";
    EmitYaml(child, indent, out);
  } else {
    out << " " << Scalar(child) << "\n";
  }
}

void EmitYaml(const nlohmann::json& value, int indent, std::ostringstream& out) {
  std::string pad(indent, ' ');
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      out << pad << (NeedsQuotes(key) ? nlohmann::json(key).dump() : key) << ":";
      EmitChild(child, indent + 2, out);
    }
  } else if (value.is_array()) {
    for (const nlohmann::json& child : value) {
      out << pad << "-";
      EmitChild(child, indent + 2, out);
    }
  } else {
    out << pad << Scalar(value) << "\n";
  }
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& name) {
  if (name == "table" || name.empty()) return OutputFormat::kTable;
  if (name == "json") return OutputFormat::kJson;
  if (name == "yaml") return OutputFormat::kYaml;
  return absl::InvalidArgumentError(
      StrCat("output format \"", name, "\" is not one of table, json, yaml"));
}

nlohmann::json ToJson(const google::protobuf::Message& message) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  // Print false and 0 too: "status": false is the point of a NetworkReady condition.
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &text, options);
  return nlohmann::json::parse(text, nullptr, false);
}

std::string ToYaml(const nlohmann::json& value) {
  std::ostringstream out;
  if (IsEmptyContainer(value)) return value.is_object() ? "{}\n" : "[]\n";
  EmitYaml(value, 0, out);
  return out.str();
}

std::string Render(const nlohmann::json& value, OutputFormat format) {
  if (format == OutputFormat::kYaml) return ToYaml(value);
  return value.dump(2) + "\n";
}

nlohmann::json InspectJson(const google::protobuf::Message& status,
                           const google::protobuf::Map<std::string, std::string>& info) {
  nlohmann::json out = {{"status", ToJson(status)}};
  for (const auto& [key, value] : info) {
    nlohmann::json parsed = nlohmann::json::parse(value, nullptr, false);
    out[key] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
  }
  return out;
}

std::string ShortId(const std::string& id) {
  std::string hex = id.rfind("sha256:", 0) == 0 ? id.substr(7) : id;
  return hex.substr(0, 13);
}

std::string HumanSize(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1000 && unit < 4) {
    value /= 1000;
    ++unit;
  }
  return unit == 0 ? StrCat(bytes, "B") : fmt::format("{:.3g}{}", value, units[unit]);
}

std::string Age(int64_t unix_nanos) {
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  int64_t seconds = (now - unix_nanos) / 1000000000;
  if (seconds < 60) return StrCat(seconds, "s ago");
  if (seconds < 3600) return StrCat(seconds / 60, "m ago");
  if (seconds < 86400) return StrCat(seconds / 3600, "h ago");
  return StrCat(seconds / 86400, "d ago");
}

std::string Table::Render() const {
  std::vector<size_t> widths(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) widths[i] = headers_[i].size();
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::ostringstream out;
  auto emit = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      line += cells[i];
      if (i + 1 < cells.size()) line += std::string(widths[i] - cells[i].size() + 3, ' ');
    }
    out << line << "\n";
  };
  emit(headers_);
  for (const auto& row : rows_) emit(row);
  return out.str();
}

}  // namespace berth::cli
