#include "runtime/shim/reaper.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <initializer_list>

namespace berth::shim {
namespace {

volatile pid_t program_pid = 0;

void Forward(int signal) {
  if (program_pid > 0) kill(program_pid, signal);
}

}  // namespace

int RunReaping(char** argv) {
  if (argv[0] == nullptr) {
    static const char kUsage[] = "berth-shim --reap: usage: berth-shim --reap -- PROGRAM ARGS...\n";
    (void)!write(STDERR_FILENO, kUsage, sizeof(kUsage) - 1);
    return 2;
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  // A streaming exec with a tty hands runc a pty (runc relays between it and the
  // container's own). Making it our controlling terminal lets the kernel deliver
  // SIGWINCH to runc, which copies the new size to the container's pty, whenever berthd
  // resizes it.
  if (isatty(STDIN_FILENO) && setsid() >= 0) ioctl(STDIN_FILENO, TIOCSCTTY, 0);
  struct sigaction forward = {};
  forward.sa_handler = Forward;
  sigemptyset(&forward.sa_mask);
  forward.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaction(sig, &forward, nullptr);

  pid_t child = fork();
  if (child < 0) {
    perror("berth-shim --reap: fork");
    return 1;
  }
  if (child == 0) {
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) signal(sig, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execv(argv[0], argv);
    fprintf(stderr, "berth-shim --reap: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  program_pid = child;
  int status = 0;
  for (;;) {
    int st = 0;
    pid_t reaped = waitpid(-1, &st, 0);
    if (reaped == child) {
      status = st;
      break;
    }
    if (reaped < 0 && errno != EINTR) break;  // ECHILD: nothing left
  }
  // Orphans that died while PROGRAM ran are reaped by the loop above; the ones that die
  // with it (the exec'd process) are reaped now. Live ones do not hold the wrapper up.
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace berth::shim
