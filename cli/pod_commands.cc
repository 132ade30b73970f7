// `berthctl runp | pods | inspectp | stopp | rmp`: pod sandboxes.
#include <iostream>

#include "cli/commands.h"
#include "runtime/base/strings.h"

namespace berth::cli {
namespace {

namespace v1 = ::runtime::v1;

CommandResult RunPod(const GlobalOptions& global, const std::string& file,
                     const std::string& handler) {
  v1::RunPodSandboxRequest request;
  if (absl::Status read = ReadJsonMessage(file, *request.mutable_config()); !read.ok()) return read;
  request.set_runtime_handler(handler);
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  grpc::ClientContext ctx;
  client->Prepare(ctx);
  v1::RunPodSandboxResponse response;
  grpc::Status s = client->runtime().RunPodSandbox(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "RunPodSandbox", *client);
  std::cout << response.pod_sandbox_id() << "\n";
  return absl::OkStatus();
}

CommandResult ListPods(const GlobalOptions& global, const std::string& id, bool quiet) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  v1::ListPodSandboxRequest request;
  request.mutable_filter()->set_id(id);
  v1::ListPodSandboxResponse response;
  grpc::ClientContext ctx;
  client->Prepare(ctx);
  grpc::Status s = client->runtime().ListPodSandbox(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "ListPodSandbox", *client);
  if (*format != OutputFormat::kTable) {
    std::cout << Render(ToJson(response), *format);
    return absl::OkStatus();
  }
  Table table({"POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"});
  for (const v1::PodSandbox& pod : response.items()) {
    if (quiet) {
      std::cout << pod.id() << "\n";
      continue;
    }
    table.AddRow({ShortId(pod.id()), Age(pod.created_at()),
                  pod.state() == v1::SANDBOX_READY ? "Ready" : "NotReady", pod.metadata().name(),
                  pod.metadata().namespace_(), std::to_string(pod.metadata().attempt()),
                  pod.runtime_handler().empty() ? "(default)" : pod.runtime_handler()});
  }
  if (!quiet) std::cout << table.Render();
  return absl::OkStatus();
}

CommandResult InspectPods(const GlobalOptions& global, const std::vector<std::string>& ids) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  for (const std::string& id : ids) {
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    request.set_verbose(true);
    v1::PodSandboxStatusResponse response;
    grpc::ClientContext ctx;
    client->Prepare(ctx);
    grpc::Status s = client->runtime().PodSandboxStatus(&ctx, request, &response);
    if (!s.ok()) return RpcError(s, "PodSandboxStatus", *client);
    std::cout << Render(InspectJson(response.status(), response.info()),
                        *format == OutputFormat::kYaml ? OutputFormat::kYaml : OutputFormat::kJson);
  }
  return absl::OkStatus();
}

// stopp and rmp: one RPC per id, printing what was done like crictl.
template <typename Request, typename Response>
CommandResult ForEachPod(const GlobalOptions& global, const std::vector<std::string>& ids,
                         grpc::Status (v1::RuntimeService::Stub::*rpc)(grpc::ClientContext*,
                                                                       const Request&, Response*),
                         const char* rpc_name, const char* done) {
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  for (const std::string& id : ids) {
    Request request;
    request.set_pod_sandbox_id(id);
    Response response;
    grpc::ClientContext ctx;
    client->Prepare(ctx);
    grpc::Status s = (client->runtime().*rpc)(&ctx, request, &response);
    if (!s.ok()) return RpcError(s, rpc_name, *client);
    std::cout << done << " sandbox " << id << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddPodCommands(CLI::App& app, const GlobalOptions& global) {
  auto file = std::make_shared<std::string>();
  auto handler = std::make_shared<std::string>();
  CLI::App* runp =
      app.add_subcommand("runp", "run a pod sandbox from a PodSandboxConfig JSON file");
  runp->add_option("config", *file, "pod config (JSON, CRI field names)")->required();
  runp->add_option("--runtime", *handler, "runtime handler");
  runp->callback(
      [&global, file, handler] { RunCommand([&] { return RunPod(global, *file, *handler); }); });

  auto id = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* pods = app.add_subcommand("pods", "list pod sandboxes");
  pods->add_option("--id", *id, "only this id (or id prefix)");
  pods->add_flag("-q,--quiet", *quiet, "print ids only");
  pods->callback(
      [&global, id, quiet] { RunCommand([&] { return ListPods(global, *id, *quiet); }); });

  auto inspect_ids = std::make_shared<std::vector<std::string>>();
  CLI::App* inspectp = app.add_subcommand("inspectp", "show pod sandbox status");
  inspectp->add_option("id", *inspect_ids, "pod sandbox id (or unique prefix)")->required();
  inspectp->callback(
      [&global, inspect_ids] { RunCommand([&] { return InspectPods(global, *inspect_ids); }); });

  auto stop_ids = std::make_shared<std::vector<std::string>>();
  CLI::App* stopp = app.add_subcommand("stopp", "stop pod sandboxes");
  stopp->add_option("id", *stop_ids, "pod sandbox id")->required();
  stopp->callback([&global, stop_ids] {
    RunCommand([&] {
      return ForEachPod(global, *stop_ids, &v1::RuntimeService::Stub::StopPodSandbox,
                        "StopPodSandbox", "Stopped");
    });
  });

  auto rm_ids = std::make_shared<std::vector<std::string>>();
  CLI::App* rmp = app.add_subcommand("rmp", "remove pod sandboxes");
  rmp->add_option("id", *rm_ids, "pod sandbox id")->required();
  rmp->callback([&global, rm_ids] {
    RunCommand([&] {
      return ForEachPod(global, *rm_ids, &v1::RuntimeService::Stub::RemovePodSandbox,
                        "RemovePodSandbox", "Removed");
    });
  });
}

}  // namespace berth::cli
