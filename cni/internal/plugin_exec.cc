#include "cni/internal/plugin_exec.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <map>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cni/internal/names.h"
#include "nlohmann/json.hpp"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/base/unique_fd.h"
#include "runtime/oci/subprocess.h"

extern char** environ;

namespace berth::cni::internal {
namespace {

std::string JoinDirs(const std::vector<std::string>& dirs) {
  std::string out;
  for (const std::string& dir : dirs) out += (out.empty() ? "" : ", ") + dir;
  return out;
}

// The last `max` bytes of a trimmed stream, for an error message.
std::string Tail(std::string text, size_t max = 2048) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.size() > max) text = "..." + text.substr(text.size() - max);
  return text;
}

absl::StatusCode CodeForCniError(int code) {
  switch (code) {
    case 1:  // incompatible CNI version
      return absl::StatusCode::kFailedPrecondition;
    case 2:  // unsupported field in the network configuration
    case 4:  // invalid environment variables
    case 6:  // failed to decode content
    case 7:  // invalid network config
      return absl::StatusCode::kInvalidArgument;
    case 3:  // container unknown or does not exist
      return absl::StatusCode::kNotFound;
    case 11:  // try again later
    case 50:  // STATUS: the plugin is not available
    case 51:  // STATUS: not available, existing containers may have limited connectivity
      return absl::StatusCode::kUnavailable;
    default:  // 5 (I/O failure) and the plugins' own codes, 100 and up
      return absl::StatusCode::kInternal;
  }
}

// The child's environment is this process's plus call.env, appended. Go (and glibc's getenv)
// take the first of two equal names, so a CNI_* variable berthd itself was started with
// would beat ours. Then, and only then, the plugin runs through env(1), which unsets every
// inherited CNI_* variable before setting ours.
std::vector<std::string> InheritedCniNames() {
  std::vector<std::string> names;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.rfind("CNI_", 0) == 0) names.emplace_back(entry.substr(0, entry.find('=')));
  }
  return names;
}

std::vector<std::string> PluginArgv(const PluginCall& call) {
  std::vector<std::string> inherited = InheritedCniNames();
  if (inherited.empty()) return {call.path};
  std::vector<std::string> argv = {"/usr/bin/env"};
  for (const std::string& name : inherited) {
    argv.push_back("-u");
    argv.push_back(name);
  }
  argv.insert(argv.end(), call.env.begin(), call.env.end());
  argv.push_back(call.path);
  return argv;
}

std::vector<std::string> ExtraEnv(const PluginCall& call) {
  return InheritedCniNames().empty() ? call.env : std::vector<std::string>{};
}

}  // namespace

absl::StatusOr<std::string> FindPlugin(const std::string& type,
                                       const std::vector<std::string>& bin_dirs) {
  if (!IsValidPluginType(type)) {
    return absl::InvalidArgumentError(StrCat("plugin type \"", type, "\" is not a file name"));
  }
  if (bin_dirs.empty()) {
    return absl::FailedPreconditionError(
        StrCat("plugin \"", type, "\" not found: no CNI bin dirs configured"));
  }
  for (const std::string& dir : bin_dirs) {
    std::string path = StrCat(dir, "/", type);
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0) {
      return path;
    }
  }
  return absl::FailedPreconditionError(
      StrCat("plugin \"", type, "\" not found in ", JoinDirs(bin_dirs)));
}

absl::Status PluginErrorStatus(std::string_view what, int code, std::string_view msg,
                               std::string_view details) {
  std::string message = StrCat(what, ": ", msg.empty() ? std::string_view("failed") : msg);
  if (!details.empty() && details != msg) message += StrCat(": ", details);
  message += StrCat(" (CNI error ", code, ")");
  return absl::Status(CodeForCniError(code), message);
}

absl::StatusOr<std::string> RunPlugin(const PluginCall& call) {
  // The config goes in through a memfd rather than a pipe: any size, no writer thread.
  UniqueFd in(memfd_create("cni-config", MFD_CLOEXEC));
  if (!in.valid()) return ErrnoStatus(errno, StrCat(call.what, ": memfd_create"));
  for (size_t done = 0; done < call.stdin_data.size();) {
    ssize_t n = write(in.get(), call.stdin_data.data() + done, call.stdin_data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, StrCat(call.what, ": write config"));
    done += n;
  }
  if (lseek(in.get(), 0, SEEK_SET) != 0) return ErrnoStatus(errno, StrCat(call.what, ": lseek"));

  absl::StatusOr<oci::SubprocessResult> run = oci::RunSubprocess({.argv = PluginArgv(call),
                                                                  .stdin_fd = in.get(),
                                                                  .extra_env = ExtraEnv(call),
                                                                  .timeout = call.timeout});
  if (!run.ok()) {
    // NotFound is reserved for CNI error 3 (DEL treats it as done); a binary that vanished
    // since FindPlugin is a broken installation.
    absl::StatusCode code = absl::IsNotFound(run.status()) ? absl::StatusCode::kFailedPrecondition
                                                           : run.status().code();
    return absl::Status(code, StrCat(call.what, ": ", run.status().message()));
  }
  const oci::SubprocessResult& r = *run;
  if (r.timed_out) {
    return absl::DeadlineExceededError(
        StrCat(call.what, ": timed out after ", absl::FormatDuration(call.timeout)));
  }
  if (r.ExitCode() == 0) return r.out;

  // The spec puts the error on stdout; some plugins write it to stderr.
  for (const std::string* text : {&r.out, &r.err}) {
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !(j.contains("code") || j.contains("msg"))) {
      continue;
    }
    int code = j.contains("code") && j["code"].is_number_integer() ? j["code"].get<int>() : 0;
    std::string msg = j.contains("msg") && j["msg"].is_string() ? j["msg"].get<std::string>() : "";
    std::string details =
        j.contains("details") && j["details"].is_string() ? j["details"].get<std::string>() : "";
    return PluginErrorStatus(call.what, code, msg, details);
  }
  std::string output = Tail(r.err.empty() ? r.out : r.err);
  return absl::InternalError(
      StrCat(call.what, ": ", r.Describe(), output.empty() ? "" : ": ", output));
}

namespace {

struct VersionCacheEntry {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  std::vector<std::string> versions;
};

bool SameFile(const VersionCacheEntry& e, const struct stat& st) {
  return e.dev == st.st_dev && e.ino == st.st_ino && e.size == st.st_size &&
         e.mtime.tv_sec == st.st_mtim.tv_sec && e.mtime.tv_nsec == st.st_mtim.tv_nsec;
}

absl::Mutex version_cache_mu(absl::kConstInit);
std::map<std::string, VersionCacheEntry>* version_cache ABSL_GUARDED_BY(version_cache_mu) = nullptr;

}  // namespace

absl::StatusOr<std::vector<std::string>> PluginSupportedVersions(const std::string& path,
                                                                 const std::string& cni_version,
                                                                 const std::string& cni_path,
                                                                 absl::Duration timeout) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, StrCat("plugin ", path));
  {
    absl::MutexLock lock(&version_cache_mu);
    if (version_cache != nullptr) {
      auto it = version_cache->find(path);
      if (it != version_cache->end() && SameFile(it->second, st)) return it->second.versions;
    }
  }
  const std::string what = StrCat("plugin ", path, " VERSION");
  ASSIGN_OR_RETURN(std::string out,
                   RunPlugin({.path = path,
                              .env = {"CNI_COMMAND=VERSION", StrCat("CNI_PATH=", cni_path)},
                              .stdin_data = nlohmann::json{{"cniVersion", cni_version}}.dump(),
                              .timeout = timeout,
                              .what = what}));
  nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError(StrCat(what, ": printed no JSON object: ", Tail(out, 200)));
  }
  std::vector<std::string> versions;
  if (j.contains("supportedVersions") && j["supportedVersions"].is_array()) {
    for (const nlohmann::json& v : j["supportedVersions"]) {
      if (v.is_string()) versions.push_back(v.get<std::string>());
    }
  } else if (j.contains("cniVersion") && j["cniVersion"].is_string()) {
    versions.push_back(j["cniVersion"].get<std::string>());  // a 0.1.0 plugin
  }
  if (versions.empty()) {
    return absl::InternalError(StrCat(what, ": printed no supportedVersions: ", Tail(out, 200)));
  }
  absl::MutexLock lock(&version_cache_mu);
  if (version_cache == nullptr) version_cache = new std::map<std::string, VersionCacheEntry>;
  (*version_cache)[path] = {st.st_dev, st.st_ino, st.st_size, st.st_mtim, versions};
  return versions;
}

int CompareVersions(std::string_view a, std::string_view b) {
  auto parts = [](std::string_view v) {
    int out[3] = {0, 0, 0};
    for (int i = 0; i < 3 && !v.empty(); ++i) {
      size_t dot = v.find('.');
      std::string_view part = v.substr(0, dot);
      std::from_chars(part.data(), part.data() + part.size(), out[i]);
      v = dot == std::string_view::npos ? std::string_view() : v.substr(dot + 1);
    }
    return std::vector<int>{out[0], out[1], out[2]};
  };
  std::vector<int> x = parts(a), y = parts(b);
  return x < y ? -1 : (x == y ? 0 : 1);
}

}  // namespace berth::cni::internal
