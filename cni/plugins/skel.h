// The plumbing every berth CNI plugin shares: the CNI_* environment and the configuration on
// stdin in, a result or the spec's error JSON out (CNI spec 1.1, "Execution protocol").
//
//   int main() {
//     return berth::cni::plugins::PluginMain({
//         .name = "berth-loopback",
//         .add = [](const CmdArgs& args) -> absl::StatusOr<nlohmann::json> { ... },
//         .del = [](const CmdArgs& args) { return absl::OkStatus(); }});
//   }
//
// A handler fails with CniError(code, msg) to choose the CNI error code; any other
// non-OK status is reported as code 999 ("plugin-specific", as Debian's plugins do) with
// the status message. VERSION is answered here. A missing handler means: CHECK, STATUS
// and GC succeed doing nothing (they are optional in the spec for a plugin that keeps no
// state of that kind).
#ifndef BERTH_CNI_PLUGINS_SKEL_H_
#define BERTH_CNI_PLUGINS_SKEL_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace berth::cni::plugins {

// Error codes of the spec ("Error"), plus berth's own from 100 up.
enum CniCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnvironment = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidNetworkConfig = 7,
  kTryAgainLater = 11,
  kNotAvailable = 50,
  kNotAvailableLimited = 51,
  kAddressesExhausted = 100,  // berth-host-local: no free address in a range set
  kGenericFailure = 999,
};

// A status carrying a CNI error code (and optional details) for the error JSON.
absl::Status CniError(int code, std::string_view msg, std::string_view details = "");
// The code CniError put in `status`, else kGenericFailure.
int CniErrorCode(const absl::Status& status);
std::string CniErrorDetails(const absl::Status& status);

// The versions berth's plugins speak, oldest first: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0.
const std::vector<std::string>& PluginVersions();
// -1, 0, 1 like strcmp; "0.4.0" < "1.0.0" < "1.1.0".
int CompareVersions(std::string_view a, std::string_view b);

struct CmdArgs {
  std::string command;       // CNI_COMMAND: ADD, DEL, CHECK, STATUS, GC
  std::string container_id;  // CNI_CONTAINERID
  std::string netns;         // CNI_NETNS; may be "" for DEL
  std::string ifname;        // CNI_IFNAME
  std::vector<std::pair<std::string, std::string>> args;  // CNI_ARGS, in order
  std::vector<std::string> path;                          // CNI_PATH, split on ':'
  nlohmann::json config;                                  // stdin, parsed
  std::string cni_version;                                // config["cniVersion"]
};

struct Plugin {
  std::string name;  // "berth-bridge"; used in messages
  std::function<absl::StatusOr<nlohmann::json>(const CmdArgs&)> add;  // the result to print
  std::function<absl::Status(const CmdArgs&)> del;
  std::function<absl::Status(const CmdArgs&)> check;
  std::function<absl::Status(const CmdArgs&)> status;
  std::function<absl::Status(const CmdArgs&)> gc;
};

struct Invocation {
  std::map<std::string, std::string> env;
  std::string stdin_data;
};
struct Outcome {
  int exit_code = 0;
  std::string out;  // what goes to stdout: a result, a VERSION answer or the error JSON
};

// The whole protocol without touching the process: for tests and for PluginMain.
Outcome RunPlugin(const Plugin& plugin, const Invocation& invocation);

// Reads the environment and stdin, runs, prints, returns the exit code for main().
int PluginMain(const Plugin& plugin);

// The result as a plugin of `version` prints it: cniVersion set, and for 0.3.x/0.4.0 each
// ips[] entry gets "version": "4" (those versions require it).
nlohmann::json ResultForVersion(nlohmann::json result, const std::string& version);

// The prevResult of the configuration (null when absent).
const nlohmann::json& PrevResult(const CmdArgs& args);

// "cni.dev/valid-attachments" of a GC configuration as (container id, ifname) pairs.
std::vector<std::pair<std::string, std::string>> ValidAttachments(const CmdArgs& args);

}  // namespace berth::cni::plugins

#endif  // BERTH_CNI_PLUGINS_SKEL_H_
