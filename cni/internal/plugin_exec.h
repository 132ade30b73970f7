// Executing one CNI plugin binary: finding it in the bin dirs, the config on stdin, the
// CNI_* environment, a timeout, and its error JSON turned into an absl::Status.
//
//   ASSIGN_OR_RETURN(std::string path, FindPlugin("bridge", {"/usr/lib/cni"}));
//   ASSIGN_OR_RETURN(std::string out,
//                    RunPlugin({.path = path, .env = {"CNI_COMMAND=ADD", ...},
//                               .stdin_data = config.dump(), .timeout = absl::Seconds(60),
//                               .what = "network \"pods\": plugin bridge ADD (...)"}));
#ifndef BERTH_CNI_INTERNAL_PLUGIN_EXEC_H_
#define BERTH_CNI_INTERNAL_PLUGIN_EXEC_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace berth::cni::internal {

// The first <dir>/<type> that is an executable regular file. FailedPrecondition naming the
// dirs when there is none; InvalidArgument when type is not a plain file name.
absl::StatusOr<std::string> FindPlugin(const std::string& type,
                                       const std::vector<std::string>& bin_dirs);

struct PluginCall {
  std::string path;
  std::vector<std::string> env;  // "CNI_COMMAND=ADD", ...; added to this process's environment
  std::string stdin_data;
  absl::Duration timeout = absl::Seconds(60);
  std::string what;  // prefixes every error message
};

// Runs the plugin to completion. Exit 0: its stdout. Otherwise the error it printed (see
// PluginErrorStatus), or its exit status and output when it printed no error JSON;
// DeadlineExceeded when the timeout killed it.
absl::StatusOr<std::string> RunPlugin(const PluginCall& call);

// A plugin's {"code", "msg", "details"} as a Status: "<what>: <msg>: <details> (CNI error
// <code>)", with the code mapped as documented in cni/cni.h.
absl::Status PluginErrorStatus(std::string_view what, int code, std::string_view msg,
                               std::string_view details);

// The plugin's VERSION answer (supportedVersions), remembered per binary until its inode,
// size or mtime changes. `cni_version` goes on stdin.
absl::StatusOr<std::vector<std::string>> PluginSupportedVersions(const std::string& path,
                                                                 const std::string& cni_version,
                                                                 const std::string& cni_path,
                                                                 absl::Duration timeout);

// Semantic version order of "a.b.c" strings: <0, 0, >0. Unparsable parts compare as 0.
int CompareVersions(std::string_view a, std::string_view b);

}  // namespace berth::cni::internal

#endif  // BERTH_CNI_INTERNAL_PLUGIN_EXEC_H_
