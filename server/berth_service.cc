#include "server/berth_service.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "nlohmann/json.hpp"

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

grpc::Status BerthServiceImpl::ListNetworks(grpc::ServerContext*,
                                            const berth::v1::ListNetworksRequest* request,
                                            berth::v1::ListNetworksResponse* response) {
  network::CniPodNetwork* networks = runtime_.network();
  if (networks == nullptr) {
    response->set_network_error(std::string(runtime_.network_error().message()));
    if (!request->name().empty()) {
      return grpc::Status(grpc::NOT_FOUND, "network \"" + request->name() + "\": CNI is unusable");
    }
    return grpc::Status::OK;
  }
  response->set_conf_dir(networks->conf_dir());
  for (const std::string& error : networks->load_errors()) response->add_load_errors(error);
  absl::StatusOr<std::vector<network::CniPodNetwork::NetworkView>> views = networks->Describe();
  if (!views.ok()) return ToGrpcStatus(views.status());
  // Pod names and addresses from the pod records: eth<i> has the pod's i-th address.
  absl::StatusOr<std::vector<sandbox::PodSandbox>> pods = runtime_.pods().List({});
  if (!pods.ok()) return ToGrpcStatus(pods.status());
  std::map<std::string, const sandbox::PodSandbox*> by_id;
  for (const sandbox::PodSandbox& pod : *pods) by_id[pod.id] = &pod;
  bool first = true;
  for (const network::CniPodNetwork::NetworkView& view : *views) {
    const bool is_default = first;
    first = false;
    if (!request->name().empty() && view.config.name != request->name()) continue;
    berth::v1::Network* out = response->add_networks();
    out->set_name(view.config.name);
    out->set_is_default(is_default);
    out->set_file(view.config.source_file);
    out->set_cni_version(view.config.cni_version);
    nlohmann::json plugins = nlohmann::json::array();
    for (const nlohmann::json& plugin : view.config.plugins) {
      out->add_plugins(plugin.value("type", ""));
      plugins.push_back(plugin);
    }
    nlohmann::json config = {{"name", view.config.name},
                             {"cniVersion", view.config.cni_version},
                             {"plugins", plugins}};
    if (!view.config.cni_versions.empty()) config["cniVersions"] = view.config.cni_versions;
    out->set_config_json(config.dump(2));
    for (const cni::Attachment& attachment : view.attachments) {
      berth::v1::NetworkAttachment* a = out->add_attachments();
      a->set_pod_sandbox_id(attachment.container_id);
      a->set_ifname(attachment.ifname);
      auto pod = by_id.find(attachment.container_id);
      if (pod == by_id.end()) continue;
      a->set_pod_name(pod->second->spec.name);
      a->set_pod_namespace(pod->second->spec.namespace_name);
      if (attachment.ifname.rfind("eth", 0) == 0) {
        size_t index = std::strtoul(attachment.ifname.c_str() + 3, nullptr, 10);
        if (index < pod->second->ips.size()) a->set_ip(pod->second->ips[index]);
      }
    }
  }
  if (!request->name().empty() && response->networks().empty()) {
    return grpc::Status(grpc::NOT_FOUND, "network \"" + request->name() + "\" is not configured in " +
                                             networks->conf_dir());
  }
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
