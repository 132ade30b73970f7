#include "bench/bench_host.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "e2e/berthd_fixture.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::bench {

namespace fs = std::filesystem;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::Status WriteText(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(StrCat("write ", path));
  if (chmod(path.c_str(), mode) != 0) {
    return absl::InternalError(StrCat("chmod ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

std::string LoadAverage() {
  std::string text = ReadText("/proc/loadavg");
  return text.substr(0, text.find(' '));
}

TempDir::TempDir(std::string_view prefix) {
  std::string tmpl = StrCat("/tmp/", prefix, "-XXXXXX");
  if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  if (!path_.empty()) testing::RemoveTree(path_);
}

CgroupParents::~CgroupParents() {
  for (const std::string& dir : Remove()) {
    std::cerr << "warning: cgroup left behind: " << dir << "\n";
  }
}

std::string CgroupParents::For(std::string_view who) {
  names_.insert(StrCat(prefix_, "-", who));
  return StrCat("/", prefix_, "-", who);
}

std::vector<std::string> CgroupParents::Remove() {
  std::vector<std::string> left;
  std::error_code ec;
  std::vector<std::string> hierarchies = {"/sys/fs/cgroup"};
  for (const fs::directory_entry& h : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    if (h.is_directory() && !h.is_symlink()) hierarchies.push_back(h.path());
  }
  for (const std::string& h : hierarchies) {
    for (const std::string& name : names_) {
      const std::string parent = StrCat(h, "/", name);
      if (!fs::is_directory(parent, ec)) continue;
      std::vector<std::string> dirs;
      for (auto it = fs::recursive_directory_iterator(parent, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory()) dirs.push_back(it->path());
      }
      std::sort(dirs.begin(), dirs.end(),
                [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
      dirs.push_back(parent);
      for (const std::string& d : dirs) {
        if (rmdir(d.c_str()) != 0 && errno != ENOENT) left.push_back(d);
      }
    }
  }
  return left;
}

std::vector<Proc> ListProcesses() {
  std::vector<Proc> out;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    Proc p;
    p.pid = std::atoi(name.c_str());
    std::string stat = ReadText(entry.path().string() + "/stat");
    size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;  // gone
    p.comm = stat.substr(open + 1, close - open - 1);
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    rest >> state >> p.ppid;
    std::error_code link_ec;
    p.exe = fs::read_symlink(entry.path() / "exe", link_ec).string();
    // A binary rebuilt while it runs (bazel replaces outputs) reads "<path> (deleted)".
    constexpr std::string_view kDeleted = " (deleted)";
    if (p.exe.size() > kDeleted.size() && p.exe.ends_with(kDeleted)) {
      p.exe.resize(p.exe.size() - kDeleted.size());
    }
    p.cmdline = ReadText(entry.path().string() + "/cmdline");
    std::replace(p.cmdline.begin(), p.cmdline.end(), '\0', ' ');
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<std::string> HelperOfBerthd(pid_t berthd, std::string_view package,
                                           std::string_view name) {
  std::error_code ec;
  std::string self = fs::read_symlink(StrCat("/proc/", berthd, "/exe"), ec).string();
  if (ec) return absl::NotFoundError(StrCat("readlink /proc/", berthd, "/exe: ", ec.message()));
  std::string dir = self.substr(0, self.rfind('/'));
  for (const std::string& candidate :
       {StrCat(self, ".runfiles/berth/", package, "/", name),
        StrCat(dir, "/../", package, "/", name), StrCat(dir, "/", name)}) {
    if (access(candidate.c_str(), X_OK) == 0) return fs::canonical(candidate, ec).string();
  }
  return absl::NotFoundError(StrCat(name, " not found beside ", self));
}

absl::StatusOr<testing::OciImage> BuildPauseImage(const std::string& pause_binary,
                                                  const std::string& repository,
                                                  const std::string& tag) {
  std::string bytes = ReadText(pause_binary);
  if (bytes.empty()) return absl::NotFoundError(StrCat("read ", pause_binary));
  ASSIGN_OR_RETURN(testing::Layer layer, testing::BuildLayer({testing::TarEntry::File(
                                             "pause", std::move(bytes), 0755)}));
  return testing::BuildImage(
      repository, tag,
      testing::ImageConfig{.user = "65535:65535", .entrypoint = {"/pause"}, .working_dir = "/"},
      {std::move(layer)});
}

}  // namespace berth::bench
