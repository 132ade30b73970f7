// CreateContainer, StartContainer, StopContainer, RemoveContainer,
// ContainerStatus, ListContainers, UpdateContainerResources and
// ReopenContainerLog: CRI container messages to berth's ContainerSpec and back.
#include <fstream>

#include "nlohmann/json.hpp"
#include "runtime/base/strings.h"
#include "runtime/container/seccomp.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace berth::server {

namespace v1 = ::runtime::v1;

namespace {

std::optional<container::SecurityProfile> ToProfile(const v1::SecurityProfile& profile,
                                                    bool present) {
  if (!present) return std::nullopt;
  return container::SecurityProfile{
      .type = static_cast<container::SecurityProfile::Type>(profile.profile_type()),
      .localhost_ref = profile.localhost_ref()};
}

container::LinuxResources ToLinuxResources(const v1::LinuxContainerResources& r) {
  container::LinuxResources resources;
  resources.cpu_period = r.cpu_period();
  resources.cpu_quota = r.cpu_quota();
  resources.cpu_shares = r.cpu_shares();
  resources.memory_limit_in_bytes = r.memory_limit_in_bytes();
  resources.memory_swap_limit_in_bytes = r.memory_swap_limit_in_bytes();
  resources.oom_score_adj = r.oom_score_adj();
  resources.cpuset_cpus = r.cpuset_cpus();
  resources.cpuset_mems = r.cpuset_mems();
  for (const v1::HugepageLimit& h : r.hugepage_limits()) {
    resources.hugepage_limits.push_back({.page_size = h.page_size(), .limit = h.limit()});
  }
  resources.unified = {r.unified().begin(), r.unified().end()};
  return resources;
}

absl::StatusOr<container::ContainerSpec> ToContainerSpec(const v1::ContainerConfig& config) {
  container::ContainerSpec spec;
  spec.name = config.metadata().name();
  spec.attempt = config.metadata().attempt();
  spec.image = config.image().image();
  spec.command = {config.command().begin(), config.command().end()};
  spec.args = {config.args().begin(), config.args().end()};
  spec.working_dir = config.working_dir();
  for (const v1::KeyValue& env : config.envs()) spec.envs.push_back({env.key(), env.value()});
  for (const v1::Mount& m : config.mounts()) {
    spec.mounts.push_back(
        {.container_path = m.container_path(),
         .host_path = m.host_path(),
         .readonly = m.readonly(),
         .selinux_relabel = m.selinux_relabel(),
         .propagation = static_cast<container::MountPropagation>(m.propagation())});
  }
  for (const v1::Device& d : config.devices()) {
    spec.devices.push_back({.container_path = d.container_path(),
                            .host_path = d.host_path(),
                            .permissions = d.permissions()});
  }
  spec.labels = {config.labels().begin(), config.labels().end()};
  spec.annotations = {config.annotations().begin(), config.annotations().end()};
  spec.log_path = config.log_path();
  spec.open_stdin = config.stdin();
  spec.stdin_once = config.stdin_once();
  spec.tty = config.tty();

  spec.resources = ToLinuxResources(config.linux().resources());

  const v1::LinuxContainerSecurityContext& sc = config.linux().security_context();
  container::ContainerSecurityContext& out = spec.security;
  out.capabilities.add = {sc.capabilities().add_capabilities().begin(),
                          sc.capabilities().add_capabilities().end()};
  out.capabilities.drop = {sc.capabilities().drop_capabilities().begin(),
                           sc.capabilities().drop_capabilities().end()};
  out.privileged = sc.privileged();
  out.namespace_options = {
      .network = static_cast<container::NamespaceMode>(sc.namespace_options().network()),
      .pid = static_cast<container::NamespaceMode>(sc.namespace_options().pid()),
      .ipc = static_cast<container::NamespaceMode>(sc.namespace_options().ipc()),
      .target_id = sc.namespace_options().target_id()};
  if (sc.has_run_as_user()) out.run_as_user = sc.run_as_user().value();
  if (sc.has_run_as_group()) out.run_as_group = sc.run_as_group().value();
  out.run_as_username = sc.run_as_username();
  out.supplemental_groups = {sc.supplemental_groups().begin(), sc.supplemental_groups().end()};
  out.readonly_rootfs = sc.readonly_rootfs();
  out.no_new_privs = sc.no_new_privs();
  // The CRI cannot say "no masked paths" apart from "not set": an empty list
  // means berth's defaults (container_spec.h).
  if (!sc.masked_paths().empty()) {
    out.masked_paths = std::vector<std::string>(sc.masked_paths().begin(), sc.masked_paths().end());
  }
  if (!sc.readonly_paths().empty()) {
    out.readonly_paths =
        std::vector<std::string>(sc.readonly_paths().begin(), sc.readonly_paths().end());
  }
  out.seccomp = ToProfile(sc.seccomp(), sc.has_seccomp());
  out.apparmor = ToProfile(sc.apparmor(), sc.has_apparmor());
  // The deprecated string fields ("runtime/default", "docker/default", "unconfined",
  // "localhost/<path>"), which older kubelets and critest 1.26 send; the structured
  // fields win when both are set.
  if (!sc.has_seccomp()) {
    absl::StatusOr<std::optional<container::SecurityProfile>> legacy =
        container::ProfileFromLegacyName(sc.seccomp_profile_path());
    if (!legacy.ok()) {
      return absl::InvalidArgumentError(
          StrCat("seccomp_profile_path: ", legacy.status().message()));
    }
    out.seccomp = *legacy;
  }
  if (!sc.has_apparmor()) {
    absl::StatusOr<std::optional<container::SecurityProfile>> legacy =
        container::ProfileFromLegacyName(sc.apparmor_profile());
    if (!legacy.ok()) {
      return absl::InvalidArgumentError(StrCat("apparmor_profile: ", legacy.status().message()));
    }
    out.apparmor = *legacy;
  }
  return spec;
}

v1::ContainerState ToState(containers::ContainerState state) {
  switch (state) {
    case containers::ContainerState::kCreated:
      return v1::CONTAINER_CREATED;
    case containers::ContainerState::kRunning:
      return v1::CONTAINER_RUNNING;
    case containers::ContainerState::kExited:
      return v1::CONTAINER_EXITED;
    default:
      return v1::CONTAINER_UNKNOWN;
  }
}

void FillMetadata(const containers::Container& c, v1::ContainerMetadata* out) {
  out->set_name(c.name);
  out->set_attempt(c.attempt);
}

}  // namespace

grpc::Status RuntimeServiceImpl::CreateContainer(grpc::ServerContext*,
                                                 const v1::CreateContainerRequest* request,
                                                 v1::CreateContainerResponse* response) {
  if (!request->has_config()) return grpc::Status(grpc::INVALID_ARGUMENT, "config is missing");
  if (request->config().metadata().name().empty()) {
    return grpc::Status(grpc::INVALID_ARGUMENT, "container metadata.name is empty");
  }
  if (request->config().image().image().empty()) {
    return grpc::Status(grpc::INVALID_ARGUMENT, "container image is empty");
  }
  absl::StatusOr<container::ContainerSpec> spec = ToContainerSpec(request->config());
  if (!spec.ok()) return ToGrpcStatus(spec.status());
  absl::StatusOr<std::string> id = runtime_.containers().Create(
      request->pod_sandbox_id(), *spec, request->config().image().image());
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_container_id(*id);
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::StartContainer(grpc::ServerContext*,
                                                const v1::StartContainerRequest* request,
                                                v1::StartContainerResponse*) {
  return ToGrpcStatus(runtime_.containers().Start(request->container_id()));
}

grpc::Status RuntimeServiceImpl::StopContainer(grpc::ServerContext*,
                                               const v1::StopContainerRequest* request,
                                               v1::StopContainerResponse*) {
  absl::Status s = runtime_.containers().Stop(request->container_id(), request->timeout());
  // As for pods, stopping what is already gone succeeds.
  if (s.code() == absl::StatusCode::kNotFound) return grpc::Status::OK;
  return ToGrpcStatus(s);
}

grpc::Status RuntimeServiceImpl::RemoveContainer(grpc::ServerContext*,
                                                 const v1::RemoveContainerRequest* request,
                                                 v1::RemoveContainerResponse*) {
  return ToGrpcStatus(runtime_.containers().Remove(request->container_id()));
}

grpc::Status RuntimeServiceImpl::UpdateContainerResources(
    grpc::ServerContext*, const v1::UpdateContainerResourcesRequest* request,
    v1::UpdateContainerResourcesResponse*) {
  if (!request->has_linux()) {
    // Windows resources only: nothing applies on Linux.
    return grpc::Status(grpc::INVALID_ARGUMENT, "no linux resources in the request");
  }
  return ToGrpcStatus(runtime_.containers().UpdateResources(request->container_id(),
                                                            ToLinuxResources(request->linux())));
}

grpc::Status RuntimeServiceImpl::ReopenContainerLog(grpc::ServerContext*,
                                                    const v1::ReopenContainerLogRequest* request,
                                                    v1::ReopenContainerLogResponse*) {
  return ToGrpcStatus(runtime_.containers().ReopenLog(request->container_id()));
}

grpc::Status RuntimeServiceImpl::ContainerStatus(grpc::ServerContext*,
                                                 const v1::ContainerStatusRequest* request,
                                                 v1::ContainerStatusResponse* response) {
  absl::StatusOr<std::optional<containers::Container>> found =
      runtime_.containers().Find(request->container_id());
  if (!found.ok()) return ToGrpcStatus(found.status());
  if (!found->has_value()) {
    return grpc::Status(grpc::NOT_FOUND, "container " + request->container_id() + " not found");
  }
  const containers::Container& c = **found;
  v1::ContainerStatus* status = response->mutable_status();
  status->set_id(c.id);
  FillMetadata(c, status->mutable_metadata());
  status->set_state(ToState(c.state));
  status->set_created_at(c.created_at_ns);
  status->set_started_at(c.started_at_ns);
  status->set_finished_at(c.finished_at_ns);
  status->set_exit_code(c.exit_code);
  status->mutable_image()->set_image(c.image_ref);
  status->set_image_ref(c.image_id);
  status->set_reason(c.reason);
  status->set_message(c.message);
  status->mutable_labels()->insert(c.labels.begin(), c.labels.end());
  status->mutable_annotations()->insert(c.annotations.begin(), c.annotations.end());
  status->set_log_path(c.log_path);
  for (const container::Mount& m : c.mounts) {
    v1::Mount* out = status->add_mounts();
    out->set_container_path(m.container_path);
    out->set_host_path(m.host_path);
    out->set_readonly(m.readonly);
    out->set_selinux_relabel(m.selinux_relabel);
    out->set_propagation(static_cast<v1::MountPropagation>(m.propagation));
  }
  if (request->verbose()) {
    nlohmann::json info = {{"sandboxID", c.pod_id}, {"pid", c.pid}, {"shimPid", c.shim_pid}};
    // containerd-style: tools such as Falco read the runtime spec from here.
    std::ifstream spec(c.dir + "/config.json");
    nlohmann::json runtime_spec = nlohmann::json::parse(spec, nullptr, false);
    if (!runtime_spec.is_discarded()) info["runtimeSpec"] = runtime_spec;
    (*response->mutable_info())["info"] = info.dump();
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::ListContainers(grpc::ServerContext*,
                                                const v1::ListContainersRequest* request,
                                                v1::ListContainersResponse* response) {
  containers::ContainerFilter filter{.id = request->filter().id(),
                                     .pod_id = request->filter().pod_sandbox_id()};
  if (request->filter().has_state()) {
    switch (request->filter().state().state()) {
      case v1::CONTAINER_CREATED:
        filter.state = containers::ContainerState::kCreated;
        break;
      case v1::CONTAINER_RUNNING:
        filter.state = containers::ContainerState::kRunning;
        break;
      case v1::CONTAINER_EXITED:
        filter.state = containers::ContainerState::kExited;
        break;
      default:
        filter.state = containers::ContainerState::kUnknown;
    }
  }
  filter.labels = {request->filter().label_selector().begin(),
                   request->filter().label_selector().end()};
  absl::StatusOr<std::vector<containers::Container>> list = runtime_.containers().List(filter);
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (const containers::Container& c : *list) {
    v1::Container* out = response->add_containers();
    out->set_id(c.id);
    out->set_pod_sandbox_id(c.pod_id);
    FillMetadata(c, out->mutable_metadata());
    out->mutable_image()->set_image(c.image_ref);
    out->set_image_ref(c.image_id);
    out->set_state(ToState(c.state));
    out->set_created_at(c.created_at_ns);
    out->mutable_labels()->insert(c.labels.begin(), c.labels.end());
    out->mutable_annotations()->insert(c.annotations.begin(), c.annotations.end());
    out->set_image_id(c.image_id);
  }
  return grpc::Status::OK;
}

}  // namespace berth::server
