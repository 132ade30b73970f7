#include "runtime/runtime.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "runtime/base/disk_usage.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/snapshot/overlay_snapshotter.h"
#include "spdlog/spdlog.h"

namespace berth {
namespace {

constexpr char kPodCidrSetting[] = "pod_cidr";

}  // namespace

absl::Status ValidateCidr(std::string_view cidr) {
  size_t slash = cidr.find('/');
  if (slash == std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat("CIDR \"", cidr, "\" has no /prefix length"));
  }
  std::string address(cidr.substr(0, slash));
  std::string_view prefix_text = cidr.substr(slash + 1);
  unsigned char bytes[16];
  int family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (inet_pton(family, address.c_str(), bytes) != 1) {
    return absl::InvalidArgumentError(StrCat("CIDR \"", cidr, "\" has an invalid address"));
  }
  int bits = family == AF_INET ? 32 : 128;
  int prefix = -1;
  if (!prefix_text.empty() && prefix_text.size() <= 3 &&
      prefix_text.find_first_not_of("0123456789") == std::string_view::npos) {
    prefix = std::atoi(std::string(prefix_text).c_str());
  }
  if (prefix < 0 || prefix > bits) {
    return absl::InvalidArgumentError(
        StrCat("CIDR \"", cidr, "\" has an invalid prefix length (0-", bits, ")"));
  }
  for (int bit = prefix; bit < bits; ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) {
      return absl::InvalidArgumentError(
          StrCat("CIDR \"", cidr, "\" has host bits set beyond /", prefix));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) == 0) return name;
    return absl::NotFoundError(StrCat(name, " is not an executable file"));
  }
  const char* path = std::getenv("PATH");
  std::string search = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (absl::string_view dir : absl::StrSplit(search, ':', absl::SkipEmpty())) {
    std::string candidate = StrCat(std::string(dir), "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(StrCat(name, " was not found in PATH (", search, ")"));
}

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Create(RuntimeOptions options,
                                                         store::StorePtr store) {
  if (!options.handlers.count(options.default_handler)) {
    return absl::InvalidArgumentError(
        StrCat("default runtime handler \"", options.default_handler, "\" is not configured"));
  }
  std::unique_ptr<Runtime> rt(new Runtime(std::move(options), std::move(store)));
  ASSIGN_OR_RETURN(rt->content_, content::ContentStore::Open(rt->ContentDir()));
  ASSIGN_OR_RETURN(rt->snapshotter_,
                   snapshot::OverlaySnapshotter::Create(rt->SnapshotterDir(), *rt->store_));
  ASSIGN_OR_RETURN(rt->images_,
                   images::ImageManager::Create(*rt->store_, *rt->content_, *rt->snapshotter_,
                                                {.registry = rt->options_.registry}));
  RETURN_IF_ERROR(rt->images_->CollectGarbage());
  std::set<std::string> handlers = {""};
  for (const auto& [name, handler] : rt->options_.handlers) handlers.insert(name);

  ASSIGN_OR_RETURN(std::string shim,
                   FindHelperBinary("berth-shim", "runtime/shim", rt->options_.shim_binary));
  ASSIGN_OR_RETURN(std::string pause,
                   FindHelperBinary("berth-pause", "runtime/pause", rt->options_.pause_binary));
  const RuntimeHandler& handler = rt->options_.handlers.at(rt->options_.default_handler);
  containers::ContainerManagerOptions container_options{
      .state_dir = rt->options_.state_dir, .shim_binary = shim, .events = &rt->events_};
  // A missing runtime binary is reported by Status (RuntimeReady false).
  if (absl::StatusOr<std::string> runc = FindExecutable(handler.binary); runc.ok()) {
    container_options.runc_binary = *runc;
  }
  ASSIGN_OR_RETURN(rt->infra_,
                   sandbox::PauseInfra::Create(
                       {.state_dir = rt->options_.state_dir,
                        .pause_binary = pause,
                        .shim_binary = shim,
                        .runc = {.name = handler.name,
                                 .binary = container_options.runc_binary,
                                 .root = rt->options_.state_dir + "/runtimes/runc"},
                        .default_cgroup_parent = container_options.default_cgroup_parent,
                        .min_oom_score_adj = container_options.min_oom_score_adj}));
  // Without a usable network berth still runs pods, with loopback only, and
  // NetworkReady says why.
  // berth's own plugins (cni/plugins), found like berth-shim, come before the bin dirs.
  std::vector<std::string> bin_dirs = rt->options_.cni_bin_dirs;
  if (absl::StatusOr<std::string> bridge = FindHelperBinary("berth-bridge", "cni/plugins", "");
      bridge.ok()) {
    std::string dir = bridge->substr(0, bridge->rfind('/'));
    if (std::find(bin_dirs.begin(), bin_dirs.end(), dir) == bin_dirs.end()) {
      bin_dirs.insert(bin_dirs.begin(), dir);
    }
  }
  absl::StatusOr<std::unique_ptr<network::CniPodNetwork>> network =
      network::CniPodNetwork::Create({.conf_dir = rt->options_.cni_conf_dir,
                                      .bin_dirs = bin_dirs,
                                      .state_dir = rt->options_.root_dir + "/cni"});
  if (network.ok()) {
    rt->network_ = *std::move(network);
  } else {
    rt->network_error_ = network.status();
  }
  ASSIGN_OR_RETURN(rt->pods_, sandbox::SandboxManager::Create(
                                  *rt->store_, rt->options_.state_dir + "/pods", handlers,
                                  rt->infra_.get(), rt->network_.get()));
  RETURN_IF_ERROR(rt->pods_->Recover());
  if (rt->network_ != nullptr) {
    // What is attached for a pod that is no longer ready (a crash between ADD and the
    // record, a pod removed while its DEL failed) comes off the host now.
    ASSIGN_OR_RETURN(std::vector<sandbox::PodSandbox> pods,
                     rt->pods_->List({.state = sandbox::PodState::kReady}));
    std::vector<std::string> live;
    for (const sandbox::PodSandbox& pod : pods) live.push_back(pod.id);
    absl::Status collected = rt->network_->GarbageCollect(live);
    if (!collected.ok()) spdlog::warn("event=cni_gc_failed error=\"{}\"", collected.message());
  }
  ASSIGN_OR_RETURN(rt->containers_,
                   containers::ContainerManager::Create(*rt->store_, *rt->pods_, *rt->images_,
                                                        *rt->snapshotter_, container_options));
  RETURN_IF_ERROR(rt->containers_->Recover());
  return rt;
}

Runtime::~Runtime() = default;

std::vector<Condition> Runtime::Conditions() const {
  Condition runtime{.type = "RuntimeReady", .ready = true};
  const RuntimeHandler& handler = options_.handlers.at(options_.default_handler);
  if (absl::StatusOr<std::string> binary = FindExecutable(handler.binary); !binary.ok()) {
    runtime.ready = false;
    runtime.reason = "RuntimeBinaryNotFound";
    runtime.message =
        StrCat("default runtime handler \"", handler.name, "\": ", binary.status().message());
  }
  Condition network{.type = "NetworkReady", .ready = true};
  absl::Status ready = network_ != nullptr ? network_->Ready() : network_error_;
  if (!ready.ok()) {
    network.ready = false;
    network.reason = "NetworkPluginNotReady";
    network.message = StrCat("CNI: ", ready.message());
  }
  return {runtime, network};
}

absl::Status Runtime::SetPodCidr(const std::string& cidr) {
  if (cidr.empty()) return absl::OkStatus();
  std::vector<std::string> parts = absl::StrSplit(cidr, ',');
  if (parts.size() > 2) {
    return absl::InvalidArgumentError(
        StrCat("pod CIDR \"", cidr, "\" lists more than two ranges (one per IP family)"));
  }
  for (const std::string& part : parts) RETURN_IF_ERROR(ValidateCidr(part));
  return store_->Update([&](store::Transaction& tx) {
    return tx.Put(store::Kind::kSetting, kPodCidrSetting, {{"cidr", cidr}});
  });
}

absl::StatusOr<FilesystemUsage> Runtime::ImageFsUsage() const {
  FilesystemUsage usage{.mountpoint = options_.root_dir};
  usage.timestamp_ns = absl::ToUnixNanos(absl::Now());
  for (const std::string& dir : {ContentDir(), SnapshotterDir()}) {
    ASSIGN_OR_RETURN(DiskUsage du, MeasureDiskUsage(dir));
    usage.used_bytes += du.bytes;
    usage.inodes_used += du.inodes;
  }
  return usage;
}

absl::Status Runtime::StopPod(const std::string& pod_id) {
  ASSIGN_OR_RETURN(std::optional<sandbox::PodSandbox> pod, pods_->Find(pod_id));
  if (!pod.has_value()) return absl::NotFoundError(StrCat("pod sandbox ", pod_id, " not found"));
  ASSIGN_OR_RETURN(std::vector<containers::Container> list, containers_->List({.pod_id = pod->id}));
  for (const containers::Container& c : list) {
    if (c.state == containers::ContainerState::kRunning) {
      // As containerd: no grace here. The kubelet stops containers gracefully
      // (StopContainer with the pod's grace period) before it stops the pod.
      RETURN_IF_ERROR(containers_->Stop(c.id, /*timeout_seconds=*/0));
    }
  }
  return pods_->Stop(pod->id);
}

absl::Status Runtime::RemovePod(const std::string& pod_id) {
  ASSIGN_OR_RETURN(std::optional<sandbox::PodSandbox> pod, pods_->Find(pod_id));
  if (pod.has_value()) {
    ASSIGN_OR_RETURN(std::vector<containers::Container> list,
                     containers_->List({.pod_id = pod->id}));
    for (const containers::Container& c : list) RETURN_IF_ERROR(containers_->Remove(c.id));
  }
  return pods_->Remove(pod_id);
}

absl::StatusOr<std::string> FindHelperBinary(const std::string& name, const std::string& package,
                                             const std::string& configured) {
  if (!configured.empty()) return FindExecutable(configured);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = '\0';
    std::string self(exe);
    std::string dir = self.substr(0, self.rfind('/'));
    for (const std::string& candidate :
         {StrCat(self, ".runfiles/berth/", package, "/", name),
          StrCat(dir, "/../", package, "/", name), StrCat(dir, "/", name)}) {
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return FindExecutable(name);
}

absl::StatusOr<std::string> Runtime::PodCidr() const {
  std::string cidr;
  RETURN_IF_ERROR(store_->View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<nlohmann::json> doc,
                     tx.Get(store::Kind::kSetting, kPodCidrSetting));
    if (doc.has_value()) cidr = doc->value("cidr", "");
    return absl::OkStatus();
  }));
  return cidr;
}

}  // namespace berth
