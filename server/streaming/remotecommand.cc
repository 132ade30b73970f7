#include "server/streaming/remotecommand.h"

#include <algorithm>
#include <cctype>

#include "nlohmann/json.hpp"
#include "runtime/base/strings.h"

namespace berth::streaming::remotecommand {
namespace {

using OrderedJson = nlohmann::ordered_json;

// Serializes like Go's json.Marshal, which the kubelet uses: fields in struct order
// (hence ordered_json), no spaces, <, >, & and U+2028/U+2029 escaped (Go's HTML-safe
// default, so a command like `a && b > c` reads the same as from the kubelet), and
// invalid UTF-8 written as \ufffd instead of nlohmann's exception. (A genuine U+FFFD in
// the input comes out escaped too, where Go writes it raw: the same JSON value.)
std::string GoJson(const OrderedJson& value) {
  std::string plain = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    char c = plain[i];
    // Outside strings the dump has none of these characters, so replacing them
    // everywhere only touches string contents.
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xe2' && i + 2 < plain.size() && plain[i + 1] == '\x80' &&
               (plain[i + 2] == '\xa8' || plain[i + 2] == '\xa9')) {
      out += plain[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else if (c == '\xef' && i + 2 < plain.size() && plain[i + 1] == '\xbf' &&
               plain[i + 2] == '\xbd') {
      out += "\\ufffd";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// metav1.Status's leading fields: no kind or apiVersion (omitempty), and an empty
// ListMeta that encoding/json still writes as {}.
OrderedJson StatusSkeleton(std::string_view status) {
  OrderedJson json = OrderedJson::object();
  json["metadata"] = OrderedJson::object();
  json["status"] = status;
  return json;
}

// Go's %v of a []string: "[a b c]".
std::string GoSliceString(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ' ';
    out += items[i];
  }
  out += ']';
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string SuccessStatusJson() { return GoJson(StatusSkeleton("Success")); }

std::string NonZeroExitMessage(int exit_code, const std::vector<std::string>& command) {
  // The kubelet's "command terminated with non-zero exit code: %v" around containerd's
  // exit error "error executing command %v, exit code %d".
  return StrCat("command terminated with non-zero exit code: error executing command ",
                GoSliceString(command), ", exit code ", exit_code);
}

std::string NonZeroExitStatusJson(int exit_code, const std::vector<std::string>& command) {
  OrderedJson json = StatusSkeleton("Failure");
  json["message"] = NonZeroExitMessage(exit_code, command);
  json["reason"] = "NonZeroExitCode";
  OrderedJson cause = OrderedJson::object();
  cause["reason"] = "ExitCode";
  cause["message"] = std::to_string(exit_code);
  json["details"]["causes"] = OrderedJson::array({cause});
  return GoJson(json);
}

std::string InternalErrorStatusJson(std::string_view error) {
  OrderedJson json = StatusSkeleton("Failure");
  json["message"] = StrCat("Internal error occurred: ", error);
  json["reason"] = "InternalError";
  OrderedJson cause = OrderedJson::object();
  cause["message"] = std::string(error);
  json["details"]["causes"] = OrderedJson::array({cause});
  json["code"] = 500;
  return GoJson(json);
}

absl::StatusOr<int> ExitCodeFromStatusJson(std::string_view json_text) {
  nlohmann::json json = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        StrCat("error stream protocol error: not a JSON status: \"", json_text, "\""));
  }
  auto string_field = [](const nlohmann::json& object, const char* key) -> std::string {
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string status = string_field(json, "status");
  if (status == "Success") return 0;
  if (status != "Failure") {
    return absl::InvalidArgumentError("error stream protocol error: unknown error");
  }
  if (string_field(json, "reason") != "NonZeroExitCode") {
    return absl::UnknownError(string_field(json, "message"));
  }
  auto details = json.find("details");
  if (details == json.end() || !details->is_object()) {
    return absl::InvalidArgumentError("error stream protocol error: details must be set");
  }
  auto causes = details->find("causes");
  if (causes != details->end() && causes->is_array()) {
    for (const nlohmann::json& cause : *causes) {
      if (!cause.is_object() || string_field(cause, "reason") != "ExitCode") continue;
      std::string code = string_field(cause, "message");
      // strconv.ParseUint(code, 10, 8): decimal digits only, at most 255.
      int value = 0;
      bool valid = !code.empty();
      for (char c : code) {
        if (c < '0' || c > '9') valid = false;
        value = std::min(value * 10 + (c - '0'), 256);  // saturate: "0003" is fine
      }
      if (!valid || value > 255) {
        return absl::InvalidArgumentError(
            StrCat("error stream protocol error: invalid exit code value \"", code, "\""));
      }
      return value;
    }
  }
  return absl::InvalidArgumentError("error stream protocol error: no ExitCode cause given");
}

std::string EncodeTerminalSize(TerminalSize size) {
  return StrCat("{\"Width\":", size.width, ",\"Height\":", size.height, "}\n");
}

absl::StatusOr<std::vector<TerminalSize>> TerminalSizeDecoder::Feed(std::string_view bytes) {
  if (!status_.ok()) return status_;
  auto fail = [this](std::string message) {
    status_ = absl::InvalidArgumentError(StrCat("terminal resize stream: ", message));
    pending_.clear();
    return status_;
  };
  pending_.append(bytes);
  std::vector<TerminalSize> sizes;
  // Find where each top-level object ends, minding strings (a "}" inside a string does
  // not close anything), then hand the whole object to the JSON parser.
  while (scanned_ < pending_.size()) {
    char c = pending_[scanned_];
    if (depth_ == 0) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        pending_.erase(0, scanned_ + 1);
        scanned_ = 0;
        continue;
      }
      if (c != '{') return fail(StrCat("expected an object, found '", std::string(1, c), "'"));
    }
    if (++scanned_ > kMaxObjectBytes) {
      return fail(StrCat("an object longer than ", kMaxObjectBytes, " bytes"));
    }
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ > 0) continue;
      nlohmann::json object = nlohmann::json::parse(std::string_view(pending_).substr(0, scanned_),
                                                    nullptr, /*allow_exceptions=*/false);
      pending_.erase(0, scanned_);
      scanned_ = 0;
      if (object.is_discarded() || !object.is_object()) return fail("invalid JSON object");
      TerminalSize size;
      for (const auto& [key, value] : object.items()) {
        uint16_t* field = EqualsIgnoreCase(key, "width")    ? &size.width
                          : EqualsIgnoreCase(key, "height") ? &size.height
                                                            : nullptr;
        if (field == nullptr || value.is_null()) continue;
        if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
            value.get<int64_t>() > 65535) {
          return fail(StrCat("\"", key, "\" is not a size: ", value.dump()));
        }
        *field = static_cast<uint16_t>(value.get<int64_t>());
      }
      sizes.push_back(size);
    }
  }
  return sizes;
}

}  // namespace berth::streaming::remotecommand
