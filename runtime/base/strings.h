// StrCat: concatenates anything fmt can format into one string.
//
//   return absl::NotFoundError(StrCat("pod ", id, " not found"));
//
// Debian's Abseil is built with its own absl::string_view, so absl::StrCat
// cannot take std::string_view; this one-liner over fmt can.
#ifndef BERTH_RUNTIME_BASE_STRINGS_H_
#define BERTH_RUNTIME_BASE_STRINGS_H_

#include <iterator>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fmt/format.h"

// Debian's absl::string_view is not std::string_view: teach fmt (and so
// StrCat and the logger) to print it, and absl::Status, directly.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(std::string_view(s.data(), s.size()), ctx);
  }
};

template <>
struct fmt::formatter<absl::Status> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const absl::Status& s, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(s.ToString(), ctx);
  }
};

namespace berth {

template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  (fmt::format_to(std::back_inserter(out), "{}", args), ...);
  return out;
}

}  // namespace berth

#endif  // BERTH_RUNTIME_BASE_STRINGS_H_
