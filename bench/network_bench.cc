// network_bench: RunPodSandbox latency on a real bridge network, berth with its own
// CNI plugins against berth with Debian's standard plugins, berth without any plugin
// (the floor), and containerd 1.6 (when installed), all in one run.
//
//   bazel run //bench:network_bench -- [--pods 20] [--rounds 1]
//
// The benchmark first moves into a network namespace of its own (unshare(CLONE_NEWNET)
// on the main thread, before any thread or daemon starts; then `ip link set lo up`).
// Every daemon, plugin, bridge, veth and iptables rule lives in it and goes with it:
// the machine's network is never touched.
//
// Contenders (each pod: PID namespace CONTAINER, as a kubelet pod without
// shareProcessNamespace, so berth runs no infra process):
//
//   berth-bridge   one private berthd (BerthdFixture); pods annotated
//                  berth.io/network: net-berth, a conflist of berth-bridge (bridge bb0,
//                  10.232.1.0/24) + berth-host-local + berth-portmap + berth-loopback,
//                  cniVersion 1.0.0 with cniVersions ["1.0.0", "1.1.0"]. berthd finds its
//                  plugins beside itself (//cni/plugins is in its runfiles) and puts their
//                  directory first in its CNI bin dirs.
//   std bridge     the same berthd; berth.io/network: net-std: Debian's bridge (bs0,
//                  10.232.2.0/24) + host-local + portmap from /usr/lib/cni.
//   no CNI         the same berthd; berth.io/network: none: no plugin at all (the floor).
//   containerd     a private containerd (ContainerdInstance) with the standard bridge
//                  conflist (bridge bc0, 10.232.3.0/24, + host-local + portmap; go-cni
//                  runs loopback itself). containerd always starts a pause container
//                  for a pod, whatever the PID namespace mode: its sandbox image is
//                  berth-pause pushed to a private docker-registry on 127.0.0.1 as a
//                  pause image, pulled before timing as a node would.
//
// All bridge conflists have the same shape (isGateway, ipMasq, hairpinMode, a default
// route, host-local's dataDir in the run's temp dir). Each contender first runs one
// untimed pod (plugin binaries paged in, VERSION answers cached). Then, per round,
// each contender in turn (the order rotates from round to round) runs --pods
// RunPodSandbox calls one after the other, each timed on its own, with all its pods
// alive at the end; every pod's IP is then checked (PodSandboxStatus: in its
// network's subnet, none for "no CNI"), and every pod is stopped and removed, each
// StopPodSandbox and RemovePodSandbox timed on its own. After each batch the namespace
// is checked for what the pods left: veths, address allocations, per-pod iptables
// rules.
//
// It prints median, p90, min and mean per contender and the ratios berth-bridge ÷
// std bridge and berth-bridge ÷ containerd; it never fails on a figure. It needs root.
// Every process it starts is stopped by PID; pods, cgroups and temp dirs are removed
// at the end, also after an error or Ctrl-C.
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::bench {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::runtime::v1;
using berth::testing::BerthdFixture;
using berth::testing::OciImage;
using berth::testing::Registry;
constexpr char kPauseRepo[] = "bench/pause";
constexpr char kTag[] = "1";
constexpr char kStdBinDir[] = "/usr/lib/cni";
constexpr char kNetworkAnnotation[] = "berth.io/network";

struct Flags {
  int pods = 20;
  int rounds = 1;
  std::string berthd;
  std::string containerd;
  bool skip_containerd = false;
};

// Output of a shell command run to completion ("" when it cannot run).
std::string Shell(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// ---- processes --------------------------------------------------------------------

// Waits (up to `timeout`) until no process matches; then SIGKILLs, by PID, the
// matching ones and their children. Returns how many were killed.
size_t KillLeftoverShims(const ShimMatcher& is_shim, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    std::vector<Proc> all = ListProcesses();
    std::set<pid_t> shims;
    for (const Proc& p : all) {
      if (is_shim(p)) shims.insert(p.pid);
    }
    if (shims.empty()) return 0;
    if (Clock::now() >= deadline) {
      for (const Proc& p : all) {
        if (shims.count(p.ppid)) kill(p.pid, SIGKILL);
      }
      for (pid_t pid : shims) kill(pid, SIGKILL);
      return shims.size();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// ---- CRI -----------------------------------------------------------------------------

// One RPC with a deadline; `ms` gets its duration, client context setup excluded.
absl::Status Call(std::string_view who, const char* rpc,
                  const std::function<grpc::Status(grpc::ClientContext*)>& fn,
                  double* ms = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  auto start = Clock::now();
  grpc::Status s = fn(&ctx);
  if (ms != nullptr) *ms = MsSince(start);
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      StrCat(who, " ", rpc, ": ", s.error_message()));
}

// Stops and removes every pod the runtime lists (best effort; the first error).
absl::Status RemoveAllPods(std::string_view who, v1::RuntimeService::Stub& runtime) {
  v1::ListPodSandboxRequest list;
  v1::ListPodSandboxResponse listed;
  RETURN_IF_ERROR(Call(who, "ListPodSandbox", [&](grpc::ClientContext* ctx) {
    return runtime.ListPodSandbox(ctx, list, &listed);
  }));
  absl::Status first;
  for (const v1::PodSandbox& pod : listed.items()) {
    v1::StopPodSandboxRequest stop;
    stop.set_pod_sandbox_id(pod.id());
    v1::StopPodSandboxResponse stopped;
    absl::Status s = Call(who, "StopPodSandbox", [&](grpc::ClientContext* ctx) {
      return runtime.StopPodSandbox(ctx, stop, &stopped);
    });
    v1::RemovePodSandboxRequest remove;
    remove.set_pod_sandbox_id(pod.id());
    v1::RemovePodSandboxResponse removed;
    absl::Status r = Call(who, "RemovePodSandbox", [&](grpc::ClientContext* ctx) {
      return runtime.RemovePodSandbox(ctx, remove, &removed);
    });
    if (first.ok()) first = s.ok() ? r : s;
  }
  return first;
}

// ---- what pods leave in the namespace ------------------------------------------------

struct NamespaceCheck {
  std::string ipam_dir;  // host-local's dataDir of every network
};

// Veths, address allocations and per-pod iptables rules present in the namespace
// (every pod of the batch is gone when this runs, so all of them are leftovers).
std::vector<std::string> Leftovers(const NamespaceCheck& check) {
  std::vector<std::string> left;
  for (const std::string& line : Lines(Shell("ip -o link show type veth 2>/dev/null"))) {
    left.push_back("veth: " + line.substr(0, line.find(" link/")));
  }
  std::error_code ec;
  for (const fs::directory_entry& net : fs::directory_iterator(check.ipam_dir, ec)) {
    std::error_code ec2;
    for (const fs::directory_entry& entry : fs::directory_iterator(net.path(), ec2)) {
      const std::string name = entry.path().filename();
      if (name.find('.') != std::string::npos && !name.starts_with("last_reserved")) {
        left.push_back("address allocated: " + entry.path().string());
      }
    }
  }
  for (const std::string& line : Lines(Shell("iptables-save 2>/dev/null"))) {
    if (line[0] == '#' || line[0] == ':') continue;
    // A per-pod rule names a pod's address; the subnets' own rules are shared.
    if (line.find("10.232.") != std::string::npos && line.find(".0/24") == std::string::npos) {
      left.push_back("iptables: " + line);
    }
  }
  return left;
}

// ---- the contenders ------------------------------------------------------------------

struct Contender {
  std::string name;
  std::string tag;  // in its pods' names: [a-z-]
  std::string daemon;  // "berth" or "containerd": whose log to show on failure
  v1::RuntimeService::Stub* runtime = nullptr;
  std::map<std::string, std::string> annotations;
  std::string ip_prefix;  // every pod's IP starts with it; "": no IP
  std::string cgroup_parent;
  std::string log_directory;
  bool optional = false;  // a failure drops it, the run goes on

  std::vector<double> run_ms, stop_ms, remove_ms;
  std::vector<double> batch_s;  // wall time of each batch's RunPodSandbox calls
  std::set<std::string> ips_seen;  // of the timed pods
  std::vector<std::string> leftovers;
  std::string failure;
};

v1::PodSandboxConfig PodConfig(const Contender& c, const std::string& name) {
  v1::PodSandboxConfig pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_uid(name + "-uid");
  pod.mutable_metadata()->set_namespace_("bench");
  pod.set_hostname(name);
  pod.set_log_directory(c.log_directory);
  pod.mutable_annotations()->insert(c.annotations.begin(), c.annotations.end());
  pod.mutable_linux()->set_cgroup_parent(c.cgroup_parent);
  pod.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      v1::CONTAINER);
  return pod;
}

// `pods` RunPodSandbox calls one after the other (timed when `timed`), then each pod's
// IP checked, then StopPodSandbox + RemovePodSandbox of each (timed too). After an
// error the pods of the batch are removed, untimed.
absl::Status Batch(Contender& c, int pods, const std::string& prefix, bool timed,
                   const NamespaceCheck& check) {
  v1::RuntimeService::Stub& rt = *c.runtime;
  std::vector<std::string> ids;
  absl::Cleanup remove_on_error = [&] {
    for (const std::string& id : ids) {
      v1::StopPodSandboxRequest stop;
      stop.set_pod_sandbox_id(id);
      v1::StopPodSandboxResponse stopped;
      (void)Call(c.name, "StopPodSandbox",
                 [&](grpc::ClientContext* ctx) { return rt.StopPodSandbox(ctx, stop, &stopped); });
      v1::RemovePodSandboxRequest remove;
      remove.set_pod_sandbox_id(id);
      v1::RemovePodSandboxResponse removed;
      (void)Call(c.name, "RemovePodSandbox", [&](grpc::ClientContext* ctx) {
        return rt.RemovePodSandbox(ctx, remove, &removed);
      });
    }
  };
  std::vector<double> run_ms, stop_ms, remove_ms;
  std::set<std::string> ips;
  auto batch_start = Clock::now();
  for (int i = 0; i < pods && !Interrupted(); ++i) {
    v1::RunPodSandboxRequest run;
    *run.mutable_config() = PodConfig(c, StrCat(prefix, "-", i));
    v1::RunPodSandboxResponse ran;
    double ms = 0;
    RETURN_IF_ERROR(Call(
        c.name, "RunPodSandbox",
        [&](grpc::ClientContext* ctx) { return rt.RunPodSandbox(ctx, run, &ran); }, &ms));
    ids.push_back(ran.pod_sandbox_id());
    run_ms.push_back(ms);
  }
  const double batch_s = MsSince(batch_start) / 1000;

  // Did each pod get what the contender claims to measure?
  for (const std::string& id : ids) {
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    v1::PodSandboxStatusResponse response;
    RETURN_IF_ERROR(Call(c.name, "PodSandboxStatus", [&](grpc::ClientContext* ctx) {
      return rt.PodSandboxStatus(ctx, request, &response);
    }));
    const std::string& ip = response.status().network().ip();
    const bool ok = c.ip_prefix.empty() ? ip.empty() : ip.starts_with(c.ip_prefix);
    if (!ok) {
      return absl::FailedPreconditionError(
          StrCat(c.name, ": pod ", id.substr(0, 12), " has IP \"", ip, "\", expected ",
                 c.ip_prefix.empty() ? "none" : c.ip_prefix + "*"));
    }
    ips.insert(ip);
  }

  while (!ids.empty()) {
    const std::string id = ids.front();
    v1::StopPodSandboxRequest stop;
    stop.set_pod_sandbox_id(id);
    v1::StopPodSandboxResponse stopped;
    double ms = 0;
    RETURN_IF_ERROR(Call(
        c.name, "StopPodSandbox",
        [&](grpc::ClientContext* ctx) { return rt.StopPodSandbox(ctx, stop, &stopped); }, &ms));
    stop_ms.push_back(ms);
    v1::RemovePodSandboxRequest remove;
    remove.set_pod_sandbox_id(id);
    v1::RemovePodSandboxResponse removed;
    RETURN_IF_ERROR(Call(
        c.name, "RemovePodSandbox",
        [&](grpc::ClientContext* ctx) { return rt.RemovePodSandbox(ctx, remove, &removed); },
        &ms));
    remove_ms.push_back(ms);
    ids.erase(ids.begin());
  }
  for (const std::string& left : Leftovers(check)) {
    if (c.leftovers.size() < 20) c.leftovers.push_back(StrCat(prefix, ": ", left));
  }
  if (Interrupted()) return absl::CancelledError("interrupted");
  if (timed) {
    c.run_ms.insert(c.run_ms.end(), run_ms.begin(), run_ms.end());
    c.stop_ms.insert(c.stop_ms.end(), stop_ms.begin(), stop_ms.end());
    c.remove_ms.insert(c.remove_ms.end(), remove_ms.begin(), remove_ms.end());
    c.batch_s.push_back(batch_s);
    c.ips_seen.insert(ips.begin(), ips.end());
  }
  return absl::OkStatus();
}

// ---- networks ---------------------------------------------------------------------------

struct BridgeNet {
  std::string name, bridge, subnet;
  std::string bridge_type, ipam_type, portmap_type;
  bool berth_loopback = false;  // append berth-loopback; and cniVersions 1.0.0 + 1.1.0
};

// The conflist every contender's network follows (e2e/network_test.cc's shape).
std::string Conflist(const BridgeNet& n, const std::string& ipam_dir) {
  return StrCat(
      R"({"cniVersion": "1.0.0", )",
      n.berth_loopback ? R"("cniVersions": ["1.0.0", "1.1.0"], )" : "", R"("name": ")", n.name,
      R"(", "plugins": [)", R"({"type": ")", n.bridge_type, R"(", "bridge": ")", n.bridge,
      R"(", "isGateway": true, "ipMasq": true, "hairpinMode": true,)",
      R"( "ipam": {"type": ")", n.ipam_type, R"(", "ranges": [[{"subnet": ")", n.subnet,
      R"("}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ")", ipam_dir, R"("}}, )",
      R"({"type": ")", n.portmap_type, R"(", "capabilities": {"portMappings": true}})",
      n.berth_loopback ? R"(, {"type": "berth-loopback"})" : "", "]}\n");
}

std::string IpPrefix(const std::string& subnet) {  // "10.232.1.0/24" -> "10.232.1."
  return subnet.substr(0, subnet.rfind('.') + 1);
}

// The warnings and errors in a daemon's log, grouped by level and message (the text
// after msg=, or the line after the level; numbers collapsed to #), most frequent first.
std::vector<std::pair<size_t, std::string>> Complaints(const std::string& log, size_t* total) {
  std::map<std::string, size_t> counts;
  *total = 0;
  for (const std::string& line : Lines(log)) {
    size_t level = line.find("level=");
    if (level == std::string::npos) continue;
    const std::string_view rest = std::string_view(line).substr(level + 6);
    const std::string_view name = rest.substr(0, rest.find(' '));
    if (name != "warning" && name != "warn" && name != "error" && name != "fatal" &&
        name != "critical") {
      continue;
    }
    ++*total;
    std::string_view what = rest.substr(std::min(rest.size(), name.size() + 1));
    if (size_t msg = what.find("msg=\""); msg != std::string_view::npos) {
      // containerd: msg="..." with \" escapes; the message only.
      size_t end = msg + 5;
      while (end < what.size() && what[end] != '"') end += what[end] == '\\' ? 2 : 1;
      what = what.substr(msg, std::min(end + 1, what.size()) - msg);
    }
    // Numbers (times, PIDs) vary from line to line; the message does not.
    std::string key;
    for (char ch : what.substr(0, 200)) {
      if (std::isdigit(static_cast<unsigned char>(ch))) {
        if (key.empty() || key.back() != '#') key += '#';
      } else {
        key += ch;
      }
    }
    counts[StrCat(name, ": ", key)]++;
  }
  std::vector<std::pair<size_t, std::string>> out;
  for (const auto& [what, n] : counts) out.emplace_back(n, what);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

void PrintComplaints(std::string_view who, const std::string& log) {
  size_t total = 0;
  std::vector<std::pair<size_t, std::string>> complaints = Complaints(log, &total);
  std::cout << who << " log: " << total << " warning/error line(s)"
            << (complaints.empty() ? "" : ", by message:") << "\n";
  for (size_t i = 0; i < complaints.size() && i < 8; ++i) {
    std::cout << fmt::format("  {:4} × {}\n", complaints[i].first, complaints[i].second);
  }
}

// ---- the report --------------------------------------------------------------------------

std::string Row(const std::vector<double>& v) {
  if (v.empty()) return fmt::format("{:>8} {:>8} {:>8} {:>8}", "-", "-", "-", "-");
  Summary s = Summarize(v);
  return fmt::format("{:8.2f} {:8.2f} {:8.2f} {:8.2f}", s.median, s.p90, s.min, s.mean);
}

std::string Median(const std::vector<double>& v) {
  if (v.empty()) return fmt::format("{:>8}", "-");
  return fmt::format("{:8.2f}", Summarize(v).median);
}

std::string RatioText(const Contender& a, const Contender& b) {
  if (a.run_ms.empty() || b.run_ms.empty()) return "n/a";
  const Summary sa = Summarize(a.run_ms), sb = Summarize(b.run_ms);
  return fmt::format("{:.2f}× (medians {:.2f} / {:.2f} ms; p90 {:.2f}×, min {:.2f}×)",
                     sa.median / sb.median, sa.median, sb.median, sa.p90 / sb.p90,
                     sa.min / sb.min);
}

void PrintReport(const std::vector<Contender*>& all, const Contender& berth_bridge,
                 const Contender* std_bridge, const Contender& none, const Contender* ctrd,
                 const Flags& flags) {
  std::cout << fmt::format("\n{:<28} {:^35}   {:^26}\n{:<28} {:>8} {:>8} {:>8} {:>8}   {:>8} {:>8}  {:>8}\n",
                           "latency (ms)", "RunPodSandbox", "teardown (median)", "", "median",
                           "p90", "min", "mean", "StopPod", "RmPod", "run ÷ floor");
  for (const Contender* c : all) {
    std::string vs_floor = "";
    if (!c->run_ms.empty() && !none.run_ms.empty()) {
      vs_floor = fmt::format("{:.2f}×", Summarize(c->run_ms).median / Summarize(none.run_ms).median);
    }
    std::cout << fmt::format("{:<28} {}   {} {}  {:>8}\n", c->name,
                             c->failure.empty() ? Row(c->run_ms) : "FAILED (see above)",
                             Median(c->stop_ms), Median(c->remove_ms), vs_floor);
  }
  std::cout << "\n";
  std::cout << "berth-bridge ÷ std bridge   = "
            << (std_bridge ? RatioText(berth_bridge, *std_bridge) : "n/a (not run)") << "\n";
  std::cout << "berth-bridge ÷ containerd   = "
            << (ctrd ? RatioText(berth_bridge, *ctrd) : "n/a (containerd not run)") << "\n";
  if (!berth_bridge.run_ms.empty() && !none.run_ms.empty()) {
    const double b = Summarize(berth_bridge.run_ms).median, f = Summarize(none.run_ms).median;
    std::cout << fmt::format("CNI's share of berth's RunPodSandbox (median − floor): berth's plugins "
                             "{:.2f} ms",
                             b - f);
    if (std_bridge && !std_bridge->run_ms.empty()) {
      std::cout << fmt::format(", standard plugins {:.2f} ms",
                               Summarize(std_bridge->run_ms).median - f);
    }
    std::cout << "\n";
  }
  if (!berth_bridge.run_ms.empty()) {
    const double m = Summarize(berth_bridge.run_ms).median;
    std::cout << fmt::format(
        "berth RunPodSandbox with berth's plugins: median {:.2f} ms (target ≤ 20 ms: {})\n", m,
        m <= 20 ? "met" : "NOT met");
  }
  std::cout << fmt::format("{} RunPodSandbox samples per contender ({} pods × {} round(s))\n",
                           berth_bridge.run_ms.size(), flags.pods, flags.rounds);
  for (const Contender* c : all) {
    if (c->batch_s.empty()) continue;
    std::cout << fmt::format("  {:<26} {} distinct pod IPs; {} pods one after another took", c->name,
                             c->ip_prefix.empty() ? 0 : c->ips_seen.size(), flags.pods);
    for (double s : c->batch_s) std::cout << fmt::format(" {:.2f} s", s);
    std::cout << "\n";
  }
}

// ---- the run --------------------------------------------------------------------------

int Run(const Flags& flags, const char* argv0) {
  absl::StatusOr<std::string> berthd_path = FindBerthd(flags.berthd, argv0, "//bench:network_bench");
  if (!berthd_path.ok()) {
    std::cerr << berthd_path.status() << "\n";
    return 1;
  }
  setenv("BERTHD_BINARY", berthd_path->c_str(), 1);  // what BerthdFixture runs
  for (const char* v :
       {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
    unsetenv(v);  // the pause image comes from 127.0.0.1
  }
  std::string std_missing;
  for (const char* plugin : {"bridge", "host-local", "portmap", "loopback"}) {
    if (access(StrCat(kStdBinDir, "/", plugin).c_str(), X_OK) != 0) {
      std_missing += StrCat(std_missing.empty() ? "" : ", ", kStdBinDir, "/", plugin);
    }
  }
  std::string containerd_binary = flags.containerd;
  if (containerd_binary.empty() && !flags.skip_containerd) {
    containerd_binary = ContainerdInstance::FindBinary().value_or("");
  }
  const std::string load_at_start = LoadAverage();

  // Removed last: cgroups are empty only once every daemon and pod is gone.
  CgroupParents cgroups(StrCat("berth-bench-net-", getpid()));
  TempDir work("berth-netbench");
  if (work.path().empty()) {
    std::cerr << "mkdtemp under /tmp failed\n";
    return 1;
  }
  const std::string conf_dir = work.path() + "/net.d";
  const NamespaceCheck check{.ipam_dir = work.path() + "/ipam"};
  const std::string logs = work.path() + "/logs";
  std::error_code ec;
  for (const std::string& d : {conf_dir, check.ipam_dir, logs}) {
    fs::create_directories(d, ec);
    if (ec) {
      std::cerr << "mkdir " << d << ": " << ec.message() << "\n";
      return 1;
    }
  }

  const BridgeNet net_berth{.name = "net-berth",
                            .bridge = "bb0",
                            .subnet = "10.232.1.0/24",
                            .bridge_type = "berth-bridge",
                            .ipam_type = "berth-host-local",
                            .portmap_type = "berth-portmap",
                            .berth_loopback = true};
  const BridgeNet net_std{.name = "net-std",
                          .bridge = "bs0",
                          .subnet = "10.232.2.0/24",
                          .bridge_type = "bridge",
                          .ipam_type = "host-local",
                          .portmap_type = "portmap"};
  // Unique per run: libcni (in containerd) caches results in /var/lib/cni/results by name.
  const BridgeNet net_ctrd{.name = StrCat("berth-bench-ctrd-", getpid()),
                           .bridge = "bc0",
                           .subnet = "10.232.3.0/24",
                           .bridge_type = "bridge",
                           .ipam_type = "host-local",
                           .portmap_type = "portmap"};
  for (const auto& [file, net] : {std::pair{"10-net-berth.conflist", &net_berth},
                                  std::pair{"20-net-std.conflist", &net_std}}) {
    if (!std_missing.empty() && net == &net_std) continue;
    if (absl::Status s = WriteText(StrCat(conf_dir, "/", file), Conflist(*net, check.ipam_dir));
        !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }

  // ---- berth
  absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start(
      {.config_toml = StrCat("[network]\nconf_dir = \"", conf_dir, "\"\nbin_dirs = [\"",
                             kStdBinDir, "\"]\n")});
  if (!berthd.ok()) {
    std::cerr << "starting berthd: " << berthd.status() << "\n";
    return 1;
  }
  BerthdFixture& b = **berthd;
  absl::Cleanup berth_janitor = [&b] {
    if (absl::Status s = RemoveAllPods("berth", b.runtime()); !s.ok()) {
      std::cerr << "warning: removing berth's pods: " << s << "\n";
    }
  };
  auto berthd_log_tail = [&b] { return FileTail(b.dir() + "/berthd.log", 3000); };
  std::string berth_version;
  {
    grpc::ClientContext ctx;
    v1::VersionResponse version;
    if (b.runtime().Version(&ctx, v1::VersionRequest(), &version).ok()) {
      berth_version = version.runtime_version();
    }
  }
  absl::StatusOr<std::string> berth_bridge_exe =
      HelperOfBerthd(b.pid(), "cni/plugins", "berth-bridge");
  if (!berth_bridge_exe.ok()) {
    std::cerr << berth_bridge_exe.status()
              << " (berthd's runfiles lack //cni/plugins: it would not find berth's plugins)\n";
    return 1;
  }
  const std::string berth_plugin_dir = berth_bridge_exe->substr(0, berth_bridge_exe->rfind('/'));

  // ---- containerd: a pause image from berth-pause in a private registry
  std::unique_ptr<Registry> registry;
  std::unique_ptr<ContainerdInstance> ctrd;
  absl::Cleanup ctrd_janitor = [&ctrd] {
    if (!ctrd) return;
    if (absl::Status s = RemoveAllPods("containerd", ctrd->runtime()); !s.ok()) {
      std::cerr << "warning: removing containerd's pods: " << s << "\n";
    }
    const std::string address = "-address " + ctrd->socket();
    size_t killed = KillLeftoverShims(
        [&address](const Proc& p) {
          return fs::path(p.exe).filename() == "containerd-shim-runc-v2" &&
                 p.cmdline.find(address) != std::string::npos;
        },
        std::chrono::seconds(5));
    if (killed > 0) std::cerr << "warning: killed " << killed << " leftover containerd shim(s)\n";
  };
  std::string containerd_skipped, pause_ref;
  if (containerd_binary.empty()) {
    containerd_skipped = flags.skip_containerd ? "skipped (--skip-containerd)" : "not installed";
  } else if (!std_missing.empty()) {
    containerd_skipped = StrCat("skipped: the standard plugins are missing (", std_missing, ")");
  } else {
    auto setup = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string pause_exe,
                       HelperOfBerthd(b.pid(), "runtime/pause", "berth-pause"));
      ASSIGN_OR_RETURN(OciImage pause, BuildPauseImage(pause_exe, kPauseRepo, kTag));
      ASSIGN_OR_RETURN(registry, Registry::Start());
      RETURN_IF_ERROR(registry->Push(pause, kPauseRepo, kTag));
      pause_ref = StrCat(registry->host(), "/", kPauseRepo, ":", kTag);
      ASSIGN_OR_RETURN(ctrd, ContainerdInstance::Start(
                                 {.binary = containerd_binary,
                                  .plain_http_registries = {registry->host()},
                                  .sandbox_image = pause_ref,
                                  .cni_bin_dir = kStdBinDir,
                                  .cni_conflist = Conflist(net_ctrd, check.ipam_dir)}));
      v1::PullImageRequest request;
      request.mutable_image()->set_image(pause_ref);
      v1::PullImageResponse response;
      return Call("containerd", "PullImage", [&](grpc::ClientContext* ctx) {
        return ctrd->image().PullImage(ctx, request, &response);
      });
    };
    if (absl::Status s = setup(); !s.ok()) {
      containerd_skipped = StrCat("FAILED to set up, skipped: ", s.ToString(),
                                  ctrd ? "\ncontainerd log tail:\n" + ctrd->LogTail() : "");
      ctrd.reset();
    }
  }

  // ---- the contenders
  Contender berth_bridge{.name = "berth, berth's plugins",
                         .tag = "berth-bridge",
                         .daemon = "berth",
                         .runtime = &b.runtime(),
                         .annotations = {{kNetworkAnnotation, net_berth.name}},
                         .ip_prefix = IpPrefix(net_berth.subnet),
                         .cgroup_parent = cgroups.For("berth"),
                         .log_directory = logs};
  Contender std_bridge{.name = "berth, standard plugins",
                       .tag = "std-bridge",
                       .daemon = "berth",
                       .runtime = &b.runtime(),
                       .annotations = {{kNetworkAnnotation, net_std.name}},
                       .ip_prefix = IpPrefix(net_std.subnet),
                       .cgroup_parent = cgroups.For("berth"),
                       .log_directory = logs};
  Contender none{.name = "berth, no CNI (floor)",
                 .tag = "no-cni",
                 .daemon = "berth",
                 .runtime = &b.runtime(),
                 .annotations = {{kNetworkAnnotation, "none"}},
                 .ip_prefix = "",
                 .cgroup_parent = cgroups.For("berth"),
                 .log_directory = logs};
  Contender containerd{.name = "containerd",
                       .tag = "containerd",
                       .daemon = "containerd",
                       .runtime = ctrd ? &ctrd->runtime() : nullptr,
                       .ip_prefix = IpPrefix(net_ctrd.subnet),
                       .cgroup_parent = cgroups.For("containerd"),
                       .log_directory = logs,
                       .optional = true};
  std::vector<Contender*> contenders = {&berth_bridge};
  if (std_missing.empty()) contenders.push_back(&std_bridge);
  contenders.push_back(&none);
  if (ctrd) {
    containerd.name = "containerd " + ctrd->version();
    contenders.push_back(&containerd);
  }

  std::string std_version = Shell(
      "dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null");
  std::cout << fmt::format(
      "network_bench: RunPodSandbox on a bridge network, {} pods per contender one after "
      "another, {} round(s), after 1 untimed pod each\n"
      "  in a private network namespace (unshare CLONE_NEWNET): bridges, veths and iptables "
      "rules go with it\n"
      "  PID namespace CONTAINER: berth runs no infra process; containerd always starts a "
      "pause container per pod\n"
      "  berthd {} ({})\n"
      "    berth's plugins from {} (first in berthd's CNI bin dirs)\n"
      "    berth, berth's plugins   berth.io/network: {}: berth-bridge ({}, {}) + berth-host-local "
      "+ berth-portmap + berth-loopback, CNI 1.0.0/1.1.0\n"
      "    berth, standard plugins  {}\n"
      "    berth, no CNI (floor)    berth.io/network: none\n"
      "  containerd {}\n"
      "  {} CPUs, load average {} at start\n\n",
      flags.pods, flags.rounds, berth_version, *berthd_path, berth_plugin_dir, net_berth.name,
      net_berth.bridge, net_berth.subnet,
      std_missing.empty()
          ? StrCat("berth.io/network: ", net_std.name, ": bridge (", net_std.bridge, ", ",
                   net_std.subnet, ") + host-local + portmap from ", kStdBinDir,
                   " (containernetworking-plugins ", std_version.empty() ? "?" : std_version, ")")
          : StrCat("not run: missing ", std_missing),
      ctrd ? StrCat(ctrd->version(), " (", containerd_binary, "): bridge (", net_ctrd.bridge, ", ",
                    net_ctrd.subnet, ") + host-local + portmap from ", kStdBinDir,
                    ", loopback by go-cni; sandbox image ", pause_ref, " = berth-pause")
           : containerd_skipped,
      std::thread::hardware_concurrency(), load_at_start);
  if (!ctrd) std::cout << "*** containerd " << containerd_skipped << " ***\n\n";
  std::cout.flush();

  int serial = 0;
  // One batch of contender `c`; false when the run must stop.
  auto batch = [&](Contender& c, int pods, bool timed) -> bool {
    if (!c.failure.empty()) return true;
    absl::Status s = Batch(c, pods, StrCat("bench-", c.tag, "-", ++serial), timed, check);
    if (s.ok()) return true;
    if (Interrupted()) return false;
    std::cout << "\n";
    const std::string tail = c.daemon == "berth"
                                 ? "berthd log tail:\n" + berthd_log_tail()
                                 : (ctrd ? "containerd log tail:\n" + ctrd->LogTail() : "");
    if (c.optional) {
      c.failure = s.ToString();
      std::cout << "*** " << c.name << " FAILED, dropped from the comparison: " << s << "\n"
                << tail << "\n";
      return true;
    }
    std::cerr << "*** " << c.name << " FAILED: " << s << "\n" << tail << "\n";
    return false;
  };

  std::cout << "warm-up (1 pod each):" << std::flush;
  for (Contender* c : contenders) {
    if (!batch(*c, 1, false)) return 1;
    if (c->failure.empty()) std::cout << " " << c->tag << " ok" << std::flush;
  }
  std::cout << "\n";
  for (int round = 0; round < flags.rounds && !Interrupted(); ++round) {
    std::cout << fmt::format("round {}/{}:", round + 1, flags.rounds) << std::flush;
    for (size_t k = 0; k < contenders.size(); ++k) {
      Contender& c = *contenders[(k + round) % contenders.size()];
      if (!batch(c, flags.pods, true)) return 1;
      if (c.failure.empty()) {
        std::cout << fmt::format(" {} {:.2f} s", c.tag, c.batch_s.back()) << std::flush;
      }
    }
    std::cout << std::endl;
  }
  if (Interrupted()) return 1;

  std::vector<Contender*> shown = contenders;
  PrintReport(shown, berth_bridge, std_missing.empty() ? &std_bridge : nullptr, none,
              ctrd && containerd.failure.empty() ? &containerd : nullptr, flags);
  if (ctrd) {
    std::cout << "containerd's RunPodSandbox also starts its pause container (a "
                 "containerd-shim-runc-v2, runc create + start); berth's starts no process\n";
  }

  // What the pods left behind, and what the daemons complained about.
  bool clean = true;
  for (const Contender* c : contenders) {
    if (c->leftovers.empty()) continue;
    clean = false;
    std::cout << "*** " << c->name << ": left behind after its pods were removed:\n";
    for (const std::string& l : c->leftovers) std::cout << "    " << l << "\n";
  }
  if (clean) {
    std::cout << "left behind after every batch: nothing (no veth, no address allocation, no "
                 "per-pod iptables rule)\n";
  }
  PrintComplaints("berthd", b.Log());
  if (ctrd) {
    PrintComplaints("containerd", ReadText(ctrd->dir() + "/containerd.log"));
    // libcni's result cache is on the host (/var/lib/cni/results), named after the network.
    size_t cached = 0;
    for (const fs::directory_entry& e : fs::directory_iterator("/var/lib/cni/results", ec)) {
      if (e.path().filename().string().starts_with(net_ctrd.name + "-")) {
        ++cached;
        fs::remove(e.path(), ec);
      }
    }
    if (cached > 0) {
      std::cout << "containerd left " << cached
                << " cached CNI result(s) in /var/lib/cni/results (removed)\n";
    }
  }
  std::cout << "load average at the end: " << LoadAverage() << "\n";
  return 0;
}

}  // namespace
}  // namespace berth::bench

int main(int argc, char** argv) {
  berth::bench::Flags flags;
  CLI::App app{
      "RunPodSandbox on a bridge network: berth's CNI plugins vs the standard ones vs no CNI "
      "vs containerd"};
  app.add_option("--pods", flags.pods, "RunPodSandbox calls per contender per round")
      ->check(CLI::Range(1, 200))
      ->capture_default_str();
  app.add_option("--rounds", flags.rounds,
                 "rounds; each runs every contender's batch, in an order that rotates")
      ->check(CLI::Range(1, 50))
      ->capture_default_str();
  app.add_option("--berthd", flags.berthd, "berthd binary (default: runfiles, $BERTHD_BINARY)");
  app.add_option("--containerd", flags.containerd, "containerd binary (default: from PATH)");
  app.add_flag("--skip-containerd", flags.skip_containerd, "do not run containerd");
  CLI11_PARSE(app, argc, argv);
  if (geteuid() != 0) {
    std::cerr << "network_bench needs root: network namespaces, bridges, iptables\n";
    return 1;
  }
  // A network namespace of our own before any thread or child exists: everything
  // started from here (threads, registry, daemons, plugins) is in it, and the
  // bridges, veths and iptables rules vanish with it.
  if (unshare(CLONE_NEWNET) != 0) {
    std::cerr << "unshare(CLONE_NEWNET): " << strerror(errno) << "\n";
    return 1;
  }
  if (absl::Status s = berth::bench::RunCommand({"ip", "link", "set", "lo", "up"}); !s.ok()) {
    std::cerr << "ip link set lo up: " << s << "\n";
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  berth::bench::HandleStopSignals("stopping after the current batch and cleaning up");
  return berth::bench::Run(flags, argv[0]);
}
