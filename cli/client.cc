#include "cli/client.h"

#include <grpcpp/create_channel.h>

#include "runtime/base/strings.h"

namespace berth::cli {

absl::StatusOr<std::string> GrpcTarget(const std::string& endpoint) {
  std::string path;
  if (endpoint.rfind("unix://", 0) == 0) {
    path = endpoint.substr(7);
  } else if (endpoint.rfind("unix:", 0) == 0) {
    path = endpoint.substr(5);
  } else if (!endpoint.empty() && endpoint[0] == '/') {
    path = endpoint;
  } else {
    return absl::InvalidArgumentError(
        StrCat("endpoint \"", endpoint, "\" is not a unix socket (unix:///path/to/socket)"));
  }
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        StrCat("endpoint \"", endpoint, "\" needs an absolute socket path"));
  }
  return "unix:" + path;
}

absl::StatusOr<Client> Client::Connect(const std::string& endpoint,
                                       std::chrono::milliseconds timeout) {
  absl::StatusOr<std::string> target = GrpcTarget(endpoint);
  if (!target.ok()) return target.status();
  Client client;
  client.target_ = *target;
  client.timeout_ = timeout;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  client.channel_ = grpc::CreateCustomChannel(*target, grpc::InsecureChannelCredentials(), args);
  client.runtime_ = runtime::v1::RuntimeService::NewStub(client.channel_);
  client.image_ = runtime::v1::ImageService::NewStub(client.channel_);
  client.berth_ = berth::v1::Berth::NewStub(client.channel_);
  return client;
}

void Client::Prepare(grpc::ClientContext& context, std::chrono::seconds allowance) const {
  context.set_deadline(std::chrono::system_clock::now() + timeout_ + allowance);
}

}  // namespace berth::cli
