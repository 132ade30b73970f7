#include "server/daemon.h"

#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>

#include "runtime/base/ids.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/store/sqlite_store.h"
#include "server/rpc_interceptor.h"
#include "server/version.h"

namespace berth::server {
namespace {

// CRI messages such as ListContainers on a busy node exceed gRPC's 4 MiB
// default; containerd and CRI-O allow 16 MiB.
constexpr int kMaxMessageBytes = 16 << 20;

absl::Status MakeDir(const std::string& path, const char* what) {
  std::error_code ec;
  bool created = std::filesystem::create_directories(path, ec);
  if (ec)
    return absl::PermissionDeniedError(StrCat("create ", what, " ", path, ": ", ec.message()));
  // Only root may list the directories berth makes: they hold every pod's
  // data. A directory the operator made is left as it is.
  if (created) chmod(path.c_str(), 0711);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const DaemonConfig& config) {
  RETURN_IF_ERROR(ValidateConfig(config));
  std::unique_ptr<Daemon> d(new Daemon());
  d->config_ = config;

  RETURN_IF_ERROR(MakeDir(config.root_dir, "root directory"));
  RETURN_IF_ERROR(MakeDir(config.state_dir, "state directory"));
  RETURN_IF_ERROR(
      MakeDir(std::filesystem::path(config.socket_path).parent_path(), "socket directory"));

  // Two daemons on one root would corrupt each other's state even with
  // different sockets.
  ASSIGN_OR_RETURN(d->root_lock_,
                   PidLock::Acquire(config.root_dir + "/berthd.lock", "root " + config.root_dir));
  ASSIGN_OR_RETURN(d->socket_guard_, SocketGuard::Acquire(config.socket_path));
  if (d->socket_guard_->removed_stale_socket()) {
    spdlog::warn("event=stale_socket_removed socket={}", config.socket_path);
  }

  ASSIGN_OR_RETURN(store::SyncMode sync, store::ParseSyncMode(config.store_sync));
  ASSIGN_OR_RETURN(store::StorePtr store,
                   store::SqliteStore::Open({.path = config.root_dir + "/berth.db", .sync = sync}));
  spdlog::info("event=store_opened path={}/berth.db schema_version={}", config.root_dir,
               store->SchemaVersion());

  RuntimeOptions options{.root_dir = config.root_dir,
                         .state_dir = config.state_dir,
                         .default_handler = config.default_runtime_handler,
                         .registry = config.registry,
                         .cni_conf_dir = config.cni_conf_dir,
                         .cni_bin_dirs = config.cni_bin_dirs};
  for (auto& [name, handler] : d->config_.runtime_handlers) {
    // Resolved here so that Status(verbose) shows where state really goes.
    if (handler.root.empty()) handler.root = StrCat(config.state_dir, "/runtimes/", name);
    options.handlers[name] = {.name = name, .binary = handler.binary, .root = handler.root};
  }
  ASSIGN_OR_RETURN(d->runtime_, Runtime::Create(std::move(options), std::move(store)));

  d->stream_backend_ = std::make_unique<RuntimeStreamBackend>(*d->runtime_);
  ASSIGN_OR_RETURN(
      d->streaming_,
      streaming::StreamingServer::Start(
          {.address = config.streaming_address,
           .port = static_cast<uint16_t>(config.streaming_port),
           .token_ttl = absl::Seconds(config.stream_token_ttl_seconds),
           .idle_timeout = absl::Seconds(config.stream_idle_timeout_seconds),
           .max_sessions = static_cast<size_t>(config.max_streaming_sessions)},
          *d->stream_backend_));
  spdlog::info("event=streaming_serving url={}", d->streaming_->base_url());

  d->runtime_service_ = std::make_unique<RuntimeServiceImpl>(*d->runtime_, ToJson(d->config_));
  d->runtime_service_->set_streaming_server(d->streaming_.get());
  d->image_service_ = std::make_unique<ImageServiceImpl>(*d->runtime_);
  d->berth_service_ =
      std::make_unique<BerthServiceImpl>(*d->runtime_, config.socket_path, NowNanos());

  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + config.socket_path, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(d->runtime_service_.get());
  builder.RegisterService(d->image_service_.get());
  builder.RegisterService(d->berth_service_.get());
  builder.experimental().SetInterceptorCreators(MakeRpcInterceptors({LogRpc()}, d->in_flight_));

  // The socket must never be reachable with looser permissions than 0660,
  // not even between bind() and chmod().
  mode_t old_umask = umask(0117);
  d->server_ = builder.BuildAndStart();
  umask(old_umask);
  if (d->server_ == nullptr) {
    return absl::UnavailableError(
        StrCat("cannot serve gRPC on unix:", config.socket_path, " (see the gRPC error above)"));
  }
  chmod(config.socket_path.c_str(), 0660);
  spdlog::info("event=serving socket={} root={} state={} version={}", config.socket_path,
               config.root_dir, config.state_dir, kBerthVersion);
  return d;
}

void Daemon::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  spdlog::info("event=shutdown_started grace_seconds={}", config_.shutdown_grace_seconds);
  // Event streams never end on their own: end them so that they do not hold up the drain.
  runtime_->events().Close();
  if (!in_flight_.WaitIdle(absl::Seconds(config_.shutdown_grace_seconds))) {
    spdlog::warn("event=shutdown_grace_expired cancelling=in_flight_rpcs");
  }
  // Nothing is left to wait for: stop accepting, cancel streams, and do not
  // wait for clients to hang up their idle connections.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  // Streaming sessions end with the daemon: exec'd processes are killed, attachments end.
  if (streaming_) streaming_->Stop();
  spdlog::info("event=shutdown_done");
}

Daemon::~Daemon() { Shutdown(); }

}  // namespace berth::server
