// berth-shim: see shim.h. Started by berthd (shim_client.h), never by hand:
//
//   berth-shim --id ID --bundle DIR --state-dir DIR --runtime PATH --runtime-root DIR
//              [--runtime-arg ARG]... [--log-path FILE] [--tty] [--stdin] [--stdin-once]
//              [--no-pivot] [--no-new-keyring] [--max-log-line N]
//              [--create-timeout-ms N] [--drain-timeout-ms N] [--sync-fd N]
//   berth-shim --reap -- PROGRAM ARGS...      (reaper.h: how berthd runs `runc exec`)
//
// It detaches from its parent at once: a new session (so no signal to berthd's process
// group or terminal reaches it) and a fork whose parent exits, so berthd reaps the first
// process right away and the shim is re-parented to init. It becomes a child subreaper so
// that the container's init, orphaned when `runc create` exits, is re-parented to it and
// it can wait for its exit status. No parent-death signal is set anywhere on the way:
// killing berthd leaves the shim and its container running.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "runtime/shim/reaper.h"
#include "runtime/shim/shim.h"

namespace {

bool ParseInt(const char* text, long min, long max, long* out) {
  char* end = nullptr;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

bool ParseArgs(int argc, char** argv, berth::shim::ShimConfig* c, int* sync_fd,
               std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--tty") {
      c->tty = true;
    } else if (flag == "--stdin") {
      c->stdin = true;
    } else if (flag == "--stdin-once") {
      c->stdin_once = true;
    } else if (flag == "--no-pivot") {
      c->no_pivot = true;
    } else if (flag == "--no-new-keyring") {
      c->no_new_keyring = true;
    } else if (i + 1 < argc) {
      const char* value = argv[++i];
      long n = 0;
      if (flag == "--id") {
        c->id = value;
      } else if (flag == "--bundle") {
        c->bundle = value;
      } else if (flag == "--state-dir") {
        c->state_dir = value;
      } else if (flag == "--log-path") {
        c->log_path = value;
      } else if (flag == "--runtime") {
        c->runtime = value;
      } else if (flag == "--runtime-root") {
        c->runtime_root = value;
      } else if (flag == "--runtime-arg") {
        c->runtime_args.push_back(value);
      } else if (flag == "--max-log-line" && ParseInt(value, 0, 1 << 30, &n)) {
        c->max_log_line = n;
      } else if (flag == "--create-timeout-ms" && ParseInt(value, 1, 1 << 30, &n)) {
        c->create_timeout_ms = n;
      } else if (flag == "--drain-timeout-ms" && ParseInt(value, 0, 1 << 30, &n)) {
        c->drain_timeout_ms = n;
      } else if (flag == "--sync-fd" && ParseInt(value, 3, 1 << 20, &n)) {
        *sync_fd = n;
      } else {
        *error = "bad flag or value: " + flag + " " + value;
        return false;
      }
    } else {
      *error = "bad flag: " + flag;
      return false;
    }
  }
  for (auto [value, name] : {std::pair{&c->id, "--id"},
                             {&c->bundle, "--bundle"},
                             {&c->state_dir, "--state-dir"},
                             {&c->runtime, "--runtime"},
                             {&c->runtime_root, "--runtime-root"}}) {
    if (value->empty()) {
      *error = std::string("missing ") + name;
      return false;
    }
  }
  return true;
}

}  // namespace

// libstdc++'s default terminate handler demangles the exception's type name, which links
// its whole demangler (~50 KB of pages) into the shim. Nothing here throws on purpose.
namespace __gnu_cxx {
void __verbose_terminate_handler() { abort(); }
}  // namespace __gnu_cxx

int main(int argc, char** argv) {
  if (argc >= 3 && strcmp(argv[1], "--reap") == 0 && strcmp(argv[2], "--") == 0) {
    return berth::shim::RunReaping(argv + 3);
  }
  berth::shim::ShimConfig config;
  int sync_fd = -1;
  std::string error;
  // Whatever berthd had open stays with berthd; only the sync pipe comes along.
  if (!ParseArgs(argc, argv, &config, &sync_fd, &error) ||
      (sync_fd >= 0 && fcntl(sync_fd, F_SETFD, FD_CLOEXEC) != 0)) {
    if (error.empty()) error = "bad --sync-fd";
    std::string line = "error berth-shim: " + error + "\n";
    if (sync_fd >= 0) (void)!write(sync_fd, line.data(), line.size());
    (void)!write(2, line.data() + 6, line.size() - 6);
    return 2;
  }
  if (sync_fd > 3) close_range(3, sync_fd - 1, 0);
  close_range(sync_fd >= 3 ? sync_fd + 1 : 3, ~0U, 0);

  setsid();
  pid_t child = fork();
  if (child < 0) {
    std::string line = std::string("error berth-shim: fork: ") + strerrordesc_np(errno) + "\n";
    if (sync_fd >= 0) (void)!write(sync_fd, line.data(), line.size());
    return 1;
  }
  if (child > 0) _exit(0);
  (void)!chdir("/");
  umask(022);
  // Large buffers (a long line, a burst for a slow attach client) go back to the kernel
  // when freed instead of staying in the heap.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  return berth::shim::RunShim(config, sync_fd);
}
