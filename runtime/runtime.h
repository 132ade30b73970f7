// Runtime: the core that the CRI server drives. It owns the metadata store
// and, as the subsystems land, pods, containers, images and networks. It
// speaks berth's own types; it never sees a gRPC or protobuf type.
//
//   absl::StatusOr<std::unique_ptr<Runtime>> rt = Runtime::Create(options, std::move(store));
//   for (const Condition& c : (*rt)->Conditions()) { ... }
//   absl::Status s = (*rt)->SetPodCidr("10.244.1.0/24");
#ifndef BERTH_RUNTIME_RUNTIME_H_
#define BERTH_RUNTIME_RUNTIME_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/containers/container_manager.h"
#include "runtime/content/content_store.h"
#include "runtime/events/event_bus.h"
#include "runtime/images/image_manager.h"
#include "runtime/network/cni_pod_network.h"
#include "runtime/registry/registry_config.h"
#include "runtime/sandbox/sandbox_manager.h"
#include "runtime/snapshot/snapshotter.h"
#include "runtime/store/store.h"

namespace berth {

struct RuntimeHandler {
  std::string name;
  // As configured: an absolute path or a name to look up in PATH.
  std::string binary;
  // The handler's state directory (runc --root).
  std::string root;
};

struct RuntimeOptions {
  std::string root_dir;
  std::string state_dir;
  std::string default_handler;
  std::map<std::string, RuntimeHandler> handlers;
  registry::RegistryConfig registry;
  // berth-shim and berth-pause; empty: found next to berthd (see
  // FindHelperBinary).
  std::string shim_binary;
  std::string pause_binary;
  // CNI: network configurations and plugin directories (server/config.h).
  std::string cni_conf_dir = "/etc/berth/cni/net.d";
  std::vector<std::string> cni_bin_dirs = {"/usr/lib/cni", "/opt/cni/bin"};
};

// A readiness condition as the CRI Status RPC reports it.
struct Condition {
  std::string type;  // "RuntimeReady", "NetworkReady"
  bool ready = false;
  std::string reason;  // CamelCase, empty when ready
  std::string message;
};

// Space used on a filesystem berth writes to, as ImageFsInfo reports it.
struct FilesystemUsage {
  std::string mountpoint;  // a directory on that filesystem
  int64_t timestamp_ns = 0;
  int64_t used_bytes = 0;
  int64_t inodes_used = 0;
};

class Runtime {
 public:
  // Opens the content store and snapshotter under the root and collects
  // what an interrupted run left behind (half-written blobs, half-unpacked
  // layers, blobs and layers no image uses, half-made pods).
  static absl::StatusOr<std::unique_ptr<Runtime>> Create(RuntimeOptions options,
                                                         store::StorePtr store);
  ~Runtime();

  // RuntimeReady and NetworkReady, evaluated now.
  std::vector<Condition> Conditions() const;

  // Records the node's pod CIDR(s) from UpdateRuntimeConfig: one CIDR, or an
  // IPv4 and an IPv6 one separated by a comma. An empty string is ignored, as
  // containerd does: the kubelet sends it before the node has a CIDR.
  absl::Status SetPodCidr(const std::string& cidr);
  // The stored pod CIDR, or "" when none was set.
  absl::StatusOr<std::string> PodCidr() const;

  // Where image data lives: blobs (<root>/content) and unpacked layers with
  // container writable layers (<root>/snapshotter).
  std::string ContentDir() const { return options_.root_dir + "/content"; }
  std::string SnapshotterDir() const { return options_.root_dir + "/snapshotter"; }

  // The image filesystem: what blobs and snapshots under the root use now.
  absl::StatusOr<FilesystemUsage> ImageFsUsage() const;

  const RuntimeOptions& options() const { return options_; }
  store::Store& store() { return *store_; }
  images::ImageManager& images() { return *images_; }
  sandbox::SandboxManager& pods() { return *pods_; }
  containers::ContainerManager& containers() { return *containers_; }
  events::EventBus& events() { return events_; }
  // The CNI networks; null when CNI is unusable (network_error() says why).
  network::CniPodNetwork* network() { return network_.get(); }
  const absl::Status& network_error() const { return network_error_; }

  // StopPodSandbox: kills every container of the pod still running (no
  // grace, as containerd: the kubelet stopped them gracefully already), then
  // releases the pod. NotFound for an unknown pod.
  absl::Status StopPod(const std::string& pod_id);
  // RemovePodSandbox: removes the pod's containers, then the pod. Idempotent.
  absl::Status RemovePod(const std::string& pod_id);

 private:
  Runtime(RuntimeOptions options, store::StorePtr store)
      : options_(std::move(options)), store_(std::move(store)) {}

  const RuntimeOptions options_;
  // Destroyed in reverse: the image manager before what it uses.
  const store::StorePtr store_;
  events::EventBus events_;
  std::unique_ptr<content::ContentStore> content_;
  snapshot::SnapshotterPtr snapshotter_;
  std::unique_ptr<images::ImageManager> images_;
  std::unique_ptr<sandbox::PauseInfra> infra_;
  std::unique_ptr<network::CniPodNetwork> network_;
  absl::Status network_error_;  // why there is no network_, for NetworkReady
  std::unique_ptr<sandbox::SandboxManager> pods_;
  std::unique_ptr<containers::ContainerManager> containers_;
};

// A helper binary berth ships (berth-shim in runtime/shim, berth-pause in
// runtime/pause): `configured` if set, else beside the running berthd (its
// Bazel runfiles, its bazel-bin neighbour, its own directory), else PATH.
absl::StatusOr<std::string> FindHelperBinary(const std::string& name, const std::string& package,
                                             const std::string& configured);

// Checks "a.b.c.d/n" or "x::y/n" syntax and that no host bits are set.
absl::Status ValidateCidr(std::string_view cidr);

// Resolves a binary name through PATH (or checks an absolute path); returns
// the executable's path, or NotFound naming what was searched.
absl::StatusOr<std::string> FindExecutable(const std::string& name);

}  // namespace berth

#endif  // BERTH_RUNTIME_RUNTIME_H_
