#include "cni/internal/result_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "runtime/base/base64.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/base/unique_fd.h"

namespace berth::cni::internal {
namespace {

constexpr char kCacheKind[] = "cniCacheV1";  // libcni's

std::string ResultsDir(const std::string& cache_dir) { return cache_dir + "/results"; }

// mkdir -p with `mode` for what it creates.
absl::Status MkdirAll(const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, StrCat("mkdir ", prefix));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, const std::string& data, const std::string& path) {
  for (size_t done = 0; done < data.size();) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, StrCat("write ", path));
    done += n;
  }
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || fsync(fd.get()) != 0) return ErrnoStatus(errno, StrCat("fsync ", dir));
  return absl::OkStatus();
}

// The whole file; NotFound (from ErrnoStatus) when it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("open ", path));
  std::string text;
  char buf[16384];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, StrCat("read ", path));
    if (n == 0) return text;
    text.append(buf, n);
  }
}

template <typename T>
bool GetString(const nlohmann::json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return false;
  out = it->template get<std::string>();
  return true;
}

}  // namespace

std::string CacheFilePath(const std::string& cache_dir, const std::string& network,
                          const std::string& container_id, const std::string& ifname) {
  return StrCat(ResultsDir(cache_dir), "/", network, "-", container_id, "-", ifname);
}

nlohmann::json EncodeCacheEntry(const CacheEntry& entry) {
  nlohmann::json j = {
      {"kind", kCacheKind},
      {"containerId", entry.container_id},
      {"config", Base64Encode(entry.config)},  // Go's []byte in JSON
      {"ifName", entry.ifname},
      {"networkName", entry.network_name},
  };
  if (!entry.netns.empty()) j["netns"] = entry.netns;
  if (!entry.cni_args.empty()) {
    nlohmann::json args = nlohmann::json::array();
    for (const auto& [k, v] : entry.cni_args) args.push_back({k, v});
    j["cniArgs"] = args;
  }
  if (entry.capability_args.is_object() && !entry.capability_args.empty()) {
    j["capabilityArgs"] = entry.capability_args;
  }
  if (!entry.result.is_null()) j["result"] = entry.result;
  return j;
}

absl::StatusOr<CacheEntry> DecodeCacheEntry(const nlohmann::json& j) {
  if (!j.is_object()) return absl::DataLossError("not a JSON object");
  std::string kind;
  if (!GetString(j, "kind", kind) || kind != kCacheKind) {
    return absl::DataLossError(StrCat("kind is not ", kCacheKind));
  }
  CacheEntry e;
  if (!GetString(j, "containerId", e.container_id) || !GetString(j, "ifName", e.ifname) ||
      !GetString(j, "networkName", e.network_name)) {
    return absl::DataLossError("containerId, ifName or networkName missing");
  }
  GetString(j, "netns", e.netns);
  std::string config;
  if (GetString(j, "config", config)) {
    std::optional<std::string> raw = Base64Decode(config);
    if (!raw.has_value()) return absl::DataLossError("config is not base64");
    e.config = *std::move(raw);
  }
  if (auto it = j.find("cniArgs"); it != j.end() && it->is_array()) {
    for (const nlohmann::json& pair : *it) {
      if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
        e.cni_args.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
      }
    }
  }
  if (auto it = j.find("capabilityArgs"); it != j.end() && it->is_object()) {
    e.capability_args = *it;
  }
  if (auto it = j.find("result"); it != j.end() && it->is_object()) e.result = *it;
  return e;
}

absl::Status WriteCacheEntry(const std::string& cache_dir, const CacheEntry& entry) {
  const std::string dir = ResultsDir(cache_dir);
  RETURN_IF_ERROR(MkdirAll(dir, 0700));
  const std::string path =
      CacheFilePath(cache_dir, entry.network_name, entry.container_id, entry.ifname);
  // A dot name: ListCacheEntries skips it, so a temp file left by a crash is never an entry.
  std::string tmp =
      StrCat(dir, "/.", entry.network_name, "-", entry.container_id, "-", entry.ifname, ".XXXXXX");
  UniqueFd fd(mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("create ", tmp));
  absl::Status written = WriteAll(fd.get(), EncodeCacheEntry(entry).dump(), tmp);
  if (written.ok() && fsync(fd.get()) != 0) written = ErrnoStatus(errno, StrCat("fsync ", tmp));
  fd.reset();
  if (written.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    written = ErrnoStatus(errno, StrCat("rename to ", path));
  }
  if (!written.ok()) {
    unlink(tmp.c_str());
    return written;
  }
  return FsyncDir(dir);
}

absl::StatusOr<CacheEntry> ReadCacheEntry(const std::string& cache_dir, const std::string& network,
                                          const std::string& container_id,
                                          const std::string& ifname) {
  const std::string path = CacheFilePath(cache_dir, network, container_id, ifname);
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::DataLossError(StrCat(path, ": not JSON"));
  absl::StatusOr<CacheEntry> entry = DecodeCacheEntry(j);
  if (!entry.ok()) return absl::DataLossError(StrCat(path, ": ", entry.status().message()));
  return entry;
}

absl::Status RemoveCacheEntry(const std::string& cache_dir, const std::string& network,
                              const std::string& container_id, const std::string& ifname) {
  const std::string path = CacheFilePath(cache_dir, network, container_id, ifname);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink " + path);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CacheEntry>> ListCacheEntries(const std::string& cache_dir) {
  const std::string dir = ResultsDir(cache_dir);
  std::vector<std::string> names;
  {
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return std::vector<CacheEntry>{};
      return ErrnoStatus(errno, StrCat("opendir ", dir));
    }
    while (struct dirent* ent = readdir(d)) {
      if (ent->d_name[0] != '.') names.push_back(ent->d_name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::vector<CacheEntry> entries;
  for (const std::string& name : names) {
    absl::StatusOr<std::string> text = ReadFile(dir + "/" + name);
    if (!text.ok()) continue;  // removed meanwhile
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;
    absl::StatusOr<CacheEntry> entry = DecodeCacheEntry(j);
    // The name must match the content, or a copied file would stand for another attachment.
    if (!entry.ok() ||
        name != StrCat(entry->network_name, "-", entry->container_id, "-", entry->ifname)) {
      continue;
    }
    entries.push_back(*std::move(entry));
  }
  return entries;
}

}  // namespace berth::cni::internal
