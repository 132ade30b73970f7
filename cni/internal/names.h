// The names that end up in file paths and must not leave their directory: network names
// and container ids (cache file names), interface names, plugin types (bin dir entries).
#ifndef BERTH_CNI_INTERNAL_NAMES_H_
#define BERTH_CNI_INTERNAL_NAMES_H_

#include <string_view>

namespace berth::cni::internal {

// [A-Za-z0-9][A-Za-z0-9_.-]*, at most 255 bytes: the spec's rule for both (and libcni's).
bool IsValidNetworkName(std::string_view name);
bool IsValidContainerId(std::string_view id);

// A Linux interface name: 1-15 bytes, printable ASCII, no '/', ':' or whitespace, not "."
// or "..".
bool IsValidIfName(std::string_view name);

// A plain file name: not empty, ".", "..", no '/', '\\' or NUL.
bool IsValidPluginType(std::string_view type);

}  // namespace berth::cni::internal

#endif  // BERTH_CNI_INTERNAL_NAMES_H_
