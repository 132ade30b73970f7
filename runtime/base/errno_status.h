// ErrnoStatus: a failed system call as an absl::Status whose code a caller
// can act on.
//
//   if (mkdir(path.c_str(), 0700) != 0) return ErrnoStatus(errno, StrCat("mkdir ", path));
//
// The message is "what: strerror(err)". ENOENT is NotFound, EEXIST
// AlreadyExists, EACCES/EPERM PermissionDenied, a full disk or table
// (ENOSPC, EDQUOT, EMFILE, ENFILE, ENOMEM) ResourceExhausted, malformed paths
// (EINVAL, ENAMETOOLONG, ENOTDIR, EISDIR, ELOOP) InvalidArgument, EBUSY and
// ENOTEMPTY FailedPrecondition, anything else Internal.
#ifndef BERTH_RUNTIME_BASE_ERRNO_STATUS_H_
#define BERTH_RUNTIME_BASE_ERRNO_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace berth {

absl::Status ErrnoStatus(int err, std::string_view what);

}  // namespace berth

#endif  // BERTH_RUNTIME_BASE_ERRNO_STATUS_H_
