// RuntimeServiceImpl: runtime.v1.RuntimeService on top of the berth core.
//
// Each RPC validates and translates; the work happens in berth::Runtime. The
// RPCs are spread over one file per group (runtime_info.cc, ...). An RPC not
// overridden here answers UNIMPLEMENTED, named by the RPC interceptor.
#ifndef BERTH_SERVER_RUNTIME_SERVICE_H_
#define BERTH_SERVER_RUNTIME_SERVICE_H_

#include "api/runtime/v1/api.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "runtime/runtime.h"
#include "server/streaming/server.h"

namespace berth::server {

class RuntimeServiceImpl final : public runtime::v1::RuntimeService::Service {
 public:
  // effective_config is reported by Status(verbose).
  RuntimeServiceImpl(Runtime& runtime, nlohmann::json effective_config)
      : runtime_(runtime), effective_config_(std::move(effective_config)) {}

  // Where Exec, Attach and PortForward URLs lead; without it they are UNAVAILABLE.
  void set_streaming_server(streaming::StreamingServer* server) { streaming_ = server; }

  // streaming_rpcs.cc
  grpc::Status Exec(grpc::ServerContext* context, const runtime::v1::ExecRequest* request,
                    runtime::v1::ExecResponse* response) override;
  grpc::Status Attach(grpc::ServerContext* context, const runtime::v1::AttachRequest* request,
                      runtime::v1::AttachResponse* response) override;
  grpc::Status PortForward(grpc::ServerContext* context,
                           const runtime::v1::PortForwardRequest* request,
                           runtime::v1::PortForwardResponse* response) override;

  // runtime_info.cc
  grpc::Status Version(grpc::ServerContext* context, const runtime::v1::VersionRequest* request,
                       runtime::v1::VersionResponse* response) override;
  grpc::Status Status(grpc::ServerContext* context, const runtime::v1::StatusRequest* request,
                      runtime::v1::StatusResponse* response) override;
  grpc::Status RuntimeConfig(grpc::ServerContext* context,
                             const runtime::v1::RuntimeConfigRequest* request,
                             runtime::v1::RuntimeConfigResponse* response) override;
  grpc::Status UpdateRuntimeConfig(grpc::ServerContext* context,
                                   const runtime::v1::UpdateRuntimeConfigRequest* request,
                                   runtime::v1::UpdateRuntimeConfigResponse* response) override;

  // container.cc
  grpc::Status CreateContainer(grpc::ServerContext* context,
                               const runtime::v1::CreateContainerRequest* request,
                               runtime::v1::CreateContainerResponse* response) override;
  grpc::Status StartContainer(grpc::ServerContext* context,
                              const runtime::v1::StartContainerRequest* request,
                              runtime::v1::StartContainerResponse* response) override;
  grpc::Status StopContainer(grpc::ServerContext* context,
                             const runtime::v1::StopContainerRequest* request,
                             runtime::v1::StopContainerResponse* response) override;
  grpc::Status RemoveContainer(grpc::ServerContext* context,
                               const runtime::v1::RemoveContainerRequest* request,
                               runtime::v1::RemoveContainerResponse* response) override;
  grpc::Status ContainerStatus(grpc::ServerContext* context,
                               const runtime::v1::ContainerStatusRequest* request,
                               runtime::v1::ContainerStatusResponse* response) override;
  grpc::Status ListContainers(grpc::ServerContext* context,
                              const runtime::v1::ListContainersRequest* request,
                              runtime::v1::ListContainersResponse* response) override;
  grpc::Status UpdateContainerResources(
      grpc::ServerContext* context, const runtime::v1::UpdateContainerResourcesRequest* request,
      runtime::v1::UpdateContainerResourcesResponse* response) override;
  grpc::Status ReopenContainerLog(grpc::ServerContext* context,
                                  const runtime::v1::ReopenContainerLogRequest* request,
                                  runtime::v1::ReopenContainerLogResponse* response) override;

  // container_stats.cc
  grpc::Status ContainerStats(grpc::ServerContext* context,
                              const runtime::v1::ContainerStatsRequest* request,
                              runtime::v1::ContainerStatsResponse* response) override;
  grpc::Status ListContainerStats(grpc::ServerContext* context,
                                  const runtime::v1::ListContainerStatsRequest* request,
                                  runtime::v1::ListContainerStatsResponse* response) override;

  // container_events.cc
  grpc::Status GetContainerEvents(
      grpc::ServerContext* context, const runtime::v1::GetEventsRequest* request,
      grpc::ServerWriter<runtime::v1::ContainerEventResponse>* writer) override;

  // exec_sync.cc
  grpc::Status ExecSync(grpc::ServerContext* context, const runtime::v1::ExecSyncRequest* request,
                        runtime::v1::ExecSyncResponse* response) override;

  // pod_sandbox.cc
  grpc::Status RunPodSandbox(grpc::ServerContext* context,
                             const runtime::v1::RunPodSandboxRequest* request,
                             runtime::v1::RunPodSandboxResponse* response) override;
  grpc::Status StopPodSandbox(grpc::ServerContext* context,
                              const runtime::v1::StopPodSandboxRequest* request,
                              runtime::v1::StopPodSandboxResponse* response) override;
  grpc::Status RemovePodSandbox(grpc::ServerContext* context,
                                const runtime::v1::RemovePodSandboxRequest* request,
                                runtime::v1::RemovePodSandboxResponse* response) override;
  grpc::Status PodSandboxStatus(grpc::ServerContext* context,
                                const runtime::v1::PodSandboxStatusRequest* request,
                                runtime::v1::PodSandboxStatusResponse* response) override;
  grpc::Status ListPodSandbox(grpc::ServerContext* context,
                              const runtime::v1::ListPodSandboxRequest* request,
                              runtime::v1::ListPodSandboxResponse* response) override;

 private:
  Runtime& runtime_;
  const nlohmann::json effective_config_;
  streaming::StreamingServer* streaming_ = nullptr;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_RUNTIME_SERVICE_H_
