// The one place every RPC passes through: it logs method, duration and status
// code, and is where metrics hook in.
//
//   builder.experimental().SetInterceptorCreators(MakeRpcInterceptors(observers));
//
// It also finishes two kinds of statuses that gRPC produces without our code
// running, so that clients get CRI-style errors:
//   - a request whose bytes do not parse as its message gets INTERNAL from
//     gRPC; we answer InvalidArgument naming the method;
//   - an RPC berth does not serve yet gets an empty UNIMPLEMENTED from the
//     generated base class; we name the method.
#ifndef BERTH_SERVER_RPC_INTERCEPTOR_H_
#define BERTH_SERVER_RPC_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace berth::server {

struct RpcRecord {
  std::string method;  // "/runtime.v1.RuntimeService/Version"
  grpc::StatusCode code;
  std::string message;
  std::chrono::nanoseconds duration;
};

// Called once per finished RPC, on the RPC's thread. Must be cheap.
using RpcObserver = std::function<void(const RpcRecord&)>;

// Counts unary RPCs in flight so shutdown can wait for them. gRPC's own
// Shutdown(deadline) also waits for idle client connections (a kubelet keeps
// one open), which would make every shutdown last the whole grace period.
// Streaming RPCs are not counted: they end when the server shuts down.
class InFlightRpcs {
 public:
  void Begin();
  void End();
  // True when no counted RPC is running; false if the deadline passed first.
  bool WaitIdle(absl::Duration timeout);

 private:
  absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
MakeRpcInterceptors(std::vector<RpcObserver> observers, InFlightRpcs& in_flight);

// The observer that writes one log line per RPC (debug for OK, warn otherwise).
RpcObserver LogRpc();

}  // namespace berth::server

#endif  // BERTH_SERVER_RPC_INTERCEPTOR_H_
