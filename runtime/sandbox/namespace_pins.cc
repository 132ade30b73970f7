#include "runtime/sandbox/namespace_pins.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::sandbox {
namespace {

constexpr const char* kKinds[] = {"net", "ipc", "uts"};

bool Wanted(const NamespaceKinds& kinds, std::string_view kind) {
  return (kind == "net" && kinds.net) || (kind == "ipc" && kinds.ipc) ||
         (kind == "uts" && kinds.uts);
}

absl::Status Errno(std::string_view what) {
  return absl::InternalError(StrCat(what, ": ", strerror(errno)));
}

// Runs in the pinning thread after unshare: hostname and loopback. Returns
// an errno, or 0.
int SetUpInside(bool net, bool uts, const std::string& hostname) {
  if (uts && !hostname.empty() && sethostname(hostname.data(), hostname.size()) != 0) {
    return errno;
  }
  if (net) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    ifreq ifr{};
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
      ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
      rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int err = rc == 0 ? 0 : errno;
    close(fd);
    if (err != 0) return err;
  }
  return 0;
}

}  // namespace

bool IsPinned(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == NSFS_MAGIC;
}

absl::StatusOr<NamespacePins> PinNamespaces(const std::string& dir, NamespaceKinds kinds,
                                            const std::string& hostname) {
  if (hostname.size() > 64) {
    return absl::InvalidArgumentError(StrCat("hostname \"", hostname, "\" is longer than 64"));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("create ", dir, ": ", ec.message()));
  chmod(dir.c_str(), 0700);

  int flags = (kinds.net ? CLONE_NEWNET : 0) | (kinds.ipc ? CLONE_NEWIPC : 0) |
              (kinds.uts ? CLONE_NEWUTS : 0);
  // A thread, not a child process: network, IPC and UTS namespaces belong to
  // a task, so one thread can unshare them while the daemon's others carry
  // on, and nothing forked can inherit another pod's pipes and hang.
  struct Handoff {
    absl::Mutex mu;
    bool ready ABSL_GUARDED_BY(mu) = false;
    bool done ABSL_GUARDED_BY(mu) = false;
    int err ABSL_GUARDED_BY(mu) = 0;
    pid_t tid ABSL_GUARDED_BY(mu) = 0;
  } handoff;
  std::thread worker([&] {
    int err = unshare(flags) == 0 ? SetUpInside(kinds.net, kinds.uts, hostname) : errno;
    absl::MutexLock lock(&handoff.mu);
    handoff.err = err;
    handoff.tid = static_cast<pid_t>(syscall(SYS_gettid));
    handoff.ready = true;
    // Stay alive, inside the namespaces, until they are pinned.
    handoff.mu.Await(absl::Condition(&handoff.done));
  });

  NamespacePins pins;
  absl::Status status;
  pid_t tid;
  {
    absl::MutexLock lock(&handoff.mu);
    handoff.mu.Await(absl::Condition(&handoff.ready));
    tid = handoff.tid;
    if (handoff.err != 0) {
      status = absl::InternalError(
          StrCat("create pod namespaces (hostname \"", hostname, "\"): ", strerror(handoff.err)));
    }
  }
  for (const char* kind : kKinds) {
    if (!status.ok() || !Wanted(kinds, kind)) continue;
    std::string pin = StrCat(dir, "/", kind);
    int fd = open(pin.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0400);
    if (fd < 0) {
      status = Errno(StrCat("create ", pin));
      break;
    }
    close(fd);
    std::string source = StrCat("/proc/", getpid(), "/task/", tid, "/ns/", kind);
    if (mount(source.c_str(), pin.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      status = Errno(StrCat("bind ", source, " on ", pin));
      break;
    }
    (std::string_view(kind) == "net"   ? pins.net
     : std::string_view(kind) == "ipc" ? pins.ipc
                                       : pins.uts) = pin;
  }
  {
    absl::MutexLock lock(&handoff.mu);
    handoff.done = true;
  }
  worker.join();
  if (!status.ok()) {
    (void)UnpinNamespaces(dir);
    return status;
  }
  return pins;
}

absl::Status UnpinNamespaces(const std::string& dir) {
  for (const char* kind : kKinds) {
    std::string pin = StrCat(dir, "/", kind);
    // A pin may be mounted more than once after a crash between mount and
    // record; unmount until it is a plain file again.
    for (int i = 0; i < 8 && IsPinned(pin); ++i) {
      if (umount2(pin.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
        return Errno(StrCat("unmount ", pin));
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return absl::InternalError(StrCat("remove ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace berth::sandbox
