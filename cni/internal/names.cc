#include "cni/internal/names.h"

namespace berth::cni::internal {
namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 255 || !IsAlnum(s[0])) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

bool IsValidNetworkName(std::string_view name) { return IsIdentifier(name); }

bool IsValidContainerId(std::string_view id) { return IsIdentifier(id); }

bool IsValidIfName(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  for (char c : name) {
    if (c <= ' ' || c > '~' || c == '/' || c == ':') return false;
  }
  return true;
}

bool IsValidPluginType(std::string_view type) {
  if (type.empty() || type == "." || type == "..") return false;
  for (char c : type) {
    if (c == '/' || c == '\\' || c == '\0') return false;
  }
  return true;
}

}  // namespace berth::cni::internal
