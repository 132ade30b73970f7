#include "runtime/network/cni_pod_network.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::network {
namespace {

std::string IpOf(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

// The loopback plugin reports lo's addresses; they are no address of the pod's.
bool IsLoopback(const std::string& ip) { return ip.rfind("127.", 0) == 0 || ip == "::1"; }

// The networks a pod asked for, in interface order; empty: none at all.
absl::StatusOr<std::vector<std::string>> RequestedNetworks(
    const std::map<std::string, std::string>& annotations, const std::string& default_name) {
  auto single = annotations.find(kNetworkAnnotation);
  auto several = annotations.find(kNetworksAnnotation);
  if (single != annotations.end() && several != annotations.end()) {
    return absl::InvalidArgumentError(StrCat("annotations ", kNetworkAnnotation, " and ",
                                             kNetworksAnnotation, " exclude each other"));
  }
  if (single != annotations.end()) {
    if (single->second == "none") return std::vector<std::string>{};
    if (single->second == "host") {
      return absl::InvalidArgumentError(StrCat(
          kNetworkAnnotation, ": host: use the pod's network namespace mode NODE instead"));
    }
    return std::vector<std::string>{single->second};
  }
  if (several != annotations.end()) {
    std::vector<std::string> names;
    for (absl::string_view name : absl::StrSplit(several->second, ',', absl::SkipWhitespace())) {
      names.emplace_back(name.data(), name.size());
    }
    if (names.empty()) return absl::InvalidArgumentError(StrCat(kNetworksAnnotation, " is empty"));
    return names;
  }
  if (default_name.empty()) {
    return absl::FailedPreconditionError("no CNI network is configured");
  }
  return std::vector<std::string>{default_name};
}

}  // namespace

std::string DefaultBridgeConflist(const std::string& ipam_dir, bool berth_plugins) {
  const char* bridge = berth_plugins ? "berth-bridge" : "bridge";
  const char* ipam = berth_plugins ? "berth-host-local" : "host-local";
  const char* portmap = berth_plugins ? "berth-portmap" : "portmap";
  nlohmann::json conflist = {
      {"cniVersion", "1.0.0"},
      {"name", "bridge"},
      {"plugins",
       {{{"type", bridge},
         {"bridge", "berth0"},
         {"isGateway", true},
         {"ipMasq", true},
         {"hairpinMode", true},
         {"ipam",
          {{"type", ipam},
           {"ranges", {{{{"subnet", "10.88.0.0/16"}}}}},
           {"routes", {{{"dst", "0.0.0.0/0"}}}},
           {"dataDir", ipam_dir}}}},
        {{"type", portmap}, {"capabilities", {{"portMappings", true}}}}}}};
  if (berth_plugins) {
    // berth's plugins speak CNI 1.1: STATUS feeds NetworkReady and GC runs at start-up.
    conflist["cniVersions"] = {"1.0.0", "1.1.0"};
    conflist["plugins"].push_back({{"type", "berth-loopback"}});
  }
  return conflist.dump(2) + "\n";
}

absl::StatusOr<std::unique_ptr<CniPodNetwork>> CniPodNetwork::Create(
    CniPodNetworkOptions options) {
  std::unique_ptr<CniPodNetwork> network(new CniPodNetwork(std::move(options)));
  const CniPodNetworkOptions& o = network->options_;
  std::error_code ec;
  for (const std::string& dir : {o.conf_dir, o.state_dir, o.state_dir + "/ipam"}) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(StrCat("create ", dir, ": ", ec.message()));
  }
  bool empty = std::filesystem::is_empty(o.conf_dir, ec);
  if (!ec && empty) {
    // Like Docker's bridge: a node works without any network set up by hand.
    const std::string path = o.conf_dir + "/10-berth-bridge.conflist";
    std::ofstream out(path + ".tmp");
    bool berth_plugins = false;
    for (const std::string& dir : o.bin_dirs) {
      berth_plugins = berth_plugins || access((dir + "/berth-bridge").c_str(), X_OK) == 0;
    }
    out << DefaultBridgeConflist(o.state_dir + "/ipam", berth_plugins);
    out.close();
    if (!out || rename((path + ".tmp").c_str(), path.c_str()) != 0) {
      return absl::InternalError(StrCat("write the default network to ", path));
    }
  }
  RETURN_IF_ERROR(network->Load());
  return network;
}

absl::Status CniPodNetwork::Load() {
  cni::LoadedConfigs loaded = cni::LoadConfigDir(options_.conf_dir);
  networks_.clear();
  load_errors_ = loaded.errors;
  for (cni::NetworkConfig& config : loaded.networks) {
    networks_.push_back(std::make_unique<cni::Network>(
        std::move(config),
        cni::CniOptions{.bin_dirs = options_.bin_dirs, .cache_dir = options_.state_dir}));
  }
  return absl::OkStatus();
}

cni::Network* CniPodNetwork::Find(const std::string& name) {
  for (const std::unique_ptr<cni::Network>& n : networks_) {
    if (n->name() == name) return n.get();
  }
  return nullptr;
}

std::vector<std::string> CniPodNetwork::NetworkNames() {
  std::vector<std::string> names;
  for (const std::unique_ptr<cni::Network>& n : networks_) names.push_back(n->name());
  return names;
}

absl::StatusOr<std::vector<std::string>> CniPodNetwork::Attach(
    const sandbox::NetworkAttachRequest& request) {
  ASSIGN_OR_RETURN(
      std::vector<std::string> wanted,
      RequestedNetworks(request.annotations, networks_.empty() ? "" : networks_[0]->name()));
  std::vector<std::string> ips;
  for (size_t i = 0; i < wanted.size(); ++i) {
    cni::Network* network = Find(wanted[i]);
    if (network == nullptr) {
      return absl::NotFoundError(StrCat("network \"", wanted[i], "\" is not configured in ",
                                        options_.conf_dir));
    }
    cni::Attachment attachment{
        .container_id = request.pod_id,
        .netns = request.netns,
        .ifname = StrCat("eth", i),
        .args = {{"IgnoreUnknown", "1"},
                 {"K8S_POD_NAMESPACE", request.pod_namespace},
                 {"K8S_POD_NAME", request.pod_name},
                 {"K8S_POD_INFRA_CONTAINER_ID", request.pod_id},
                 {"K8S_POD_UID", request.pod_uid}}};
    // Port mappings go to the first network only: a host port can forward to one place.
    if (i == 0) {
      for (const container::PortMapping& p : request.port_mappings) {
        if (p.host_port <= 0) continue;  // nothing to publish without a host port
        static const char* const kProtocols[] = {"tcp", "udp", "sctp"};
        attachment.runtime_config.port_mappings.push_back(
            {.host_port = p.host_port,
             .container_port = p.container_port,
             .protocol = kProtocols[static_cast<int>(p.protocol)],
             .host_ip = p.host_ip});
      }
    }
    if (!request.cgroup_parent.empty()) {
      attachment.runtime_config.cgroup_path = request.cgroup_parent;
    }
    // The pod's DNS for plugins that declare the "dns" capability (berth also writes
    // it into the pod's resolv.conf itself).
    if (!request.dns.servers.empty() || !request.dns.searches.empty()) {
      attachment.runtime_config.dns = cni::Dns{.nameservers = request.dns.servers,
                                               .search = request.dns.searches,
                                               .options = request.dns.options};
    }
    absl::StatusOr<cni::Result> result = network->Add(attachment);
    if (!result.ok()) {
      return absl::Status(result.status().code(), StrCat("attach pod ", request.pod_id,
                                                         " to network ", wanted[i], ": ",
                                                         result.status().message()));
    }
    for (const cni::IpConfig& ip : result->ips) {
      if (!IsLoopback(IpOf(ip.address))) ips.push_back(IpOf(ip.address));
    }
  }
  return ips;
}

absl::Status CniPodNetwork::Detach(const std::string& pod_id, const std::string& netns) {
  // Whatever is cached for the pod, on any network (it may have been attached
  // before a restart, with annotations this process never saw).
  for (const std::unique_ptr<cni::Network>& network : networks_) {
    ASSIGN_OR_RETURN(std::vector<cni::Attachment> cached, network->CachedAttachments());
    for (cni::Attachment& attachment : cached) {
      if (attachment.container_id != pod_id) continue;
      attachment.netns = access(netns.c_str(), F_OK) == 0 ? netns : "";
      absl::Status deleted = network->Del(attachment);
      if (!deleted.ok()) {
        return absl::Status(deleted.code(), StrCat("detach pod ", pod_id, " from network ",
                                                   network->name(), ": ", deleted.message()));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CniPodNetwork::NetworkView>> CniPodNetwork::Describe() {
  std::vector<NetworkView> views;
  for (const std::unique_ptr<cni::Network>& network : networks_) {
    ASSIGN_OR_RETURN(std::vector<cni::Attachment> attachments, network->CachedAttachments());
    views.push_back({network->config(), std::move(attachments)});
  }
  return views;
}

absl::Status CniPodNetwork::GarbageCollect(const std::vector<std::string>& live_pod_ids) {
  const std::set<std::string> live(live_pod_ids.begin(), live_pod_ids.end());
  std::string errors;
  for (const std::unique_ptr<cni::Network>& network : networks_) {
    absl::StatusOr<std::vector<cni::Attachment>> cached = network->CachedAttachments();
    if (!cached.ok()) {
      errors += StrCat(errors.empty() ? "" : "; ", network->name(), ": ", cached.status().message());
      continue;
    }
    std::vector<cni::Attachment> valid;
    for (cni::Attachment& attachment : *cached) {
      if (live.count(attachment.container_id)) valid.push_back(std::move(attachment));
    }
    absl::Status collected = network->GarbageCollect(valid);
    if (!collected.ok()) {
      errors += StrCat(errors.empty() ? "" : "; ", network->name(), ": ", collected.message());
    }
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InternalError(StrCat("CNI garbage collection: ", errors));
}

absl::Status CniPodNetwork::Ready() {
  if (networks_.empty()) {
    std::string why = StrCat("no CNI network configuration in ", options_.conf_dir);
    for (const std::string& error : load_errors_) why += "; " + error;
    return absl::FailedPreconditionError(why);
  }
  absl::Status status = networks_[0]->Status();
  if (!status.ok()) {
    return absl::Status(status.code(), StrCat("default network ", networks_[0]->name(), ": ",
                                              status.message()));
  }
  return absl::OkStatus();
}

}  // namespace berth::network
