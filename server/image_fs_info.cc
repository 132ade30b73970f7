// ImageFsInfo: how much of the node's disk berth's images use. The kubelet
// bases image garbage collection on it, and every CRI client calls it first
// to check that the image service answers.
#include "server/grpc_status.h"
#include "server/image_service.h"

namespace berth::server {

namespace v1 = ::runtime::v1;

grpc::Status ImageServiceImpl::ImageFsInfo(grpc::ServerContext*, const v1::ImageFsInfoRequest*,
                                           v1::ImageFsInfoResponse* response) {
  absl::StatusOr<FilesystemUsage> usage = runtime_.ImageFsUsage();
  if (!usage.ok()) return ToGrpcStatus(usage.status());
  v1::FilesystemUsage* out = response->add_image_filesystems();
  out->set_timestamp(usage->timestamp_ns);
  out->mutable_fs_id()->set_mountpoint(usage->mountpoint);
  out->mutable_used_bytes()->set_value(usage->used_bytes);
  out->mutable_inodes_used()->set_value(usage->inodes_used);
  return grpc::Status::OK;
}

}  // namespace berth::server
