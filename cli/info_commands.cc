// `berthctl version` and `berthctl info`: what runtime answers at the
// endpoint, and whether it is ready.
#include <iostream>

#include "cli/commands.h"
#include "runtime/base/strings.h"

namespace berth::cli {
namespace {

namespace v1 = ::runtime::v1;

CommandResult Version(const GlobalOptions& global) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();

  grpc::ClientContext ctx;
  client->Prepare(ctx);
  v1::VersionRequest request;
  v1::VersionResponse response;
  grpc::Status s = client->runtime().Version(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "Version", *client);

  if (*format != OutputFormat::kTable) {
    std::cout << Render(ToJson(response), *format);
    return absl::OkStatus();
  }
  std::cout << "Version:  " << response.version() << "\n"
            << "RuntimeName:  " << response.runtime_name() << "\n"
            << "RuntimeVersion:  " << response.runtime_version() << "\n"
            << "RuntimeApiVersion:  " << response.runtime_api_version() << "\n";
  return absl::OkStatus();
}

CommandResult Info(const GlobalOptions& global) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();

  grpc::ClientContext ctx;
  client->Prepare(ctx);
  v1::StatusRequest request;
  request.set_verbose(true);
  v1::StatusResponse status;
  grpc::Status s = client->runtime().Status(&ctx, request, &status);
  if (!s.ok()) return RpcError(s, "Status", *client);

  // berth's own diagnostics; another runtime answers UNIMPLEMENTED.
  grpc::ClientContext daemon_ctx;
  client->Prepare(daemon_ctx);
  berth::v1::DaemonInfoResponse daemon;
  grpc::Status daemon_status =
      client->berth().DaemonInfo(&daemon_ctx, berth::v1::DaemonInfoRequest(), &daemon);

  if (*format != OutputFormat::kTable) {
    // As crictl info does: the verbose info values are JSON, so nest them.
    nlohmann::json out = InspectJson(status.status(), status.info());
    if (daemon_status.ok()) out["daemon"] = ToJson(daemon);
    std::cout << Render(out, *format);
    return absl::OkStatus();
  }

  Table conditions({"CONDITION", "READY", "REASON", "MESSAGE"});
  for (const v1::RuntimeCondition& c : status.status().conditions()) {
    conditions.AddRow({c.type(), c.status() ? "true" : "false", c.reason(), c.message()});
  }
  std::cout << conditions.Render();
  if (daemon_status.ok()) {
    std::cout << "\nDaemon:  berthd " << daemon.version() << " (pid " << daemon.pid() << ")\n"
              << "Root:  " << daemon.root_dir() << "\n"
              << "State:  " << daemon.state_dir() << "\n"
              << "Socket:  " << daemon.socket_path() << "\n"
              << "Store schema:  v" << daemon.store_schema_version() << "\n"
              << "RSS:  " << daemon.rss_bytes() / 1024 << " KiB\n";
  }
  auto cidr = status.info().find("podCIDR");
  if (cidr != status.info().end() && !cidr->second.empty()) {
    std::cout << "Pod CIDR:  " << cidr->second << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddInfoCommands(CLI::App& app, const GlobalOptions& global) {
  app.add_subcommand("version", "show the runtime's name and versions")->callback([&global] {
    RunCommand([&] { return Version(global); });
  });
  app.add_subcommand("info", "show the runtime's readiness conditions and configuration")
      ->callback([&global] { RunCommand([&] { return Info(global); }); });
}

}  // namespace berth::cli
