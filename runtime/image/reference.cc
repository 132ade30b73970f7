#include "runtime/image/reference.h"

#include <vector>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/image/digest.h"

namespace berth::image {
namespace {

// distribution/reference's NameTotalLengthMax, applied to the normalized
// name as ParseNormalizedNamed does.
constexpr size_t kNameTotalLengthMax = 255;
constexpr size_t kTagLengthMax = 128;
constexpr std::string_view kLegacyDefaultDomain = "index.docker.io";
constexpr std::string_view kOfficialRepoPrefix = "library/";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLowerAlnum(char c) { return IsLower(c) || IsDigit(c); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || IsUpper(c); }
bool IsWord(char c) { return IsAlnum(c) || c == '_'; }  // Go's \w
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

// [a-z0-9]+ ( ( [._] | __ | -+ ) [a-z0-9]+ )*
bool IsPathComponent(std::string_view c) {
  size_t i = 0;
  auto alnum_run = [&] {
    size_t start = i;
    while (i < c.size() && IsLowerAlnum(c[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < c.size()) {
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < c.size() && c[i] == '_') ++i;
    } else if (c[i] == '-') {
      while (i < c.size() && c[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

// [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool IsDomainComponent(std::string_view c) {
  if (c.empty() || !IsAlnum(c.front()) || !IsAlnum(c.back())) return false;
  for (char ch : c) {
    if (!IsAlnum(ch) && ch != '-') return false;
  }
  return true;
}

// host (":" [0-9]+)?, host being dot-separated domain components or a
// bracketed IPv6 address.
bool IsDomain(std::string_view d) {
  std::string_view host = d;
  std::string_view port;
  bool has_port = false;
  if (!d.empty() && d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : d.substr(1, close - 1)) {
      if (!IsHex(c) && c != ':') return false;
    }
    host = {};
    std::string_view rest = d.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      has_port = true;
      port = rest.substr(1);
    }
  } else {
    size_t colon = d.find(':');
    if (colon != std::string_view::npos) {
      host = d.substr(0, colon);
      port = d.substr(colon + 1);
      has_port = true;
    }
    for (std::string_view c : Split(host, '.')) {
      if (!IsDomainComponent(c)) return false;
    }
  }
  if (has_port) {
    if (port.empty()) return false;
    for (char c : port) {
      if (!IsDigit(c)) return false;
    }
  }
  return true;
}

bool IsTag(std::string_view tag) {
  if (tag.empty() || tag.size() > kTagLengthMax || !IsWord(tag.front())) return false;
  for (char c : tag) {
    if (!IsWord(c) && c != '.' && c != '-') return false;
  }
  return true;
}

bool HasUpper(std::string_view s) {
  for (char c : s) {
    if (IsUpper(c)) return true;
  }
  return false;
}

}  // namespace

std::string Reference::Repository() const { return StrCat(domain, "/", path); }

std::string Reference::String() const {
  std::string out = Repository();
  if (!tag.empty()) out += StrCat(":", tag);
  if (!digest.empty()) out += StrCat("@", digest);
  return out;
}

absl::StatusOr<Reference> ParseReference(std::string_view text) {
  auto invalid = [&](const auto& reason) {
    return absl::InvalidArgumentError(StrCat("image reference \"", text, "\": ", reason));
  };
  if (text.empty()) return absl::InvalidArgumentError("image reference is empty");

  Reference ref;
  std::string_view name = text;
  if (size_t at = name.find('@'); at != std::string_view::npos) {
    std::string_view digest = name.substr(at + 1);
    name = name.substr(0, at);
    if (absl::Status s = ValidateDigest(digest); !s.ok()) return invalid(s.message());
    ref.digest = std::string(digest);
  }
  // A ':' after the last '/' starts the tag; one before it is a registry port.
  size_t colon = name.rfind(':');
  size_t slash = name.rfind('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = name.substr(colon + 1);
    name = name.substr(0, colon);
    if (!IsTag(tag)) {
      return invalid(StrCat("invalid tag \"", tag,
                            "\" (want [A-Za-z0-9_][A-Za-z0-9_.-]*, at most 128 characters)"));
    }
    ref.tag = std::string(tag);
  }
  if (name.empty()) return invalid("repository name is empty");
  // Docker refuses a bare 64-hex name so that an image id is never mistaken
  // for (or shadowed by) a repository of that name.
  if (IsSha256Hex(name)) {
    return invalid("a 64-hex-digit string is an image id, not a repository name");
  }

  // splitDockerDomain.
  std::string_view domain = kDefaultDomain;
  std::string_view remainder = name;
  if (size_t i = name.find('/'); i != std::string_view::npos) {
    std::string_view first = name.substr(0, i);
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
        HasUpper(first)) {
      domain = first;
      remainder = name.substr(i + 1);
    }
  }
  if (domain == kLegacyDefaultDomain) domain = kDefaultDomain;
  if (!IsDomain(domain)) return invalid(StrCat("invalid registry host \"", domain, "\""));
  if (HasUpper(remainder)) {
    return invalid(StrCat("repository name \"", remainder, "\" must be lowercase"));
  }
  for (std::string_view component : Split(remainder, '/')) {
    if (!IsPathComponent(component)) {
      return invalid(StrCat("invalid repository path \"", remainder,
                            "\" (components are [a-z0-9] runs joined by '.', '_', '__' or '-')"));
    }
  }
  ref.domain = std::string(domain);
  ref.path = (domain == kDefaultDomain && remainder.find('/') == std::string_view::npos)
                 ? StrCat(kOfficialRepoPrefix, remainder)
                 : std::string(remainder);
  if (size_t len = ref.Repository().size(); len > kNameTotalLengthMax) {
    return invalid(
        StrCat("repository name is ", len, " characters long, more than ", kNameTotalLengthMax));
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = std::string(kDefaultTag);
  return ref;
}

bool IsImageId(std::string_view text) {
  if (text.starts_with(kSha256Prefix)) text.remove_prefix(kSha256Prefix.size());
  return IsSha256Hex(text);
}

std::string NormalizeImageId(std::string_view text) {
  if (IsSha256Hex(text)) return StrCat(kSha256Prefix, text);
  return std::string(text);
}

}  // namespace berth::image
