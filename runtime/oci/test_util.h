// Test helpers for code that runs real containers with runc: a busybox root file system,
// minimal OCI bundles, a per-test cgroup parent that is removed afterwards, and a census
// of leftover processes.
//
//   absl::StatusOr<std::string> rootfs = MakeBusyboxRootfs(dir + "/rootfs");
//   TestCgroupParent cgroups;                      // "/berth-test-<pid>-<n>"
//   BundleSpec spec{.args = {"sleep", "100"}, .cgroups_path = cgroups.PathFor("c1")};
//   absl::Status written = WriteBundle(dir + "/bundle-c1", *rootfs, spec);
//   ...
//   EXPECT_THAT(cgroups.Remove(), IsEmpty());      // nothing left behind
//
// Test-only; needs root for everything but MakeBusyboxRootfs.
#ifndef BERTH_RUNTIME_OCI_TEST_UTIL_H_
#define BERTH_RUNTIME_OCI_TEST_UTIL_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::oci::testing {

// Copies /bin/busybox (static) to <dir>/bin/busybox with a symlink for every applet, plus
// the empty directories a container needs (proc, sys, dev, tmp, etc). Returns `dir`.
absl::StatusOr<std::string> MakeBusyboxRootfs(const std::string& dir);

struct BundleSpec {
  std::vector<std::string> args = {"sh"};
  std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  bool terminal = false;
  std::string cgroups_path;     // "" = none (runc picks one)
  bool new_network_ns = false;  // pid, mount, ipc and uts are always new
  std::string hostname = "berth-test";
};

// Writes <bundle_dir>/config.json for `spec` with root.path = `rootfs` (absolute, so many
// bundles share one rootfs). Creates bundle_dir.
absl::Status WriteBundle(const std::string& bundle_dir, const std::string& rootfs,
                         const BundleSpec& spec);

// The config.json text WriteBundle writes, for tests that want to break it.
std::string BundleConfigJson(const std::string& rootfs, const BundleSpec& spec);

// A cgroup parent unique to this test process, in every hierarchy (v1 controllers, named
// hierarchies and the unified one). Remove() (or the destructor) kills whatever is still in
// it and removes the directories.
class TestCgroupParent {
 public:
  TestCgroupParent();
  ~TestCgroupParent();
  TestCgroupParent(const TestCgroupParent&) = delete;
  TestCgroupParent& operator=(const TestCgroupParent&) = delete;

  const std::string& name() const { return name_; }  // "berth-test-<pid>-<n>"
  std::string PathFor(const std::string& id) const { return "/" + name_ + "/" + id; }

  // Cgroup directories below the parent (one per hierarchy) that exist now.
  std::vector<std::string> Leftovers() const;

  // Kills processes left in it, removes every directory, and returns what had to be
  // cleaned: "<dir>: N processes" and the directories that existed below the parent.
  // Empty means the code under test cleaned up after itself.
  std::vector<std::string> Remove();

 private:
  std::string name_;
  bool removed_ = false;
};

// Pids (not this process) whose command line contains `marker`.
std::vector<pid_t> ProcessesWithCmdline(const std::string& marker);

// Current VmRSS (kB) of `pid`, or -1.
long VmRssKb(pid_t pid);

// A fresh /tmp/berth-test-XXXXXX, removed with its content by the destructor. (Bazel's
// TEST_TMPDIR is deep enough to push unix socket paths past 108 bytes.)
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The whole content of a file, or "" when it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

}  // namespace berth::oci::testing

#endif  // BERTH_RUNTIME_OCI_TEST_UTIL_H_
