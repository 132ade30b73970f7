#include "runtime/sandbox/sandbox_manager.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "runtime/base/crash_point.h"
#include "runtime/base/ids.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/sandbox/namespace_pins.h"

namespace berth::sandbox {
namespace {

using nlohmann::json;
using store::Kind;

constexpr char kCreating[] = "creating";
constexpr char kReady[] = "ready";
constexpr char kNotReady[] = "notready";

json ToJson(const container::PodSpec& spec) {
  json ports = json::array();
  for (const container::PortMapping& p : spec.port_mappings) {
    ports.push_back({{"protocol", static_cast<int>(p.protocol)},
                     {"container_port", p.container_port},
                     {"host_port", p.host_port},
                     {"host_ip", p.host_ip}});
  }
  const container::NamespaceOptions& ns = spec.security.namespace_options;
  return {{"name", spec.name},
          {"uid", spec.uid},
          {"namespace", spec.namespace_name},
          {"attempt", spec.attempt},
          {"runtime_handler", spec.runtime_handler},
          {"hostname", spec.hostname},
          {"log_directory", spec.log_directory},
          {"dns",
           {{"servers", spec.dns.servers},
            {"searches", spec.dns.searches},
            {"options", spec.dns.options}}},
          {"port_mappings", ports},
          {"labels", spec.labels},
          {"annotations", spec.annotations},
          {"cgroup_parent", spec.cgroup_parent},
          {"sysctls", spec.sysctls},
          {"privileged", spec.security.privileged},
          {"namespaces",
           {{"network", static_cast<int>(ns.network)},
            {"pid", static_cast<int>(ns.pid)},
            {"ipc", static_cast<int>(ns.ipc)},
            {"target_id", ns.target_id}}}};
}

container::PodSpec SpecFromJson(const json& j) {
  container::PodSpec spec;
  spec.name = j.value("name", "");
  spec.uid = j.value("uid", "");
  spec.namespace_name = j.value("namespace", "");
  spec.attempt = j.value("attempt", 0u);
  spec.runtime_handler = j.value("runtime_handler", "");
  spec.hostname = j.value("hostname", "");
  spec.log_directory = j.value("log_directory", "");
  if (j.contains("dns")) {
    spec.dns.servers = j["dns"].value("servers", std::vector<std::string>{});
    spec.dns.searches = j["dns"].value("searches", std::vector<std::string>{});
    spec.dns.options = j["dns"].value("options", std::vector<std::string>{});
  }
  for (const json& p : j.value("port_mappings", json::array())) {
    spec.port_mappings.push_back(
        {.protocol = static_cast<container::PortMapping::Protocol>(p.value("protocol", 0)),
         .container_port = p.value("container_port", 0),
         .host_port = p.value("host_port", 0),
         .host_ip = p.value("host_ip", "")});
  }
  spec.labels = j.value("labels", std::map<std::string, std::string>{});
  spec.annotations = j.value("annotations", std::map<std::string, std::string>{});
  spec.cgroup_parent = j.value("cgroup_parent", "");
  spec.sysctls = j.value("sysctls", std::map<std::string, std::string>{});
  spec.security.privileged = j.value("privileged", false);
  if (j.contains("namespaces")) {
    const json& ns = j["namespaces"];
    spec.security.namespace_options.network =
        static_cast<container::NamespaceMode>(ns.value("network", 0));
    spec.security.namespace_options.pid = static_cast<container::NamespaceMode>(ns.value("pid", 0));
    spec.security.namespace_options.ipc = static_cast<container::NamespaceMode>(ns.value("ipc", 0));
    spec.security.namespace_options.target_id = ns.value("target_id", "");
  }
  return spec;
}

PodSandbox FromRecord(const std::string& id, const json& doc, const std::string& pods_dir) {
  PodSandbox pod;
  pod.id = id;
  pod.spec = SpecFromJson(doc.value("spec", json::object()));
  pod.state = doc.value("state", "") == kReady ? PodState::kReady : PodState::kNotReady;
  pod.created_at_ns = doc.value("created_at", int64_t{0});
  pod.dir = StrCat(pods_dir, "/", id);
  pod.netns = doc.value("netns", "");
  pod.ipcns = doc.value("ipcns", "");
  pod.utsns = doc.value("utsns", "");
  pod.ips = doc.value("ips", std::vector<std::string>{});
  pod.infra_pid = doc.value("infra_pid", 0);
  if (pod.infra_pid > 0) pod.pidns = StrCat("/proc/", pod.infra_pid, "/ns/pid");
  return pod;
}

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  out.close();
  if (!out) return absl::InternalError(StrCat("write ", path));
  chmod(path.c_str(), 0644);
  return absl::OkStatus();
}

std::string ReadHostFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string NodeHostname() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

// /etc/hostname, /etc/hosts and /etc/resolv.conf for the pod's containers.
absl::Status WritePodFiles(const container::PodSpec& spec, const std::string& dir, bool host_net,
                           const std::vector<std::string>& ips) {
  std::string hostname = host_net || spec.hostname.empty() ? NodeHostname() : spec.hostname;
  RETURN_IF_ERROR(WriteFile(dir + "/hostname", hostname + "\n"));
  if (host_net) {
    RETURN_IF_ERROR(WriteFile(dir + "/hosts", ReadHostFile("/etc/hosts")));
  } else {
    RETURN_IF_ERROR(WriteFile(dir + "/hosts",
                              "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                              "fe00::0\tip6-localnet\nff02::1\tip6-allnodes\n"
                              "ff02::2\tip6-allrouters\n" +
                                  (ips.empty() ? std::string()
                                               : StrCat(ips[0], "\t", hostname, "\n"))));
  }
  const container::DnsConfig& dns = spec.dns;
  if (dns.servers.empty() && dns.searches.empty() && dns.options.empty()) {
    return WriteFile(dir + "/resolv.conf", ReadHostFile("/etc/resolv.conf"));
  }
  std::string resolv;
  for (const std::string& server : dns.servers) resolv += "nameserver " + server + "\n";
  if (!dns.searches.empty()) {
    resolv += "search";
    for (const std::string& s : dns.searches) resolv += " " + s;
    resolv += "\n";
  }
  if (!dns.options.empty()) {
    resolv += "options";
    for (const std::string& o : dns.options) resolv += " " + o;
    resolv += "\n";
  }
  return WriteFile(dir + "/resolv.conf", resolv);
}

bool Matches(const PodSandbox& pod, const PodFilter& filter) {
  if (filter.state.has_value() && pod.state != *filter.state) return false;
  for (const auto& [key, value] : filter.labels) {
    auto it = pod.spec.labels.find(key);
    if (it == pod.spec.labels.end() || it->second != value) return false;
  }
  return true;
}

absl::Status ValidateMetadata(const container::PodSpec& spec) {
  if (spec.name.empty()) return absl::InvalidArgumentError("pod metadata.name is empty");
  if (spec.uid.empty()) return absl::InvalidArgumentError("pod metadata.uid is empty");
  if (spec.namespace_name.empty()) {
    return absl::InvalidArgumentError("pod metadata.namespace is empty");
  }
  for (const std::string* part : {&spec.name, &spec.namespace_name, &spec.uid}) {
    if (part->find('/') != std::string::npos || part->find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(StrCat("pod metadata \"", *part, "\" contains '/'"));
    }
  }
  if (spec.security.namespace_options.network == container::NamespaceMode::kContainer ||
      spec.security.namespace_options.network == container::NamespaceMode::kTarget ||
      spec.security.namespace_options.ipc == container::NamespaceMode::kContainer ||
      spec.security.namespace_options.ipc == container::NamespaceMode::kTarget) {
    return absl::InvalidArgumentError("a pod's network and IPC namespaces are POD or NODE");
  }
  return absl::OkStatus();
}

}  // namespace

std::string PodName(const container::PodSpec& spec) {
  return StrCat(spec.name, "_", spec.namespace_name, "_", spec.uid, "_", spec.attempt);
}

absl::StatusOr<std::unique_ptr<SandboxManager>> SandboxManager::Create(
    store::Store& store, std::string pods_dir, std::set<std::string> handlers,
    PauseInfra* infra, PodNetwork* network) {
  std::error_code ec;
  std::filesystem::create_directories(pods_dir, ec);
  if (ec) return absl::InternalError(StrCat("create ", pods_dir, ": ", ec.message()));
  chmod(pods_dir.c_str(), 0700);
  return std::unique_ptr<SandboxManager>(
      new SandboxManager(store, std::move(pods_dir), std::move(handlers), infra, network));
}

absl::Status SandboxManager::Release(const std::string& dir) {
  if (infra_ != nullptr) {
    RETURN_IF_ERROR(infra_->Stop(std::filesystem::path(dir).filename(), dir));
  }
  if (network_ != nullptr) {
    // Before the namespace goes: plugins clean up best inside it.
    RETURN_IF_ERROR(network_->Detach(std::filesystem::path(dir).filename(), dir + "/ns/net"));
  }
  RETURN_IF_ERROR(UnpinNamespaces(dir + "/ns"));
  std::string shm = dir + "/shm";
  // Detach until nothing is mounted there (a crash could have left two).
  for (int i = 0; i < 8 && umount2(shm.c_str(), MNT_DETACH) == 0; ++i) {
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SandboxManager::Run(const container::PodSpec& spec) {
  RETURN_IF_ERROR(ValidateMetadata(spec));
  if (!handlers_.count(spec.runtime_handler)) {
    return absl::InvalidArgumentError(
        StrCat("runtime handler \"", spec.runtime_handler, "\" is not configured"));
  }
  const std::string name = PodName(spec);
  const std::string name_key = "pod/" + name;
  {
    absl::MutexLock lock(&mu_);
    // A retry of a call still in flight waits for it, then answers with its pod.
    auto not_creating = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !creating_.count(name); };
    mu_.Await(absl::Condition(&not_creating));
    std::optional<json> held;
    RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(held, tx.Get(Kind::kName, name_key));
      return absl::OkStatus();
    }));
    if (held.has_value()) {
      std::string existing = held->value("id", "");
      ASSIGN_OR_RETURN(std::optional<PodSandbox> pod, Find(existing));
      if (pod.has_value() && pod->state == PodState::kReady) return existing;
      return absl::AlreadyExistsError(StrCat("pod ", name, " already exists as ", existing,
                                             " and is not ready; remove it first"));
    }
    creating_.insert(name);
  }
  std::string id = NewObjectId();
  absl::StatusOr<std::string> made = Create(spec, id);
  absl::MutexLock lock(&mu_);
  creating_.erase(name);
  return made;
}

absl::StatusOr<std::string> SandboxManager::Create(const container::PodSpec& spec,
                                                   const std::string& id) {
  const std::string name_key = "pod/" + PodName(spec);
  const std::string dir = StrCat(pods_dir_, "/", id);
  const int64_t created_at = NowNanos();
  // First the record, so that a crash from here on is found by Recover().
  RETURN_IF_ERROR(store_.Update([&](store::Transaction& tx) -> absl::Status {
    RETURN_IF_ERROR(
        tx.Create(Kind::kPod, id,
                  {{"state", kCreating}, {"spec", ToJson(spec)}, {"created_at", created_at}}));
    RETURN_IF_ERROR(tx.Create(Kind::kName, name_key, {{"id", id}}));
    return tx.AddRef(Kind::kName, name_key, Kind::kPod, id);
  }));

  auto build = [&]() -> absl::StatusOr<json> {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(StrCat("create ", dir, ": ", ec.message()));
    chmod(dir.c_str(), 0711);
    const container::NamespaceOptions& ns = spec.security.namespace_options;
    bool host_net = ns.network == container::NamespaceMode::kNode;
    bool host_ipc = ns.ipc == container::NamespaceMode::kNode;
    NamespaceKinds kinds{.net = !host_net, .ipc = !host_ipc, .uts = !host_net};
    NamespacePins pins;
    if (kinds.net || kinds.ipc || kinds.uts) {
      ASSIGN_OR_RETURN(pins, PinNamespaces(dir + "/ns", kinds, spec.hostname));
    }
    CrashPoint("pod.pinned");
    std::vector<std::string> ips;
    if (!pins.net.empty() && network_ != nullptr) {
      ASSIGN_OR_RETURN(ips, network_->Attach({.pod_id = id,
                                              .netns = pins.net,
                                              .pod_name = spec.name,
                                              .pod_namespace = spec.namespace_name,
                                              .pod_uid = spec.uid,
                                              .port_mappings = spec.port_mappings,
                                              .dns = spec.dns,
                                              .annotations = spec.annotations,
                                              .cgroup_parent = spec.cgroup_parent}));
      CrashPoint("pod.network_attached");
    }
    if (!host_ipc) {
      // The pod's /dev/shm: shared by its containers, sized like Docker's default.
      std::string shm = dir + "/shm";
      std::filesystem::create_directories(shm, ec);
      if (mount("shm", shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=1777,size=65536k") != 0) {
        return absl::InternalError(StrCat("mount shm tmpfs on ", shm, ": ", strerror(errno)));
      }
    }
    RETURN_IF_ERROR(WritePodFiles(spec, dir, host_net, ips));
    json ready = {{"state", kReady},   {"spec", ToJson(spec)}, {"created_at", created_at},
                  {"netns", pins.net}, {"ipcns", pins.ipc},    {"utsns", pins.uts},
                  {"ips", ips}};
    if (ns.pid == container::NamespaceMode::kPod && infra_ != nullptr) {
      PodSandbox pod{.id = id,
                     .spec = spec,
                     .dir = dir,
                     .netns = pins.net,
                     .ipcns = pins.ipc,
                     .utsns = pins.uts};
      ASSIGN_OR_RETURN(int infra_pid, infra_->Start(pod));
      ready["infra_pid"] = infra_pid;
      CrashPoint("pod.infra_started");
    }
    return ready;
  };
  absl::StatusOr<json> ready = build();
  absl::Status status = ready.status();
  if (status.ok()) {
    status = store_.Update([&](store::Transaction& tx) { return tx.Put(Kind::kPod, id, *ready); });
  }
  if (!status.ok()) {
    // Undo in reverse; the record goes last so a crash here is still recovered.
    (void)Release(dir);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    (void)store_.Update([&](store::Transaction& tx) -> absl::Status {
      RETURN_IF_ERROR(tx.Delete(Kind::kName, name_key));
      return tx.Delete(Kind::kPod, id);
    });
    return absl::Status(status.code(), StrCat("run pod ", PodName(spec), ": ", status.message()));
  }
  return id;
}

absl::StatusOr<std::optional<std::string>> SandboxManager::ResolveId(
    const std::string& id_or_prefix) {
  return store::ResolveIdPrefix(store_, Kind::kPod, id_or_prefix, "pod sandbox");
}

absl::StatusOr<std::optional<PodSandbox>> SandboxManager::Find(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(id_or_prefix));
  if (!id.has_value()) return std::nullopt;
  std::optional<json> doc;
  RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(doc, tx.Get(Kind::kPod, *id));
    return absl::OkStatus();
  }));
  // A pod still being created is not visible yet.
  if (!doc.has_value() || doc->value("state", "") == kCreating) return std::nullopt;
  return FromRecord(*id, *doc, pods_dir_);
}

absl::StatusOr<std::vector<PodSandbox>> SandboxManager::List(const PodFilter& filter) {
  std::vector<store::Record> records;
  RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(records, tx.List(Kind::kPod, filter.id));
    return absl::OkStatus();
  }));
  std::vector<PodSandbox> pods;
  for (const store::Record& r : records) {
    if (r.doc.value("state", "") == kCreating) continue;
    PodSandbox pod = FromRecord(r.id, r.doc, pods_dir_);
    if (Matches(pod, filter)) pods.push_back(std::move(pod));
  }
  return pods;
}

absl::Status SandboxManager::Stop(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(std::optional<PodSandbox> pod, Find(id_or_prefix));
  if (!pod.has_value()) {
    return absl::NotFoundError(StrCat("pod sandbox ", id_or_prefix, " not found"));
  }
  if (pod->state == PodState::kNotReady) return absl::OkStatus();
  RETURN_IF_ERROR(Release(pod->dir));
  return store_.Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<json> doc, tx.Get(Kind::kPod, pod->id));
    if (!doc.has_value()) return absl::OkStatus();
    (*doc)["state"] = kNotReady;
    return tx.Put(Kind::kPod, pod->id, *doc);
  });
}

absl::Status SandboxManager::Remove(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(id_or_prefix));
  if (!id.has_value()) return absl::OkStatus();
  std::string dir = StrCat(pods_dir_, "/", *id);
  RETURN_IF_ERROR(Release(dir));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return absl::InternalError(StrCat("remove ", dir, ": ", ec.message()));
  return store_.Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<store::Ref> names, tx.RefsTo(Kind::kPod, *id));
    for (const store::Ref& name : names) RETURN_IF_ERROR(tx.Delete(name.kind, name.id));
    return tx.Delete(Kind::kPod, *id);
  });
}

absl::Status SandboxManager::Recover() {
  std::vector<store::Record> records;
  RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(records, tx.List(Kind::kPod));
    return absl::OkStatus();
  }));
  std::set<std::string> known;
  for (const store::Record& r : records) {
    const std::string dir = StrCat(pods_dir_, "/", r.id);
    const std::string state = r.doc.value("state", "");
    if (state == kCreating) {
      // berthd died inside RunPodSandbox: undo everything it made.
      RETURN_IF_ERROR(Remove(r.id));
      continue;
    }
    known.insert(r.id);
    if (state != kReady) continue;
    bool intact = true;
    for (const char* key : {"netns", "ipcns", "utsns"}) {
      std::string pin = r.doc.value(key, "");
      if (!pin.empty() && !IsPinned(pin)) intact = false;
    }
    if (r.doc.value("infra_pid", 0) > 0 && infra_ != nullptr && !infra_->Alive(dir)) {
      intact = false;
    }
    if (!intact) {
      // The state dir is a tmpfs: after a reboot the namespaces are gone.
      RETURN_IF_ERROR(Stop(r.id));
    }
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(pods_dir_, ec)) {
    std::string id = entry.path().filename();
    if (known.count(id)) continue;
    RETURN_IF_ERROR(Release(entry.path()));
    std::filesystem::remove_all(entry.path(), ec);
  }
  return absl::OkStatus();
}

}  // namespace berth::sandbox
