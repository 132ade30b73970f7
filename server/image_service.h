// ImageServiceImpl: runtime.v1.ImageService on top of the berth core.
//
// ImageFsInfo is served now; the pull, list, status and remove RPCs answer
// UNIMPLEMENTED (named by the RPC interceptor) until images land.
#ifndef BERTH_SERVER_IMAGE_SERVICE_H_
#define BERTH_SERVER_IMAGE_SERVICE_H_

#include "api/runtime/v1/api.grpc.pb.h"
#include "runtime/runtime.h"

namespace berth::server {

class ImageServiceImpl final : public runtime::v1::ImageService::Service {
 public:
  explicit ImageServiceImpl(Runtime& runtime) : runtime_(runtime) {}

  grpc::Status ImageFsInfo(grpc::ServerContext* context,
                           const runtime::v1::ImageFsInfoRequest* request,
                           runtime::v1::ImageFsInfoResponse* response) override;

 private:
  Runtime& runtime_;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_IMAGE_SERVICE_H_
