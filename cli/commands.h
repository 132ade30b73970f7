// berthctl's command groups. Each group lives in its own file and registers
// its subcommands on the app; main.cc only wires global flags.
//
//   GlobalOptions global;
//   AddInfoCommands(app, global);   // version, info
#ifndef BERTH_CLI_COMMANDS_H_
#define BERTH_CLI_COMMANDS_H_

#include <google/protobuf/message.h>

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "cli/client.h"
#include "cli/output.h"

namespace berth::cli {

struct GlobalOptions {
  std::string endpoint = kDefaultEndpoint;
  int timeout_seconds = 10;
  std::string output = "table";

  absl::StatusOr<Client> Connect() const;
  absl::StatusOr<OutputFormat> Format() const { return ParseOutputFormat(output); }
};

// What a command's callback returns: OK, or the error to print (exit 1).
using CommandResult = absl::Status;

// Registers `version` and `info` (info_commands.cc).
void AddInfoCommands(CLI::App& app, const GlobalOptions& global);
// Registers `pull`, `images`, `inspecti`, `rmi`, `imagefsinfo`, and `image import`
// with its alias `import` (image_commands.cc).
void AddImageCommands(CLI::App& app, const GlobalOptions& global);
// Registers `runp`, `pods`, `inspectp`, `stopp`, `rmp` (pod_commands.cc).
void AddPodCommands(CLI::App& app, const GlobalOptions& global);
// Registers `create`, `start`, `stop`, `rm`, `ps`, `inspect`, `logs`, `stats`, `events`
// and `run` (container_commands.cc).
void AddContainerCommands(CLI::App& app, const GlobalOptions& global);
// Registers `exec` (ExecSync, or streaming with -i/-t), `attach` and `port-forward`
// (stream_commands.cc).
void AddStreamCommands(CLI::App& app, const GlobalOptions& global);
// Registers `network ls` and `network inspect` (network_commands.cc).
void AddNetworkCommands(CLI::App& app, const GlobalOptions& global);

// Runs a command body, printing its error as "berthctl: <message>" and
// exiting 1 on failure (CLI11 callbacks cannot return a status).
void RunCommand(const std::function<CommandResult()>& body);

// A failed RPC as a Status whose message names the RPC and the endpoint.
absl::Status RpcError(const grpc::Status& status, const std::string& rpc, const Client& client);

// A container's status, found by id, unique id prefix, or name (as docker takes
// `berthctl run --name web`); its status().id() is the full id (container_commands.cc).
absl::StatusOr<runtime::v1::ContainerStatusResponse> GetContainerStatus(
    Client& client, const std::string& id_or_name, bool verbose = false);

// Ends berthctl with the exit code of a container or a command run in one, as docker
// run and crictl exec do. 0 returns, so CLI11 finishes normally.
void ExitWith(int code);

// Fills message from a JSON file with the CRI's field names (as crictl reads
// its config files); an unknown field is an error, not silently dropped.
absl::Status ReadJsonMessage(const std::string& file, google::protobuf::Message& message);

}  // namespace berth::cli

#endif  // BERTH_CLI_COMMANDS_H_
