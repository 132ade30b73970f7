#include "server/berth_service.h"

#include <unistd.h>

#include <fstream>

#include "server/grpc_status.h"
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

grpc::Status BerthServiceImpl::ImportImage(
    grpc::ServerContext* context, grpc::ServerReader<berth::v1::ImportImageRequest>* reader,
    berth::v1::ImportImageResponse* response) {
  // The spool (and its file) goes when this returns, whatever happened: a
  // failed, cancelled or finished import leaves nothing behind.
  absl::StatusOr<std::unique_ptr<images::ImportSpool>> spool = runtime_.images().NewImportSpool();
  if (!spool.ok()) return ToGrpcStatus(spool.status());
  std::string name;
  bool first = true;
  berth::v1::ImportImageRequest request;
  while (reader->Read(&request)) {
    if (first) {
      name = request.name();
    } else if (!request.name().empty()) {
      return grpc::Status(grpc::INVALID_ARGUMENT,
                          "import: name is only accepted in the first message");
    }
    first = false;
    if (absl::Status written = (*spool)->Write(request.chunk()); !written.ok()) {
      return ToGrpcStatus(written);
    }
  }
  if (context->IsCancelled()) {
    return grpc::Status(grpc::CANCELLED, "import: the client cancelled the upload");
  }
  if ((*spool)->size() == 0) return grpc::Status(grpc::INVALID_ARGUMENT, "import: no archive sent");
  if (absl::Status closed = (*spool)->Close(); !closed.ok()) return ToGrpcStatus(closed);

  absl::StatusOr<std::vector<images::ImportedImage>> imported =
      runtime_.images().Import((*spool)->path(), name);
  if (!imported.ok()) return ToGrpcStatus(imported.status());
  for (const images::ImportedImage& image : *imported) {
    berth::v1::ImportedImage* out = response->add_images();
    out->set_id(image.id);
    for (const std::string& tag : image.repo_tags) out->add_repo_tags(tag);
    for (const std::string& digest : image.repo_digests) out->add_repo_digests(digest);
  }
  return grpc::Status::OK;
}

}  // namespace berth::server
