// RemoveImage: by id (the whole image) or by name (that name; the image goes
// with its last tag). Storage is reclaimed at once.
#include <spdlog/spdlog.h>

#include "server/grpc_status.h"
#include "server/image_service.h"

namespace berth::server {

namespace v1 = ::runtime::v1;

grpc::Status ImageServiceImpl::RemoveImage(grpc::ServerContext*,
                                           const v1::RemoveImageRequest* request,
                                           v1::RemoveImageResponse*) {
  const std::string& ref = request->image().image();
  if (ref.empty()) return grpc::Status(grpc::INVALID_ARGUMENT, "image reference is empty");
  absl::Status removed = runtime_.images().Remove(ref);
  if (!removed.ok()) return ToGrpcStatus(removed);
  // The image is gone either way; a failed collection is retried by the next one.
  if (absl::Status gc = runtime_.images().CollectGarbage(); !gc.ok()) {
    spdlog::warn("event=image_gc_failed error=\"{}\"", std::string(gc.message()));
  }
  return grpc::Status::OK;
}

}  // namespace berth::server
