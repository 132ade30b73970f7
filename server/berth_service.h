// BerthServiceImpl: berth.v1.Berth, the extension API beside the CRI:
// DaemonInfo, and ImportImage (the upload is spooled to a file the image
// manager provides, then imported by the core).
#ifndef BERTH_SERVER_BERTH_SERVICE_H_
#define BERTH_SERVER_BERTH_SERVICE_H_

#include <cstdint>
#include <string>

#include "api/berth/v1/berth.grpc.pb.h"
#include "runtime/runtime.h"

namespace berth::server {

class BerthServiceImpl final : public berth::v1::Berth::Service {
 public:
  BerthServiceImpl(Runtime& runtime, std::string socket_path, int64_t started_at_ns)
      : runtime_(runtime), socket_path_(std::move(socket_path)), started_at_ns_(started_at_ns) {}

  grpc::Status DaemonInfo(grpc::ServerContext* context, const berth::v1::DaemonInfoRequest* request,
                          berth::v1::DaemonInfoResponse* response) override;

  grpc::Status ImportImage(grpc::ServerContext* context,
                           grpc::ServerReader<berth::v1::ImportImageRequest>* reader,
                           berth::v1::ImportImageResponse* response) override;

  grpc::Status ListNetworks(grpc::ServerContext* context,
                            const berth::v1::ListNetworksRequest* request,
                            berth::v1::ListNetworksResponse* response) override;

 private:
  Runtime& runtime_;
  const std::string socket_path_;
  const int64_t started_at_ns_;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_BERTH_SERVICE_H_
