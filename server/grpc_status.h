// ToGrpcStatus: the core's absl::Status as the gRPC status a CRI client sees.
//
//   return ToGrpcStatus(runtime_.SetPodCidr(cidr));
//
// The canonical codes are the same numbers in both, so NotFound,
// InvalidArgument, AlreadyExists and FailedPrecondition pass through as the
// CRI conventions expect.
#ifndef BERTH_SERVER_GRPC_STATUS_H_
#define BERTH_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace berth::server {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace berth::server

#endif  // BERTH_SERVER_GRPC_STATUS_H_
