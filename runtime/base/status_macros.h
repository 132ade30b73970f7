// Early-return helpers for absl::Status and absl::StatusOr, used across berth.
//
//   absl::Status Load() {
//     RETURN_IF_ERROR(Open());
//     ASSIGN_OR_RETURN(Config config, Parse(text));
//     ...
//   }
#ifndef BERTH_RUNTIME_BASE_STATUS_MACROS_H_
#define BERTH_RUNTIME_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define BERTH_CONCAT_INNER_(a, b) a##b
#define BERTH_CONCAT_(a, b) BERTH_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                       \
  do {                                                              \
    if (absl::Status berth_status_ = (expr); !berth_status_.ok()) { \
      return berth_status_;                                         \
    }                                                               \
  } while (0)

#define BERTH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = *std::move(tmp)

#define ASSIGN_OR_RETURN(lhs, expr) \
  BERTH_ASSIGN_OR_RETURN_IMPL_(BERTH_CONCAT_(berth_statusor_, __LINE__), lhs, expr)

#endif  // BERTH_RUNTIME_BASE_STATUS_MACROS_H_
