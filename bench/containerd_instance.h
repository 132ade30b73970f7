// ContainerdInstance: a private containerd (1.6, CRI plugin) for benchmarks that
// compare berth with it, in a fresh temp dir with its own root, state, sockets and
// registry configuration, so it never touches a system containerd or its images.
//
//   std::optional<std::string> binary = ContainerdInstance::FindBinary();
//   if (!binary) { ... print "containerd: not installed, skipped" ... }
//   absl::StatusOr<std::unique_ptr<ContainerdInstance>> ctrd = ContainerdInstance::Start(
//       {.binary = *binary, .plain_http_registries = {registry->host()}});
//   grpc::ClientContext ctx;
//   (*ctrd)->image().PullImage(&ctx, request, &response);   // CRI v1 over its socket
//   (*ctrd)->Stop();    // SIGTERM by PID (SIGKILL after 10 s); the dir stays
//   ctrd->reset();      // (stops if needed,) unmounts and removes the dir
//
// The configuration follows the shared conformance kit's run-containerd.sh (the setup
// that passes critest here): config version 2, the overlayfs snapshotter,
// restrict_oom_score_adj (no CAP_SYS_RESOURCE on this machine), and registries
// through `config_path` hosts.toml files. Each listed registry host gets
//
//   server = "http://HOST"
//   [host."http://HOST"]
//     capabilities = ["pull", "resolve"]
//
// (Debian's 1.6.20 rejects a hosts.toml without a [host] table.) Pods need
// ContainerdOptions::sandbox_image and cni_conflist.
#ifndef BERTH_BENCH_CONTAINERD_INSTANCE_H_
#define BERTH_BENCH_CONTAINERD_INSTANCE_H_

#include <grpcpp/channel.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/runtime/v1/api.grpc.pb.h"

namespace berth::bench {

struct ContainerdOptions {
  // Path of the containerd binary (see FindBinary).
  std::string binary;
  // Registry hosts ("127.0.0.1:PORT") pulled from over plain http.
  std::vector<std::string> plain_http_registries;
  // containerd's log level ("info" keeps its log small during a benchmark).
  std::string log_level = "info";
  // Where its temp dir (config, root, state, sockets, log) is made. The socket
  // path must stay under 108 bytes.
  std::string parent_dir = "/tmp";
  // The CRI plugin's sandbox_image: what every pod's pause container runs. It must
  // be pullable (e.g. from a registry above); RunPodSandbox pulls it when missing.
  std::string sandbox_image = "registry.k8s.io/pause:3.6";
  // CNI for pods: the plugins' directory and, when not empty, one .conflist written
  // to the instance's conf_dir. Without a network RunPodSandbox fails ("cni plugin
  // not initialized"); a pull needs none.
  std::string cni_bin_dir = "/usr/lib/cni";
  std::string cni_conflist;
};

class ContainerdInstance {
 public:
  // `containerd` on $PATH (Debian package `containerd`), or nullopt.
  static std::optional<std::string> FindBinary();

  // Writes the config, starts containerd and waits (up to 30 s) until its CRI
  // plugin answers Version. Fails with the tail of containerd's log.
  static absl::StatusOr<std::unique_ptr<ContainerdInstance>> Start(ContainerdOptions options);

  // Stops containerd by PID (SIGTERM, SIGKILL after 10 s) and keeps its directory,
  // e.g. to measure it or to remove it later. Idempotent.
  void Stop();
  // Stops containerd, detaches any mount left under its directory and removes it.
  ~ContainerdInstance();
  ContainerdInstance(const ContainerdInstance&) = delete;
  ContainerdInstance& operator=(const ContainerdInstance&) = delete;

  runtime::v1::RuntimeService::Stub& runtime() { return *runtime_; }
  runtime::v1::ImageService::Stub& image() { return *image_; }

  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  const std::string& root() const { return root_; }
  const std::string& socket() const { return socket_; }
  // "1.6.20~ds1", as the CRI Version RPC reports it.
  const std::string& version() const { return version_; }
  std::string LogTail(size_t max_bytes = 2048) const;

 private:
  ContainerdInstance() = default;
  absl::Status WriteConfig();
  absl::Status WaitUntilServing();

  ContainerdOptions options_;
  std::string dir_, root_, state_, socket_, config_path_, log_path_, version_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<runtime::v1::RuntimeService::Stub> runtime_;
  std::unique_ptr<runtime::v1::ImageService::Stub> image_;
};

}  // namespace berth::bench

#endif  // BERTH_BENCH_CONTAINERD_INSTANCE_H_
