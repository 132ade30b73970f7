// ContainerStats and ListContainerStats: cgroup CPU and memory figures and the
// writable layer's disk use (runtime/stats, ContainerManager::Stats).
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace berth::server {
namespace {

namespace v1 = ::runtime::v1;

void FillStats(const containers::ContainerStats& in, const std::string& mountpoint,
               v1::ContainerStats* out) {
  const containers::Container& c = in.container;
  v1::ContainerAttributes* attributes = out->mutable_attributes();
  attributes->set_id(c.id);
  attributes->mutable_metadata()->set_name(c.name);
  attributes->mutable_metadata()->set_attempt(c.attempt);
  attributes->mutable_labels()->insert(c.labels.begin(), c.labels.end());
  attributes->mutable_annotations()->insert(c.annotations.begin(), c.annotations.end());

  const stats::CgroupStats& cgroup = in.cgroup;
  v1::CpuUsage* cpu = out->mutable_cpu();
  cpu->set_timestamp(in.timestamp_ns);
  cpu->mutable_usage_core_nano_seconds()->set_value(cgroup.cpu_usage_ns);
  cpu->mutable_usage_nano_cores()->set_value(in.cpu_nano_cores);

  v1::MemoryUsage* memory = out->mutable_memory();
  memory->set_timestamp(in.timestamp_ns);
  memory->mutable_working_set_bytes()->set_value(cgroup.memory_working_set_bytes);
  if (cgroup.memory_available_bytes.has_value()) {
    memory->mutable_available_bytes()->set_value(*cgroup.memory_available_bytes);
  }
  memory->mutable_usage_bytes()->set_value(cgroup.memory_usage_bytes);
  memory->mutable_rss_bytes()->set_value(cgroup.memory_rss_bytes);
  memory->mutable_page_faults()->set_value(cgroup.page_faults);
  memory->mutable_major_page_faults()->set_value(cgroup.major_page_faults);

  v1::FilesystemUsage* layer = out->mutable_writable_layer();
  layer->set_timestamp(in.timestamp_ns);
  layer->mutable_fs_id()->set_mountpoint(mountpoint);
  layer->mutable_used_bytes()->set_value(in.writable_layer.bytes);
  layer->mutable_inodes_used()->set_value(in.writable_layer.inodes);
}

}  // namespace

grpc::Status RuntimeServiceImpl::ContainerStats(grpc::ServerContext*,
                                                const v1::ContainerStatsRequest* request,
                                                v1::ContainerStatsResponse* response) {
  absl::StatusOr<containers::ContainerStats> stats =
      runtime_.containers().Stats(request->container_id());
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  FillStats(*stats, runtime_.SnapshotterDir(), response->mutable_stats());
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::ListContainerStats(grpc::ServerContext*,
                                                    const v1::ListContainerStatsRequest* request,
                                                    v1::ListContainerStatsResponse* response) {
  containers::ContainerFilter filter{.id = request->filter().id(),
                                     .pod_id = request->filter().pod_sandbox_id()};
  filter.labels = {request->filter().label_selector().begin(),
                   request->filter().label_selector().end()};
  absl::StatusOr<std::vector<containers::ContainerStats>> list =
      runtime_.containers().ListStats(filter);
  if (!list.ok()) {
    // A prefix that matches nothing lists nothing, as ListContainers does.
    if (absl::IsNotFound(list.status())) return grpc::Status::OK;
    return ToGrpcStatus(list.status());
  }
  for (const containers::ContainerStats& stats : *list) {
    FillStats(stats, runtime_.SnapshotterDir(), response->add_stats());
  }
  return grpc::Status::OK;
}

}  // namespace berth::server
