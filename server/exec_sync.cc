// ExecSync: a command run to completion in a running container, its stdout
// and stderr returned apart (the kubelet's exec probes).
#include "absl/time/time.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace berth::server {

namespace v1 = ::runtime::v1;

grpc::Status RuntimeServiceImpl::ExecSync(grpc::ServerContext*, const v1::ExecSyncRequest* request,
                                          v1::ExecSyncResponse* response) {
  if (request->cmd().empty()) return grpc::Status(grpc::INVALID_ARGUMENT, "cmd is empty");
  if (request->timeout() < 0) {
    return grpc::Status(grpc::INVALID_ARGUMENT, "timeout must not be negative");
  }
  // 0: no timeout, as the CRI says.
  absl::Duration timeout = absl::Seconds(request->timeout());
  absl::StatusOr<containers::ExecSyncResult> result = runtime_.containers().ExecSync(
      request->container_id(), {request->cmd().begin(), request->cmd().end()}, timeout);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_stdout(std::move(result->out));
  response->set_stderr(std::move(result->err));
  response->set_exit_code(result->exit_code);
  return grpc::Status::OK;
}

}  // namespace berth::server
