#include "runtime/store/store.h"

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::store {

absl::StatusOr<std::optional<std::string>> ResolveIdPrefix(Store& store, Kind kind,
                                                           const std::string& id_or_prefix,
                                                           std::string_view what) {
  if (id_or_prefix.empty()) return absl::InvalidArgumentError(StrCat(what, " id is empty"));
  std::vector<Record> matches;
  RETURN_IF_ERROR(store.View([&](const ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(matches, tx.List(kind, id_or_prefix));
    return absl::OkStatus();
  }));
  if (matches.empty()) return std::nullopt;
  for (const Record& r : matches) {
    if (r.id == id_or_prefix) return r.id;
  }
  if (matches.size() > 1) {
    return absl::InvalidArgumentError(
        StrCat(what, " id prefix \"", id_or_prefix, "\" is ambiguous"));
  }
  return matches[0].id;
}

}  // namespace berth::store
