// RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus and
// ListPodSandbox: CRI pod messages to berth's PodSpec and back.
#include "nlohmann/json.hpp"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace berth::server {

namespace v1 = ::runtime::v1;

namespace {

container::NamespaceOptions ToNamespaces(const v1::NamespaceOption& ns) {
  return {.network = static_cast<container::NamespaceMode>(ns.network()),
          .pid = static_cast<container::NamespaceMode>(ns.pid()),
          .ipc = static_cast<container::NamespaceMode>(ns.ipc()),
          .target_id = ns.target_id()};
}

v1::NamespaceOption FromNamespaces(const container::NamespaceOptions& ns) {
  v1::NamespaceOption out;
  out.set_network(static_cast<v1::NamespaceMode>(ns.network));
  out.set_pid(static_cast<v1::NamespaceMode>(ns.pid));
  out.set_ipc(static_cast<v1::NamespaceMode>(ns.ipc));
  out.set_target_id(ns.target_id);
  return out;
}

container::PodSpec ToPodSpec(const v1::PodSandboxConfig& config, const std::string& handler) {
  container::PodSpec spec;
  spec.name = config.metadata().name();
  spec.uid = config.metadata().uid();
  spec.namespace_name = config.metadata().namespace_();
  spec.attempt = config.metadata().attempt();
  spec.runtime_handler = handler;
  spec.hostname = config.hostname();
  spec.log_directory = config.log_directory();
  spec.dns.servers = {config.dns_config().servers().begin(), config.dns_config().servers().end()};
  spec.dns.searches = {config.dns_config().searches().begin(),
                       config.dns_config().searches().end()};
  spec.dns.options = {config.dns_config().options().begin(), config.dns_config().options().end()};
  for (const v1::PortMapping& p : config.port_mappings()) {
    spec.port_mappings.push_back(
        {.protocol = static_cast<container::PortMapping::Protocol>(p.protocol()),
         .container_port = p.container_port(),
         .host_port = p.host_port(),
         .host_ip = p.host_ip()});
  }
  spec.labels = {config.labels().begin(), config.labels().end()};
  spec.annotations = {config.annotations().begin(), config.annotations().end()};
  const v1::LinuxPodSandboxConfig& linux = config.linux();
  spec.cgroup_parent = linux.cgroup_parent();
  spec.sysctls = {linux.sysctls().begin(), linux.sysctls().end()};
  const v1::LinuxSandboxSecurityContext& sc = linux.security_context();
  spec.security.namespace_options = ToNamespaces(sc.namespace_options());
  spec.security.privileged = sc.privileged();
  spec.security.readonly_rootfs = sc.readonly_rootfs();
  if (sc.has_run_as_user()) spec.security.run_as_user = sc.run_as_user().value();
  if (sc.has_run_as_group()) spec.security.run_as_group = sc.run_as_group().value();
  spec.security.supplemental_groups = {sc.supplemental_groups().begin(),
                                       sc.supplemental_groups().end()};
  return spec;
}

void FillMetadata(const sandbox::PodSandbox& pod, v1::PodSandboxMetadata* out) {
  out->set_name(pod.spec.name);
  out->set_uid(pod.spec.uid);
  out->set_namespace_(pod.spec.namespace_name);
  out->set_attempt(pod.spec.attempt);
}

v1::PodSandboxState ToState(sandbox::PodState state) {
  return state == sandbox::PodState::kReady ? v1::SANDBOX_READY : v1::SANDBOX_NOTREADY;
}

}  // namespace

grpc::Status RuntimeServiceImpl::RunPodSandbox(grpc::ServerContext*,
                                               const v1::RunPodSandboxRequest* request,
                                               v1::RunPodSandboxResponse* response) {
  if (!request->has_config()) return grpc::Status(grpc::INVALID_ARGUMENT, "config is missing");
  absl::StatusOr<std::string> id =
      runtime_.pods().Run(ToPodSpec(request->config(), request->runtime_handler()));
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_pod_sandbox_id(*id);
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::StopPodSandbox(grpc::ServerContext*,
                                                const v1::StopPodSandboxRequest* request,
                                                v1::StopPodSandboxResponse*) {
  absl::Status s = runtime_.StopPod(request->pod_sandbox_id());
  // Stopping a pod that is already gone succeeds: the kubelet retries stops.
  if (s.code() == absl::StatusCode::kNotFound) return grpc::Status::OK;
  return ToGrpcStatus(s);
}

grpc::Status RuntimeServiceImpl::RemovePodSandbox(grpc::ServerContext*,
                                                  const v1::RemovePodSandboxRequest* request,
                                                  v1::RemovePodSandboxResponse*) {
  return ToGrpcStatus(runtime_.RemovePod(request->pod_sandbox_id()));
}

grpc::Status RuntimeServiceImpl::PodSandboxStatus(grpc::ServerContext*,
                                                  const v1::PodSandboxStatusRequest* request,
                                                  v1::PodSandboxStatusResponse* response) {
  absl::StatusOr<std::optional<sandbox::PodSandbox>> pod =
      runtime_.pods().Find(request->pod_sandbox_id());
  if (!pod.ok()) return ToGrpcStatus(pod.status());
  if (!pod->has_value()) {
    return grpc::Status(grpc::NOT_FOUND, "pod sandbox " + request->pod_sandbox_id() + " not found");
  }
  const sandbox::PodSandbox& p = **pod;
  v1::PodSandboxStatus* status = response->mutable_status();
  status->set_id(p.id);
  FillMetadata(p, status->mutable_metadata());
  status->set_state(ToState(p.state));
  status->set_created_at(p.created_at_ns);
  // The primary IP, then the others (another family, or further networks).
  status->mutable_network()->set_ip(p.ips.empty() ? "" : p.ips[0]);
  for (size_t i = 1; i < p.ips.size(); ++i) {
    status->mutable_network()->add_additional_ips()->set_ip(p.ips[i]);
  }
  *status->mutable_linux()->mutable_namespaces()->mutable_options() =
      FromNamespaces(p.spec.security.namespace_options);
  status->mutable_labels()->insert(p.spec.labels.begin(), p.spec.labels.end());
  status->mutable_annotations()->insert(p.spec.annotations.begin(), p.spec.annotations.end());
  status->set_runtime_handler(p.spec.runtime_handler);
  if (request->verbose()) {
    nlohmann::json info = {{"sandboxID", p.id},
                           {"dir", p.dir},
                           {"netns", p.netns},
                           {"ipcns", p.ipcns},
                           {"utsns", p.utsns},
                           {"hostname", p.spec.hostname},
                           {"logDirectory", p.spec.log_directory},
                           {"cgroupParent", p.spec.cgroup_parent}};
    (*response->mutable_info())["info"] = info.dump();
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::ListPodSandbox(grpc::ServerContext*,
                                                const v1::ListPodSandboxRequest* request,
                                                v1::ListPodSandboxResponse* response) {
  sandbox::PodFilter filter;
  filter.id = request->filter().id();
  if (request->filter().has_state()) {
    filter.state = request->filter().state().state() == v1::SANDBOX_READY
                       ? sandbox::PodState::kReady
                       : sandbox::PodState::kNotReady;
  }
  filter.labels = {request->filter().label_selector().begin(),
                   request->filter().label_selector().end()};
  absl::StatusOr<std::vector<sandbox::PodSandbox>> pods = runtime_.pods().List(filter);
  if (!pods.ok()) return ToGrpcStatus(pods.status());
  for (const sandbox::PodSandbox& p : *pods) {
    v1::PodSandbox* out = response->add_items();
    out->set_id(p.id);
    FillMetadata(p, out->mutable_metadata());
    out->set_state(ToState(p.state));
    out->set_created_at(p.created_at_ns);
    out->mutable_labels()->insert(p.spec.labels.begin(), p.spec.labels.end());
    out->mutable_annotations()->insert(p.spec.annotations.begin(), p.spec.annotations.end());
    out->set_runtime_handler(p.spec.runtime_handler);
  }
  return grpc::Status::OK;
}

}  // namespace berth::server
