#include "runtime/oci/runc_runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/oci/subprocess.h"

namespace berth::oci {

std::string_view ContainerStatusName(ContainerStatus status) {
  switch (status) {
    case ContainerStatus::kCreating:
      return "creating";
    case ContainerStatus::kCreated:
      return "created";
    case ContainerStatus::kRunning:
      return "running";
    case ContainerStatus::kPaused:
      return "paused";
    case ContainerStatus::kStopped:
      return "stopped";
  }
  return "unknown";
}

namespace {

constexpr size_t kMaxLog = 1 << 20;

std::string Trim(std::string_view s) {
  absl::string_view t = absl::StripAsciiWhitespace(absl::string_view(s.data(), s.size()));
  return std::string(t.data(), t.size());
}

// A memfd holding `content`, readable by a child as /proc/<our pid>/fd/<fd>.
absl::StatusOr<UniqueFd> MemFile(const char* name, std::string_view content) {
  UniqueFd fd(memfd_create(name, MFD_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("memfd_create ", name));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, StrCat("write memfd ", name));
    done += n;
  }
  return fd;
}

std::string ProcFdPath(const UniqueFd& fd) { return StrCat("/proc/", getpid(), "/fd/", fd.get()); }

std::string ReadAll(int fd, size_t cap) {
  std::string out;
  char buf[8192];
  off_t off = 0;
  while (out.size() < cap) {
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, n);
    off += n;
  }
  return out;
}

// runc reports everything as exit status 1; its message says what went wrong.
absl::StatusCode CodeForMessage(std::string_view message) {
  auto has = [&](std::string_view s) { return message.find(s) != std::string_view::npos; };
  if (has("does not exist") || has("not found")) return absl::StatusCode::kNotFound;
  if (has("exists")) return absl::StatusCode::kAlreadyExists;
  if (has("not running") || has("cannot start") || has("is not stopped") ||
      has("stopped container") || has("paused")) {
    return absl::StatusCode::kFailedPrecondition;
  }
  return absl::StatusCode::kUnknown;
}

absl::StatusOr<ContainerState> StateFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("runtime state: not a JSON object");
  ContainerState state;
  state.id = j.value("id", "");
  std::string status = j.value("status", "");
  if (status == "creating") {
    state.status = ContainerStatus::kCreating;
  } else if (status == "created") {
    state.status = ContainerStatus::kCreated;
  } else if (status == "running") {
    state.status = ContainerStatus::kRunning;
  } else if (status == "paused") {
    state.status = ContainerStatus::kPaused;
  } else if (status == "stopped") {
    state.status = ContainerStatus::kStopped;
  } else {
    return absl::InvalidArgumentError(
        StrCat("runtime state of ", state.id, ": unknown status \"", status, "\""));
  }
  if (j.contains("pid") && j["pid"].is_number_integer()) state.pid = j["pid"].get<int>();
  state.bundle = j.value("bundle", "");
  state.rootfs = j.value("rootfs", "");
  std::string created = j.value("created", "");
  if (!created.empty()) {
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, created, &state.created, &err)) {
      return absl::InvalidArgumentError(
          StrCat("runtime state of ", state.id, ": bad created time \"", created, "\": ", err));
    }
  }
  if (j.contains("annotations") && j["annotations"].is_object()) {
    for (const auto& [k, v] : j["annotations"].items()) {
      if (v.is_string()) state.annotations[k] = v.get<std::string>();
    }
  }
  return state;
}

// Kills the process whose pid runc wrote to `pid_file`, if it has written it yet.
void KillFromPidFile(const std::string& pid_file) {
  UniqueFd fd(open(pid_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return;
  std::string text = Trim(ReadAll(fd.get(), 64));
  int pid = atoi(text.c_str());
  if (pid <= 0) return;
  absl::StatusOr<UniqueFd> pidfd = PidfdOpen(pid);
  if (pidfd.ok()) (void)PidfdKill(*pidfd, SIGKILL);
}

int ReadPidFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return 0;
  return atoi(Trim(ReadAll(fd.get(), 64)).c_str());
}

// A private temp dir, removed with what it holds when it goes out of scope.
class ScratchDir {
 public:
  static absl::StatusOr<ScratchDir> Make(std::string parent) {
    if (parent.empty()) {
      const char* tmp = getenv("TMPDIR");
      parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    std::string tmpl = StrCat(parent, "/berth-exec-XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) return ErrnoStatus(errno, StrCat("mkdtemp ", tmpl));
    ScratchDir dir;
    dir.path_ = std::move(tmpl);
    return dir;
  }
  ScratchDir() = default;
  ScratchDir(ScratchDir&& other) noexcept : path_(std::exchange(other.path_, "")) {}
  ScratchDir& operator=(ScratchDir&& other) noexcept {
    if (this != &other) {
      Remove();
      path_ = std::exchange(other.path_, "");
    }
    return *this;
  }
  ~ScratchDir() { Remove(); }
  const std::string& path() const { return path_; }

 private:
  void Remove() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  std::string path_;
};

}  // namespace

absl::StatusOr<ContainerState> ParseContainerState(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(StrCat("runtime state: not JSON: ", json.substr(0, 200)));
  }
  return StateFromJson(j);
}

std::string RuncLogErrors(std::string_view log) {
  std::vector<std::string> messages;
  std::set<std::string> seen;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t end = log.find('\n', pos);
    if (end == std::string_view::npos) end = log.size();
    std::string_view line = log.substr(pos, end - pos);
    pos = end + 1;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    std::string level = j.value("level", "");
    if (level != "error" && level != "fatal" && level != "panic") continue;
    std::string msg = Trim(j.value("msg", ""));
    if (!msg.empty() && seen.insert(msg).second) messages.push_back(std::move(msg));
  }
  std::string out;
  for (const std::string& m : messages) out = out.empty() ? m : StrCat(out, "; ", m);
  return out;
}

struct RuncRuntime::Call {
  std::string command;            // "start"
  std::string id;                 // the container, for messages
  std::vector<std::string> args;  // after the command
  std::vector<std::string> wrapper;  // a command prefix to run runc under
  int stdin_fd = kDevNull;
  int stdout_fd = kCapture;
  int stderr_fd = kCapture;
  absl::Duration timeout = absl::ZeroDuration();  // 0 = the runtime's default
  std::function<void()> on_timeout;
  absl::Duration timeout_grace = absl::ZeroDuration();
  size_t max_capture = 1 << 20;  // per captured stream
  // Exec: a non-zero exit is the process's, not a failure of the runtime.
  bool exit_code_is_result = false;

  SubprocessResult result;
  std::string log;  // runc's JSON log of this call
};

RuncRuntime::RuncRuntime(RuncOptions options) : options_(std::move(options)) {}

absl::Status RuncRuntime::Run(Call& call) {
  const std::string what =
      StrCat(options_.name, " ", call.command, call.id.empty() ? "" : " ", call.id);
  if (options_.root.empty()) {
    return absl::FailedPreconditionError(StrCat(what, ": handler has no state root"));
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.root, ec);
  if (ec) return absl::InternalError(StrCat(what, ": create ", options_.root, ": ", ec.message()));

  ASSIGN_OR_RETURN(UniqueFd log, MemFile("runc-log", ""));
  std::vector<std::string> argv = call.wrapper;
  argv.insert(argv.end(), {options_.binary, "--root", options_.root, "--log", ProcFdPath(log),
                           "--log-format", "json"});
  argv.insert(argv.end(), options_.global_args.begin(), options_.global_args.end());
  argv.push_back(call.command);
  argv.insert(argv.end(), call.args.begin(), call.args.end());

  absl::Duration timeout = call.timeout > absl::ZeroDuration() ? call.timeout : options_.timeout;
  absl::StatusOr<SubprocessResult> result = RunSubprocess({
      .argv = std::move(argv),
      .stdin_fd = call.stdin_fd,
      .stdout_fd = call.stdout_fd,
      .stderr_fd = call.stderr_fd,
      .timeout = timeout,
      .on_timeout = call.on_timeout,
      .timeout_grace = call.timeout_grace,
      .max_capture = call.max_capture,
  });
  if (!result.ok())
    return absl::Status(result.status().code(), StrCat(what, ": ", result.status().message()));
  call.result = *std::move(result);
  call.log = ReadAll(log.get(), kMaxLog);

  std::string message = RuncLogErrors(call.log);
  if (call.result.timed_out) {
    return absl::DeadlineExceededError(StrCat(what, ": timed out after ",
                                              absl::FormatDuration(timeout), ", killed",
                                              message.empty() ? "" : ": ", message));
  }
  if (call.result.ExitCode() == 0 || call.exit_code_is_result) return absl::OkStatus();
  if (message.empty()) message = Trim(call.result.err);
  if (message.empty()) message = call.result.Describe();
  return absl::Status(CodeForMessage(message), StrCat(what, ": ", message));
}

absl::Status RuncRuntime::Create(std::string_view id, std::string_view bundle_dir,
                                 const CreateOptions& options) {
  Call call{.command = "create", .id = std::string(id)};
  call.args = {"--bundle", std::string(bundle_dir)};
  if (!options.pid_file.empty())
    call.args.insert(call.args.end(), {"--pid-file", options.pid_file});
  if (!options.console_socket.empty()) {
    call.args.insert(call.args.end(), {"--console-socket", options.console_socket});
  }
  if (options.no_pivot) call.args.push_back("--no-pivot");
  if (options.no_new_keyring) call.args.push_back("--no-new-keyring");
  call.args.push_back(std::string(id));
  // runc hands its own stdio to the container's process, so nothing is captured here: a
  // capture pipe would be the container's stdout. Errors come from the log.
  const bool tty = !options.console_socket.empty();
  call.stdin_fd = tty ? kDevNull : options.stdio.in;
  call.stdout_fd = tty ? kDevNull : options.stdio.out;
  call.stderr_fd = tty ? kDevNull : options.stdio.err;
  call.timeout = options.timeout;
  return Run(call);
}

absl::Status RuncRuntime::Start(std::string_view id) {
  Call call{.command = "start", .id = std::string(id), .args = {std::string(id)}};
  return Run(call);
}

absl::StatusOr<ContainerState> RuncRuntime::State(std::string_view id) {
  Call call{.command = "state", .id = std::string(id), .args = {std::string(id)}};
  RETURN_IF_ERROR(Run(call));
  absl::StatusOr<ContainerState> state = ParseContainerState(call.result.out);
  if (!state.ok()) {
    return absl::InternalError(
        StrCat(options_.name, " state ", id, ": ", state.status().message()));
  }
  return state;
}

absl::Status RuncRuntime::Kill(std::string_view id, int signal, bool all) {
  Call call{.command = "kill", .id = std::string(id)};
  if (all) call.args.push_back("--all");
  call.args.push_back(std::string(id));
  call.args.push_back(std::to_string(signal));
  return Run(call);
}

absl::Status RuncRuntime::Delete(std::string_view id, bool force) {
  Call call{.command = "delete", .id = std::string(id)};
  if (force) call.args.push_back("--force");
  call.args.push_back(std::string(id));
  return Run(call);
}

absl::Status RuncRuntime::Update(std::string_view id, std::string_view resources_json) {
  ASSIGN_OR_RETURN(UniqueFd resources, MemFile("resources.json", resources_json));
  Call call{.command = "update",
            .id = std::string(id),
            .args = {"--resources", ProcFdPath(resources), std::string(id)}};
  return Run(call);
}

absl::StatusOr<ExecResult> RuncRuntime::Exec(std::string_view id, std::string_view process_json,
                                             const ExecOptions& options) {
  ASSIGN_OR_RETURN(UniqueFd process, MemFile("process.json", process_json));
  // runc writes the pid file by rename within its directory, so it must be a real
  // directory; a private one when the caller names none.
  ScratchDir scratch;
  std::string pid_file = options.pid_file;
  if (pid_file.empty()) {
    ASSIGN_OR_RETURN(scratch, ScratchDir::Make(options_.scratch_dir));
    pid_file = scratch.path() + "/pid";
  }
  Call call{.command = "exec", .id = std::string(id), .wrapper = options_.exec_wrapper};
  call.args = {"--process", ProcFdPath(process), "--pid-file", pid_file};
  if (options.detach) call.args.push_back("--detach");
  if (!options.console_socket.empty()) {
    call.args.insert(call.args.end(), {"--console-socket", options.console_socket});
  }
  call.args.push_back(std::string(id));
  call.stdin_fd = options.stdio.in;
  const bool capture = options.capture && !options.detach;
  call.stdout_fd = capture ? kCapture : options.stdio.out;
  call.stderr_fd = capture ? kCapture : options.stdio.err;
  call.max_capture = options.max_capture;
  call.timeout = options.timeout > absl::ZeroDuration()
                     ? options.timeout
                     : (options.detach ? options_.timeout : absl::InfiniteDuration());
  // runc exec forwards catchable signals only; the process must be killed itself, or it
  // outlives the timeout (critest checks with pgrep).
  call.on_timeout = [pid_file] { KillFromPidFile(pid_file); };
  // runc exec is its process's subreaper: once the process is killed, it reaps it and
  // exits. Killing runc first would leave a zombie for the host's init, visible in the
  // pod's PID namespace until reaped (critest checks with pgrep).
  call.timeout_grace = absl::Seconds(2);
  call.exit_code_is_result = !options.detach;
  RETURN_IF_ERROR(Run(call));

  ExecResult result;
  result.pid = ReadPidFile(pid_file);
  if (options.detach) return result;
  if (result.pid == 0 && call.result.ExitCode() != 0) {
    // The process never started: the failure is runc's.
    std::string message = RuncLogErrors(call.log);
    if (message.empty()) message = call.result.Describe();
    return absl::Status(CodeForMessage(message),
                        StrCat(options_.name, " exec ", id, ": ", message));
  }
  result.exit_code = call.result.ExitCode();
  if (capture) {
    result.out = std::move(call.result.out);
    result.err = std::move(call.result.err);
  }
  return result;
}

absl::StatusOr<std::vector<ContainerState>> RuncRuntime::List() {
  Call call{.command = "list", .id = "", .args = {"--format", "json"}};
  RETURN_IF_ERROR(Run(call));
  nlohmann::json j = nlohmann::json::parse(call.result.out, nullptr, false);
  std::vector<ContainerState> states;
  if (j.is_null()) return states;  // runc prints "null" for no containers
  if (!j.is_array()) {
    return absl::InternalError(
        StrCat(options_.name, " list: unexpected output: ", call.result.out.substr(0, 200)));
  }
  for (const nlohmann::json& item : j) {
    ASSIGN_OR_RETURN(ContainerState state, StateFromJson(item));
    states.push_back(std::move(state));
  }
  return states;
}

}  // namespace berth::oci
