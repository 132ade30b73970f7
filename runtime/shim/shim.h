// The berth-shim process: one per container. It runs `runc create` with the container's
// stdio, reports the container pid to berthd, then stays with the container for its whole
// life, independent of berthd: it writes the CRI log, serves the attach socket, reaps the
// container's init (it is a child subreaper) and records the exit status. The file layout
// and the socket protocol are in shim_protocol.h; berthd's side is shim_client.h.
//
// Plain C++ and libc only, statically linked: each running container pays for one of these.
#ifndef BERTH_RUNTIME_SHIM_SHIM_H_
#define BERTH_RUNTIME_SHIM_SHIM_H_

#include <cstddef>
#include <string>
#include <vector>

#include "runtime/shim/cri_log_writer.h"

namespace berth::shim {

struct ShimConfig {
  std::string id;                         // the container id, as runc knows it
  std::string bundle;                     // OCI bundle directory (absolute)
  std::string state_dir;                  // this container's directory (absolute); must exist
  std::string log_path;                   // CRI log file; "" = output is only served on the socket
  std::string runtime;                    // OCI runtime binary with runc's command line
  std::string runtime_root;               // its --root
  std::vector<std::string> runtime_args;  // global options after --root
  bool tty = false;                       // process.terminal in config.json must agree
  bool stdin = false;                     // keep a stdin pipe for attach
  bool stdin_once = false;
  bool no_pivot = false;
  bool no_new_keyring = false;
  size_t max_log_line = kDefaultMaxLogLine;
  int create_timeout_ms = 60000;
  // After the container's init exits, how long to wait for its output pipes to reach EOF
  // (processes outside its PID namespace may hold them) before recording the exit anyway.
  int drain_timeout_ms = 2000;
};

// Runs the shim in this (already daemonized, subreaper) process. Reports the outcome of
// `runc create` on `sync_fd` (see shim_protocol.h) and returns the process exit code.
int RunShim(const ShimConfig& config, int sync_fd);

}  // namespace berth::shim

#endif  // BERTH_RUNTIME_SHIM_SHIM_H_
