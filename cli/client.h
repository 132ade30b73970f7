// Client: a connection to a CRI endpoint (berth, or containerd to compare),
// with the CRI and berth stubs and a per-call deadline.
//
//   absl::StatusOr<Client> client = Client::Connect("unix:///run/berth/berth.sock", 10s);
//   grpc::ClientContext ctx; client->Prepare(ctx);
//   client->runtime().Version(&ctx, request, &response);
#ifndef BERTH_CLI_CLIENT_H_
#define BERTH_CLI_CLIENT_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "api/berth/v1/berth.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"

namespace berth::cli {

inline constexpr char kDefaultEndpoint[] = "unix:///run/berth/berth.sock";

class Client {
 public:
  // endpoint: "unix:///path", "unix:/path" or a bare socket path.
  static absl::StatusOr<Client> Connect(const std::string& endpoint,
                                        std::chrono::milliseconds timeout);

  // Sets the deadline on a context before each call: the client's timeout, plus
  // `allowance` for a call that may take that long on purpose (a stop's grace
  // period, an exec's timeout), as the kubelet adds them.
  void Prepare(grpc::ClientContext& context, std::chrono::seconds allowance = {}) const;

  runtime::v1::RuntimeService::Stub& runtime() { return *runtime_; }
  runtime::v1::ImageService::Stub& image() { return *image_; }
  berth::v1::Berth::Stub& berth() { return *berth_; }
  const std::string& target() const { return target_; }

 private:
  std::string target_;
  std::chrono::milliseconds timeout_{};
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<runtime::v1::RuntimeService::Stub> runtime_;
  std::unique_ptr<runtime::v1::ImageService::Stub> image_;
  std::unique_ptr<berth::v1::Berth::Stub> berth_;
};

// "unix:///run/x.sock" -> "unix:/run/x.sock" (gRPC's form); InvalidArgument otherwise.
absl::StatusOr<std::string> GrpcTarget(const std::string& endpoint);

}  // namespace berth::cli

#endif  // BERTH_CLI_CLIENT_H_
