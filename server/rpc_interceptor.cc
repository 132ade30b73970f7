#include "server/rpc_interceptor.h"

#include <spdlog/spdlog.h>

namespace berth::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK:
      return "OK";
    case grpc::CANCELLED:
      return "Canceled";
    case grpc::UNKNOWN:
      return "Unknown";
    case grpc::INVALID_ARGUMENT:
      return "InvalidArgument";
    case grpc::DEADLINE_EXCEEDED:
      return "DeadlineExceeded";
    case grpc::NOT_FOUND:
      return "NotFound";
    case grpc::ALREADY_EXISTS:
      return "AlreadyExists";
    case grpc::PERMISSION_DENIED:
      return "PermissionDenied";
    case grpc::RESOURCE_EXHAUSTED:
      return "ResourceExhausted";
    case grpc::FAILED_PRECONDITION:
      return "FailedPrecondition";
    case grpc::ABORTED:
      return "Aborted";
    case grpc::OUT_OF_RANGE:
      return "OutOfRange";
    case grpc::UNIMPLEMENTED:
      return "Unimplemented";
    case grpc::INTERNAL:
      return "Internal";
    case grpc::UNAVAILABLE:
      return "Unavailable";
    case grpc::DATA_LOSS:
      return "DataLoss";
    case grpc::UNAUTHENTICATED:
      return "Unauthenticated";
    default:
      return "Code";
  }
}

class RpcInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(std::string method, const std::vector<RpcObserver>& observers,
                 InFlightRpcs* in_flight)
      : method_(std::move(method)),
        observers_(observers),
        in_flight_(in_flight),
        start_(std::chrono::steady_clock::now()) {
    if (in_flight_) in_flight_->Begin();
  }
  ~RpcInterceptor() override {
    if (in_flight_) in_flight_->End();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = Finish(methods->GetSendStatus());
      methods->ModifySendStatus(status);
      RpcRecord record{method_, status.error_code(), status.error_message(),
                       std::chrono::steady_clock::now() - start_};
      for (const RpcObserver& observe : observers_) observe(record);
    }
    methods->Proceed();
  }

 private:
  grpc::Status Finish(const grpc::Status& status) const {
    // gRPC's own parse failure: proto3 messages report no missing fields, so
    // the message is empty, or "No payload" when the body was absent.
    if (status.error_code() == grpc::INTERNAL &&
        (status.error_message().empty() || status.error_message() == "No payload")) {
      return grpc::Status(grpc::INVALID_ARGUMENT, "malformed request: the body of " + method_ +
                                                      " is not a valid protobuf message");
    }
    if (status.error_code() == grpc::UNIMPLEMENTED && status.error_message().empty()) {
      return grpc::Status(grpc::UNIMPLEMENTED, method_ + " is not implemented by berth yet");
    }
    return status;
  }

  const std::string method_;
  const std::vector<RpcObserver>& observers_;
  InFlightRpcs* const in_flight_;  // null for streaming RPCs
  const std::chrono::steady_clock::time_point start_;
};

class RpcInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  RpcInterceptorFactory(std::vector<RpcObserver> observers, InFlightRpcs& in_flight)
      : observers_(std::move(observers)), in_flight_(in_flight) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    bool unary = info->type() == grpc::experimental::ServerRpcInfo::Type::UNARY;
    return new RpcInterceptor(info->method(), observers_, unary ? &in_flight_ : nullptr);
  }

 private:
  const std::vector<RpcObserver> observers_;
  InFlightRpcs& in_flight_;
};

}  // namespace

void InFlightRpcs::Begin() {
  absl::MutexLock lock(&mu_);
  ++count_;
}

void InFlightRpcs::End() {
  absl::MutexLock lock(&mu_);
  --count_;
}

bool InFlightRpcs::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
MakeRpcInterceptors(std::vector<RpcObserver> observers, InFlightRpcs& in_flight) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<RpcInterceptorFactory>(std::move(observers), in_flight));
  return out;
}

RpcObserver LogRpc() {
  return [](const RpcRecord& rpc) {
    double ms = std::chrono::duration<double, std::milli>(rpc.duration).count();
    if (rpc.code == grpc::OK) {
      spdlog::debug("event=rpc method={} code=OK duration_ms={:.3f}", rpc.method, ms);
    } else {
      spdlog::warn("event=rpc method={} code={} duration_ms={:.3f} error=\"{}\"", rpc.method,
                   CodeName(rpc.code), ms, rpc.message);
    }
  };
}

}  // namespace berth::server
