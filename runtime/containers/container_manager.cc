#include "runtime/containers/container_manager.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "runtime/base/crash_point.h"
#include "runtime/base/ids.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/container/spec_builder.h"
#include "runtime/shim/shim_client.h"
#include "runtime/snapshot/mount.h"
#include "runtime/stats/cgroup_stats.h"

namespace berth::containers {
namespace {

using nlohmann::json;
using store::Kind;

constexpr char kCreating[] = "creating";
constexpr char kCreated[] = "created";
constexpr char kRunning[] = "running";
constexpr char kExited[] = "exited";

// How long a container's process and its shim get to go away once SIGKILLed.
constexpr absl::Duration kKillWait = absl::Seconds(10);

ContainerState StateFromName(const std::string& name) {
  if (name == kCreated) return ContainerState::kCreated;
  if (name == kRunning) return ContainerState::kRunning;
  if (name == kExited) return ContainerState::kExited;
  return ContainerState::kUnknown;
}

// "SIGTERM", "TERM" or "15"; 0 when unknown.
int ParseSignal(std::string name) {
  if (name.empty()) return 0;
  if (std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    int n = std::atoi(name.c_str());
    return n > 0 && n < 65 ? n : 0;
  }
  for (char& c : name) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  static const std::map<std::string, int> kSignals = {
      {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT},     {"ABRT", SIGABRT},
      {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"USR2", SIGUSR2},     {"PIPE", SIGPIPE},
      {"ALRM", SIGALRM}, {"TERM", SIGTERM},     {"CONT", SIGCONT},     {"STOP", SIGSTOP},
      {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH},   {"PWR", SIGPWR},       {"XCPU", SIGXCPU},
      {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},     {"TTIN", SIGTTIN},
      {"TTOU", SIGTTOU}, {"URG", SIGURG},       {"STKFLT", SIGSTKFLT}, {"SYS", SIGSYS},
      {"TRAP", SIGTRAP}, {"BUS", SIGBUS},       {"SEGV", SIGSEGV},     {"FPE", SIGFPE},
      {"ILL", SIGILL},   {"IO", SIGIO}};
  auto it = kSignals.find(name);
  return it == kSignals.end() ? 0 : it->second;
}

Container FromRecord(const std::string& id, const json& doc, const std::string& dir) {
  Container c;
  c.id = id;
  c.pod_id = doc.value("pod_id", "");
  c.image_id = doc.value("image_id", "");
  c.image_ref = doc.value("image_ref", "");
  c.name = doc.value("name", "");
  c.attempt = doc.value("attempt", 0u);
  c.labels = doc.value("labels", std::map<std::string, std::string>{});
  c.annotations = doc.value("annotations", std::map<std::string, std::string>{});
  c.log_path = doc.value("log_path", "");
  c.state = StateFromName(doc.value("state", ""));
  c.created_at_ns = doc.value("created_at", int64_t{0});
  c.started_at_ns = doc.value("started_at", int64_t{0});
  c.finished_at_ns = doc.value("finished_at", int64_t{0});
  c.exit_code = doc.value("exit_code", 0);
  c.reason = doc.value("reason", "");
  c.message = doc.value("message", "");
  c.pid = doc.value("pid", 0);
  c.shim_pid = doc.value("shim_pid", 0);
  c.stop_signal = doc.value("stop_signal", "");
  c.tty = doc.value("tty", false);
  c.stdin = doc.value("stdin", false);
  c.dir = dir;
  c.cgroups_path = doc.value("cgroups_path", "");
  for (const json& m : doc.value("mounts", json::array())) {
    c.mounts.push_back(
        {.container_path = m.value("container_path", ""),
         .host_path = m.value("host_path", ""),
         .readonly = m.value("readonly", false),
         .selinux_relabel = m.value("selinux_relabel", false),
         .propagation = static_cast<container::MountPropagation>(m.value("propagation", 0))});
  }
  return c;
}

bool HasPrefix(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool Matches(const Container& c, const ContainerFilter& filter) {
  if (!filter.pod_id.empty() && !HasPrefix(c.pod_id, filter.pod_id)) return false;
  if (filter.state.has_value() && c.state != *filter.state) return false;
  for (const auto& [key, value] : filter.labels) {
    auto it = c.labels.find(key);
    if (it == c.labels.end() || it->second != value) return false;
  }
  return true;
}

absl::Status WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  out.close();
  if (!out) return absl::InternalError(StrCat("write ", path));
  chmod(path.c_str(), mode);
  return absl::OkStatus();
}

std::string ShimDir(const std::string& dir) { return dir + "/shim"; }

bool IsGone(const absl::Status& status) {
  return status.ok() || absl::IsNotFound(status) || absl::IsFailedPrecondition(status);
}

}  // namespace

std::string_view ContainerStateName(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated:
      return "CREATED";
    case ContainerState::kRunning:
      return "RUNNING";
    case ContainerState::kExited:
      return "EXITED";
    case ContainerState::kUnknown:
      break;
  }
  return "UNKNOWN";
}

ContainerManager::ContainerManager(store::Store& store, sandbox::SandboxManager& pods,
                                   images::ImageManager& images, snapshot::Snapshotter& snapshotter,
                                   ContainerManagerOptions options)
    : store_(store),
      pods_(pods),
      images_(images),
      snapshotter_(snapshotter),
      options_(std::move(options)),
      containers_dir_(options_.state_dir + "/containers"),
      runc_(oci::RuncOptions{.name = "runc",
                             .binary = options_.runc_binary,
                             .root = options_.state_dir + "/runtimes/runc",
                             .scratch_dir = options_.state_dir + "/tmp",
                             .exec_wrapper = {options_.shim_binary, "--reap", "--"}}),
      exit_watcher_(std::make_unique<ExitWatcher>([this](const std::string& id) { OnExit(id); })) {
}

absl::StatusOr<std::unique_ptr<ContainerManager>> ContainerManager::Create(
    store::Store& store, sandbox::SandboxManager& pods, images::ImageManager& images,
    snapshot::Snapshotter& snapshotter, ContainerManagerOptions options) {
  if (options.state_dir.empty() || options.state_dir[0] != '/') {
    return absl::InvalidArgumentError(
        StrCat("container manager: state dir \"", options.state_dir, "\" is not absolute"));
  }
  if (options.shim_binary.empty() || access(options.shim_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        StrCat("container manager: shim binary \"", options.shim_binary, "\" is not executable"));
  }
  for (const std::string& dir : {options.state_dir + "/containers",
                                 options.state_dir + "/runtimes/runc", options.state_dir + "/tmp"}) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(StrCat("create ", dir, ": ", ec.message()));
    chmod(dir.c_str(), 0711);
  }
  return std::unique_ptr<ContainerManager>(
      new ContainerManager(store, pods, images, snapshotter, std::move(options)));
}

std::string ContainerManager::ContainerDir(const std::string& id) const {
  return StrCat(containers_dir_, "/", id);
}

std::shared_ptr<absl::Mutex> ContainerManager::LockFor(const std::string& id) {
  absl::MutexLock lock(&locks_mu_);
  for (auto it = locks_.begin(); it != locks_.end();) {
    it = it->second.expired() ? locks_.erase(it) : std::next(it);
  }
  std::shared_ptr<absl::Mutex> mu = locks_[id].lock();
  if (mu == nullptr) {
    mu = std::make_shared<absl::Mutex>();
    locks_[id] = mu;
  }
  return mu;
}

absl::StatusOr<std::string> ContainerManager::Create(const std::string& pod_id,
                                                     const container::ContainerSpec& spec,
                                                     const std::string& image_ref) {
  if (spec.name.empty()) return absl::InvalidArgumentError("container metadata.name is empty");
  ASSIGN_OR_RETURN(std::optional<sandbox::PodSandbox> pod, pods_.Find(pod_id));
  if (!pod.has_value()) return absl::NotFoundError(StrCat("pod sandbox ", pod_id, " not found"));
  if (pod->state != sandbox::PodState::kReady) {
    return absl::FailedPreconditionError(
        StrCat("pod sandbox ", pod->id, " is not ready; cannot create container ", spec.name));
  }
  ASSIGN_OR_RETURN(std::optional<images::Image> image, images_.Find(image_ref));
  if (!image.has_value()) {
    return absl::NotFoundError(StrCat("image ", image_ref, " not found"));
  }
  std::string id = NewObjectId();
  std::shared_ptr<absl::Mutex> mu = LockFor(id);
  absl::MutexLock lock(mu.get());
  absl::StatusOr<std::string> made = CreateLocked(id, *pod, spec, *image);
  if (!made.ok()) {
    return absl::Status(made.status().code(), StrCat("create container ", spec.name, " in pod ",
                                                     pod->id, ": ", made.status().message()));
  }
  return made;
}

absl::StatusOr<std::string> ContainerManager::CreateLocked(const std::string& id,
                                                           const sandbox::PodSandbox& pod,
                                                           const container::ContainerSpec& spec,
                                                           const images::Image& image) {
  const std::string dir = ContainerDir(id);
  const std::string rootfs = dir + "/rootfs";
  std::string log_path;
  if (!pod.spec.log_directory.empty() && !spec.log_path.empty()) {
    log_path = StrCat(pod.spec.log_directory, "/", spec.log_path);
  }
  const std::string cgroups_path = StrCat(
      pod.spec.cgroup_parent.empty() ? options_.default_cgroup_parent : pod.spec.cgroup_parent,
      "/", id);
  json mounts = json::array();
  for (const container::Mount& m : spec.mounts) {
    mounts.push_back({{"container_path", m.container_path},
                      {"host_path", m.host_path},
                      {"readonly", m.readonly},
                      {"selinux_relabel", m.selinux_relabel},
                      {"propagation", static_cast<int>(m.propagation)}});
  }
  json doc = {{"state", kCreating},      {"pod_id", pod.id},
              {"cgroups_path", cgroups_path}, {"mounts", mounts},
              {"image_id", image.id},    {"image_ref", spec.image},
              {"name", spec.name},       {"attempt", spec.attempt},
              {"labels", spec.labels},   {"annotations", spec.annotations},
              {"log_path", log_path},    {"stop_signal", image.config.stop_signal},
              {"tty", spec.tty},         {"stdin", spec.open_stdin},
              {"created_at", NowNanos()}};
  // First the record, so that a crash from here on is found by Recover().
  RETURN_IF_ERROR(store_.Update([&](store::Transaction& tx) -> absl::Status {
    RETURN_IF_ERROR(tx.Create(Kind::kContainer, id, doc));
    return tx.AddRef(Kind::kContainer, id, Kind::kPod, pod.id);
  }));

  auto build = [&]() -> absl::StatusOr<shim::ShimHandle> {
    std::error_code ec;
    std::filesystem::create_directories(rootfs, ec);
    if (ec) return absl::InternalError(StrCat("create ", rootfs, ": ", ec.message()));
    chmod(dir.c_str(), 0711);
    ASSIGN_OR_RETURN(std::vector<snapshot::Mount> mounts,
                     snapshotter_.Prepare(id, image.TopSnapshot()));
    RETURN_IF_ERROR(store_.Update([&](store::Transaction& tx) {
      return tx.AddRef(Kind::kContainer, id, Kind::kSnapshot, id);
    }));
    RETURN_IF_ERROR(snapshot::MountAll(mounts, rootfs));
    CrashPoint("container.mounted");

    container::SpecContext ctx;
    ctx.container_id = id;
    ctx.sandbox_id = pod.id;
    ctx.rootfs = rootfs;
    ctx.root_path = "rootfs";
    auto ns = [](const std::string& pin) {
      return pin.empty() ? std::string(container::kHostNamespace) : pin;
    };
    ctx.network_ns_path = ns(pod.netns);
    ctx.ipc_ns_path = ns(pod.ipcns);
    ctx.uts_ns_path = ns(pod.utsns);
    ctx.hostname_path = pod.dir + "/hostname";
    ctx.hosts_path = pod.dir + "/hosts";
    ctx.resolv_conf_path = pod.dir + "/resolv.conf";
    if (!pod.ipcns.empty()) ctx.shm_path = pod.dir + "/shm";
    ctx.pod_pid_ns_path = pod.pidns;
    ctx.cgroups_path = cgroups_path;
    ctx.default_cgroup_parent = options_.default_cgroup_parent;
    ctx.min_oom_score_adj = options_.min_oom_score_adj;
    const container::NamespaceOptions& nso = spec.security.namespace_options;
    if (nso.pid == container::NamespaceMode::kTarget) {
      ASSIGN_OR_RETURN(std::optional<Container> target, Find(nso.target_id));
      if (target.has_value() && target->state != ContainerState::kExited && target->pid > 0) {
        ctx.target_pid_ns_path = StrCat("/proc/", target->pid, "/ns/pid");
      }
    }
    ASSIGN_OR_RETURN(json oci_spec, container::BuildSpec(pod.spec, spec, image.config, ctx));
    RETURN_IF_ERROR(WriteFile(dir + "/config.json", oci_spec.dump(2), 0600));

    if (!log_path.empty()) {
      std::filesystem::create_directories(std::filesystem::path(log_path).parent_path(), ec);
      if (ec)
        return absl::InternalError(
            StrCat("create log directory of ", log_path, ": ", ec.message()));
    }
    const oci::RuncOptions& runc = runc_.options();
    return shim::StartShim(
        {.shim_binary = options_.shim_binary,
         .id = id,
         .bundle_dir = dir,
         .state_dir = ShimDir(dir),
         .log_path = log_path,
         .runtime = {.binary = runc.binary, .root = runc.root, .global_args = runc.global_args},
         .tty = spec.tty,
         .stdin = spec.open_stdin,
         .stdin_once = spec.stdin_once});
  };
  absl::StatusOr<shim::ShimHandle> shim = build();
  if (shim.ok()) CrashPoint("container.shim_started");
  absl::Status status = shim.status();
  if (status.ok()) {
    status = store_.Update([&](store::Transaction& tx) -> absl::Status {
      json created = doc;
      created["state"] = kCreated;
      created["pid"] = shim->container_pid;
      created["shim_pid"] = shim->shim_pid;
      return tx.Put(Kind::kContainer, id, created);
    });
  }
  if (status.ok()) status = exit_watcher_->Watch(id, ShimDir(dir));
  if (!status.ok()) {
    // Undo in reverse; the record goes last so a crash here is still recovered.
    (void)RemoveLocked(id);
    return status;
  }
  Publish(events::ContainerEventType::kCreated, id, pod.id);
  return id;
}

absl::Status ContainerManager::Teardown(const std::string& id) {
  const std::string dir = ContainerDir(id);
  absl::Status deleted = runc_.Delete(id, /*force=*/true);
  if (!IsGone(deleted)) return deleted;
  shim::ReapShim(ShimDir(dir), kKillWait);
  RETURN_IF_ERROR(snapshot::UnmountAll(dir + "/rootfs"));
  RETURN_IF_ERROR(store_.Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<json> doc, tx.Get(Kind::kContainer, id));
    if (!doc.has_value()) return absl::OkStatus();
    return tx.RemoveRef(Kind::kContainer, id, Kind::kSnapshot, id);
  }));
  RETURN_IF_ERROR(snapshotter_.Remove(id));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return absl::InternalError(StrCat("remove ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status ContainerManager::RemoveLocked(const std::string& id) {
  {
    absl::MutexLock lock(&samples_mu_);
    last_samples_.erase(id);
  }
  exit_watcher_->Unwatch(id);
  absl::Status torn = Teardown(id);
  if (!torn.ok())
    return absl::Status(torn.code(), StrCat("remove container ", id, ": ", torn.message()));
  std::string pod_id, state;
  RETURN_IF_ERROR(store_.Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<json> doc, tx.Get(Kind::kContainer, id));
    if (!doc.has_value()) return absl::OkStatus();
    pod_id = doc->value("pod_id", "");
    state = doc->value("state", "");
    return tx.Delete(Kind::kContainer, id);
  }));
  // A half-made container was never announced.
  if (!pod_id.empty() && state != kCreating) {
    Publish(events::ContainerEventType::kDeleted, id, pod_id);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> ContainerManager::ResolveId(
    const std::string& id_or_prefix) {
  return store::ResolveIdPrefix(store_, Kind::kContainer, id_or_prefix, "container");
}

std::string ContainerManager::CgroupsPath(const Container& c) const {
  return c.cgroups_path.empty() ? StrCat(options_.default_cgroup_parent, "/", c.id)
                                : c.cgroups_path;
}

std::string ContainerManager::ExitReason(const Container& c, const shim::ExitStatus& exit) const {
  if (exit.oom_killed) return "OOMKilled";
  if (exit.exit_code == 128 + SIGKILL) {
    // The OOM killer's SIGKILL looks like any other; the memory cgroup counts its kills.
    absl::StatusOr<uint64_t> kills = stats::ReadOomKills(CgroupsPath(c));
    if (kills.ok() && *kills > 0) return "OOMKilled";
  }
  return exit.exit_code == 0 ? "Completed" : "Error";
}

absl::Status ContainerManager::RecordShimExit(const Container& c, const shim::ExitStatus& exit) {
  return RecordExit(c.id, exit.exit_code, absl::ToUnixNanos(exit.exited_at), ExitReason(c, exit));
}

absl::Status ContainerManager::RecordExit(const std::string& id, int exit_code,
                                          int64_t finished_at_ns, const std::string& reason) {
  std::string pod_id;
  RETURN_IF_ERROR(store_.Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<json> doc, tx.Get(Kind::kContainer, id));
    if (!doc.has_value() || doc->value("state", "") == kExited) return absl::OkStatus();
    (*doc)["state"] = kExited;
    (*doc)["exit_code"] = exit_code;
    (*doc)["finished_at"] = finished_at_ns;
    (*doc)["reason"] = reason;
    pod_id = doc->value("pod_id", "");
    return tx.Put(Kind::kContainer, id, *doc);
  }));
  if (!pod_id.empty()) Publish(events::ContainerEventType::kStopped, id, pod_id);
  return absl::OkStatus();
}

void ContainerManager::Publish(events::ContainerEventType type, const std::string& id,
                               const std::string& pod_id) {
  if (options_.events == nullptr) return;
  options_.events->Publish(
      {.type = type, .container_id = id, .pod_id = pod_id, .created_at_ns = NowNanos()});
}

void ContainerManager::OnExit(const std::string& id) {
  std::shared_ptr<absl::Mutex> mu = LockFor(id);
  absl::MutexLock lock(mu.get());
  std::optional<json> doc;
  absl::Status read = store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(doc, tx.Get(Kind::kContainer, id));
    return absl::OkStatus();
  });
  // Folds the shim's exit file into the record, which publishes "stopped".
  if (read.ok() && doc.has_value() && doc->value("state", "") != kCreating) {
    (void)Refresh(id, *doc, /*record=*/true);
  }
}

absl::StatusOr<Container> ContainerManager::Refresh(const std::string& id, const json& doc,
                                                    bool record) {
  Container c = FromRecord(id, doc, ContainerDir(id));
  if (c.state != ContainerState::kCreated && c.state != ContainerState::kRunning) return c;
  absl::StatusOr<shim::ExitStatus> exit = shim::ReadExitFile(ShimDir(c.dir));
  if (!exit.ok()) return c;  // still running (or draining its output)
  c.state = ContainerState::kExited;
  c.exit_code = exit->exit_code;
  c.finished_at_ns = absl::ToUnixNanos(exit->exited_at);
  c.reason = ExitReason(c, *exit);
  if (record) RETURN_IF_ERROR(RecordExit(id, c.exit_code, c.finished_at_ns, c.reason));
  return c;
}

absl::StatusOr<Container> ContainerManager::RefreshUnlocked(const std::string& id,
                                                            const json& doc) {
  // Record the exit only when no operation holds the container: one that does (Start,
  // Stop) records it itself or leaves it to the exit watcher, which waits for the lock, so
  // that "stopped" is never published before "started".
  std::shared_ptr<absl::Mutex> mu = LockFor(id);
  if (!mu->TryLock()) return Refresh(id, doc, /*record=*/false);
  absl::StatusOr<Container> c = Refresh(id, doc, /*record=*/true);
  mu->Unlock();
  return c;
}

absl::StatusOr<std::optional<Container>> ContainerManager::Find(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(id_or_prefix));
  if (!id.has_value()) return std::nullopt;
  std::optional<json> doc;
  RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(doc, tx.Get(Kind::kContainer, *id));
    return absl::OkStatus();
  }));
  // A container still being created is not visible yet.
  if (!doc.has_value() || doc->value("state", "") == kCreating) return std::nullopt;
  return RefreshUnlocked(*id, *doc);
}

absl::StatusOr<std::vector<Container>> ContainerManager::List(const ContainerFilter& filter) {
  std::vector<store::Record> records;
  RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(records, tx.List(Kind::kContainer, filter.id));
    return absl::OkStatus();
  }));
  std::vector<Container> out;
  for (const store::Record& r : records) {
    if (r.doc.value("state", "") == kCreating) continue;
    ASSIGN_OR_RETURN(Container c, RefreshUnlocked(r.id, r.doc));
    if (Matches(c, filter)) out.push_back(std::move(c));
  }
  return out;
}

absl::Status ContainerManager::Start(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(id_or_prefix));
  if (!id.has_value()) {
    return absl::NotFoundError(StrCat("container ", id_or_prefix, " not found"));
  }
  std::shared_ptr<absl::Mutex> mu = LockFor(*id);
  absl::MutexLock lock(mu.get());
  ASSIGN_OR_RETURN(std::optional<Container> c, Find(*id));
  if (!c.has_value()) return absl::NotFoundError(StrCat("container ", *id, " not found"));
  if (c->state != ContainerState::kCreated) {
    return absl::FailedPreconditionError(StrCat(
        "container ", *id, " is ", ContainerStateName(c->state), ", not CREATED; cannot start it"));
  }
  // Taken before runc start: a process that exits at once is recorded by the
  // shim before runc returns, and started_at must not come after finished_at.
  const int64_t now = NowNanos();
  absl::Status started = runc_.Start(*id);
  if (!started.ok()) {
    return absl::Status(started.code(), StrCat("start container ", *id, ": ", started.message()));
  }
  RETURN_IF_ERROR(store_.Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<json> doc, tx.Get(Kind::kContainer, *id));
    if (!doc.has_value()) return absl::OkStatus();
    (*doc)["started_at"] = now;
    // A process that exited at once may already be recorded EXITED by a reader.
    if (doc->value("state", "") == kCreated) (*doc)["state"] = kRunning;
    return tx.Put(Kind::kContainer, *id, *doc);
  }));
  Publish(events::ContainerEventType::kStarted, *id, c->pod_id);
  return absl::OkStatus();
}

absl::Status ContainerManager::Stop(const std::string& id_or_prefix, int64_t timeout_seconds) {
  ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(id_or_prefix));
  if (!id.has_value()) {
    return absl::NotFoundError(StrCat("container ", id_or_prefix, " not found"));
  }
  std::shared_ptr<absl::Mutex> mu = LockFor(*id);
  absl::MutexLock lock(mu.get());
  ASSIGN_OR_RETURN(std::optional<Container> c, Find(*id));
  if (!c.has_value()) return absl::NotFoundError(StrCat("container ", *id, " not found"));
  if (c->state == ContainerState::kExited) return absl::OkStatus();
  const std::string shim_dir = ShimDir(c->dir);
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), StrCat("stop container ", *id, ": ", s.message()));
  };

  absl::StatusOr<shim::ExitStatus> exit = absl::DeadlineExceededError("not signalled");
  // A created container's process never ran: SIGKILL it straight away.
  if (timeout_seconds > 0 && c->state == ContainerState::kRunning) {
    int signal = ParseSignal(c->stop_signal);
    if (signal == 0) signal = SIGTERM;
    absl::Status sent = runc_.Kill(*id, signal, /*all=*/false);
    if (!IsGone(sent)) return fail(sent);
    exit = shim::WaitForExit(shim_dir, absl::Seconds(timeout_seconds));
  }
  if (absl::IsDeadlineExceeded(exit.status())) {
    absl::Status sent = runc_.Kill(*id, SIGKILL, /*all=*/true);
    if (!IsGone(sent)) return fail(sent);
    exit = shim::WaitForExit(shim_dir, kKillWait);
  }
  if (exit.ok()) {
    return RecordShimExit(*c, *exit);
  }
  if (absl::IsUnavailable(exit.status())) {
    // The shim died without recording the exit: the process is gone, its status lost.
    return RecordExit(*id, 128 + SIGKILL, NowNanos(), "Unknown");
  }
  return fail(exit.status());
}

absl::Status ContainerManager::Remove(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(id_or_prefix));
  if (!id.has_value()) return absl::OkStatus();
  std::shared_ptr<absl::Mutex> mu = LockFor(*id);
  absl::MutexLock lock(mu.get());
  return RemoveLocked(*id);
}

absl::StatusOr<ContainerManager::ExecTarget> ContainerManager::PrepareExec(
    const std::string& id_or_prefix, const std::vector<std::string>& command, bool tty) {
  if (command.empty()) return absl::InvalidArgumentError("exec: the command is empty");
  ASSIGN_OR_RETURN(Container c, FindRunning(id_or_prefix, "exec in it"));
  // The container's own process settings, so that an exec runs as the container does
  // (the same user and groups, environment, capabilities, seccomp is the container's).
  std::ifstream in(c.dir + "/config.json");
  json spec = json::parse(in, nullptr, false);
  if (spec.is_discarded() || !spec.contains("process")) {
    return absl::DataLossError(StrCat("container ", c.id, ": unreadable ", c.dir, "/config.json"));
  }
  json process = spec["process"];
  process["args"] = command;
  process["terminal"] = tty;
  process.erase("consoleSize");
  return ExecTarget{.id = c.id, .process_json = process.dump()};
}

absl::StatusOr<ContainerManager::AttachTarget> ContainerManager::PrepareAttach(
    const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(Container c, FindRunning(id_or_prefix, "attach to it"));
  return AttachTarget{.id = c.id, .shim_dir = ShimDir(c.dir), .tty = c.tty, .stdin = c.stdin};
}

absl::StatusOr<Container> ContainerManager::FindRunning(const std::string& id_or_prefix,
                                                        std::string_view action) {
  ASSIGN_OR_RETURN(std::optional<Container> c, Find(id_or_prefix));
  if (!c.has_value()) return absl::NotFoundError(StrCat("container ", id_or_prefix, " not found"));
  if (c->state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(StrCat("container ", c->id, " is ",
                                                ContainerStateName(c->state), ", not RUNNING; cannot ",
                                                action));
  }
  return *std::move(c);
}

absl::StatusOr<ExecSyncResult> ContainerManager::ExecSync(const std::string& id_or_prefix,
                                                          const std::vector<std::string>& command,
                                                          absl::Duration timeout) {
  ASSIGN_OR_RETURN(ExecTarget target, PrepareExec(id_or_prefix, command, /*tty=*/false));
  absl::StatusOr<oci::ExecResult> ran = runc_.Exec(
      target.id, target.process_json,
      {.timeout = timeout, .capture = true, .max_capture = kMaxExecOutput});
  if (!ran.ok()) {
    if (absl::IsDeadlineExceeded(ran.status())) {
      return absl::DeadlineExceededError(
          StrCat("exec in container ", target.id, ": command timed out after ",
                 absl::FormatDuration(timeout), " and was killed"));
    }
    return absl::Status(ran.status().code(),
                        StrCat("exec in container ", target.id, ": ", ran.status().message()));
  }
  return ExecSyncResult{.out = std::move(ran->out),
                        .err = std::move(ran->err),
                        .exit_code = ran->exit_code.value_or(-1)};
}

absl::Status ContainerManager::UpdateResources(const std::string& id_or_prefix,
                                               const container::LinuxResources& resources) {
  ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(id_or_prefix));
  if (!id.has_value()) return absl::NotFoundError(StrCat("container ", id_or_prefix, " not found"));
  std::shared_ptr<absl::Mutex> mu = LockFor(*id);
  absl::MutexLock lock(mu.get());
  ASSIGN_OR_RETURN(std::optional<Container> c, Find(*id));
  if (!c.has_value()) return absl::NotFoundError(StrCat("container ", *id, " not found"));
  if (c->state != ContainerState::kCreated && c->state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(StrCat("container ", *id, " is ",
                                                ContainerStateName(c->state),
                                                "; cannot update its resources"));
  }
  ASSIGN_OR_RETURN(json update, container::BuildResources(resources));
  absl::Status updated = runc_.Update(*id, update.dump());
  if (!updated.ok()) {
    return absl::Status(updated.code(), StrCat("update resources of container ", *id, ": ",
                                               updated.message()));
  }
  // Keep the spec true to what runs: ContainerStatus(verbose) shows it.
  const std::string spec_path = c->dir + "/config.json";
  std::ifstream in(spec_path);
  json spec = json::parse(in, nullptr, false);
  if (spec.is_discarded()) return absl::OkStatus();
  json& current = spec["linux"]["resources"];
  if (!current.is_object()) current = json::object();
  for (auto& [key, value] : update.items()) {
    if (value.is_object() && current[key].is_object()) {
      current[key].update(value);
    } else {
      current[key] = value;
    }
  }
  const std::string tmp = spec_path + ".tmp";
  RETURN_IF_ERROR(WriteFile(tmp, spec.dump(2), 0600));
  if (rename(tmp.c_str(), spec_path.c_str()) != 0) {
    return absl::InternalError(StrCat("rename ", tmp, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status ContainerManager::ReopenLog(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(std::optional<Container> c, Find(id_or_prefix));
  if (!c.has_value()) return absl::NotFoundError(StrCat("container ", id_or_prefix, " not found"));
  if (c->state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(StrCat("container ", c->id, " is ",
                                                ContainerStateName(c->state),
                                                ", not RUNNING; cannot reopen its log"));
  }
  absl::Status reopened = shim::ReopenLog(ShimDir(c->dir));
  if (!reopened.ok()) {
    return absl::Status(reopened.code(), StrCat("reopen log of container ", c->id, ": ",
                                                reopened.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ContainerStats> ContainerManager::Sample(const Container& c) {
  ContainerStats out{.container = c, .timestamp_ns = NowNanos()};
  const std::string cgroups_path =
      c.cgroups_path.empty() ? StrCat(options_.default_cgroup_parent, "/", c.id) : c.cgroups_path;
  absl::StatusOr<stats::CgroupStats> cgroup = stats::ReadCgroupStats(cgroups_path);
  if (cgroup.ok()) {
    out.cgroup = *cgroup;
    out.timestamp_ns = cgroup->timestamp_ns;
    absl::MutexLock lock(&samples_mu_);
    auto [previous, first] = last_samples_.try_emplace(c.id, *cgroup);
    if (!first) {
      out.cpu_nano_cores = stats::CpuNanoCores(previous->second, *cgroup);
      previous->second = *cgroup;
    }
  } else if (!absl::IsNotFound(cgroup.status())) {
    return cgroup.status();
  }
  out.cgroup.timestamp_ns = out.timestamp_ns;
  absl::StatusOr<snapshot::Usage> usage = snapshotter_.GetUsage(c.id);
  if (usage.ok()) out.writable_layer = *usage;
  return out;
}

absl::StatusOr<ContainerStats> ContainerManager::Stats(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(std::optional<Container> c, Find(id_or_prefix));
  if (!c.has_value()) return absl::NotFoundError(StrCat("container ", id_or_prefix, " not found"));
  return Sample(*c);
}

absl::StatusOr<std::vector<ContainerStats>> ContainerManager::ListStats(
    const ContainerFilter& filter) {
  ASSIGN_OR_RETURN(std::vector<Container> list, List(filter));
  std::vector<ContainerStats> out;
  for (const Container& c : list) {
    ASSIGN_OR_RETURN(ContainerStats sample, Sample(c));
    out.push_back(std::move(sample));
  }
  return out;
}

absl::Status ContainerManager::Recover() {
  // Exec pid files of a berthd that died mid-exec.
  std::error_code tmp_ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(options_.state_dir + "/tmp", tmp_ec)) {
    std::filesystem::remove_all(entry.path(), tmp_ec);
  }
  std::vector<store::Record> records;
  RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(records, tx.List(Kind::kContainer));
    return absl::OkStatus();
  }));
  std::set<std::string> known;
  for (const store::Record& r : records) {
    const std::string state = r.doc.value("state", "");
    std::shared_ptr<absl::Mutex> mu = LockFor(r.id);
    absl::MutexLock lock(mu.get());
    if (state == kCreating) {
      // berthd died inside Create: undo everything it made.
      RETURN_IF_ERROR(RemoveLocked(r.id));
      continue;
    }
    known.insert(r.id);
    if (state != kCreated && state != kRunning) continue;
    const std::string shim_dir = ShimDir(ContainerDir(r.id));
    absl::StatusOr<shim::ExitStatus> exit = shim::ReadExitFile(shim_dir);
    if (exit.ok()) {
      RETURN_IF_ERROR(RecordShimExit(FromRecord(r.id, r.doc, ContainerDir(r.id)), *exit));
    } else if (!shim::ShimAlive(shim_dir)) {
      // No shim and no exit recorded (a reboot emptied the state dir, or the shim was
      // killed): the process is gone and its status lost.
      RETURN_IF_ERROR(RecordExit(r.id, 255, NowNanos(), "Unknown"));
    } else {
      RETURN_IF_ERROR(exit_watcher_->Watch(r.id, shim_dir));
    }
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(containers_dir_, ec)) {
    std::string id = entry.path().filename();
    if (known.count(id)) continue;
    std::shared_ptr<absl::Mutex> mu = LockFor(id);
    absl::MutexLock lock(mu.get());
    RETURN_IF_ERROR(Teardown(id));
  }
  return absl::OkStatus();
}

}  // namespace berth::containers
