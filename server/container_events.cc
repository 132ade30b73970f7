// GetContainerEvents: the event bus (runtime/events) as a server stream, each
// event with its pod's status and the statuses of the pod's containers, as the
// kubelet's evented PLEG wants them.
#include "runtime/events/event_bus.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace berth::server {

namespace v1 = ::runtime::v1;

grpc::Status RuntimeServiceImpl::GetContainerEvents(
    grpc::ServerContext* context, const v1::GetEventsRequest*,
    grpc::ServerWriter<v1::ContainerEventResponse>* writer) {
  std::unique_ptr<events::EventBus::Subscription> subscription = runtime_.events().Subscribe();
  events::ContainerEvent event;
  while (!context->IsCancelled()) {
    // Wakes up now and then to notice a client that went away.
    events::NextResult next = subscription->Next(&event, absl::Milliseconds(500));
    if (next == events::NextResult::kClosed) {
      return grpc::Status(grpc::UNAVAILABLE, "berthd is shutting down");
    }
    if (next == events::NextResult::kTimeout) continue;
    v1::ContainerEventResponse response;
    response.set_container_id(event.container_id);
    response.set_container_event_type(static_cast<v1::ContainerEventType>(event.type));
    response.set_created_at(event.created_at_ns);
    v1::PodSandboxStatusRequest pod_request;
    pod_request.set_pod_sandbox_id(event.pod_id);
    v1::PodSandboxStatusResponse pod_status;
    if (PodSandboxStatus(nullptr, &pod_request, &pod_status).ok()) {
      *response.mutable_pod_sandbox_status() = pod_status.status();
    } else {
      // The pod may be gone by now (a DELETED event of RemovePodSandbox): name it still.
      response.mutable_pod_sandbox_status()->set_id(event.pod_id);
    }
    v1::ListContainersRequest list_request;
    list_request.mutable_filter()->set_pod_sandbox_id(event.pod_id);
    v1::ListContainersResponse listed;
    if (ListContainers(nullptr, &list_request, &listed).ok()) {
      for (const v1::Container& c : listed.containers()) {
        v1::ContainerStatusRequest status_request;
        status_request.set_container_id(c.id());
        v1::ContainerStatusResponse status;
        if (ContainerStatus(nullptr, &status_request, &status).ok()) {
          *response.add_containers_statuses() = status.status();
        }
      }
    }
    if (!writer->Write(response)) break;  // the client hung up
  }
  return grpc::Status::OK;
}

}  // namespace berth::server
