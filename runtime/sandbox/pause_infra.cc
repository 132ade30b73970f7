#include "runtime/sandbox/pause_infra.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/time/time.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/container/spec_builder.h"
#include "runtime/shim/shim_client.h"

namespace berth::sandbox {
namespace {

// containerd's sandbox user: nobody's uid on most distributions.
constexpr int64_t kPauseUid = 65535;
constexpr absl::Duration kKillWait = absl::Seconds(10);

std::string InfraDir(const std::string& pod_dir) { return pod_dir + "/infra"; }
std::string InfraShimDir(const std::string& pod_dir) { return pod_dir + "/infra/shim"; }

bool IsGone(const absl::Status& status) {
  return status.ok() || absl::IsNotFound(status) || absl::IsFailedPrecondition(status);
}

absl::Status InstallRootfs(const std::string& binary, const std::string& rootfs) {
  std::error_code ec;
  // Mount points runc needs; made now since the rootfs is read-only to it.
  for (const char* dir : {"", "/proc", "/dev", "/sys", "/etc"}) {
    std::filesystem::create_directories(rootfs + dir, ec);
    if (ec) return absl::InternalError(StrCat("create ", rootfs, dir, ": ", ec.message()));
    chmod((rootfs + dir).c_str(), 0755);
  }
  const std::string target = rootfs + "/pause";
  const std::string tmp = target + ".new";
  std::filesystem::copy_file(binary, tmp, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(StrCat("copy ", binary, " to ", tmp, ": ", ec.message()));
  chmod(tmp.c_str(), 0755);
  // rename: a running berth-pause keeps its old inode.
  if (rename(tmp.c_str(), target.c_str()) != 0) {
    return absl::InternalError(StrCat("rename ", tmp, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

PauseInfra::PauseInfra(PauseInfraOptions options)
    : options_(std::move(options)),
      rootfs_(options_.state_dir + "/pause/rootfs"),
      runc_(options_.runc) {}

absl::StatusOr<std::unique_ptr<PauseInfra>> PauseInfra::Create(PauseInfraOptions options) {
  for (const std::string* path : {&options.pause_binary, &options.shim_binary}) {
    if (path->empty() || (*path)[0] != '/' || access(path->c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          StrCat("pod infra: \"", *path, "\" is not an executable absolute path"));
    }
  }
  std::unique_ptr<PauseInfra> infra(new PauseInfra(std::move(options)));
  RETURN_IF_ERROR(InstallRootfs(infra->options_.pause_binary, infra->rootfs_));
  return infra;
}

absl::StatusOr<int> PauseInfra::Start(const PodSandbox& pod) {
  const std::string bundle = InfraDir(pod.dir);
  std::error_code ec;
  std::filesystem::create_directories(bundle, ec);
  if (ec) return absl::InternalError(StrCat("create ", bundle, ": ", ec.message()));

  container::ContainerSpec pause;
  pause.name = "POD";
  pause.command = {"/pause"};
  pause.security.namespace_options = pod.spec.security.namespace_options;
  pause.security.run_as_user = kPauseUid;
  pause.security.run_as_group = kPauseUid;
  pause.security.capabilities.drop = {"ALL"};
  pause.security.readonly_rootfs = true;
  pause.security.no_new_privs = true;
  pause.security.seccomp = container::SecurityProfile{};  // RuntimeDefault

  container::SpecContext ctx;
  ctx.type = container::SpecContext::Type::kSandbox;
  ctx.container_id = pod.id;
  ctx.sandbox_id = pod.id;
  ctx.rootfs = rootfs_;
  ctx.root_path = rootfs_;
  auto ns = [](const std::string& pin) {
    return pin.empty() ? std::string(container::kHostNamespace) : pin;
  };
  ctx.network_ns_path = ns(pod.netns);
  ctx.ipc_ns_path = ns(pod.ipcns);
  ctx.uts_ns_path = ns(pod.utsns);
  const std::string& parent =
      pod.spec.cgroup_parent.empty() ? options_.default_cgroup_parent : pod.spec.cgroup_parent;
  ctx.cgroups_path = StrCat(parent, "/", pod.id);
  ctx.default_cgroup_parent = options_.default_cgroup_parent;
  ctx.min_oom_score_adj = options_.min_oom_score_adj;
  ASSIGN_OR_RETURN(nlohmann::json spec,
                   container::BuildSpec(pod.spec, pause, image::ImageConfig{}, ctx));
  {
    std::ofstream out(bundle + "/config.json", std::ios::trunc);
    out << spec.dump();
    out.close();
    if (!out) return absl::InternalError(StrCat("write ", bundle, "/config.json"));
  }
  const oci::RuncOptions& runc = runc_.options();
  absl::StatusOr<shim::ShimHandle> shim = shim::StartShim(
      {.shim_binary = options_.shim_binary,
       .id = pod.id,
       .bundle_dir = bundle,
       .state_dir = InfraShimDir(pod.dir),
       .runtime = {.binary = runc.binary, .root = runc.root, .global_args = runc.global_args}});
  absl::Status status = shim.status();
  if (status.ok()) status = runc_.Start(pod.id);
  if (!status.ok()) {
    (void)Stop(pod.id, pod.dir);
    return absl::Status(status.code(), StrCat("start infra process: ", status.message()));
  }
  return shim->container_pid;
}

absl::Status PauseInfra::Stop(const std::string& pod_id, const std::string& pod_dir) {
  // Start makes the bundle directory before anything else: without it there is
  // nothing to stop, and no runc call is spent finding that out.
  if (access(InfraDir(pod_dir).c_str(), F_OK) != 0) return absl::OkStatus();
  const std::string shim_dir = InfraShimDir(pod_dir);
  // berth-pause exits 0 on SIGTERM at once; SIGKILL also takes anything left.
  absl::Status sent = runc_.Kill(pod_id, SIGKILL, /*all=*/true);
  if (!IsGone(sent)) return sent;
  if (shim::ShimAlive(shim_dir)) (void)shim::WaitForExit(shim_dir, kKillWait);
  absl::Status deleted = runc_.Delete(pod_id, /*force=*/true);
  if (!IsGone(deleted)) return deleted;
  shim::ReapShim(shim_dir, kKillWait);
  std::error_code ec;
  std::filesystem::remove_all(InfraDir(pod_dir), ec);
  return absl::OkStatus();
}

bool PauseInfra::Alive(const std::string& pod_dir) const {
  const std::string shim_dir = InfraShimDir(pod_dir);
  return shim::ShimAlive(shim_dir) && absl::IsNotFound(shim::ReadExitFile(shim_dir).status());
}

}  // namespace berth::sandbox
