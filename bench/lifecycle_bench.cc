// lifecycle_bench: pod and container lifecycle latency and memory, berth against
// containerd 1.6 (when installed) and against bare runc, in one run; modelled on
// `critest -benchmark`.
//
//   bazel run //bench:lifecycle_bench -- [--pods 20] [--rounds 3] [--shared-pid]
//
// One busybox image from the image kit is pushed to a private docker-registry on
// 127.0.0.1 and pulled once (untimed) by each daemon. Then each round every
// contender takes --pods pods through their whole life, one pod after the other,
// each step timed on its own; the contenders take turns pod by pod, in an order
// that rotates:
//
//   berth       a private berthd (BerthdFixture); the seven CRI RPCs over its socket:
//               RunPodSandbox, CreateContainer, StartContainer, StopContainer,
//               RemoveContainer, StopPodSandbox, RemovePodSandbox
//   berth (no CNI)  the same, pods annotated berth.io/network: none (when this berthd
//               runs CNI and honours it): RunPodSandbox without any plugin
//   containerd  a private `containerd` (ContainerdInstance): the same RPCs, the same
//               image from the same registry; its sandbox image is berth-pause pushed
//               as a pause image
//   runc        the baseline: one OCI bundle from the same image layer (`runc spec`,
//               no terminal, `sleep 3600`, new pid/ipc/uts/mount/net namespaces), then
//               runc create, runc start, runc kill KILL + wait until `runc state`
//               says stopped, runc delete; each spawned as berthd spawns runc
//
// Both daemons get the same CNI network: loopback plus a no-op plugin.
//
// The container runs `sleep 3600`. Pods use PID namespace mode CONTAINER (a kubelet
// pod without shareProcessNamespace); --shared-pid uses POD, for which berth starts
// its berth-pause infra process. StopContainer uses timeout 0 (SIGKILL at once, as
// the runc baseline) unless --stop-timeout.
//
// Then memory: each daemon's RSS (and PSS) when fresh, then with --pods pods each
// running one container, with its shims and infra processes found in /proc; then
// every pod is removed and no shim may remain.
//
// It prints median, p90 and mean per operation, and the ratios berth ÷ runc and
// berth ÷ containerd; it never fails on a figure. It needs root. Everything it
// starts is stopped by PID, and its pods, mounts, cgroups and temp dirs are removed
// at the end, also after an error or Ctrl-C.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/cleanup/cleanup.h"
#include "bench/bench_host.h"
#include "bench/bench_util.h"
#include "bench/containerd_instance.h"
#include "e2e/berthd_fixture.h"
#include "e2e/fixtures/image_kit.h"
#include "e2e/fixtures/registry.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::bench {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::runtime::v1;
using berth::testing::BerthdFixture;
using berth::testing::OciImage;
using berth::testing::Registry;
constexpr char kBusyboxRepo[] = "bench/busybox";
constexpr char kPauseRepo[] = "bench/pause";
constexpr char kTag[] = "1";
constexpr char kDefaultRunc[] = "/usr/sbin/runc";

struct Flags {
  int pods = 20;
  int rounds = 3;
  int warmup = 2;
  bool shared_pid = false;
  int stop_timeout = 0;
  std::string berthd;
  std::string containerd;
  std::string runc = kDefaultRunc;
  bool skip_containerd = false;
  bool skip_memory = false;
};

// ---- processes and their memory --------------------------------------------------

struct Mem {
  int64_t rss_kb = 0;
  int64_t anon_kb = 0;  // of rss_kb: RssAnon (heap, stacks) ...
  int64_t file_kb = 0;  // ... and RssFile (the binary and shared libraries' pages)
  int64_t pss_kb = 0;
  bool has_pss = false;  // smaps_rollup exists (Linux ≥ 4.14)

  Mem& operator+=(const Mem& o) {
    rss_kb += o.rss_kb;
    anon_kb += o.anon_kb;
    file_kb += o.file_kb;
    pss_kb += o.pss_kb;
    has_pss = has_pss || o.has_pss;
    return *this;
  }
};

// The "<key>: <n> kB" line of a /proc file, or -1.
int64_t ProcKb(const std::string& text, std::string_view key) {
  size_t at = 0;
  while ((at = text.find(key, at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::atoll(text.c_str() + at + key.size());
    at += key.size();
  }
  return -1;
}

// VmRSS from /proc/<pid>/status, Pss from /proc/<pid>/smaps_rollup when there is one.
std::optional<Mem> ReadMem(pid_t pid) {
  const std::string status = ReadText(StrCat("/proc/", pid, "/status"));
  int64_t rss = ProcKb(status, "VmRSS:");
  if (rss < 0) return std::nullopt;
  Mem m{.rss_kb = rss,
        .anon_kb = std::max<int64_t>(0, ProcKb(status, "RssAnon:")),
        .file_kb = std::max<int64_t>(0, ProcKb(status, "RssFile:"))};
  int64_t pss = ProcKb(ReadText(StrCat("/proc/", pid, "/smaps_rollup")), "Pss:");
  if (pss >= 0) {
    m.pss_kb = pss;
    m.has_pss = true;
  }
  return m;
}

// A runtime's shims, found in /proc, and what runs below them.
struct Census {
  std::vector<pid_t> shims;
  std::vector<pid_t> infra;     // pause processes (berth-pause, a pod's sandbox)
  std::vector<pid_t> workload;  // the containers' own processes (sleep)
  Mem shims_mem, infra_mem, workload_mem;
};

Census TakeCensus(const ShimMatcher& is_shim) {
  Census c;
  std::vector<Proc> all = ListProcesses();
  std::set<pid_t> shims;
  for (const Proc& p : all) {
    if (is_shim(p)) shims.insert(p.pid);
  }
  for (const Proc& p : all) {
    if (!shims.count(p.pid) && !shims.count(p.ppid)) continue;
    std::optional<Mem> m = ReadMem(p.pid);
    if (!m) continue;  // exited meanwhile
    if (shims.count(p.pid)) {
      c.shims.push_back(p.pid);
      c.shims_mem += *m;
    } else if (shims.count(p.ppid) && p.comm == "pause") {
      c.infra.push_back(p.pid);
      c.infra_mem += *m;
    } else if (shims.count(p.ppid)) {
      c.workload.push_back(p.pid);
      c.workload_mem += *m;
    }
  }
  return c;
}

// Shims that outlived their pods (their daemon died, or removal failed): their
// children first, then the shims, SIGKILL by PID. Returns how many shims there were.
size_t KillShims(const ShimMatcher& is_shim) {
  std::vector<Proc> all = ListProcesses();
  std::set<pid_t> shims;
  for (const Proc& p : all) {
    if (is_shim(p)) shims.insert(p.pid);
  }
  for (const Proc& p : all) {
    if (shims.count(p.ppid)) kill(p.pid, SIGKILL);
  }
  for (pid_t pid : shims) kill(pid, SIGKILL);
  return shims.size();
}

// Waits (up to `timeout`) until no process matches; returns how many still do.
size_t WaitForNoShims(const ShimMatcher& is_shim, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    size_t n = 0;
    for (const Proc& p : ListProcesses()) n += is_shim(p) ? 1 : 0;
    if (n == 0 || Clock::now() >= deadline) return n;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// ---- the CRI lifecycle ------------------------------------------------------------

enum Op {
  kRunPodSandbox,
  kCreateContainer,
  kStartContainer,
  kStopContainer,
  kRemoveContainer,
  kStopPodSandbox,
  kRemovePodSandbox,
  kOpCount
};
constexpr std::array<const char*, kOpCount> kOpNames = {
    "RunPodSandbox",   "CreateContainer", "StartContainer",  "StopContainer",
    "RemoveContainer", "StopPodSandbox",  "RemovePodSandbox"};

// Milliseconds per operation for one pod, in Op order.
using OpTimes = std::array<double, kOpCount>;

// Every pod's times of one contender, per operation, and per-pod sums.
struct CriSamples {
  std::array<std::vector<double>, kOpCount> ops;
  std::vector<double> create_start, stop_remove, whole;

  void Add(const OpTimes& t) {
    double sum = 0;
    for (int op = 0; op < kOpCount; ++op) {
      ops[op].push_back(t[op]);
      sum += t[op];
    }
    create_start.push_back(t[kCreateContainer] + t[kStartContainer]);
    stop_remove.push_back(t[kStopContainer] + t[kRemoveContainer]);
    whole.push_back(sum);
  }
  bool empty() const { return whole.empty(); }
};

// How the benchmark's pods and containers look, the same for every CRI runtime.
struct PodShape {
  bool shared_pid = false;    // NamespaceMode POD instead of CONTAINER
  std::string image;          // the container's image, pulled beforehand
  std::string log_directory;  // exists
  std::string cgroup_parent;
  int64_t stop_timeout = 0;
  std::map<std::string, std::string> annotations;  // the pods'
};

// Drives one CRI runtime (berthd or containerd) through pod lifecycles.
class CriLifecycle {
 public:
  CriLifecycle(std::string who, v1::RuntimeService::Stub& runtime, v1::ImageService::Stub& images,
               PodShape shape)
      : who_(std::move(who)), runtime_(runtime), images_(images), shape_(std::move(shape)) {}

  const std::string& who() const { return who_; }

  absl::Status Pull(const std::string& ref) {
    v1::PullImageRequest request;
    request.mutable_image()->set_image(ref);
    v1::PullImageResponse response;
    return Call("PullImage", [&](grpc::ClientContext* ctx) {
      return images_.PullImage(ctx, request, &response);
    });
  }

  // One pod through its whole life, each RPC timed. After an error the pod is
  // removed (untimed) and the error names the RPC.
  absl::StatusOr<OpTimes> TimeOnePod(const std::string& name) {
    OpTimes t{};
    std::string pod_id;
    absl::Cleanup remove_on_error = [&] {
      if (!pod_id.empty()) (void)RemovePod(pod_id);
    };
    const v1::PodSandboxConfig pod = PodConfig(name);
    v1::RunPodSandboxRequest run;
    *run.mutable_config() = pod;
    v1::RunPodSandboxResponse ran;
    RETURN_IF_ERROR(Call(
        "RunPodSandbox",
        [&](grpc::ClientContext* ctx) { return runtime_.RunPodSandbox(ctx, run, &ran); },
        &t[kRunPodSandbox]));
    pod_id = ran.pod_sandbox_id();

    v1::CreateContainerRequest create;
    create.set_pod_sandbox_id(pod_id);
    *create.mutable_config() = ContainerConfig(name);
    *create.mutable_sandbox_config() = pod;
    v1::CreateContainerResponse created;
    RETURN_IF_ERROR(Call(
        "CreateContainer",
        [&](grpc::ClientContext* ctx) { return runtime_.CreateContainer(ctx, create, &created); },
        &t[kCreateContainer]));
    const std::string& id = created.container_id();

    v1::StartContainerRequest start;
    start.set_container_id(id);
    v1::StartContainerResponse started;
    RETURN_IF_ERROR(Call(
        "StartContainer",
        [&](grpc::ClientContext* ctx) { return runtime_.StartContainer(ctx, start, &started); },
        &t[kStartContainer]));

    v1::StopContainerRequest stop;
    stop.set_container_id(id);
    stop.set_timeout(shape_.stop_timeout);
    v1::StopContainerResponse stopped;
    RETURN_IF_ERROR(Call(
        "StopContainer",
        [&](grpc::ClientContext* ctx) { return runtime_.StopContainer(ctx, stop, &stopped); },
        &t[kStopContainer]));

    v1::RemoveContainerRequest remove;
    remove.set_container_id(id);
    v1::RemoveContainerResponse removed;
    RETURN_IF_ERROR(Call(
        "RemoveContainer",
        [&](grpc::ClientContext* ctx) { return runtime_.RemoveContainer(ctx, remove, &removed); },
        &t[kRemoveContainer]));

    v1::StopPodSandboxRequest stop_pod;
    stop_pod.set_pod_sandbox_id(pod_id);
    v1::StopPodSandboxResponse pod_stopped;
    RETURN_IF_ERROR(Call(
        "StopPodSandbox",
        [&](grpc::ClientContext* ctx) {
          return runtime_.StopPodSandbox(ctx, stop_pod, &pod_stopped);
        },
        &t[kStopPodSandbox]));

    v1::RemovePodSandboxRequest remove_pod;
    remove_pod.set_pod_sandbox_id(pod_id);
    v1::RemovePodSandboxResponse pod_removed;
    RETURN_IF_ERROR(Call(
        "RemovePodSandbox",
        [&](grpc::ClientContext* ctx) {
          return runtime_.RemovePodSandbox(ctx, remove_pod, &pod_removed);
        },
        &t[kRemovePodSandbox]));
    pod_id.clear();
    return t;
  }

  // RunPodSandbox, CreateContainer, StartContainer, untimed: a pod left running.
  absl::Status StartPod(const std::string& name) {
    const v1::PodSandboxConfig pod = PodConfig(name);
    v1::RunPodSandboxRequest run;
    *run.mutable_config() = pod;
    v1::RunPodSandboxResponse ran;
    RETURN_IF_ERROR(Call("RunPodSandbox", [&](grpc::ClientContext* ctx) {
      return runtime_.RunPodSandbox(ctx, run, &ran);
    }));
    v1::CreateContainerRequest create;
    create.set_pod_sandbox_id(ran.pod_sandbox_id());
    *create.mutable_config() = ContainerConfig(name);
    *create.mutable_sandbox_config() = pod;
    v1::CreateContainerResponse created;
    RETURN_IF_ERROR(Call("CreateContainer", [&](grpc::ClientContext* ctx) {
      return runtime_.CreateContainer(ctx, create, &created);
    }));
    v1::StartContainerRequest start;
    start.set_container_id(created.container_id());
    v1::StartContainerResponse started;
    return Call("StartContainer", [&](grpc::ClientContext* ctx) {
      return runtime_.StartContainer(ctx, start, &started);
    });
  }

  // Runs a pod, reads its IP from PodSandboxStatus ("" for none) and removes it.
  absl::StatusOr<std::string> PodIp(const std::string& name) {
    v1::RunPodSandboxRequest run;
    *run.mutable_config() = PodConfig(name);
    v1::RunPodSandboxResponse ran;
    RETURN_IF_ERROR(Call("RunPodSandbox", [&](grpc::ClientContext* ctx) {
      return runtime_.RunPodSandbox(ctx, run, &ran);
    }));
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(ran.pod_sandbox_id());
    v1::PodSandboxStatusResponse response;
    absl::Status status = Call("PodSandboxStatus", [&](grpc::ClientContext* ctx) {
      return runtime_.PodSandboxStatus(ctx, request, &response);
    });
    absl::Status removed = RemovePod(ran.pod_sandbox_id());
    RETURN_IF_ERROR(status);
    RETURN_IF_ERROR(removed);
    return response.status().network().ip();
  }

  // As the kubelet tears pods down: StopContainer (with the benchmark's timeout) of
  // every running container, then StopPodSandbox + RemovePodSandbox (which takes
  // the pod's containers) of every pod the runtime lists. Stopping the containers
  // first matters: berth's StopPodSandbox gives each running container 10 s after
  // SIGTERM, and `sleep` as PID 1 ignores SIGTERM. Best effort: returns the first
  // error.
  absl::Status RemoveAllPods() {
    v1::ListContainersRequest containers;
    v1::ListContainersResponse listed_containers;
    absl::Status first = Call("ListContainers", [&](grpc::ClientContext* ctx) {
      return runtime_.ListContainers(ctx, containers, &listed_containers);
    });
    for (const v1::Container& c : listed_containers.containers()) {
      if (c.state() != v1::CONTAINER_RUNNING) continue;
      v1::StopContainerRequest stop;
      stop.set_container_id(c.id());
      stop.set_timeout(shape_.stop_timeout);
      v1::StopContainerResponse stopped;
      absl::Status s = Call("StopContainer", [&](grpc::ClientContext* ctx) {
        return runtime_.StopContainer(ctx, stop, &stopped);
      });
      if (first.ok()) first = s;
    }
    v1::ListPodSandboxRequest list;
    v1::ListPodSandboxResponse listed;
    RETURN_IF_ERROR(Call("ListPodSandbox", [&](grpc::ClientContext* ctx) {
      return runtime_.ListPodSandbox(ctx, list, &listed);
    }));
    for (const v1::PodSandbox& pod : listed.items()) {
      absl::Status s = RemovePod(pod.id());
      if (first.ok()) first = s;
    }
    return first;
  }

 private:
  absl::Status RemovePod(const std::string& pod_id) {
    v1::StopPodSandboxRequest stop;
    stop.set_pod_sandbox_id(pod_id);
    v1::StopPodSandboxResponse stopped;
    absl::Status s = Call("StopPodSandbox", [&](grpc::ClientContext* ctx) {
      return runtime_.StopPodSandbox(ctx, stop, &stopped);
    });
    v1::RemovePodSandboxRequest remove;
    remove.set_pod_sandbox_id(pod_id);
    v1::RemovePodSandboxResponse removed;
    absl::Status r = Call("RemovePodSandbox", [&](grpc::ClientContext* ctx) {
      return runtime_.RemovePodSandbox(ctx, remove, &removed);
    });
    return s.ok() ? r : s;
  }

  // One RPC with a deadline; `ms` gets its duration, client context setup excluded.
  absl::Status Call(const char* rpc, const std::function<grpc::Status(grpc::ClientContext*)>& fn,
                    double* ms = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
    auto start = Clock::now();
    grpc::Status s = fn(&ctx);
    if (ms != nullptr) *ms = MsSince(start);
    if (s.ok()) return absl::OkStatus();
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        StrCat(who_, " ", rpc, ": ", s.error_message()));
  }

  v1::PodSandboxConfig PodConfig(const std::string& name) const {
    v1::PodSandboxConfig pod;
    pod.mutable_metadata()->set_name(name);
    pod.mutable_metadata()->set_uid(name + "-uid");
    pod.mutable_metadata()->set_namespace_("bench");
    pod.set_hostname(name);
    pod.set_log_directory(shape_.log_directory);
    pod.mutable_annotations()->insert(shape_.annotations.begin(), shape_.annotations.end());
    pod.mutable_linux()->set_cgroup_parent(shape_.cgroup_parent);
    pod.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        shape_.shared_pid ? v1::POD : v1::CONTAINER);
    return pod;
  }

  v1::ContainerConfig ContainerConfig(const std::string& pod_name) const {
    v1::ContainerConfig c;
    c.mutable_metadata()->set_name("sleep");
    c.mutable_image()->set_image(shape_.image);
    c.add_command("sleep");
    c.add_command("3600");
    c.set_log_path(pod_name + "_sleep.log");
    c.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        shape_.shared_pid ? v1::POD : v1::CONTAINER);
    return c;
  }

  const std::string who_;
  v1::RuntimeService::Stub& runtime_;
  v1::ImageService::Stub& images_;
  const PodShape shape_;
};

// Removes every pod of a runtime and kills any shim left, when it goes out of scope:
// declared after the daemon it cleans up after, so it runs first.
class PodJanitor {
 public:
  PodJanitor(CriLifecycle* cri, ShimMatcher is_shim) : cri_(cri), is_shim_(std::move(is_shim)) {}
  ~PodJanitor() {
    if (cri_ != nullptr) (void)cri_->RemoveAllPods();
    if (!is_shim_) return;
    if (WaitForNoShims(is_shim_, std::chrono::seconds(5)) > 0) {
      size_t n = KillShims(is_shim_);
      std::cerr << "warning: killed " << n << " leftover " << (cri_ ? cri_->who() : "")
                << " shim(s)\n";
    }
  }
  PodJanitor(const PodJanitor&) = delete;
  PodJanitor& operator=(const PodJanitor&) = delete;

 private:
  CriLifecycle* cri_;
  ShimMatcher is_shim_;
};

// ---- the baseline: bare runc ------------------------------------------------------

struct RuncTimes {
  double create = 0, start = 0, kill_wait = 0, remove = 0;
  double state = 0;  // the last `runc state` of kill_wait, the one that said "stopped"
};

struct RuncSamples {
  std::vector<double> create, start, kill_wait, remove, state, create_start, kill_remove;
  void Add(const RuncTimes& t) {
    create.push_back(t.create);
    start.push_back(t.start);
    kill_wait.push_back(t.kill_wait);
    remove.push_back(t.remove);
    state.push_back(t.state);
    create_start.push_back(t.create + t.start);
    kill_remove.push_back(t.kill_wait + t.remove);
  }
};

// posix_spawn of argv[0] with stdin /dev/null and stdout, stderr to `out` (or
// /dev/null), and no signal blocked. berthd starts runc (and berth-shim) with
// posix_spawn too: a fork() of this multi-threaded benchmark made every runc
// call of the baseline a few ms slower than the same call from berthd.
absl::StatusOr<pid_t> PosixSpawn(const std::vector<std::string>& argv, const std::string& out) {
  const std::string out_path = out.empty() ? "/dev/null" : out;
  int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd < 0) return absl::InternalError(StrCat("open ", out_path, ": ", strerror(errno)));
  absl::Cleanup close_out = [out_fd] { close(out_fd); };
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  absl::Cleanup destroy_actions = [&actions] { posix_spawn_file_actions_destroy(&actions); };
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  absl::Cleanup destroy_attr = [&attr] { posix_spawnattr_destroy(&attr); };
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  if (rc != 0) return absl::InternalError(StrCat("posix_spawn ", argv[0], ": ", strerror(rc)));
  return pid;
}

class RuncBaseline {
 public:
  // One bundle in `dir`: rootfs = the image's layers unpacked with tar, config.json
  // from `runc spec` with no terminal, `sleep 3600`, and new pid, ipc, uts, mount
  // and network namespaces, in cgroup `cgroups_path`.
  static absl::StatusOr<std::unique_ptr<RuncBaseline>> Create(const std::string& runc,
                                                              const OciImage& image,
                                                              const std::string& dir,
                                                              const std::string& cgroups_path) {
    std::unique_ptr<RuncBaseline> b(new RuncBaseline());
    b->runc_ = runc;
    b->root_ = dir + "/root";
    b->bundle_ = dir + "/bundle";
    b->log_ = dir + "/runc.log";
    b->pid_file_ = dir + "/init.pid";
    b->out_ = dir + "/out";
    std::error_code ec;
    for (const std::string& d : {b->root_, b->bundle_ + "/rootfs"}) {
      fs::create_directories(d, ec);
      if (ec) return absl::InternalError(StrCat("mkdir ", d, ": ", ec.message()));
    }
    for (size_t i = 0; i < image.layers.size(); ++i) {
      const std::string blob = StrCat(dir, "/layer", i, ".tar.gz");
      RETURN_IF_ERROR(WriteText(blob, image.layers[i].blob.data));
      RETURN_IF_ERROR(RunCommand({"tar", "-xzf", blob, "-C", b->bundle_ + "/rootfs"}));
      unlink(blob.c_str());
    }
    RETURN_IF_ERROR(RunCommand({runc, "spec", "--bundle", b->bundle_}));
    const std::string config_path = b->bundle_ + "/config.json";
    nlohmann::json config = nlohmann::json::parse(ReadText(config_path), nullptr, false);
    if (config.is_discarded()) return absl::InternalError("runc spec: unparsable config.json");
    config["process"]["terminal"] = false;
    config["process"]["args"] = {"sleep", "3600"};
    std::set<std::string> have;
    for (const nlohmann::json& ns : config["linux"]["namespaces"]) {
      have.insert(ns.value("type", ""));
    }
    for (const char* type : {"pid", "ipc", "uts", "mount", "network"}) {
      if (!have.count(type)) config["linux"]["namespaces"].push_back({{"type", type}});
    }
    config["linux"]["cgroupsPath"] = cgroups_path;
    RETURN_IF_ERROR(WriteText(config_path, config.dump(2)));

    ASSIGN_OR_RETURN(pid_t pid, Spawn(runc, {"--version"}, b->out_));
    RETURN_IF_ERROR(WaitForExit(pid, "runc --version"));
    std::string version = ReadText(b->out_);
    version = version.substr(0, version.find('\n'));
    constexpr std::string_view kPrefix = "runc version ";
    if (version.starts_with(kPrefix)) version = version.substr(kPrefix.size());
    b->version_ = version;
    return b;
  }

  ~RuncBaseline() {
    for (const std::string& id : live_) (void)Run({"delete", "--force", id});
  }
  RuncBaseline(const RuncBaseline&) = delete;
  RuncBaseline& operator=(const RuncBaseline&) = delete;

  const std::string& version() const { return version_; }

  absl::StatusOr<RuncTimes> Cycle(const std::string& id) {
    RuncTimes t;
    unlink(pid_file_.c_str());
    live_.insert(id);
    RETURN_IF_ERROR(Run({"create", "--bundle", bundle_, "--pid-file", pid_file_, id}, &t.create));
    const pid_t init = std::atoi(ReadText(pid_file_).c_str());
    if (init <= 0) {
      return absl::InternalError(StrCat("runc create ", id, ": no pid in ", pid_file_));
    }
    // Opened before the clock starts: its poll wakes the moment the process exits.
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, init, 0));
    absl::Cleanup close_pidfd = [pidfd] {
      if (pidfd >= 0) close(pidfd);
    };
    RETURN_IF_ERROR(Run({"start", id}, &t.start));

    auto kill_start = Clock::now();
    RETURN_IF_ERROR(Run({"kill", id, "KILL"}));
    if (pidfd >= 0) {
      pollfd p{.fd = pidfd, .events = POLLIN};
      poll(&p, 1, 10000);
    }
    for (int attempt = 0;; ++attempt) {
      auto state_start = Clock::now();
      ASSIGN_OR_RETURN(std::string status, State(id));
      t.state = MsSince(state_start);
      if (status == "stopped") break;
      if (attempt == 1000) {
        return absl::DeadlineExceededError(StrCat("runc state ", id, ": still ", status));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    t.kill_wait = MsSince(kill_start);

    RETURN_IF_ERROR(Run({"delete", id}, &t.remove));
    live_.erase(id);
    return t;
  }

 private:
  RuncBaseline() = default;

  // runc --root R --log L ARGS..., stdio /dev/null (stdout to `out` when given);
  // `ms` gets its duration from spawn to exit.
  absl::Status Run(const std::vector<std::string>& args, double* ms = nullptr,
                   const std::string& out = "") {
    std::vector<std::string> argv = {runc_, "--root", root_, "--log", log_};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!out.empty()) unlink(out.c_str());
    auto start = Clock::now();
    ASSIGN_OR_RETURN(pid_t pid, PosixSpawn(argv, out));
    absl::Status s = WaitForExit(pid, StrCat("runc ", args[0]));
    if (ms != nullptr) *ms = MsSince(start);
    if (!s.ok()) {
      return absl::Status(s.code(),
                          StrCat(s.message(), "; runc log tail:\n", FileTail(log_, 1024)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> State(const std::string& id) {
    RETURN_IF_ERROR(Run({"state", id}, nullptr, out_));
    nlohmann::json state = nlohmann::json::parse(ReadText(out_), nullptr, false);
    if (state.is_discarded() || !state.contains("status")) {
      return absl::InternalError(StrCat("runc state ", id, ": unparsable: ", ReadText(out_)));
    }
    return state["status"].get<std::string>();
  }

  std::string runc_, root_, bundle_, log_, pid_file_, out_, version_;
  std::set<std::string> live_;  // created and not yet deleted
};

// ---- containerd's pods: a sandbox image and a network ------------------------------

// containerd's CRI plugin runs no pod without a CNI network besides loopback, so
// both daemons get the cheapest network there is: this plugin, which configures
// nothing and reports an address on eth0 (what containerd requires of a result),
// behind the loopback plugin (containerd's go-cni calls it for "lo" itself). A
// berthd with CNI support runs it too; berth's pods without CNI (the
// berth.io/network: none annotation) measure RunPodSandbox without any plugin.
constexpr char kNoopCniPlugin[] = R"(#!/bin/sh
# A CNI plugin that does nothing, for berth's lifecycle_bench.
cat >/dev/null
case "$CNI_COMMAND" in
  ADD) printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"10.254.0.2/32","interface":0}]}' "$CNI_IFNAME" "$CNI_NETNS" ;;
  VERSION) printf '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}' ;;
esac
exit 0
)";

constexpr char kNoopConflist[] = R"({
  "cniVersion": "1.0.0",
  "name": "berth-bench-noop",
  "plugins": [{"type": "berth-bench-noop"}]
}
)";

// A CNI bin dir with the real loopback plugin and the no-op one, and a conf dir
// with the no-op network, for both daemons.
absl::Status MakeCniDirs(const std::string& bin_dir, const std::string& conf_dir) {
  std::error_code ec;
  for (const std::string& dir : {bin_dir, conf_dir}) {
    fs::create_directories(dir, ec);
    if (ec) return absl::InternalError(StrCat("mkdir ", dir, ": ", ec.message()));
  }
  fs::create_symlink("/usr/lib/cni/loopback", bin_dir + "/loopback", ec);
  if (ec) return absl::InternalError(StrCat("symlink loopback: ", ec.message()));
  RETURN_IF_ERROR(WriteText(bin_dir + "/berth-bench-noop", kNoopCniPlugin, 0755));
  return WriteText(conf_dir + "/10-bench.conflist", kNoopConflist);
}

// ---- the report ----------------------------------------------------------------------

std::string Cell(const std::vector<double>& samples) {
  if (samples.empty()) return fmt::format("{:>7} {:>7} {:>7}", "-", "-", "-");
  Summary s = Summarize(samples);
  return fmt::format("{:7.2f} {:7.2f} {:7.2f}", s.median, s.p90, s.mean);
}

std::string Ratio(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty()) return "";
  return fmt::format("{:.2f}×", Summarize(a).median / Summarize(b).median);
}

// The median of a[i] ÷ b[i]: samples taken side by side (the contenders take
// turns pod by pod), so each pair saw the same load on the machine.
double PairedRatio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> ratios;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) ratios.push_back(a[i] / b[i]);
  return Summarize(ratios).median;
}

std::string MiB(int64_t kb) { return fmt::format("{:.1f}", static_cast<double>(kb) / 1024); }

// Two columns, RSS and PSS.
std::string MemCell(const Mem& m) {
  return fmt::format("{:>8} {:>8}", MiB(m.rss_kb),
                     m.has_pss || m.rss_kb == 0 ? MiB(m.pss_kb) : "-");
}

struct MemoryFigures {
  bool measured = false;
  Mem daemon_idle;    // fresh: started, nothing pulled
  Mem daemon_before;  // after the pulls and the timed rounds, before the pods
  Mem daemon_loaded;  // with the pods running
  Census census;      // with the pods running
  double start_all_s = 0;
  double remove_all_s = 0;  // StopContainer each, then StopPodSandbox + RemovePodSandbox each
  size_t shims_left = 0;    // after every pod was removed
  std::string error;
};

// Starts `pods` pods with one running container each, takes the census, removes
// them all and checks that no shim is left.
MemoryFigures MeasureMemory(CriLifecycle& cri, pid_t daemon, const ShimMatcher& is_shim, int pods,
                            Mem daemon_idle) {
  MemoryFigures m;
  m.daemon_idle = daemon_idle;
  m.daemon_before = ReadMem(daemon).value_or(Mem{});
  auto start = Clock::now();
  for (int i = 0; i < pods && !Interrupted(); ++i) {
    if (absl::Status s = cri.StartPod(StrCat("mem-", cri.who(), "-", i)); !s.ok()) {
      m.error = s.ToString();
      break;
    }
  }
  m.start_all_s = MsSince(start) / 1000;
  if (m.error.empty()) {
    // Let lazily touched pages (gRPC, the store) settle before measuring.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    m.daemon_loaded = ReadMem(daemon).value_or(Mem{});
    m.census = TakeCensus(is_shim);
    m.measured = true;
  }
  auto remove_start = Clock::now();
  if (absl::Status s = cri.RemoveAllPods(); !s.ok() && m.error.empty()) m.error = s.ToString();
  m.remove_all_s = MsSince(remove_start) / 1000;
  m.shims_left = WaitForNoShims(is_shim, std::chrono::seconds(10));
  return m;
}

// What each pod costs the runtime: the daemon's RSS growth (its own heap: PSS
// moves whenever another process maps the same libraries) plus its shims and
// infra processes, in PSS when known (their pages are mostly shared).
double OverheadPerPodKb(const MemoryFigures& m, int pods) {
  const bool pss = m.census.shims_mem.has_pss;
  auto v = [pss](const Mem& x) { return static_cast<double>(pss ? x.pss_kb : x.rss_kb); };
  return (static_cast<double>(m.daemon_loaded.rss_kb - m.daemon_before.rss_kb) +
          v(m.census.shims_mem) + v(m.census.infra_mem)) /
         pods;
}

// The memory table; "file" RSS is the binary's and shared libraries' pages.
void PrintMemory(const MemoryFigures& berth, const std::optional<MemoryFigures>& ctrd, int pods) {
  std::cout << fmt::format("\n{:<46} {:>17}   {:>17}\n{:<46} {:>8} {:>8}   {:>8} {:>8}\n",
                           "memory (MiB)", "berth", ctrd ? "containerd" : "", "", "RSS", "PSS",
                           ctrd ? "RSS" : "", ctrd ? "PSS" : "");
  auto row = [&](const std::string& label, const std::function<Mem(const MemoryFigures&)>& get,
                 const std::string& note = "") {
    std::cout << fmt::format("{:<46} {}   {}{}\n", label, MemCell(get(berth)),
                             ctrd ? MemCell(get(*ctrd)) : std::string(17, ' '),
                             note.empty() ? "" : "  " + note);
  };
  const double idle_mib = static_cast<double>(berth.daemon_idle.rss_kb) / 1024;
  row(
      "daemon, fresh (nothing pulled, no pod)",
      [](const MemoryFigures& m) { return m.daemon_idle; },
      fmt::format("berthd target ≤ 12 MiB RSS: {}", idle_mib <= 12 ? "met" : "NOT met"));
  auto split = [](const Mem& m) { return fmt::format("{} + {}", MiB(m.anon_kb), MiB(m.file_kb)); };
  std::cout << fmt::format("{:<46} {:>17}   {:>17}\n", "  RSS: anon + file-backed",
                           split(berth.daemon_idle), ctrd ? split(ctrd->daemon_idle) : "");
  row("daemon after pulls and timed rounds",
      [](const MemoryFigures& m) { return m.daemon_before; });
  if (!berth.measured) {
    std::cout << "berth: memory with pods not measured: " << berth.error << "\n";
    return;
  }
  row(fmt::format("daemon with {} pods running", pods),
      [](const MemoryFigures& m) { return m.daemon_loaded; });
  auto count = [](const MemoryFigures& m, const std::vector<pid_t>& v) {
    return m.measured ? std::to_string(v.size()) : std::string("-");
  };
  row(fmt::format("shims (berth {}, containerd {}): sum", count(berth, berth.census.shims),
                  ctrd ? count(*ctrd, ctrd->census.shims) : "-"),
      [](const MemoryFigures& m) { return m.census.shims_mem; });
  row("  per shim", [](const MemoryFigures& m) {
    size_t n = std::max<size_t>(1, m.census.shims.size());
    Mem per = m.census.shims_mem;
    per.rss_kb /= static_cast<int64_t>(n);
    per.pss_kb /= static_cast<int64_t>(n);
    return per;
  });
  row(fmt::format("infra/pause (berth {}, containerd {}): sum", count(berth, berth.census.infra),
                  ctrd ? count(*ctrd, ctrd->census.infra) : "-"),
      [](const MemoryFigures& m) { return m.census.infra_mem; });
  row(fmt::format("sleep (berth {}, containerd {}): sum", count(berth, berth.census.workload),
                  ctrd ? count(*ctrd, ctrd->census.workload) : "-"),
      [](const MemoryFigures& m) { return m.census.workload_mem; });
  std::cout << fmt::format(
      "{:<46} {:>17}   {:>17}\n",
      berth.census.shims_mem.has_pss ? "per pod: daemon RSS growth + shims, infra PSS"
                                     : "per pod: daemon growth + shims + infra (RSS)",
      MiB(static_cast<int64_t>(OverheadPerPodKb(berth, pods))),
      ctrd && ctrd->measured ? MiB(static_cast<int64_t>(OverheadPerPodKb(*ctrd, pods))) : "");
  std::cout << fmt::format(
      "{:<46} {:>17}   {:>17}\n", fmt::format("time to start {} pods", pods),
      fmt::format("{:.2f} s", berth.start_all_s),
      ctrd && ctrd->measured ? fmt::format("{:.2f} s", ctrd->start_all_s) : "");
  std::cout << fmt::format(
      "{:<46} {:>17}   {:>17}\n", "time to stop and remove them",
      fmt::format("{:.2f} s", berth.remove_all_s),
      ctrd && ctrd->measured ? fmt::format("{:.2f} s", ctrd->remove_all_s) : "");
  std::cout << fmt::format("{:<46} {:>17}   {:>17}\n", "shims left after removing every pod",
                           berth.shims_left, ctrd ? std::to_string(ctrd->shims_left) : "");
  if (ctrd && !ctrd->measured) {
    std::cout << "containerd: memory with pods not measured: " << ctrd->error << "\n";
  }
  if (!berth.error.empty()) {
    std::cout << "berth: error during the memory phase: " << berth.error << "\n";
  }
}

struct LatencyResults {
  std::string berth_version, containerd_version, runc_version;  // containerd's "": no figures
  CriSamples berth, containerd;
  CriSamples berth_no_cni;  // empty unless berth runs CNI and honours berth.io/network: none
  bool berth_cni = false;   // berth's pods got the no-op network
  RuncSamples runc;
};

// The latency table: per operation berth, containerd (when it ran) and the
// runc step it compares with, then the targets.
void PrintLatency(const LatencyResults& r, const Flags& flags) {
  const bool ctrd = !r.containerd_version.empty();
  const CriSamples none;
  const CriSamples& cs = ctrd ? r.containerd : none;
  std::cout << fmt::format(
      "\n{:<20} {:^23}   {:^23}   {:<28}  {:>7} {:>7}\n"
      "{:<20} {:>7} {:>7} {:>7}   {:>7} {:>7} {:>7}   {:<12} {:>7} {:>7}  {:>7} {:>7}\n",
      "latency (ms)", "berth " + r.berth_version,
      ctrd ? "containerd " + r.containerd_version : "containerd", "runc " + r.runc_version,
      "berth ÷", "berth ÷", "", "median", "p90", "mean", "median", "p90", "mean", "", "median",
      "p90", "runc", "ctrd");
  const std::array<std::pair<const char*, const std::vector<double>*>, kOpCount> runc_rows = {{
      {"", nullptr},
      {"create", &r.runc.create},
      {"start", &r.runc.start},
      {"kill+wait", &r.runc.kill_wait},
      {"delete", &r.runc.remove},
      {"", nullptr},
      {"", nullptr},
  }};
  auto runc_cell = [](const std::vector<double>* v) {
    if (v == nullptr) return fmt::format("{:>7} {:>7}", "", "");
    Summary s = Summarize(*v);
    return fmt::format("{:7.2f} {:7.2f}", s.median, s.p90);
  };
  auto print_row = [&](const std::string& name, const std::vector<double>& berth_v,
                       const std::vector<double>& ctrd_v, const char* runc_name,
                       const std::vector<double>* runc_v) {
    std::cout << fmt::format("{:<20} {}   {}   {:<12} {}  {:>7} {:>7}\n", name, Cell(berth_v),
                             Cell(ctrd_v), runc_name, runc_cell(runc_v),
                             runc_v ? Ratio(berth_v, *runc_v) : "", Ratio(berth_v, ctrd_v));
  };
  for (int op = 0; op < kOpCount; ++op) {
    print_row(kOpNames[op], r.berth.ops[op], cs.ops[op], runc_rows[op].first, runc_rows[op].second);
  }
  print_row("Create+Start", r.berth.create_start, cs.create_start, "create+start",
            &r.runc.create_start);
  print_row("Stop+Remove", r.berth.stop_remove, cs.stop_remove, "kill+delete", &r.runc.kill_remove);
  print_row("whole pod (7 RPCs)", r.berth.whole, cs.whole, "", nullptr);

  const bool no_cni = !r.berth_no_cni.empty();
  if (no_cni) {
    std::cout << fmt::format("\n{:<20} {:^23}   {:>9}\n{:<20} {:>7} {:>7} {:>7}   {:>9}\n",
                             "berth without CNI", "berth.io/network: none", "÷ with", "", "median",
                             "p90", "mean", "CNI");
    for (int op : {kRunPodSandbox, kStopPodSandbox, kRemovePodSandbox}) {
      std::cout << fmt::format("{:<20} {}   {:>9}\n", kOpNames[op], Cell(r.berth_no_cni.ops[op]),
                               Ratio(r.berth_no_cni.ops[op], r.berth.ops[op]));
    }
    std::cout << fmt::format("{:<20} {}   {:>9}\n", "whole pod (7 RPCs)",
                             Cell(r.berth_no_cni.whole),
                             Ratio(r.berth_no_cni.whole, r.berth.whole));
  }
  const Summary run_pod =
      Summarize(no_cni ? r.berth_no_cni.ops[kRunPodSandbox] : r.berth.ops[kRunPodSandbox]);
  const double create_start_ratio =
      Summarize(r.berth.create_start).median / Summarize(r.runc.create_start).median;
  if (ctrd) {
    std::cout << "\ncontainerd's CreateContainer only records the container (its runc create runs "
                 "in StartContainer): compare Create+Start.";
  }
  std::cout << fmt::format(
      "\n{} samples per operation ({} pods × {} rounds); sums are per pod, then summarized\n"
      "berth RunPodSandbox median {:.2f} ms {}(target ≤ 20 ms without CNI: {})\n"
      "berth Create+Start ÷ runc create+start = {:.2f}× (medians; target ≤ 1.15×: {}); "
      "pod by pod: {:.2f}×\n"
      "berth Stop+Remove ÷ runc kill+delete   = {} (medians); pod by pod: {:.2f}×\n"
      "runc kill+wait ends with the `runc state` that reports \"stopped\" (median {:.2f} ms)\n",
      r.berth.whole.size(), flags.pods, flags.rounds, run_pod.median, no_cni ? "without CNI " : "",
      r.berth_cni && !no_cni ? "not measured"
      : run_pod.median <= 20 ? "met"
                             : "NOT met",
      create_start_ratio, create_start_ratio <= 1.15 ? "met" : "NOT met",
      PairedRatio(r.berth.create_start, r.runc.create_start),
      Ratio(r.berth.stop_remove, r.runc.kill_remove),
      PairedRatio(r.berth.stop_remove, r.runc.kill_remove), Summarize(r.runc.state).median);
  if (ctrd) {
    std::cout << fmt::format("berth ÷ containerd, whole pod = {}\n",
                             Ratio(r.berth.whole, cs.whole));
  }
}

// ---- the run -------------------------------------------------------------------------

// A contender of the timed rounds: one pod lifecycle per call.
struct Contender {
  std::string name;
  std::string tag;  // in its pods' names: [a-z-]
  std::function<absl::Status(const std::string& pod_name, bool timed)> cycle;
  bool optional = false;  // containerd: a failure drops it, the run goes on
  std::string failure;
};

int Run(const Flags& flags, const char* argv0) {
  if (geteuid() != 0) {
    std::cerr << "lifecycle_bench needs root: it runs containers through runc (namespaces, "
                 "mounts, cgroups)\n";
    return 1;
  }
  absl::StatusOr<std::string> berthd_path =
      FindBerthd(flags.berthd, argv0, "//bench:lifecycle_bench");
  if (!berthd_path.ok()) {
    std::cerr << berthd_path.status() << "\n";
    return 1;
  }
  setenv("BERTHD_BINARY", berthd_path->c_str(), 1);  // what BerthdFixture runs
  if (access(flags.runc.c_str(), X_OK) != 0) {
    std::cerr << "runc not found at " << flags.runc << " (--runc PATH)\n";
    return 1;
  }
  for (const char* v :
       {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
    unsetenv(v);  // pulls go to 127.0.0.1 only
  }
  std::string containerd_binary = flags.containerd;
  if (containerd_binary.empty() && !flags.skip_containerd) {
    containerd_binary = ContainerdInstance::FindBinary().value_or("");
  }
  const std::string load_at_start = LoadAverage();

  // Removed last: cgroups are empty only once every daemon and container is gone.
  CgroupParents cgroups(StrCat("berth-bench-", getpid()));
  TempDir work("berth-lifecycle");
  if (work.path().empty()) {
    std::cerr << "mkdtemp under /tmp failed\n";
    return 1;
  }

  // The image, and the registry every daemon pulls it from.
  absl::StatusOr<OciImage> busybox = berth::testing::BuildBusyboxImage();
  if (!busybox.ok()) {
    std::cerr << "building the busybox image: " << busybox.status() << "\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Registry>> registry = Registry::Start();
  if (!registry.ok()) {
    std::cerr << "starting docker-registry: " << registry.status() << "\n";
    return 1;
  }
  if (absl::Status s = (*registry)->Push(*busybox, kBusyboxRepo, kTag); !s.ok()) {
    std::cerr << "push: " << s << "\n";
    return 1;
  }
  const std::string image_ref = StrCat((*registry)->host(), "/", kBusyboxRepo, ":", kTag);
  const std::string pause_ref = StrCat((*registry)->host(), "/", kPauseRepo, ":", kTag);

  const std::string cni_bin = work.path() + "/cni-bin";
  const std::string cni_conf = work.path() + "/cni-net.d";
  if (absl::Status s = MakeCniDirs(cni_bin, cni_conf); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }

  // ---- berth
  absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start(
      {.config_toml = StrCat("[registries.\"", (*registry)->host(), "\"]\nmirrors = [\"",
                             (*registry)->url(), "\"]\n[network]\nconf_dir = \"", cni_conf,
                             "\"\nbin_dirs = [\"", cni_bin, "\"]\n")});
  if (!berthd.ok()) {
    std::cerr << "starting berthd: " << berthd.status() << "\n";
    return 1;
  }
  BerthdFixture& b = **berthd;
  auto berthd_log_tail = [&b] { return FileTail(b.dir() + "/berthd.log", 3000); };
  std::string berth_version;
  {
    grpc::ClientContext ctx;
    v1::VersionResponse version;
    if (b.runtime().Version(&ctx, v1::VersionRequest(), &version).ok()) {
      berth_version = version.runtime_version();
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const Mem berthd_idle = ReadMem(b.pid()).value_or(Mem{});
  absl::StatusOr<std::string> shim_exe = HelperOfBerthd(b.pid(), "runtime/shim", "berth-shim");
  absl::StatusOr<std::string> pause_exe = HelperOfBerthd(b.pid(), "runtime/pause", "berth-pause");
  if (!shim_exe.ok() || !pause_exe.ok()) {
    std::cerr << (shim_exe.ok() ? pause_exe.status() : shim_exe.status()) << "\n";
    return 1;
  }
  const ShimMatcher is_berth_shim = [exe = *shim_exe, state = b.state() + "/"](const Proc& p) {
    return p.exe == exe && p.cmdline.find(state) != std::string::npos;
  };
  const std::string logs = work.path() + "/logs";
  std::error_code ec;
  fs::create_directories(logs + "/berth", ec);
  fs::create_directories(logs + "/containerd", ec);
  CriLifecycle berth("berth", b.runtime(), b.image(),
                     {.shared_pid = flags.shared_pid,
                      .image = image_ref,
                      .log_directory = logs + "/berth",
                      .cgroup_parent = cgroups.For("berth"),
                      .stop_timeout = flags.stop_timeout});
  // The same berthd, pods asking for no network: RunPodSandbox without CNI.
  CriLifecycle berth_no_cni("berth (no CNI)", b.runtime(), b.image(),
                            {.shared_pid = flags.shared_pid,
                             .image = image_ref,
                             .log_directory = logs + "/berth",
                             .cgroup_parent = cgroups.For("berth"),
                             .stop_timeout = flags.stop_timeout,
                             .annotations = {{"berth.io/network", "none"}}});
  PodJanitor berth_janitor(&berth, is_berth_shim);
  if (absl::Status s = berth.Pull(image_ref); !s.ok()) {
    std::cerr << s << "\nberthd log tail:\n" << berthd_log_tail() << "\n";
    return 1;
  }
  // Does this berthd run CNI, and does it honour berth.io/network: none?
  absl::StatusOr<std::string> berth_ip = berth.PodIp("probe-berth");
  absl::StatusOr<std::string> berth_no_cni_ip = berth_no_cni.PodIp("probe-berth-no-cni");
  if (!berth_ip.ok() || !berth_no_cni_ip.ok()) {
    std::cerr << (berth_ip.ok() ? berth_no_cni_ip.status() : berth_ip.status())
              << "\nberthd log tail:\n"
              << berthd_log_tail() << "\n";
    return 1;
  }
  const bool berth_runs_cni = !berth_ip->empty();
  const bool time_no_cni = berth_runs_cni && berth_no_cni_ip->empty();
  std::string berth_network =
      !berth_runs_cni
          ? "no CNI (this berthd attached no network: pod IP empty), loopback only"
          : StrCat("loopback + the no-op plugin, as containerd (pod IP ", *berth_ip, ")");
  if (time_no_cni) {
    berth_network += "; and without CNI: pods annotated berth.io/network: none";
  } else if (berth_runs_cni) {
    berth_network += StrCat("; berth.io/network: none NOT honoured (pod IP ", *berth_no_cni_ip,
                            "): no figures without CNI");
  }

  // ---- containerd
  // In this order, so the janitor goes first, while containerd still serves.
  std::unique_ptr<ContainerdInstance> ctrd;
  std::unique_ptr<CriLifecycle> ctrd_cri;
  std::unique_ptr<PodJanitor> ctrd_janitor;
  Mem ctrd_idle;
  std::string containerd_skipped, ctrd_ip;
  ShimMatcher is_ctrd_shim;
  if (containerd_binary.empty()) {
    containerd_skipped = flags.skip_containerd ? "skipped (--skip-containerd)" : "not installed";
  } else {
    auto setup = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(OciImage pause, BuildPauseImage(*pause_exe, kPauseRepo, kTag));
      RETURN_IF_ERROR((*registry)->Push(pause, kPauseRepo, kTag));
      ASSIGN_OR_RETURN(ctrd,
                       ContainerdInstance::Start({.binary = containerd_binary,
                                                  .plain_http_registries = {(*registry)->host()},
                                                  .sandbox_image = pause_ref,
                                                  .cni_bin_dir = cni_bin,
                                                  .cni_conflist = kNoopConflist}));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      ctrd_idle = ReadMem(ctrd->pid()).value_or(Mem{});
      is_ctrd_shim = [address = "-address " + ctrd->socket()](const Proc& p) {
        return fs::path(p.exe).filename() == "containerd-shim-runc-v2" &&
               p.cmdline.find(address) != std::string::npos;
      };
      ctrd_cri = std::make_unique<CriLifecycle>("containerd", ctrd->runtime(), ctrd->image(),
                                                PodShape{.shared_pid = flags.shared_pid,
                                                         .image = image_ref,
                                                         .log_directory = logs + "/containerd",
                                                         .cgroup_parent = cgroups.For("containerd"),
                                                         .stop_timeout = flags.stop_timeout});
      ctrd_janitor = std::make_unique<PodJanitor>(ctrd_cri.get(), is_ctrd_shim);
      RETURN_IF_ERROR(ctrd_cri->Pull(pause_ref));  // as a node pre-pulls its sandbox image
      RETURN_IF_ERROR(ctrd_cri->Pull(image_ref));
      ASSIGN_OR_RETURN(ctrd_ip, ctrd_cri->PodIp("probe-containerd"));
      return absl::OkStatus();
    };
    if (absl::Status s = setup(); !s.ok()) {
      containerd_skipped = StrCat("FAILED to set up, skipped: ", s.ToString(),
                                  ctrd ? "\ncontainerd log tail:\n" + ctrd->LogTail() : "");
    }
  }
  if (!containerd_skipped.empty()) {
    ctrd_janitor.reset();
    ctrd_cri.reset();
    ctrd.reset();
  }

  // ---- runc
  const std::string runc_dir = work.path() + "/runc";
  absl::StatusOr<std::unique_ptr<RuncBaseline>> runc =
      RuncBaseline::Create(flags.runc, *busybox, runc_dir, cgroups.For("runc") + "/ctr");
  if (!runc.ok()) {
    std::cerr << "preparing the runc bundle: " << runc.status() << "\n";
    return 1;
  }

  const char* pid_mode = flags.shared_pid
                             ? "POD (--shared-pid: one PID namespace per pod; berth runs "
                               "berth-pause as its PID 1, containerd its pause container)"
                             : "CONTAINER (each container its own, as a kubelet pod without "
                               "shareProcessNamespace; berth runs no infra process)";
  std::cout << fmt::format(
      "lifecycle_bench: {} pods per contender per round, {} timed round(s) after {} untimed "
      "pod(s)\n"
      "  PID namespace: {}\n"
      "  container: {} (image kit busybox), `sleep 3600`, pulled once before timing; "
      "StopContainer timeout {} s\n"
      "  berthd {} ({})\n"
      "    network: {}\n"
      "  containerd {}\n"
      "  runc {} ({}): one bundle from the same layer, runc spec + no terminal + sleep 3600\n"
      "  {} CPUs, load average {} at start\n\n",
      flags.pods, flags.rounds, flags.warmup, pid_mode, image_ref, flags.stop_timeout,
      berth_version, *berthd_path, berth_network,
      ctrd
          ? StrCat(ctrd->version(), " (", containerd_binary, "; sandbox image ", pause_ref,
                   " = berth-pause)\n    network: loopback + a no-op plugin (pod IP ", ctrd_ip, ")")
          : containerd_skipped,
      (*runc)->version(), flags.runc, std::thread::hardware_concurrency(), load_at_start);
  if (!ctrd) std::cout << "*** containerd " << containerd_skipped << " ***\n\n";
  std::cout.flush();

  // ---- the timed rounds
  LatencyResults results{.berth_version = berth_version,
                         .runc_version = (*runc)->version(),
                         .berth_cni = berth_runs_cni};
  std::vector<Contender> contenders;
  contenders.push_back({"berth", "berth", [&](const std::string& name, bool timed) -> absl::Status {
                          ASSIGN_OR_RETURN(OpTimes t, berth.TimeOnePod(name));
                          if (timed) results.berth.Add(t);
                          return absl::OkStatus();
                        }});
  if (time_no_cni) {
    contenders.push_back(
        {"berth (no CNI)", "berth-nocni", [&](const std::string& name, bool timed) -> absl::Status {
           ASSIGN_OR_RETURN(OpTimes t, berth_no_cni.TimeOnePod(name));
           if (timed) results.berth_no_cni.Add(t);
           return absl::OkStatus();
         }});
  }
  if (ctrd) {
    contenders.push_back({"containerd", "containerd",
                          [&](const std::string& name, bool timed) -> absl::Status {
                            ASSIGN_OR_RETURN(OpTimes t, ctrd_cri->TimeOnePod(name));
                            if (timed) results.containerd.Add(t);
                            return absl::OkStatus();
                          },
                          /*optional=*/true});
  }
  contenders.push_back({"runc", "runc", [&](const std::string& name, bool timed) -> absl::Status {
                          ASSIGN_OR_RETURN(RuncTimes t, (*runc)->Cycle(name));
                          if (timed) results.runc.Add(t);
                          return absl::OkStatus();
                        }});

  // One pod (or runc container) of contender `c`; false when the run must stop.
  int serial = 0;
  auto cycle = [&](Contender& c, bool timed) -> bool {
    if (!c.failure.empty()) return true;
    absl::Status s = c.cycle(StrCat("bench-", c.tag, "-", ++serial), timed);
    if (s.ok()) return true;
    std::cout << "\n";
    if (c.optional) {
      c.failure = s.ToString();
      std::cout << "*** " << c.name << " FAILED, dropped from the comparison: " << s << "\n"
                << (ctrd ? "containerd log tail:\n" + ctrd->LogTail() : "") << "\n";
      return true;
    }
    std::cerr << "*** " << c.name << " FAILED: " << s << "\n";
    if (c.name == "berth") std::cerr << "berthd log tail:\n" << berthd_log_tail() << "\n";
    return false;
  };
  std::cout << "warm-up:" << std::flush;
  for (Contender& c : contenders) {
    for (int i = 0; i < flags.warmup && !Interrupted(); ++i) {
      if (!cycle(c, false)) return 1;
    }
    if (c.failure.empty()) std::cout << " " << c.name << " ok" << std::flush;
  }
  std::cout << "\n";
  // Pod by pod, the contenders take turns in an order that rotates, so a change
  // in the machine's load (others share its cores) hits all of them alike.
  for (int round = 0; round < flags.rounds && !Interrupted(); ++round) {
    std::vector<double> seconds(contenders.size());
    for (int i = 0; i < flags.pods && !Interrupted(); ++i) {
      for (size_t k = 0; k < contenders.size(); ++k) {
        const size_t which = (k + i + round) % contenders.size();
        auto start = Clock::now();
        if (!cycle(contenders[which], true)) return 1;
        seconds[which] += MsSince(start) / 1000;
      }
    }
    std::cout << fmt::format("round {}/{}:", round + 1, flags.rounds);
    for (size_t k = 0; k < contenders.size(); ++k) {
      if (contenders[k].failure.empty()) {
        std::cout << fmt::format(" {} {:.2f} s", contenders[k].name, seconds[k]);
      }
    }
    std::cout << std::endl;
  }
  if (Interrupted()) return 1;
  const bool ctrd_ok = ctrd && !results.containerd.empty() &&
                       std::all_of(contenders.begin(), contenders.end(), [](const Contender& c) {
                         return c.name != "containerd" || c.failure.empty();
                       });

  // ---- memory
  std::optional<MemoryFigures> berth_mem, ctrd_mem;
  if (!flags.skip_memory) {
    std::cout << fmt::format("memory: {} pods with one running container each ...", flags.pods)
              << std::flush;
    berth_mem = MeasureMemory(berth, b.pid(), is_berth_shim, flags.pods, berthd_idle);
    std::cout << " berth done" << std::flush;
    if (ctrd_ok && !Interrupted()) {
      ctrd_mem = MeasureMemory(*ctrd_cri, ctrd->pid(), is_ctrd_shim, flags.pods, ctrd_idle);
      std::cout << " containerd done" << std::flush;
    }
    std::cout << "\n";
  }
  if (Interrupted()) return 1;

  // ---- the report
  if (ctrd_ok) results.containerd_version = ctrd->version();
  PrintLatency(results, flags);
  if (!ctrd) {
    std::cout << "containerd: " << containerd_skipped << "\n";
  } else if (!ctrd_ok) {
    std::cout << "containerd: FAILED, see above\n";
  }
  if (berth_mem) PrintMemory(*berth_mem, ctrd_mem, flags.pods);

  bool clean = !berth_mem || berth_mem->shims_left == 0;
  if (ctrd_mem) clean = clean && ctrd_mem->shims_left == 0;
  if (!clean) std::cout << "*** shims were left after every pod was removed (see above) ***\n";
  std::cout << "load average at the end: " << LoadAverage() << "\n";
  return berth_mem && !berth_mem->error.empty() ? 1 : 0;
}

}  // namespace
}  // namespace berth::bench

int main(int argc, char** argv) {
  berth::bench::Flags flags;
  CLI::App app{"pod and container lifecycle latency and memory: berth vs containerd vs runc"};
  app.add_option("--pods", flags.pods, "pods per contender per round (and for the memory phase)")
      ->check(CLI::Range(1, 500));
  app.add_option("--rounds", flags.rounds, "timed rounds")->check(CLI::Range(1, 100));
  app.add_option("--warmup", flags.warmup, "untimed pod lifecycles per contender first")
      ->check(CLI::Range(0, 100));
  app.add_flag("--shared-pid", flags.shared_pid,
               "pods share one PID namespace (NamespaceMode POD; berth starts berth-pause)");
  app.add_option("--stop-timeout", flags.stop_timeout,
                 "StopContainer timeout in seconds (0: SIGKILL at once, like the runc baseline)")
      ->check(CLI::Range(0, 60));
  app.add_option("--berthd", flags.berthd, "berthd binary (default: runfiles, $BERTHD_BINARY)");
  app.add_option("--containerd", flags.containerd, "containerd binary (default: from PATH)");
  app.add_flag("--skip-containerd", flags.skip_containerd, "do not run containerd");
  app.add_option("--runc", flags.runc, "runc binary of the baseline")->capture_default_str();
  app.add_flag("--skip-memory", flags.skip_memory, "no memory phase");
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  berth::bench::HandleStopSignals("stopping after the current pod and cleaning up");
  return berth::bench::Run(flags, argv[0]);
}
