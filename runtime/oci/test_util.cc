#include "runtime/oci/test_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "nlohmann/json.hpp"
#include "runtime/base/strings.h"
#include "runtime/oci/subprocess.h"

namespace berth::oci::testing {

namespace fs = std::filesystem;

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

absl::StatusOr<std::string> MakeBusyboxRootfs(const std::string& dir) {
  std::error_code ec;
  for (const char* sub : {"bin", "proc", "sys", "dev", "tmp", "etc", "root", "run"}) {
    fs::create_directories(fs::path(dir) / sub, ec);
    if (ec) return absl::InternalError(StrCat("mkdir ", dir, "/", sub, ": ", ec.message()));
  }
  fs::permissions(fs::path(dir) / "tmp", fs::perms::all | fs::perms::sticky_bit, ec);
  const std::string busybox = dir + "/bin/busybox";
  fs::copy_file("/bin/busybox", busybox, fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(StrCat("copy /bin/busybox: ", ec.message()));

  absl::StatusOr<SubprocessResult> list =
      RunSubprocess({.argv = {busybox, "--list"}, .timeout = absl::Seconds(10)});
  if (!list.ok()) return list.status();
  if (list->ExitCode() != 0) return absl::InternalError("busybox --list: " + list->Describe());
  std::istringstream applets(list->out);
  std::string applet;
  while (std::getline(applets, applet)) {
    if (applet.empty() || applet == "busybox") continue;
    fs::path link = fs::path(dir) / "bin" / applet;
    if (fs::is_symlink(link, ec)) continue;
    fs::create_symlink("busybox", link, ec);
    if (ec) return absl::InternalError(StrCat("symlink ", link.string(), ": ", ec.message()));
  }
  std::ofstream(dir + "/etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n";
  std::ofstream(dir + "/etc/group") << "root:x:0:\n";
  return dir;
}

std::string BundleConfigJson(const std::string& rootfs, const BundleSpec& spec) {
  using nlohmann::json;
  json caps = json::array({"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"});
  json namespaces = json::array();
  for (const char* ns : {"pid", "ipc", "uts", "mount"}) namespaces.push_back({{"type", ns}});
  if (spec.new_network_ns) namespaces.push_back({{"type", "network"}});
  json linux = {
      {"namespaces", namespaces},
      {"resources", {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}}},
      {"maskedPaths", json::array({"/proc/kcore", "/proc/keys", "/proc/timer_list"})},
      {"readonlyPaths", json::array({"/proc/sys", "/proc/sysrq-trigger"})},
  };
  if (!spec.cgroups_path.empty()) linux["cgroupsPath"] = spec.cgroups_path;
  json config = {
      {"ociVersion", "1.0.2"},
      {"process",
       {
           {"terminal", spec.terminal},
           {"user", {{"uid", 0}, {"gid", 0}}},
           {"args", spec.args},
           {"env", spec.env},
           {"cwd", "/"},
           {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
           {"noNewPrivileges", true},
       }},
      {"root", {{"path", rootfs}, {"readonly", false}}},
      {"hostname", spec.hostname},
      {"mounts",
       json::array({
           {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
           {{"destination", "/dev"},
            {"type", "tmpfs"},
            {"source", "tmpfs"},
            {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
           {{"destination", "/dev/pts"},
            {"type", "devpts"},
            {"source", "devpts"},
            {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}}},
           {{"destination", "/dev/shm"},
            {"type", "tmpfs"},
            {"source", "shm"},
            {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
           {{"destination", "/sys"},
            {"type", "sysfs"},
            {"source", "sysfs"},
            {"options", {"nosuid", "noexec", "nodev", "ro"}}},
       })},
      {"linux", linux},
  };
  return config.dump(2);
}

absl::Status WriteBundle(const std::string& bundle_dir, const std::string& rootfs,
                         const BundleSpec& spec) {
  std::error_code ec;
  fs::create_directories(bundle_dir, ec);
  if (ec) return absl::InternalError(StrCat("mkdir ", bundle_dir, ": ", ec.message()));
  std::ofstream out(bundle_dir + "/config.json");
  out << BundleConfigJson(rootfs, spec);
  out.close();
  if (!out) return absl::InternalError(StrCat("write ", bundle_dir, "/config.json"));
  return absl::OkStatus();
}

namespace {

// Every cgroup hierarchy root: /sys/fs/cgroup/<x> for hybrid/v1, /sys/fs/cgroup for v2.
std::vector<std::string> HierarchyRoots() {
  std::vector<std::string> roots;
  std::istringstream mounts(ReadFileOrEmpty("/proc/self/mounts"));
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string source, target, type;
    fields >> source >> target >> type;
    if (type == "cgroup" || type == "cgroup2") roots.push_back(target);
  }
  return roots;
}

// Directories at and below `dir`, deepest first.
void CollectDirs(const std::string& dir, std::vector<std::string>& out) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) CollectDirs(entry.path(), out);
  }
  out.push_back(dir);
}

}  // namespace

TestCgroupParent::TestCgroupParent() {
  static std::atomic<int> counter{0};
  name_ = StrCat("berth-test-", getpid(), "-", counter++);
}

TestCgroupParent::~TestCgroupParent() {
  if (!removed_) Remove();
}

std::vector<std::string> TestCgroupParent::Leftovers() const {
  std::vector<std::string> found;
  for (const std::string& root : HierarchyRoots()) {
    std::string parent = root + "/" + name_;
    if (!fs::is_directory(parent)) continue;
    std::vector<std::string> dirs;
    CollectDirs(parent, dirs);
    for (const std::string& d : dirs) {
      if (d != parent) found.push_back(d);
    }
  }
  return found;
}

std::vector<std::string> TestCgroupParent::Remove() {
  removed_ = true;
  std::vector<std::string> cleaned;
  for (const std::string& root : HierarchyRoots()) {
    std::string parent = root + "/" + name_;
    if (!fs::is_directory(parent)) continue;
    std::vector<std::string> dirs;
    CollectDirs(parent, dirs);
    for (const std::string& d : dirs) {
      int killed = 0;
      for (int attempt = 0; attempt < 50; ++attempt) {
        std::istringstream procs(ReadFileOrEmpty(d + "/cgroup.procs"));
        pid_t pid;
        bool any = false;
        while (procs >> pid) {
          any = true;
          if (attempt == 0) ++killed;
          kill(pid, SIGKILL);
        }
        if (!any) break;
        usleep(20000);
      }
      if (killed > 0) cleaned.push_back(StrCat(d, ": ", killed, " processes"));
      if (d != parent) cleaned.push_back(d);
      for (int attempt = 0; attempt < 50 && rmdir(d.c_str()) != 0 && errno == EBUSY; ++attempt) {
        usleep(20000);
      }
    }
  }
  return cleaned;
}

std::vector<pid_t> ProcessesWithCmdline(const std::string& marker) {
  std::vector<pid_t> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* entry = readdir(proc)) {
    pid_t pid = atoi(entry->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    std::string cmdline = ReadFileOrEmpty(StrCat("/proc/", pid, "/cmdline"));
    if (cmdline.find(marker) == std::string::npos) continue;
    // A zombie waiting for its parent to reap it holds nothing.
    std::string stat = ReadFileOrEmpty(StrCat("/proc/", pid, "/stat"));
    size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') continue;
    pids.push_back(pid);
  }
  closedir(proc);
  return pids;
}

long VmRssKb(pid_t pid) {
  std::istringstream status(ReadFileOrEmpty(StrCat("/proc/", pid, "/status")));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return atol(line.c_str() + 6);
  }
  return -1;
}

TempDir::TempDir() {
  std::string tmpl = "/tmp/berth-test-XXXXXX";
  if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace berth::oci::testing
