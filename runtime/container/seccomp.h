// The seccomp section (linux.seccomp) of a container's OCI spec.
//
//   ASSIGN_OR_RETURN(std::optional<nlohmann::json> seccomp,
//                    SeccompSection(container.security.seccomp, privileged, bounding_caps));
//   if (seccomp) spec["linux"]["seccomp"] = *seccomp;
//
// Which profile, as containerd decides it:
//   - privileged containers: none, whatever was asked;
//   - no profile asked (nullopt) or Unconfined: none;
//   - RuntimeDefault: DefaultSeccompProfile();
//   - Localhost: the JSON file named by localhost_ref, read at create time.
#ifndef BERTH_RUNTIME_CONTAINER_SECCOMP_H_
#define BERTH_RUNTIME_CONTAINER_SECCOMP_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/container/container_spec.h"

namespace berth::container {

// berth's RuntimeDefault profile for a process whose bounding set is
// `capabilities` ("CAP_SYS_ADMIN", ...).
//
// It is a deny list over an allow-by-default filter: it refuses (EPERM) what
// containerd's and Docker's default allow lists leave out, so the effect on
// today's kernels matches theirs, while a syscall this list does not know
// yet is allowed. Refused always: keyctl, add_key, request_key, io_uring_*
// and long-removed syscalls; refused unless the capability is granted:
// mount, umount2, pivot_root, unshare, setns, clone/clone3 with namespace
// flags, sethostname, setdomainname, swapon/off, quotactl, bpf,
// perf_event_open, fanotify_init, the new mount API (CAP_SYS_ADMIN);
// reboot, kexec_* (CAP_SYS_BOOT); init/finit/delete_module (CAP_SYS_MODULE);
// ptrace, process_vm_*, kcmp, userfaultfd (CAP_SYS_PTRACE); clock and time
// setting (CAP_SYS_TIME); acct, iopl/ioperm, vhangup, syslog,
// open_by_handle_at, NUMA policy calls (their capabilities). clone3 fails
// with ENOSYS so that libc falls back to clone, whose flags can be checked.
// Issue 5 may replace this with an allow list written from the kernel's
// syscall table.
nlohmann::json DefaultSeccompProfile(const std::vector<std::string>& capabilities);

// The linux.seccomp section, or nullopt for none (see the rules above).
// InvalidArgument for a localhost_ref on a non-Localhost profile or a
// relative path; NotFound naming the file when a Localhost profile is
// missing; InvalidArgument when it is not a JSON object.
absl::StatusOr<std::optional<nlohmann::json>> SeccompSection(
    const std::optional<SecurityProfile>& profile, bool privileged,
    const std::vector<std::string>& capabilities);

// The deprecated string form of a profile (seccomp_profile_path,
// apparmor_profile, and the pod annotations that preceded them):
// "runtime/default" and "docker/default" -> RuntimeDefault, "unconfined" ->
// Unconfined, "localhost/<ref>" -> Localhost, "" -> nullopt. InvalidArgument
// otherwise.
absl::StatusOr<std::optional<SecurityProfile>> ProfileFromLegacyName(std::string_view name);

}  // namespace berth::container

#endif  // BERTH_RUNTIME_CONTAINER_SECCOMP_H_
