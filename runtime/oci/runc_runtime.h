// RuncRuntime: the OciRuntime for runc and runtimes with runc's command line (crun, youki),
// one process per operation.
//
//   RuncRuntime runc({.name = "runc", .binary = "/usr/sbin/runc", .root = "/run/berth/runc"});
//   RETURN_IF_ERROR(runc.Start("c1"));
//
// Every call runs `<binary> --root <root> --log <private log> --log-format json
// [global_args] <command> ...` with posix_spawn (no shell) and a timeout; on the timeout the
// runtime is SIGKILLed by pidfd. The log is an anonymous memfd handed to runc as
// /proc/<our pid>/fd/<n>, so runc's error messages ("level":"error") end up in the returned
// Status without a temp file to clean up.
#ifndef BERTH_RUNTIME_OCI_RUNC_RUNTIME_H_
#define BERTH_RUNTIME_OCI_RUNC_RUNTIME_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/oci/oci_runtime.h"

namespace berth::oci {

struct RuncOptions {
  std::string name = "runc";                   // the handler name
  std::string binary = "/usr/sbin/runc";       // absolute path; no PATH search
  std::string root;                            // state root (--root); created if missing
  std::vector<std::string> global_args;        // e.g. {"--systemd-cgroup"}
  absl::Duration timeout = absl::Seconds(30);  // per operation, unless its options say
  // Where Exec puts a pid file when the caller gives none; "" = $TMPDIR or /tmp.
  std::string scratch_dir;
  // What `runc exec` runs under: a command prefix such as {"berth-shim", "--reap", "--"}
  // (runtime/shim/reaper.h), which reaps the exec'd process the moment it dies.
  std::vector<std::string> exec_wrapper;
};

class RuncRuntime : public OciRuntime {
 public:
  explicit RuncRuntime(RuncOptions options);

  const RuncOptions& options() const { return options_; }

  std::string_view Name() const override { return options_.name; }
  absl::Status Create(std::string_view id, std::string_view bundle_dir,
                      const CreateOptions& options) override;
  absl::Status Start(std::string_view id) override;
  absl::StatusOr<ContainerState> State(std::string_view id) override;
  absl::Status Kill(std::string_view id, int signal, bool all) override;
  absl::Status Delete(std::string_view id, bool force) override;
  absl::Status Update(std::string_view id, std::string_view resources_json) override;
  absl::StatusOr<ExecResult> Exec(std::string_view id, std::string_view process_json,
                                  const ExecOptions& options) override;
  absl::StatusOr<std::vector<ContainerState>> List() override;

 private:
  struct Call;  // one invocation: argv, stdio, timeout, what it returned

  // Runs `command args...` and turns a failure into a Status naming `op` and `id`.
  absl::Status Run(Call& call);

  const RuncOptions options_;
};

// Parses one object of `runc state` / `runc list --format json` output.
absl::StatusOr<ContainerState> ParseContainerState(std::string_view json);

// The "error"/"fatal" messages of a runc --log-format json log, joined with "; ".
std::string RuncLogErrors(std::string_view log);

}  // namespace berth::oci

#endif  // BERTH_RUNTIME_OCI_RUNC_RUNTIME_H_
