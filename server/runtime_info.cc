// Version, Status, RuntimeConfig and UpdateRuntimeConfig: what the kubelet
// asks before anything else.
#include <unistd.h>

#include "nlohmann/json.hpp"
#include "runtime/base/strings.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"
#include "server/version.h"

namespace berth::server {

namespace v1 = ::runtime::v1;

grpc::Status RuntimeServiceImpl::Version(grpc::ServerContext*, const v1::VersionRequest*,
                                         v1::VersionResponse* response) {
  // `version` is the version of the kubelet-runtime API itself, which every
  // CRI runtime reports as 0.1.0.
  response->set_version("0.1.0");
  response->set_runtime_name("berth");
  response->set_runtime_version(kBerthVersion);
  response->set_runtime_api_version(kCriApiVersion);
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::Status(grpc::ServerContext*, const v1::StatusRequest* request,
                                        v1::StatusResponse* response) {
  for (const Condition& condition : runtime_.Conditions()) {
    v1::RuntimeCondition* out = response->mutable_status()->add_conditions();
    out->set_type(condition.type);
    out->set_status(condition.ready);
    out->set_reason(condition.reason);
    out->set_message(condition.message);
  }
  // The default handler is listed under "" as well as its own name. No
  // handler supports recursive read-only mounts or user namespaces yet.
  response->add_runtime_handlers()->set_name("");
  for (const auto& [name, handler] : runtime_.options().handlers) {
    response->add_runtime_handlers()->set_name(name);
  }
  if (request->verbose()) {
    (*response->mutable_info())["config"] = effective_config_.dump();
    absl::StatusOr<std::string> cidr = runtime_.PodCidr();
    if (!cidr.ok()) return ToGrpcStatus(cidr.status());
    (*response->mutable_info())["podCIDR"] = *cidr;
    // What happens to the CRI's AppArmor and SELinux fields on this node.
    nlohmann::json lsm = {
        {"apparmor", access("/sys/kernel/security/apparmor", F_OK) == 0
                         ? "enabled on the host, but berth does not apply profiles yet: "
                           "profiles are accepted and ignored"
                         : "not available on this host: profiles are accepted and ignored"},
        {"selinux", access("/sys/fs/selinux/enforce", F_OK) == 0
                        ? "enabled on the host, but berth does not label: options are "
                          "accepted and ignored"
                        : "not available on this host: options are accepted and ignored"}};
    (*response->mutable_info())["securityModules"] = lsm.dump();
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::RuntimeConfig(grpc::ServerContext*,
                                               const v1::RuntimeConfigRequest*,
                                               v1::RuntimeConfigResponse* response) {
  // berth drives cgroups through the OCI runtime's cgroupfs driver; it has
  // no systemd driver.
  response->mutable_linux()->set_cgroup_driver(v1::CgroupDriver::CGROUPFS);
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::UpdateRuntimeConfig(grpc::ServerContext*,
                                                     const v1::UpdateRuntimeConfigRequest* request,
                                                     v1::UpdateRuntimeConfigResponse*) {
  const std::string& cidr = request->runtime_config().network_config().pod_cidr();
  return ToGrpcStatus(runtime_.SetPodCidr(cidr));
}

}  // namespace berth::server
