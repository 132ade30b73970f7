// ListImages and ImageStatus: the same CRI Image whichever name is used.
#include <charconv>

#include "nlohmann/json.hpp"
#include "server/grpc_status.h"
#include "server/image_service.h"

namespace berth::server {

namespace v1 = ::runtime::v1;

v1::Image ToCriImage(const images::Image& image) {
  v1::Image out;
  out.set_id(image.id);
  for (const std::string& tag : image.repo_tags) out.add_repo_tags(tag);
  for (const std::string& digest : image.repo_digests) out.add_repo_digests(digest);
  out.set_size(static_cast<uint64_t>(image.size));
  out.mutable_spec()->set_image(image.id);
  // USER is "uid", "uid:gid", "name" or "name:gid": a numeric user becomes
  // uid, a name becomes username (the kubelet checks runAsNonRoot with these).
  const std::string& user = image.config.user;
  std::string name = user.substr(0, user.find(':'));
  if (!name.empty()) {
    int64_t uid = 0;
    auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), uid);
    if (err == std::errc() && end == name.data() + name.size()) {
      out.mutable_uid()->set_value(uid);
    } else {
      out.set_username(name);
    }
  }
  return out;
}

grpc::Status ImageServiceImpl::ListImages(grpc::ServerContext*,
                                          const v1::ListImagesRequest* request,
                                          v1::ListImagesResponse* response) {
  absl::StatusOr<std::vector<images::Image>> list =
      runtime_.images().List(request->filter().image().image());
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (const images::Image& image : *list) *response->add_images() = ToCriImage(image);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::ImageStatus(grpc::ServerContext*,
                                           const v1::ImageStatusRequest* request,
                                           v1::ImageStatusResponse* response) {
  const std::string& ref = request->image().image();
  if (ref.empty()) return grpc::Status(grpc::INVALID_ARGUMENT, "image reference is empty");
  absl::StatusOr<std::optional<images::Image>> image = runtime_.images().Find(ref);
  if (!image.ok()) return ToGrpcStatus(image.status());
  // A missing image is an empty answer, not an error: that is how the
  // kubelet learns it must pull.
  if (!image->has_value()) return grpc::Status::OK;
  *response->mutable_image() = ToCriImage(**image);
  if (request->verbose()) {
    nlohmann::json info = {
        {"imageSpec", nlohmann::json::parse((*image)->config_json, nullptr, false)},
        {"chainID", (*image)->TopSnapshot()},
        {"manifestDigest", (*image)->manifest_digest},
    };
    (*response->mutable_info())["info"] = info.dump();
  }
  return grpc::Status::OK;
}

}  // namespace berth::server
