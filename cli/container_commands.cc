// `berthctl create | start | stop | rm | ps | inspect | logs | stats | events`:
// containers, as crictl has them; `berthctl run`: image, pod and container in one go,
// as docker run has it. (`exec`, `attach`: stream_commands.cc.)
#include <cctype>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iostream>
#include <random>
#include <regex>
#include <set>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/run_flags.h"
#include "cli/cri_log.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cli {
namespace {

namespace v1 = ::runtime::v1;

// How often a followed log is checked for new records, and its container for an exit.
constexpr std::chrono::milliseconds kLogPollInterval(200);
// The grace period `run` gives its container when the user interrupts it.
constexpr int64_t kInterruptStopSeconds = 10;

struct CreateOptions {
  std::string pod_id;
  std::string container_config;  // JSON file
  std::string pod_config;        // JSON file
};

struct PsOptions {
  bool all = false;
  std::string id;
  std::string pod;
  std::string name_regex;
  std::string state;
  std::vector<std::string> labels;  // "key=value"
  bool quiet = false;
};

struct LogOptions {
  bool follow = false;
  LogPrintOptions print;  // --tail, --timestamps
};

struct StatsOptions {
  bool all = false;
  std::string id;
  std::string pod;
  std::vector<std::string> labels;
};

struct RunOptions {
  std::string image;
  std::string name;
  bool remove = false;
  bool detach = false;
  std::vector<std::string> envs;  // "KEY=VALUE"
  std::string pod_config;         // JSON file; empty for berthctl's own
  std::vector<std::string> publish;  // -p [HOST_IP:]HOST:CONTAINER[/proto]
  std::string network;               // --network none | host | NAME[,NAME...]
  std::vector<std::string> command;
};

// ---------------------------------------------------------------------------
// Small helpers

// "key=value" flags (--label, -e) as pairs, in the order given.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParsePairs(
    const std::vector<std::string>& flags, const char* flag_name) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const std::string& flag : flags) {
    size_t eq = flag.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          StrCat(flag_name, " \"", flag, "\" is not of the form KEY=VALUE"));
    }
    pairs.emplace_back(flag.substr(0, eq), flag.substr(eq + 1));
  }
  return pairs;
}

// --label flags as a CRI label selector.
absl::Status SetLabelSelector(const std::vector<std::string>& flags,
                              google::protobuf::Map<std::string, std::string>& selector) {
  ASSIGN_OR_RETURN(auto labels, ParsePairs(flags, "--label"));
  for (const auto& [key, value] : labels) selector[key] = value;
  return absl::OkStatus();
}

// CONTAINER_RUNNING -> "Running", as crictl prints states.
std::string StateName(v1::ContainerState state) {
  std::string name = v1::ContainerState_Name(state);
  name.erase(0, std::strlen("CONTAINER_"));
  for (size_t i = 1; i < name.size(); ++i) name[i] = std::tolower(name[i]);
  return name;
}

// "running", "Running" or "CONTAINER_RUNNING" -> CONTAINER_RUNNING.
absl::StatusOr<v1::ContainerState> ParseState(const std::string& text) {
  std::string upper;
  for (char c : text) upper += std::toupper(c);
  if (upper.rfind("CONTAINER_", 0) != 0) upper = "CONTAINER_" + upper;
  v1::ContainerState state;
  if (!v1::ContainerState_Parse(upper, &state)) {
    return absl::InvalidArgumentError(
        StrCat("state \"", text, "\" is not one of created, running, exited, unknown"));
  }
  return state;
}

// ns since the epoch -> "2024-01-02T03:04:05.000000123Z" (UTC, fixed width).
std::string Rfc3339Nano(int64_t unix_nanos) {
  std::time_t seconds = unix_nanos / 1000000000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:09d}Z", date, unix_nanos % 1000000000);
}

std::string RandomHex(int digits) {
  std::random_device random;
  std::string out;
  while (static_cast<int>(out.size()) < digits) out += fmt::format("{:08x}", random());
  return out.substr(0, digits);
}

}  // namespace

void ExitWith(int code) {
  if (code == 0) return;
  std::cout.flush();
  std::cerr.flush();
  std::exit(code);
}

absl::StatusOr<v1::ContainerStatusResponse> GetContainerStatus(Client& client,
                                                               const std::string& id_or_name,
                                                               bool verbose) {
  auto query = [&](const std::string& id, v1::ContainerStatusResponse* response) {
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    request.set_verbose(verbose);
    grpc::ClientContext ctx;
    client.Prepare(ctx);
    return client.runtime().ContainerStatus(&ctx, request, response);
  };
  v1::ContainerStatusResponse response;
  grpc::Status s = query(id_or_name, &response);
  if (s.error_code() == grpc::NOT_FOUND) {
    // Not an id: a container name, as docker takes (`berthctl run --name web`).
    v1::ListContainersRequest list;
    v1::ListContainersResponse listed;
    grpc::ClientContext ctx;
    client.Prepare(ctx);
    if (client.runtime().ListContainers(&ctx, list, &listed).ok()) {
      std::vector<std::string> named;
      for (const v1::Container& c : listed.containers()) {
        if (c.metadata().name() == id_or_name) named.push_back(c.id());
      }
      if (named.size() > 1) {
        return absl::FailedPreconditionError(StrCat(named.size(), " containers are named ",
                                                    id_or_name, ": give an id"));
      }
      if (named.size() == 1) s = query(named[0], &response);
    }
  }
  if (!s.ok()) return RpcError(s, "ContainerStatus", client);
  return response;
}

namespace {

// ---------------------------------------------------------------------------
// One RPC each, shared by the commands

absl::Status StartContainer(Client& client, const std::string& id) {
  v1::StartContainerRequest request;
  request.set_container_id(id);
  v1::StartContainerResponse response;
  grpc::ClientContext ctx;
  client.Prepare(ctx);
  grpc::Status s = client.runtime().StartContainer(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "StartContainer", client);
  return absl::OkStatus();
}

absl::Status StopContainer(Client& client, const std::string& id, int64_t timeout_seconds) {
  v1::StopContainerRequest request;
  request.set_container_id(id);
  request.set_timeout(timeout_seconds);
  v1::StopContainerResponse response;
  grpc::ClientContext ctx;
  client.Prepare(ctx, std::chrono::seconds(timeout_seconds));
  grpc::Status s = client.runtime().StopContainer(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "StopContainer", client);
  return absl::OkStatus();
}

absl::Status RemoveContainer(Client& client, const std::string& id) {
  v1::RemoveContainerRequest request;
  request.set_container_id(id);
  v1::RemoveContainerResponse response;
  grpc::ClientContext ctx;
  client.Prepare(ctx);
  grpc::Status s = client.runtime().RemoveContainer(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "RemoveContainer", client);
  return absl::OkStatus();
}

// Whether the container has stopped for good: exited, or removed meanwhile.
absl::StatusOr<bool> ContainerEnded(Client& client, const std::string& id) {
  absl::StatusOr<v1::ContainerStatusResponse> status = GetContainerStatus(client, id);
  if (absl::IsNotFound(status.status())) return true;
  if (!status.ok()) return status.status();
  return status->status().state() == v1::CONTAINER_EXITED;
}

// ---------------------------------------------------------------------------
// A container's log (its reading and parsing: cli/cri_log.h)

// Prints a container's log, its stdout lines to stdout and its stderr lines to
// stderr. With options.follow, goes on printing what is appended until the
// container has ended, calling `on_poll` each time it waits for more.
absl::Status PrintContainerLog(Client& client, const std::string& container_id,
                               const std::string& log_path, const LogOptions& options,
                               const std::function<absl::Status()>& on_poll = nullptr) {
  CriLogFollower log(log_path, options.print, std::cout, std::cerr);
  // What the file holds already, of which --tail keeps the end.
  absl::Status read = log.ReadExisting();
  // A container that has not written yet may have no file yet; follow waits for it.
  if (!read.ok() && !(options.follow && absl::IsNotFound(read))) {
    return absl::Status(read.code(),
                        StrCat("read the log of container ", container_id, ": ", read.message()));
  }
  if (!options.follow) {
    log.Finish();
    return absl::OkStatus();
  }
  return log.Follow(
      [&]() -> absl::StatusOr<bool> {
        if (on_poll) RETURN_IF_ERROR(on_poll());
        return ContainerEnded(client, container_id);
      },
      kLogPollInterval);
}

// ---------------------------------------------------------------------------
// The commands

CommandResult Create(const GlobalOptions& global, const CreateOptions& options) {
  v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(options.pod_id);
  RETURN_IF_ERROR(ReadJsonMessage(options.container_config, *request.mutable_config()));
  RETURN_IF_ERROR(ReadJsonMessage(options.pod_config, *request.mutable_sandbox_config()));
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  grpc::ClientContext ctx;
  client->Prepare(ctx);
  v1::CreateContainerResponse response;
  grpc::Status s = client->runtime().CreateContainer(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "CreateContainer", *client);
  std::cout << response.container_id() << "\n";
  return absl::OkStatus();
}

// start, stop and rm: one action per id, printing each id once done, as crictl does.
CommandResult ForEachContainer(
    const GlobalOptions& global, const std::vector<std::string>& ids,
    const std::function<absl::Status(Client&, const std::string&)>& act) {
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  for (const std::string& id : ids) {
    RETURN_IF_ERROR(act(*client, id));
    std::cout << id << "\n";
  }
  return absl::OkStatus();
}

absl::Status Stop(Client& client, const std::string& id, int64_t timeout_seconds) {
  // StopContainer succeeds for an unknown id (the kubelet retries stops); a
  // person who typed a wrong id wants to hear it.
  ASSIGN_OR_RETURN(v1::ContainerStatusResponse status, GetContainerStatus(client, id));
  return StopContainer(client, status.status().id(), timeout_seconds);
}

absl::Status Remove(Client& client, const std::string& id, bool force) {
  // RemoveContainer too succeeds for an unknown id, and would kill a running one.
  ASSIGN_OR_RETURN(v1::ContainerStatusResponse status, GetContainerStatus(client, id));
  if (status.status().state() == v1::CONTAINER_RUNNING) {
    if (!force) {
      return absl::FailedPreconditionError(
          StrCat("container ", id, " is running: stop it first, or rm --force"));
    }
    RETURN_IF_ERROR(StopContainer(client, status.status().id(), /*timeout_seconds=*/0));
  }
  return RemoveContainer(client, status.status().id());
}

CommandResult ListContainers(const GlobalOptions& global, const PsOptions& options) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  v1::ListContainersRequest request;
  v1::ContainerFilter* filter = request.mutable_filter();
  filter->set_id(options.id);
  filter->set_pod_sandbox_id(options.pod);
  RETURN_IF_ERROR(SetLabelSelector(options.labels, *filter->mutable_label_selector()));
  if (!options.state.empty()) {
    ASSIGN_OR_RETURN(v1::ContainerState state, ParseState(options.state));
    filter->mutable_state()->set_state(state);
  } else if (!options.all) {
    filter->mutable_state()->set_state(v1::CONTAINER_RUNNING);
  }
  std::regex name_regex;
  try {
    name_regex = std::regex(options.name_regex);
  } catch (const std::regex_error& e) {
    return absl::InvalidArgumentError(
        StrCat("--name \"", options.name_regex, "\" is not a regular expression: ", e.what()));
  }
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  v1::ListContainersResponse response;
  grpc::ClientContext ctx;
  client->Prepare(ctx);
  grpc::Status s = client->runtime().ListContainers(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "ListContainers", *client);

  // The CRI filter has no name; crictl matches it here too. Newest first, as crictl lists.
  v1::ListContainersResponse shown;
  for (const v1::Container& c : response.containers()) {
    if (std::regex_search(c.metadata().name(), name_regex)) *shown.add_containers() = c;
  }
  std::stable_sort(shown.mutable_containers()->begin(), shown.mutable_containers()->end(),
                   [](const v1::Container& a, const v1::Container& b) {
                     return a.created_at() > b.created_at();
                   });
  if (*format != OutputFormat::kTable) {
    std::cout << Render(ToJson(shown), *format);
    return absl::OkStatus();
  }
  if (options.quiet) {
    for (const v1::Container& c : shown.containers()) std::cout << c.id() << "\n";
    return absl::OkStatus();
  }
  Table table({"CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID"});
  for (const v1::Container& c : shown.containers()) {
    table.AddRow({ShortId(c.id()), c.image().image(), Age(c.created_at()), StateName(c.state()),
                  c.metadata().name(), std::to_string(c.metadata().attempt()),
                  ShortId(c.pod_sandbox_id())});
  }
  std::cout << table.Render();
  return absl::OkStatus();
}

CommandResult Inspect(const GlobalOptions& global, const std::vector<std::string>& ids) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  for (const std::string& id : ids) {
    ASSIGN_OR_RETURN(v1::ContainerStatusResponse response,
                     GetContainerStatus(*client, id, /*verbose=*/true));
    // As for inspectp and inspecti: structured by nature, a table would lose it.
    std::cout << Render(InspectJson(response.status(), response.info()),
                        *format == OutputFormat::kYaml ? OutputFormat::kYaml : OutputFormat::kJson);
  }
  return absl::OkStatus();
}

CommandResult Logs(const GlobalOptions& global, const std::string& id, const LogOptions& options) {
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  ASSIGN_OR_RETURN(v1::ContainerStatusResponse status, GetContainerStatus(*client, id));
  if (status.status().log_path().empty()) {
    return absl::FailedPreconditionError(StrCat(
        "container ", id, " has no log: its pod has no log_directory or it has no log_path"));
  }
  // The full id: a prefix could become ambiguous while we follow.
  return PrintContainerLog(*client, status.status().id(), status.status().log_path(), options);
}

CommandResult Stats(const GlobalOptions& global, const StatsOptions& options) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  v1::ListContainerStatsRequest request;
  request.mutable_filter()->set_id(options.id);
  request.mutable_filter()->set_pod_sandbox_id(options.pod);
  RETURN_IF_ERROR(
      SetLabelSelector(options.labels, *request.mutable_filter()->mutable_label_selector()));
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  v1::ListContainerStatsResponse response;
  grpc::ClientContext ctx;
  client->Prepare(ctx);
  grpc::Status s = client->runtime().ListContainerStats(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "ListContainerStats", *client);

  // The stats filter has no state: without -a, keep the running containers, as crictl does.
  v1::ListContainerStatsResponse shown;
  if (options.all) {
    shown = response;
  } else {
    v1::ListContainersRequest list;
    v1::ContainerFilter* filter = list.mutable_filter();
    filter->set_id(request.filter().id());
    filter->set_pod_sandbox_id(request.filter().pod_sandbox_id());
    *filter->mutable_label_selector() = request.filter().label_selector();
    filter->mutable_state()->set_state(v1::CONTAINER_RUNNING);
    v1::ListContainersResponse running;
    grpc::ClientContext list_ctx;
    client->Prepare(list_ctx);
    s = client->runtime().ListContainers(&list_ctx, list, &running);
    if (!s.ok()) return RpcError(s, "ListContainers", *client);
    std::set<std::string> running_ids;
    for (const v1::Container& c : running.containers()) running_ids.insert(c.id());
    for (const v1::ContainerStats& stats : response.stats()) {
      if (running_ids.count(stats.attributes().id())) *shown.add_stats() = stats;
    }
  }
  if (*format != OutputFormat::kTable) {
    std::cout << Render(ToJson(shown), *format);
    return absl::OkStatus();
  }
  Table table({"CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES"});
  for (const v1::ContainerStats& stats : shown.stats()) {
    // usage_nano_cores is 1e9 for one full core, so 1e7 is one percent.
    table.AddRow({ShortId(stats.attributes().id()), stats.attributes().metadata().name(),
                  fmt::format("{:.2f}", stats.cpu().usage_nano_cores().value() / 1e7),
                  HumanSize(stats.memory().working_set_bytes().value()),
                  HumanSize(stats.writable_layer().used_bytes().value()),
                  std::to_string(stats.writable_layer().inodes_used().value())});
  }
  std::cout << table.Render();
  return absl::OkStatus();
}

CommandResult Events(const GlobalOptions& global) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  // No deadline: the stream lasts until the user interrupts it.
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::ContainerEventResponse>> reader =
      client->runtime().GetContainerEvents(&ctx, v1::GetEventsRequest());
  // Every column is fixed-width (the event type names are all 23 characters),
  // so a header printed before the first event lines up with all of them.
  constexpr const char* kRow = "{:<30}   {:<13}   {:<23}   {}\n";
  bool header_printed = false;
  v1::ContainerEventResponse event;
  while (reader->Read(&event)) {
    if (*format == OutputFormat::kJson) {
      std::cout << ToJson(event).dump() << "\n";  // one object per line
    } else if (*format == OutputFormat::kYaml) {
      std::cout << "---\n" << ToYaml(ToJson(event));
    } else {
      if (!header_printed) std::cout << fmt::format(kRow, "TIME", "CONTAINER", "EVENT", "POD ID");
      header_printed = true;
      std::cout << fmt::format(kRow, Rfc3339Nano(event.created_at()), ShortId(event.container_id()),
                               v1::ContainerEventType_Name(event.container_event_type()),
                               ShortId(event.pod_sandbox_status().id()));
    }
    std::cout.flush();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return RpcError(s, "GetContainerEvents", *client);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// run

// Set when the user interrupts `run` while it follows its container.
volatile std::sig_atomic_t interrupt_received = 0;

void OnInterrupt(int) { interrupt_received = 1; }

// Catches the first SIGINT and SIGTERM while alive (SA_RESETHAND: a second one
// ends berthctl at once), so that `run` can stop its container and clean up.
class InterruptCatcher {
 public:
  InterruptCatcher() {
    struct sigaction action {};
    action.sa_handler = OnInterrupt;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~InterruptCatcher() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  InterruptCatcher(const InterruptCatcher&) = delete;
  InterruptCatcher& operator=(const InterruptCatcher&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// Pulls the image unless the runtime has it already.
absl::Status EnsureImage(Client& client, const std::string& image) {
  v1::ImageStatusRequest request;
  request.mutable_image()->set_image(image);
  v1::ImageStatusResponse status;
  grpc::ClientContext ctx;
  client.Prepare(ctx);
  grpc::Status s = client.image().ImageStatus(&ctx, request, &status);
  if (!s.ok()) return RpcError(s, "ImageStatus", client);
  if (status.has_image()) return absl::OkStatus();
  std::cerr << "Unable to find image " << image << " locally; pulling it\n";
  v1::PullImageRequest pull;
  pull.mutable_image()->set_image(image);
  v1::PullImageResponse pulled;
  grpc::ClientContext pull_ctx;  // no deadline, as for `pull`
  s = client.image().PullImage(&pull_ctx, pull, &pulled);
  if (!s.ok()) return RpcError(s, "PullImage", client);
  return absl::OkStatus();
}

// A pod of its own for the container, named like it, where the kubelet would
// put its logs.
v1::PodSandboxConfig DefaultPodConfig(const std::string& name) {
  v1::PodSandboxConfig config;
  v1::PodSandboxMetadata* metadata = config.mutable_metadata();
  metadata->set_name(name);
  metadata->set_namespace_("default");
  metadata->set_uid(RandomHex(32));
  config.set_log_directory(StrCat("/var/log/pods/default_", name, "_", metadata->uid()));
  // Its own UTS namespace gets its name, as docker names a container's host.
  config.set_hostname(name);
  return config;
}

absl::StatusOr<std::string> RunPodSandbox(Client& client, const v1::PodSandboxConfig& config) {
  v1::RunPodSandboxRequest request;
  *request.mutable_config() = config;
  v1::RunPodSandboxResponse response;
  grpc::ClientContext ctx;
  client.Prepare(ctx);
  grpc::Status s = client.runtime().RunPodSandbox(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "RunPodSandbox", client);
  return response.pod_sandbox_id();
}

// Stops and removes the pod (which takes its containers along), and the log
// directory `run` chose for it, since no kubelet will.
absl::Status RemovePod(Client& client, const std::string& pod_id,
                       const std::string& own_log_directory) {
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(pod_id);
  v1::StopPodSandboxResponse stopped;
  grpc::ClientContext stop_ctx;
  client.Prepare(stop_ctx);
  grpc::Status s = client.runtime().StopPodSandbox(&stop_ctx, stop, &stopped);
  if (!s.ok()) return RpcError(s, "StopPodSandbox", client);
  v1::RemovePodSandboxRequest remove;
  remove.set_pod_sandbox_id(pod_id);
  v1::RemovePodSandboxResponse removed;
  grpc::ClientContext remove_ctx;
  client.Prepare(remove_ctx);
  s = client.runtime().RemovePodSandbox(&remove_ctx, remove, &removed);
  if (!s.ok()) return RpcError(s, "RemovePodSandbox", client);
  if (!own_log_directory.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(own_log_directory, ec);
    if (ec) {
      return absl::InternalError(StrCat("remove ", own_log_directory, ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CreateAndStart(Client& client, const RunOptions& options,
                                           const std::string& name, const std::string& pod_id,
                                           const v1::PodSandboxConfig& pod_config) {
  v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(pod_id);
  *request.mutable_sandbox_config() = pod_config;
  v1::ContainerConfig* config = request.mutable_config();
  config->mutable_metadata()->set_name(name);
  config->mutable_image()->set_image(options.image);
  // As docker run's: the words after the image replace its Cmd, not its Entrypoint.
  for (const std::string& arg : options.command) config->add_args(arg);
  ASSIGN_OR_RETURN(auto envs, ParsePairs(options.envs, "-e"));
  for (const auto& [key, value] : envs) {
    v1::KeyValue* env = config->add_envs();
    env->set_key(key);
    env->set_value(value);
  }
  config->set_log_path(name + ".log");
  if (pod_config.linux().security_context().namespace_options().network() == v1::NODE) {
    config->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
        v1::NODE);
  }
  v1::CreateContainerResponse response;
  grpc::ClientContext ctx;
  client.Prepare(ctx);
  grpc::Status s = client.runtime().CreateContainer(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "CreateContainer", client);
  RETURN_IF_ERROR(StartContainer(client, response.container_id()));
  return response.container_id();
}

// Follows the started container to its end, stopping it if the user
// interrupts; returns its exit code.
absl::StatusOr<int> Attend(Client& client, const std::string& id) {
  ASSIGN_OR_RETURN(v1::ContainerStatusResponse status, GetContainerStatus(client, id));
  InterruptCatcher catcher;
  interrupt_received = 0;
  bool stop_sent = false;
  auto stop_when_interrupted = [&]() -> absl::Status {
    if (!interrupt_received || stop_sent) return absl::OkStatus();
    stop_sent = true;
    std::cerr << "Stopping container " << ShortId(id) << " (interrupt again to leave it)\n";
    return StopContainer(client, id, kInterruptStopSeconds);
  };
  if (!status.status().log_path().empty()) {
    RETURN_IF_ERROR(PrintContainerLog(client, id, status.status().log_path(),
                                      LogOptions{.follow = true}, stop_when_interrupted));
  } else {
    // A --pod-config without log_directory: nothing to show, only the end to wait for.
    while (true) {
      RETURN_IF_ERROR(stop_when_interrupted());
      ASSIGN_OR_RETURN(bool ended, ContainerEnded(client, id));
      if (ended) break;
      std::this_thread::sleep_for(kLogPollInterval);
    }
  }
  ASSIGN_OR_RETURN(status, GetContainerStatus(client, id));
  return status.status().exit_code();
}

CommandResult Run(const GlobalOptions& global, const RunOptions& options, int& exit_code) {
  if (options.detach && options.remove) {
    return absl::InvalidArgumentError(
        "--rm needs the foreground: with -d nobody is left to remove the pod");
  }
  const std::string name = options.name.empty() ? "berthctl-" + RandomHex(8) : options.name;
  v1::PodSandboxConfig pod_config;
  std::string own_log_directory;
  if (options.pod_config.empty()) {
    pod_config = DefaultPodConfig(name);
    own_log_directory = pod_config.log_directory();
  } else {
    RETURN_IF_ERROR(ReadJsonMessage(options.pod_config, pod_config));
  }
  RETURN_IF_ERROR(ApplyPublish(options.publish, pod_config));
  RETURN_IF_ERROR(ApplyNetwork(options.network, pod_config));
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  RETURN_IF_ERROR(EnsureImage(*client, options.image));
  ASSIGN_OR_RETURN(std::string pod_id, RunPodSandbox(*client, pod_config));

  absl::StatusOr<int> code = [&]() -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(std::string id, CreateAndStart(*client, options, name, pod_id, pod_config));
    if (options.detach) {
      std::cout << id << "\n";
      return 0;
    }
    return Attend(*client, id);
  }();
  // With --rm the pod goes whatever happened, so a failed run leaves nothing behind.
  if (options.remove) {
    absl::Status removed = RemovePod(*client, pod_id, own_log_directory);
    if (code.ok() && !removed.ok()) return removed;
  }
  if (!code.ok()) {
    if (options.remove) return code.status();
    return absl::Status(code.status().code(), StrCat(code.status().message(), " (pod sandbox ",
                                                     pod_id, " is left in place)"));
  }
  exit_code = *code;
  return absl::OkStatus();
}

}  // namespace

void AddContainerCommands(CLI::App& app, const GlobalOptions& global) {
  auto create = std::make_shared<CreateOptions>();
  CLI::App* create_cmd = app.add_subcommand(
      "create", "create a container in a pod from ContainerConfig and PodSandboxConfig JSON files");
  create_cmd->add_option("pod", create->pod_id, "pod sandbox id (or unique prefix)")->required();
  create_cmd
      ->add_option("container-config", create->container_config,
                   "container config (JSON, CRI field names)")
      ->required();
  create_cmd->add_option("pod-config", create->pod_config, "the pod's config (JSON), as for runp")
      ->required();
  create_cmd->callback([&global, create] { RunCommand([&] { return Create(global, *create); }); });

  auto start_ids = std::make_shared<std::vector<std::string>>();
  CLI::App* start = app.add_subcommand("start", "start created containers");
  start->add_option("id", *start_ids, "container id (or unique prefix, or name)")->required();
  start->callback([&global, start_ids] {
    RunCommand([&] {
      return ForEachContainer(global, *start_ids, [](Client& client, const std::string& id) {
        ASSIGN_OR_RETURN(v1::ContainerStatusResponse status, GetContainerStatus(client, id));
        return StartContainer(client, status.status().id());
      });
    });
  });

  auto stop_ids = std::make_shared<std::vector<std::string>>();
  auto stop_timeout = std::make_shared<int64_t>(10);
  CLI::App* stop = app.add_subcommand("stop", "stop running containers");
  stop->add_option("id", *stop_ids, "container id (or unique prefix)")->required();
  stop->add_option("-t,--timeout", *stop_timeout,
                   "seconds between the stop signal and SIGKILL (0: SIGKILL at once)")
      ->capture_default_str();
  stop->callback([&global, stop_ids, stop_timeout] {
    RunCommand([&] {
      return ForEachContainer(global, *stop_ids, [&](Client& client, const std::string& id) {
        return Stop(client, id, *stop_timeout);
      });
    });
  });

  auto rm_ids = std::make_shared<std::vector<std::string>>();
  auto force = std::make_shared<bool>(false);
  CLI::App* rm = app.add_subcommand("rm", "remove containers");
  rm->add_option("id", *rm_ids, "container id (or unique prefix)")->required();
  rm->add_flag("-f,--force", *force, "stop a running container first (SIGKILL)");
  rm->callback([&global, rm_ids, force] {
    RunCommand([&] {
      return ForEachContainer(global, *rm_ids, [&](Client& client, const std::string& id) {
        return Remove(client, id, *force);
      });
    });
  });

  auto ps = std::make_shared<PsOptions>();
  CLI::App* ps_cmd = app.add_subcommand("ps", "list containers (running ones unless -a)");
  ps_cmd->add_flag("-a,--all", ps->all, "all containers, not only running ones");
  ps_cmd->add_option("--id", ps->id, "only this id (or id prefix)");
  ps_cmd->add_option("-p,--pod", ps->pod, "only the containers of this pod (id or prefix)");
  ps_cmd->add_option("--name", ps->name_regex, "only names matching this regular expression");
  ps_cmd->add_option("-s,--state", ps->state, "only this state: created, running, exited");
  // One KEY=VALUE per flag, so a positional after it is not taken as a second label.
  ps_cmd->add_option("--label", ps->labels, "only containers with this label (KEY=VALUE)")
      ->allow_extra_args(false);
  ps_cmd->add_flag("-q,--quiet", ps->quiet, "print ids only");
  ps_cmd->callback([&global, ps] { RunCommand([&] { return ListContainers(global, *ps); }); });

  auto inspect_ids = std::make_shared<std::vector<std::string>>();
  CLI::App* inspect = app.add_subcommand("inspect", "show container status (JSON, or -o yaml)");
  inspect->add_option("id", *inspect_ids, "container id (or unique prefix)")->required();
  inspect->callback(
      [&global, inspect_ids] { RunCommand([&] { return Inspect(global, *inspect_ids); }); });

  auto logs_id = std::make_shared<std::string>();
  auto logs = std::make_shared<LogOptions>();
  CLI::App* logs_cmd = app.add_subcommand("logs", "print a container's log");
  logs_cmd->add_option("id", *logs_id, "container id (or unique prefix)")->required();
  logs_cmd->add_flag("-f,--follow", logs->follow, "keep printing until the container exits");
  logs_cmd->add_option("--tail", logs->print.tail, "only the last N lines (-1: all)")
      ->capture_default_str();
  logs_cmd->add_flag("-t,--timestamps", logs->print.timestamps, "print each line's time first");
  logs_cmd->callback(
      [&global, logs_id, logs] { RunCommand([&] { return Logs(global, *logs_id, *logs); }); });

  auto stats = std::make_shared<StatsOptions>();
  CLI::App* stats_cmd =
      app.add_subcommand("stats", "show containers' resource usage (running ones unless -a)");
  stats_cmd->add_flag("-a,--all", stats->all, "all containers, not only running ones");
  stats_cmd->add_option("--id", stats->id, "only this id (or id prefix)");
  stats_cmd->add_option("-p,--pod", stats->pod, "only the containers of this pod");
  stats_cmd->add_option("--label", stats->labels, "only containers with this label (KEY=VALUE)")
      ->allow_extra_args(false);
  stats_cmd->callback([&global, stats] { RunCommand([&] { return Stats(global, *stats); }); });

  app.add_subcommand("events", "print container events as they happen, until interrupted")
      ->callback([&global] { RunCommand([&] { return Events(global); }); });

  auto run = std::make_shared<RunOptions>();
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "run a container in a new pod, pulling its image if needed, and follow its output to its "
      "exit (as docker run)");
  run_cmd->add_option("image", run->image, "image reference")->required();
  run_cmd->add_option("command", run->command,
                      "after --: arguments that replace the image's Cmd (its Entrypoint stays)");
  run_cmd->add_option("--name", run->name, "container and pod name (default berthctl-<random>)");
  run_cmd->add_flag("--rm", run->remove, "remove the pod once the container has exited");
  run_cmd->add_option("-e,--env", run->envs, "environment variable KEY=VALUE")
      ->allow_extra_args(false);
  run_cmd->add_flag("-d,--detach", run->detach, "print the container id and return at once");
  run_cmd->add_option("-p,--publish", run->publish,
                      "publish a port: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp|sctp]")
      ->allow_extra_args(false);
  run_cmd->add_option("--network", run->network,
                      "none, host, a network name, or several names separated by commas");
  run_cmd->add_option("--pod-config", run->pod_config,
                      "the pod's PodSandboxConfig (JSON) instead of berthctl's own");
  run_cmd->callback([&global, run] {
    int exit_code = 0;
    RunCommand([&] { return Run(global, *run, exit_code); });
    ExitWith(exit_code);
  });
}

}  // namespace berth::cli
