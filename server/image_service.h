// ImageServiceImpl: runtime.v1.ImageService on top of berth's ImageManager.
// One file per RPC group: image_pull.cc, image_list_status.cc,
// image_remove.cc, image_fs_info.cc.
#ifndef BERTH_SERVER_IMAGE_SERVICE_H_
#define BERTH_SERVER_IMAGE_SERVICE_H_

#include "api/runtime/v1/api.grpc.pb.h"
#include "runtime/runtime.h"

namespace berth::server {

class ImageServiceImpl final : public runtime::v1::ImageService::Service {
 public:
  explicit ImageServiceImpl(Runtime& runtime) : runtime_(runtime) {}

  grpc::Status PullImage(grpc::ServerContext* context, const runtime::v1::PullImageRequest* request,
                         runtime::v1::PullImageResponse* response) override;
  grpc::Status ListImages(grpc::ServerContext* context,
                          const runtime::v1::ListImagesRequest* request,
                          runtime::v1::ListImagesResponse* response) override;
  grpc::Status ImageStatus(grpc::ServerContext* context,
                           const runtime::v1::ImageStatusRequest* request,
                           runtime::v1::ImageStatusResponse* response) override;
  grpc::Status RemoveImage(grpc::ServerContext* context,
                           const runtime::v1::RemoveImageRequest* request,
                           runtime::v1::RemoveImageResponse* response) override;
  grpc::Status ImageFsInfo(grpc::ServerContext* context,
                           const runtime::v1::ImageFsInfoRequest* request,
                           runtime::v1::ImageFsInfoResponse* response) override;

 private:
  Runtime& runtime_;
};

// The CRI view of an image (exposed for tests).
runtime::v1::Image ToCriImage(const images::Image& image);

}  // namespace berth::server

#endif  // BERTH_SERVER_IMAGE_SERVICE_H_
