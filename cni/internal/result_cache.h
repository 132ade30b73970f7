// The result cache: one JSON file per attachment, in libcni's layout and format
// (<cache_dir>/results/<network>-<container id>-<ifname>, kind "cniCacheV1", the config as
// base64), so the result of an ADD survives berthd restarts for the DEL that undoes it.
//
//   RETURN_IF_ERROR(WriteCacheEntry(cache_dir, entry));       // atomic: temp file + rename
//   absl::StatusOr<CacheEntry> e = ReadCacheEntry(cache_dir, "pods", id, "eth0");
//   RETURN_IF_ERROR(RemoveCacheEntry(cache_dir, "pods", id, "eth0"));  // absent is fine
//
// The callers validate names first (cni.cc): no '/' can reach a path here.
#ifndef BERTH_CNI_INTERNAL_RESULT_CACHE_H_
#define BERTH_CNI_INTERNAL_RESULT_CACHE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace berth::cni::internal {

struct CacheEntry {
  std::string network_name;
  std::string container_id;
  std::string ifname;
  std::string netns;
  std::vector<std::pair<std::string, std::string>> cni_args;
  nlohmann::json capability_args = nlohmann::json::object();
  std::string config;  // the .conflist document the ADD ran with
  // The final ADD result; null while the ADD has not finished (or never will: a crash).
  nlohmann::json result;
};

std::string CacheFilePath(const std::string& cache_dir, const std::string& network,
                          const std::string& container_id, const std::string& ifname);

nlohmann::json EncodeCacheEntry(const CacheEntry& entry);
absl::StatusOr<CacheEntry> DecodeCacheEntry(const nlohmann::json& json);

// Replaces the entry atomically (temp file, fsync, rename, fsync of the directory). The
// directories are created 0700, the file 0600.
absl::Status WriteCacheEntry(const std::string& cache_dir, const CacheEntry& entry);

// NotFound when there is no file; DataLoss when it cannot be decoded.
absl::StatusOr<CacheEntry> ReadCacheEntry(const std::string& cache_dir, const std::string& network,
                                          const std::string& container_id,
                                          const std::string& ifname);

absl::Status RemoveCacheEntry(const std::string& cache_dir, const std::string& network,
                              const std::string& container_id, const std::string& ifname);

// Every decodable entry under cache_dir (all networks), in file name order. A missing
// results dir is an empty list.
absl::StatusOr<std::vector<CacheEntry>> ListCacheEntries(const std::string& cache_dir);

}  // namespace berth::cni::internal

#endif  // BERTH_CNI_INTERNAL_RESULT_CACHE_H_
