#include "cni/plugins/ipam.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "cni/plugins/skel.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/base/unique_fd.h"

namespace berth::cni::plugins {
namespace {

absl::Status ConfigError(std::string_view msg) { return CniError(kInvalidNetworkConfig, msg); }

absl::StatusOr<uint32_t> IpField(const nlohmann::json& obj, const char* key, uint32_t dflt) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  if (!it->is_string()) return ConfigError(StrCat("ipam: \"", key, "\" must be a string"));
  std::string text = it->get<std::string>();
  if (LooksLikeIp6(text)) {
    return CniError(kUnsupportedField, StrCat("ipam: \"", key, "\": IPv6 is not supported"));
  }
  std::optional<uint32_t> ip = ParseIp4(text);
  if (!ip) return ConfigError(StrCat("ipam: \"", key, "\": \"", text, "\" is not an address"));
  return *ip;
}

absl::StatusOr<IpamRange> ParseRange(const nlohmann::json& r) {
  if (!r.is_object()) return ConfigError("ipam: a range must be an object");
  if (!r.contains("subnet") || !r["subnet"].is_string()) {
    return ConfigError("ipam: a range has no \"subnet\"");
  }
  std::string text = r["subnet"].get<std::string>();
  absl::StatusOr<Prefix4> subnet = ParsePrefix4(text);
  if (absl::IsUnimplemented(subnet.status())) {
    return CniError(kUnsupportedField,
                    StrCat("ipam: subnet ", text, ": IPv6 is not supported by berth-host-local"));
  }
  if (!subnet.ok()) return ConfigError(StrCat("ipam: subnet: ", subnet.status().message()));
  IpamRange range;
  range.subnet = {.address = subnet->Network(), .length = subnet->length};
  const Prefix4& s = range.subnet;
  uint32_t first = s.length >= 31 ? s.Network() : s.Network() + 1;
  uint32_t last = s.length >= 31 ? s.Broadcast() : s.Broadcast() - 1;
  ASSIGN_OR_RETURN(range.start, IpField(r, "rangeStart", first));
  ASSIGN_OR_RETURN(range.end, IpField(r, "rangeEnd", last));
  ASSIGN_OR_RETURN(range.gateway, IpField(r, "gateway", s.length >= 31 ? 0 : s.Network() + 1));
  if (!s.Contains(range.start) || !s.Contains(range.end) || range.start > range.end ||
      range.start < first || range.end > last) {
    return ConfigError(StrCat("ipam: range ", FormatIp4(range.start), "-", FormatIp4(range.end),
                              " is not inside the hosts of ", s.NetworkString()));
  }
  if (range.gateway != 0 && !s.Contains(range.gateway)) {
    return ConfigError(
        StrCat("ipam: gateway ", FormatIp4(range.gateway), " is not in ", s.NetworkString()));
  }
  return range;
}

// The holder written in an address file: "<id>\r\n<ifname>" (the reference plugin's format;
// files with the id alone come from its older versions).
std::pair<std::string, std::string> ParseHolder(const std::string& text) {
  std::string id = text, ifname;
  size_t nl = text.find('\n');
  if (nl != std::string::npos) {
    id = text.substr(0, nl);
    ifname = text.substr(nl + 1);
  }
  auto trim = [](std::string& s) {
    while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  };
  trim(id);
  trim(ifname);
  return {id, ifname};
}

bool Holds(const std::pair<std::string, std::string>& holder, const std::string& id,
           const std::string& ifname) {
  return holder.first == id && (holder.second.empty() || holder.second == ifname);
}

// The flock()ed lock file of a store; unlocked and closed by the destructor.
absl::StatusOr<UniqueFd> LockDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("ipam: create ", dir, ": ", ec.message()));
  std::string path = dir + "/lock";
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("ipam: open ", path));
  while (flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoStatus(errno, StrCat("ipam: flock ", path));
  }
  return fd;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("ipam: create ", tmp));
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return ErrnoStatus(errno, StrCat("ipam: write ", tmp));
  }
  fd.reset();
  if (rename(tmp.c_str(), path.c_str()) != 0)
    return ErrnoStatus(errno, StrCat("ipam: rename ", tmp));
  return absl::OkStatus();
}

std::string ReadSmallFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return "";
  char buf[512];
  ssize_t n = read(fd.get(), buf, sizeof(buf));
  return n > 0 ? std::string(buf, n) : "";
}

int RangeOf(const std::vector<IpamRange>& set, uint32_t ip) {
  for (size_t i = 0; i < set.size(); ++i) {
    if (ip >= set[i].start && ip <= set[i].end) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

absl::StatusOr<IpamConfig> ParseIpamConfig(const nlohmann::json& net) {
  IpamConfig config;
  if (!net.is_object()) return ConfigError("the network configuration is not an object");
  config.network = net.value("name", "");
  if (config.network.empty() || config.network.find('/') != std::string::npos ||
      config.network == "." || config.network == "..") {
    return ConfigError("the network configuration has no usable \"name\"");
  }
  auto ipam_it = net.find("ipam");
  if (ipam_it == net.end() || !ipam_it->is_object()) {
    return ConfigError("the network configuration has no \"ipam\" object");
  }
  const nlohmann::json& ipam = *ipam_it;
  std::string data_dir = kDefaultIpamDataDir;
  if (ipam.contains("dataDir")) {
    if (!ipam["dataDir"].is_string() || ipam["dataDir"].get<std::string>().empty()) {
      return ConfigError("ipam: \"dataDir\" must be a non-empty string");
    }
    data_dir = ipam["dataDir"].get<std::string>();
  }
  config.dir = StrCat(data_dir, "/", config.network);

  if (ipam.contains("ranges")) {
    if (!ipam["ranges"].is_array() || ipam["ranges"].empty()) {
      return ConfigError("ipam: \"ranges\" must be a non-empty array of range sets");
    }
    for (const nlohmann::json& set : ipam["ranges"]) {
      if (!set.is_array() || set.empty()) {
        return ConfigError("ipam: each entry of \"ranges\" must be a non-empty array of ranges");
      }
      std::vector<IpamRange> ranges;
      for (const nlohmann::json& r : set) {
        ASSIGN_OR_RETURN(IpamRange range, ParseRange(r));
        for (const IpamRange& other : ranges) {
          if (range.start <= other.end && other.start <= range.end) {
            return ConfigError(StrCat("ipam: ranges ", FormatIp4(other.start), "-",
                                      FormatIp4(other.end), " and ", FormatIp4(range.start), "-",
                                      FormatIp4(range.end), " overlap"));
          }
        }
        ranges.push_back(range);
      }
      config.range_sets.push_back(std::move(ranges));
    }
  } else if (ipam.contains("subnet")) {
    ASSIGN_OR_RETURN(IpamRange range, ParseRange(ipam));
    config.range_sets.push_back({range});
  } else {
    return ConfigError("ipam: neither \"ranges\" nor \"subnet\" is set");
  }

  if (ipam.contains("routes")) {
    if (!ipam["routes"].is_array()) return ConfigError("ipam: \"routes\" must be an array");
    for (const nlohmann::json& r : ipam["routes"]) {
      if (!r.is_object() || !r.contains("dst") || !r["dst"].is_string()) {
        return ConfigError("ipam: a route has no \"dst\"");
      }
      std::string dst = r["dst"].get<std::string>();
      if (LooksLikeIp6(dst)) continue;  // an IPv6 route is of no use to IPv4-only pods
      absl::StatusOr<Prefix4> p = ParsePrefix4(dst);
      if (!p.ok()) return ConfigError(StrCat("ipam: route dst: ", p.status().message()));
      IpamRoute route{.dst = {.address = p->Network(), .length = p->length}};
      ASSIGN_OR_RETURN(route.gw, IpField(r, "gw", 0));
      config.routes.push_back(route);
    }
  }
  if (ipam.contains("dns")) config.dns = ipam["dns"];
  return config;
}

std::string IpamStore::IpPath(uint32_t ip) const { return StrCat(config_.dir, "/", FormatIp4(ip)); }

absl::StatusOr<std::vector<IpamStore::Entry>> IpamStore::ListLocked() {
  std::vector<Entry> entries;
  DIR* d = opendir(config_.dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return entries;
    return ErrnoStatus(errno, StrCat("ipam: list ", config_.dir));
  }
  while (dirent* e = readdir(d)) {
    std::optional<uint32_t> ip = ParseIp4(e->d_name);
    if (!ip) continue;
    auto [id, ifname] = ParseHolder(ReadSmallFile(IpPath(*ip)));
    entries.push_back({*ip, id, ifname});
  }
  closedir(d);
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.ip < b.ip; });
  return entries;
}

absl::StatusOr<std::vector<Allocation>> IpamStore::Allocate(const std::string& id,
                                                            const std::string& ifname) {
  ASSIGN_OR_RETURN(UniqueFd lock, LockDir(config_.dir));
  ASSIGN_OR_RETURN(std::vector<Entry> entries, ListLocked());
  std::vector<Allocation> got;
  std::vector<uint32_t> created;  // undone when a later range set is exhausted
  for (size_t s = 0; s < config_.range_sets.size(); ++s) {
    const std::vector<IpamRange>& set = config_.range_sets[s];
    // Already held (a repeated ADD): hand the same address back.
    bool found = false;
    for (const Entry& e : entries) {
      int r = RangeOf(set, e.ip);
      if (r >= 0 && Holds({e.container_id, e.ifname}, id, ifname)) {
        got.push_back({{e.ip, set[r].subnet.length}, set[r].gateway});
        found = true;
        break;
      }
    }
    if (found) continue;

    // Round robin: start right after the address this set handed out last.
    const std::string last_path = StrCat(config_.dir, "/last_reserved_ip.", s);
    std::optional<uint32_t> last = ParseIp4(ParseHolder(ReadSmallFile(last_path)).first);
    int r = 0;
    uint32_t ip = set[0].start;
    if (last && RangeOf(set, *last) >= 0) {
      r = RangeOf(set, *last);
      ip = *last;
      if (ip == set[r].end) {
        r = (r + 1) % set.size();
        ip = set[r].start;
      } else {
        ++ip;
      }
    }
    uint64_t total = 0;
    for (const IpamRange& range : set) total += uint64_t{range.end} - range.start + 1;
    std::optional<uint32_t> chosen;
    for (uint64_t n = 0; n < total && !chosen; ++n) {
      if (ip != set[r].gateway) {
        UniqueFd fd(open(IpPath(ip).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (fd.valid()) {
          std::string holder = StrCat(id, "\r\n", ifname);
          if (write(fd.get(), holder.data(), holder.size()) !=
              static_cast<ssize_t>(holder.size())) {
            int err = errno;
            unlink(IpPath(ip).c_str());
            return ErrnoStatus(err, StrCat("ipam: write ", IpPath(ip)));
          }
          chosen = ip;
          break;
        }
        if (errno != EEXIST) return ErrnoStatus(errno, StrCat("ipam: create ", IpPath(ip)));
      }
      if (ip == set[r].end) {
        r = (r + 1) % set.size();
        ip = set[r].start;
      } else {
        ++ip;
      }
    }
    if (!chosen) {
      for (uint32_t c : created) unlink(IpPath(c).c_str());
      std::string ranges;
      for (const IpamRange& range : set) {
        ranges +=
            StrCat(ranges.empty() ? "" : ",", FormatIp4(range.start), "-", FormatIp4(range.end));
      }
      return CniError(kAddressesExhausted,
                      StrCat("no IP addresses available in range set: ", ranges),
                      StrCat("network ", config_.network, ", data dir ", config_.dir));
    }
    created.push_back(*chosen);
    RETURN_IF_ERROR(WriteFileAtomically(last_path, FormatIp4(*chosen)));
    got.push_back({{*chosen, set[r].subnet.length}, set[r].gateway});
  }
  return got;
}

absl::Status IpamStore::Release(const std::string& id, const std::string& ifname) {
  if (access(config_.dir.c_str(), F_OK) != 0) return absl::OkStatus();  // never allocated
  ASSIGN_OR_RETURN(UniqueFd lock, LockDir(config_.dir));
  ASSIGN_OR_RETURN(std::vector<Entry> entries, ListLocked());
  for (const Entry& e : entries) {
    if (!Holds({e.container_id, e.ifname}, id, ifname)) continue;
    if (unlink(IpPath(e.ip).c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, StrCat("ipam: remove ", IpPath(e.ip)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Allocation>> IpamStore::Held(const std::string& id,
                                                        const std::string& ifname) {
  std::vector<Allocation> got;
  if (access(config_.dir.c_str(), F_OK) != 0) return got;
  ASSIGN_OR_RETURN(UniqueFd lock, LockDir(config_.dir));
  ASSIGN_OR_RETURN(std::vector<Entry> entries, ListLocked());
  for (const std::vector<IpamRange>& set : config_.range_sets) {
    for (const Entry& e : entries) {
      int r = RangeOf(set, e.ip);
      if (r >= 0 && Holds({e.container_id, e.ifname}, id, ifname)) {
        got.push_back({{e.ip, set[r].subnet.length}, set[r].gateway});
        break;
      }
    }
  }
  return got;
}

absl::Status IpamStore::GarbageCollect(
    const std::vector<std::pair<std::string, std::string>>& valid) {
  if (access(config_.dir.c_str(), F_OK) != 0) return absl::OkStatus();
  std::set<std::pair<std::string, std::string>> keep(valid.begin(), valid.end());
  std::set<std::string> keep_ids;
  for (const auto& v : valid) keep_ids.insert(v.first);
  ASSIGN_OR_RETURN(UniqueFd lock, LockDir(config_.dir));
  ASSIGN_OR_RETURN(std::vector<Entry> entries, ListLocked());
  for (const Entry& e : entries) {
    bool kept = e.ifname.empty() ? keep_ids.count(e.container_id) > 0
                                 : keep.count({e.container_id, e.ifname}) > 0;
    if (kept) continue;
    if (unlink(IpPath(e.ip).c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, StrCat("ipam: remove ", IpPath(e.ip)));
    }
  }
  return absl::OkStatus();
}

nlohmann::json IpamResultJson(const IpamConfig& config, const std::vector<Allocation>& got) {
  nlohmann::json ips = nlohmann::json::array();
  for (const Allocation& a : got) {
    nlohmann::json ip = {{"address", a.address.ToString()}};
    if (a.gateway != 0) ip["gateway"] = FormatIp4(a.gateway);
    ips.push_back(ip);
  }
  nlohmann::json routes = nlohmann::json::array();
  for (const IpamRoute& r : config.routes) {
    nlohmann::json route = {{"dst", r.dst.NetworkString()}};
    if (r.gw != 0) route["gw"] = FormatIp4(r.gw);
    routes.push_back(route);
  }
  nlohmann::json result = {{"ips", ips}};
  if (!routes.empty()) result["routes"] = routes;
  if (!config.dns.is_null()) result["dns"] = config.dns;
  return result;
}

}  // namespace berth::cni::plugins
