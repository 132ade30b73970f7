// berth-pause: the infra process of a pod whose containers share one PID
// namespace (NamespaceMode POD). It is PID 1 of that namespace: it holds the
// namespace open, reaps the orphans the containers leave behind, and exits 0
// on SIGTERM or SIGINT. Static and libc-only, so that it runs from a rootfs
// holding nothing but itself.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

volatile sig_atomic_t stop_requested = 0;

void OnStop(int) { stop_requested = 1; }

void OnChild(int) {
  // Reap every exited child: re-parented orphans become ours as PID 1.
  int saved = errno;
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  errno = saved;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    static const char kVersion[] = "berth-pause\n";
    (void)!write(STDOUT_FILENO, kVersion, sizeof(kVersion) - 1);
    return 0;
  }
  if (getpid() != 1) {
    static const char kWarning[] = "berth-pause: warning: not PID 1, orphans are not reaped here\n";
    (void)!write(STDERR_FILENO, kWarning, sizeof(kWarning) - 1);
  }
  struct sigaction stop = {};
  stop.sa_handler = OnStop;
  sigemptyset(&stop.sa_mask);
  sigaction(SIGTERM, &stop, nullptr);
  sigaction(SIGINT, &stop, nullptr);
  struct sigaction child = {};
  child.sa_handler = OnChild;
  child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigemptyset(&child.sa_mask);
  sigaction(SIGCHLD, &child, nullptr);
  while (!stop_requested) pause();
  return 0;
}
