// The identity a container's process runs as: uid, gid, supplementary groups
// and HOME, resolved from the CRI security context and the image's USER
// against the container's own /etc/passwd and /etc/group.
//
//   UserRequest request{.run_as_user = 1000, .supplemental_groups = {5555},
//                       .image_user = "app"};
//   ASSIGN_OR_RETURN(ResolvedUser user, ResolveUser(rootfs, request));
//   // user.uid == 1000, user.additional_gids == {gid, 5555, <image groups>...}
//
// Which user: RunAsUsername, else RunAsUser, each with ":<RunAsGroup>" when
// that is set; without either, the image's USER. The forms are `uid`, `name`,
// `uid:gid`, `name:gid`, `uid:group` and `name:group`, empty meaning root.
//
// Groups come in critest's order: the primary gid first, then the CRI
// supplemental groups, then every /etc/group entry that lists the user's name
// as a member; a gid seen before is not repeated. A numeric uid that passwd
// does not list runs with gid 0 (or the given gid), no image groups and HOME
// "/". An unknown user or group name is InvalidArgument naming it.
//
// The image's files are read with openat2(RESOLVE_IN_ROOT) relative to the
// rootfs, so a hostile image whose /etc/passwd is a symlink to "/etc/passwd"
// or "../../etc/passwd" reads its own tree (or nothing), never the host's.
// Missing files are fine while no name has to be looked up; a passwd that is
// not a regular file (a FIFO would block us) or is over 4 MiB is an error.
#ifndef BERTH_RUNTIME_CONTAINER_USER_H_
#define BERTH_RUNTIME_CONTAINER_USER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::container {

// What the CRI and the image say about the user.
struct UserRequest {
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::string run_as_username;
  std::vector<int64_t> supplemental_groups;
  std::string image_user;  // image config "User"
};

struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;  // primary gid first; see the order above
  std::string name;                       // from passwd; empty when passwd has no entry
  std::string home = "/";                 // from passwd; "/" when it has none
};

// Resolves `request` against the image tree at `rootfs` (a host path, usually
// the mounted container rootfs). An empty `rootfs` reads no files: numeric
// ids only. InvalidArgument for RunAsGroup without a user, out-of-range or
// malformed ids, and names the image does not define.
absl::StatusOr<ResolvedUser> ResolveUser(const std::string& rootfs, const UserRequest& request);

// The user string a request stands for, as containerd builds it: "name[:gid]",
// "uid[:gid]", else the image's USER. InvalidArgument when RunAsGroup comes
// without RunAsUser or RunAsUsername.
absl::StatusOr<std::string> UserString(const UserRequest& request);

// Reads `path` (absolute or relative, either way inside the tree) from the
// tree at `root`, resolving every component, symlinks and ".." included, as
// if `root` were "/". nullopt when it does not exist. FailedPrecondition when
// it is not a regular file, ResourceExhausted when it exceeds max_bytes.
absl::StatusOr<std::optional<std::string>> ReadFileInRoot(const std::string& root,
                                                          std::string_view path, size_t max_bytes);

}  // namespace berth::container

#endif  // BERTH_RUNTIME_CONTAINER_USER_H_
