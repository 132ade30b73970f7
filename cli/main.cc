// berthctl: a CRI client for debugging a node, wire-compatible with any CRI
// runtime (berth, containerd, CRI-O).
//
//   berthctl [--runtime-endpoint unix:///run/berth/berth.sock] [-o table|json|yaml] COMMAND
#include <google/protobuf/util/json_util.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "runtime/base/strings.h"

namespace berth::cli {

absl::StatusOr<Client> GlobalOptions::Connect() const {
  return Client::Connect(endpoint, std::chrono::seconds(timeout_seconds));
}

void RunCommand(const std::function<CommandResult()>& body) {
  absl::Status status = body();
  if (!status.ok()) {
    std::cerr << "berthctl: " << status.message() << "\n";
    std::exit(1);
  }
}

absl::Status RpcError(const grpc::Status& status, const std::string& rpc, const Client& client) {
  std::string message = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    message += " (is the runtime running and the socket readable?)";
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      StrCat(rpc, " on ", client.target(), ": ", message));
}

absl::Status ReadJsonMessage(const std::string& file, google::protobuf::Message& message) {
  std::ifstream in(file);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", file));
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto parsed = google::protobuf::util::JsonStringToMessage(text.str(), &message, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(StrCat(file, " is not a ", message.GetDescriptor()->name(),
                                             " in JSON: ", std::string(parsed.message())));
  }
  return absl::OkStatus();
}

}  // namespace berth::cli

int main(int argc, char** argv) {
  CLI::App app{"berthctl: debug a Kubernetes node through its CRI runtime"};
  app.require_subcommand(1);
  // Global flags also after the command, as crictl takes them (`berthctl ps -o json`);
  // a command's own flag of the same name wins (`stop -t` is the grace period).
  app.fallthrough();
  berth::cli::GlobalOptions global;
  if (const char* env = std::getenv("CONTAINER_RUNTIME_ENDPOINT"); env && *env) {
    global.endpoint = env;
  }
  app.add_option("-r,--runtime-endpoint", global.endpoint,
                 "CRI endpoint (env CONTAINER_RUNTIME_ENDPOINT)")
      ->capture_default_str();
  app.add_option("-t,--timeout", global.timeout_seconds, "seconds to wait for each RPC")
      ->capture_default_str();
  app.add_option("-o,--output", global.output, "table, json or yaml")->capture_default_str();
  berth::cli::AddInfoCommands(app, global);
  berth::cli::AddImageCommands(app, global);
  berth::cli::AddPodCommands(app, global);
  berth::cli::AddContainerCommands(app, global);
  berth::cli::AddStreamCommands(app, global);
  berth::cli::AddNetworkCommands(app, global);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
