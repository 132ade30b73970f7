// Daemon: one running berthd — directories, locks, store, core and the gRPC
// server on the unix socket — assembled from a DaemonConfig.
//
//   absl::StatusOr<std::unique_ptr<Daemon>> daemon = Daemon::Start(config);
//   ... wait for SIGTERM ...
//   (*daemon)->Shutdown();   // drains in-flight RPCs, removes the socket
#ifndef BERTH_SERVER_DAEMON_H_
#define BERTH_SERVER_DAEMON_H_

#include <grpcpp/server.h>

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/runtime.h"
#include "server/berth_service.h"
#include "server/config.h"
#include "server/image_service.h"
#include "server/rpc_interceptor.h"
#include "server/runtime_service.h"
#include "server/socket_guard.h"
#include "server/stream_backend.h"
#include "server/streaming/server.h"

namespace berth::server {

class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(const DaemonConfig& config);

  // Stops accepting RPCs, waits up to the configured grace for in-flight
  // ones, cancels the rest, and removes the socket.
  void Shutdown();

  ~Daemon();

 private:
  Daemon() = default;

  DaemonConfig config_;
  // Declaration order is teardown order in reverse: the server goes first,
  // the locks last.
  std::unique_ptr<PidLock> root_lock_;
  std::unique_ptr<SocketGuard> socket_guard_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<RuntimeStreamBackend> stream_backend_;
  std::unique_ptr<streaming::StreamingServer> streaming_;
  std::unique_ptr<RuntimeServiceImpl> runtime_service_;
  std::unique_ptr<ImageServiceImpl> image_service_;
  std::unique_ptr<BerthServiceImpl> berth_service_;
  InFlightRpcs in_flight_;
  std::unique_ptr<grpc::Server> server_;
  bool shut_down_ = false;
};

}  // namespace berth::server

#endif  // BERTH_SERVER_DAEMON_H_
