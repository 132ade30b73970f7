// berthd: the berth CRI daemon.
//
//   berthd [--config FILE] [--root DIR] [--state DIR] [--socket PATH] [--log-level LEVEL]
//
// Runs in the foreground until SIGTERM or SIGINT, then drains in-flight RPCs
// and exits 0. Exits 1 when it cannot start, with the reason on stderr.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "server/config.h"
#include "server/daemon.h"
#include "server/logging.h"
#include "server/version.h"

int main(int argc, char** argv) {
  CLI::App app{"berthd: a Kubernetes container runtime serving the CRI on a unix socket"};
  std::string config_path = berth::server::kDefaultConfigPath;
  std::string root, state, socket, log_level;
  bool show_version = false;
  CLI::Option* config_flag =
      app.add_option("--config", config_path, "TOML config file")->capture_default_str();
  app.add_option("--root", root, "persistent data directory (default /var/lib/berth)");
  app.add_option("--state", state, "runtime state directory (default /run/berth)");
  app.add_option("--socket", socket, "CRI unix socket (default /run/berth/berth.sock)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|critical|off");
  app.add_flag("--version", show_version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);

  if (show_version) {
    std::cout << "berthd " << berth::kBerthVersion << "\n";
    return 0;
  }

  absl::StatusOr<berth::server::DaemonConfig> config =
      berth::server::LoadConfigFile(config_path, /*must_exist=*/config_flag->count() > 0);
  if (!config.ok()) {
    std::cerr << "berthd: " << config.status().message() << "\n";
    return 1;
  }
  if (!root.empty()) config->root_dir = root;
  if (!state.empty()) config->state_dir = state;
  if (!socket.empty()) config->socket_path = socket;
  if (!log_level.empty()) config->log_level = log_level;
  if (absl::Status valid = berth::server::ValidateConfig(*config); !valid.ok()) {
    std::cerr << "berthd: " << valid.message() << "\n";
    return 1;
  }
  berth::server::InitLogging(config->log_level);

  // Block the shutdown signals before any thread starts, so every gRPC thread
  // inherits the mask and only sigwait() below receives them.
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGTERM);
  sigaddset(&shutdown_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr);
  // A client that disconnects mid-write must not kill the daemon.
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<berth::server::Daemon>> daemon =
      berth::server::Daemon::Start(*config);
  if (!daemon.ok()) {
    std::cerr << "berthd: " << daemon.status().message() << "\n";
    return 1;
  }

  int signal_number = 0;
  sigwait(&shutdown_signals, &signal_number);
  spdlog::info("event=signal_received signal={}", strsignal(signal_number));
  (*daemon)->Shutdown();
  daemon->reset();
  return 0;
}
