#include "server/berth_service.h"

#include <unistd.h>

#include <fstream>

#include "server/version.h"

namespace berth::server {
namespace {

// Resident set size from /proc/self/statm (second field, in pages).
int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0, resident_pages = 0;
  statm >> size_pages >> resident_pages;
  return resident_pages * sysconf(_SC_PAGESIZE);
}

}  // namespace

grpc::Status BerthServiceImpl::DaemonInfo(grpc::ServerContext*, const berth::v1::DaemonInfoRequest*,
                                          berth::v1::DaemonInfoResponse* response) {
  response->set_version(kBerthVersion);
  response->set_pid(getpid());
  response->set_root_dir(runtime_.options().root_dir);
  response->set_state_dir(runtime_.options().state_dir);
  response->set_socket_path(socket_path_);
  response->set_store_schema_version(runtime_.store().SchemaVersion());
  response->set_started_at(started_at_ns_);
  response->set_rss_bytes(ResidentBytes());
  return grpc::Status::OK;
}

}  // namespace berth::server
