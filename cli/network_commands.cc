// `berthctl network ls | inspect`: the CNI networks berthd loaded from its conf dir and
// the pods attached to each (berth.v1 ListNetworks; berth only).
#include <iostream>

#include "cli/commands.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::cli {
namespace {

absl::StatusOr<berth::v1::ListNetworksResponse> ListNetworks(const GlobalOptions& global,
                                                            const std::string& name) {
  ASSIGN_OR_RETURN(Client client, global.Connect());
  grpc::ClientContext ctx;
  client.Prepare(ctx);
  berth::v1::ListNetworksRequest request;
  request.set_name(name);
  berth::v1::ListNetworksResponse response;
  grpc::Status s = client.berth().ListNetworks(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "ListNetworks", client);
  return response;
}

CommandResult Ls(const GlobalOptions& global) {
  ASSIGN_OR_RETURN(OutputFormat format, global.Format());
  ASSIGN_OR_RETURN(berth::v1::ListNetworksResponse response, ListNetworks(global, ""));
  if (format != OutputFormat::kTable) {
    std::cout << Render(ToJson(response), format);
    return absl::OkStatus();
  }
  if (!response.network_error().empty()) {
    std::cerr << "CNI is unusable, pods get loopback only: " << response.network_error() << "\n";
  }
  Table table({"NAME", "DEFAULT", "CNI", "PLUGINS", "PODS"});
  for (const berth::v1::Network& network : response.networks()) {
    std::string plugins;
    for (const std::string& plugin : network.plugins()) {
      plugins += (plugins.empty() ? "" : ",") + plugin;
    }
    table.AddRow({network.name(), network.is_default() ? "*" : "", network.cni_version(), plugins,
                  std::to_string(network.attachments_size())});
  }
  std::cout << table.Render();
  for (const std::string& error : response.load_errors()) {
    std::cerr << "skipped: " << error << "\n";
  }
  return absl::OkStatus();
}

CommandResult Inspect(const GlobalOptions& global, const std::string& name) {
  ASSIGN_OR_RETURN(OutputFormat format, global.Format());
  ASSIGN_OR_RETURN(berth::v1::ListNetworksResponse response, ListNetworks(global, name));
  const berth::v1::Network& network = response.networks(0);
  nlohmann::json out = ToJson(network);
  out.erase("config_json");
  out["config"] = nlohmann::json::parse(network.config_json(), nullptr, false);
  out["conf_dir"] = response.conf_dir();
  std::cout << Render(out, format == OutputFormat::kTable ? OutputFormat::kJson : format);
  return absl::OkStatus();
}

}  // namespace

void AddNetworkCommands(CLI::App& app, const GlobalOptions& global) {
  CLI::App* network = app.add_subcommand(
      "network", "list and inspect the CNI networks berthd loaded (berth only)");
  network->require_subcommand(1);
  network->add_subcommand("ls", "list networks: the default first, with plugins and pod count")
      ->callback([&global] { RunCommand([&] { return Ls(global); }); });
  auto name = std::make_shared<std::string>();
  CLI::App* inspect =
      network->add_subcommand("inspect", "show a network's configuration and attached pods");
  inspect->add_option("name", *name, "network name")->required();
  inspect->callback([&global, name] { RunCommand([&] { return Inspect(global, *name); }); });
}

}  // namespace berth::cli
