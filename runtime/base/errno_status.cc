#include "runtime/base/errno_status.h"

#include <errno.h>
#include <string.h>

#include "runtime/base/strings.h"

namespace berth {

absl::Status ErrnoStatus(int err, std::string_view what) {
  std::string message = StrCat(what, ": ", strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return absl::ResourceExhaustedError(message);
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
      return absl::InvalidArgumentError(message);
    case EBUSY:
    case ENOTEMPTY:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace berth
