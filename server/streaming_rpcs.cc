// Exec, Attach and PortForward: each checks its request and the object it names now (so a
// bad request fails on the RPC, not later on the URL) and returns a one-time URL on the
// streaming server, which runs the session when the client connects (server/streaming).
#include "runtime/base/strings.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace berth::server {

namespace v1 = ::runtime::v1;

namespace {

// The kubelet streaming server's rules for exec and attach requests.
grpc::Status CheckStdio(bool tty, bool in, bool out, bool err) {
  if (tty && err) {
    return grpc::Status(grpc::INVALID_ARGUMENT,
                        "tty and stderr cannot both be true: a terminal merges the two");
  }
  if (!in && !out && !err) {
    return grpc::Status(grpc::INVALID_ARGUMENT, "one of stdin, stdout, or stderr must be set");
  }
  return grpc::Status::OK;
}

// A one-time URL for the request, into `url`.
grpc::Status SetUrl(streaming::StreamingServer& server, streaming::StreamRequest request,
                    std::string* url) {
  absl::StatusOr<std::string> made = server.Url(std::move(request));
  if (!made.ok()) return ToGrpcStatus(made.status());
  *url = *std::move(made);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status RuntimeServiceImpl::Exec(grpc::ServerContext*, const v1::ExecRequest* request,
                                      v1::ExecResponse* response) {
  if (streaming_ == nullptr) return grpc::Status(grpc::UNAVAILABLE, "no streaming server");
  if (request->container_id().empty()) {
    return grpc::Status(grpc::INVALID_ARGUMENT, "container_id is empty");
  }
  if (request->cmd().empty()) return grpc::Status(grpc::INVALID_ARGUMENT, "cmd is empty");
  grpc::Status checked =
      CheckStdio(request->tty(), request->stdin(), request->stdout(), request->stderr());
  if (!checked.ok()) return checked;
  // The process itself is prepared when the client connects: the container may change
  // until then.
  absl::StatusOr<containers::Container> target =
      runtime_.containers().FindRunning(request->container_id(), "exec in it");
  if (!target.ok()) return ToGrpcStatus(target.status());
  return SetUrl(*streaming_,
                streaming::ExecRequest{.container_id = target->id,
                                       .command = {request->cmd().begin(), request->cmd().end()},
                                       .tty = request->tty(),
                                       .stdin = request->stdin(),
                                       .stdout = request->stdout(),
                                       .stderr = request->stderr()},
                response->mutable_url());
}

grpc::Status RuntimeServiceImpl::Attach(grpc::ServerContext*, const v1::AttachRequest* request,
                                        v1::AttachResponse* response) {
  if (streaming_ == nullptr) return grpc::Status(grpc::UNAVAILABLE, "no streaming server");
  if (request->container_id().empty()) {
    return grpc::Status(grpc::INVALID_ARGUMENT, "container_id is empty");
  }
  grpc::Status checked =
      CheckStdio(request->tty(), request->stdin(), request->stdout(), request->stderr());
  if (!checked.ok()) return checked;
  absl::StatusOr<containers::ContainerManager::AttachTarget> target =
      runtime_.containers().PrepareAttach(request->container_id());
  if (!target.ok()) return ToGrpcStatus(target.status());
  if (request->stdin() && !target->stdin) {
    return grpc::Status(grpc::FAILED_PRECONDITION,
                        StrCat("container ", target->id,
                               " was created without stdin; cannot attach to its stdin"));
  }
  return SetUrl(*streaming_,
                streaming::AttachRequest{.container_id = target->id,
                                         .tty = request->tty(),
                                         .stdin = request->stdin(),
                                         .stdout = request->stdout(),
                                         .stderr = request->stderr()},
                response->mutable_url());
}

grpc::Status RuntimeServiceImpl::PortForward(grpc::ServerContext*,
                                             const v1::PortForwardRequest* request,
                                             v1::PortForwardResponse* response) {
  if (streaming_ == nullptr) return grpc::Status(grpc::UNAVAILABLE, "no streaming server");
  if (request->pod_sandbox_id().empty()) {
    return grpc::Status(grpc::INVALID_ARGUMENT, "pod_sandbox_id is empty");
  }
  for (int32_t port : request->port()) {
    if (port < 1 || port > 65535) {
      return grpc::Status(grpc::INVALID_ARGUMENT, StrCat("port ", port, " is not 1..65535"));
    }
  }
  absl::StatusOr<std::optional<sandbox::PodSandbox>> pod =
      runtime_.pods().Find(request->pod_sandbox_id());
  if (!pod.ok()) return ToGrpcStatus(pod.status());
  if (!pod->has_value()) {
    return grpc::Status(grpc::NOT_FOUND,
                        StrCat("pod sandbox ", request->pod_sandbox_id(), " not found"));
  }
  if ((*pod)->state != sandbox::PodState::kReady) {
    return grpc::Status(grpc::FAILED_PRECONDITION,
                        StrCat("pod sandbox ", (*pod)->id, " is not ready"));
  }
  return SetUrl(*streaming_, streaming::PortForwardRequest{.pod_id = (*pod)->id},
                response->mutable_url());
}

}  // namespace berth::server
