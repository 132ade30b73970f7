// `berth-shim --reap -- PROGRAM ARGS...`: runs PROGRAM as a child subreaper
// and exits as it did (its exit code, or 128 + the signal that killed it).
//
// berthd wraps `runc exec` in it. runc's exec'd process is orphaned at once
// (runc's intermediate process exits), and without a subreaper it goes to the
// host's init: once killed by an ExecSync timeout it stays a zombie, visible in
// the pod's PID namespace, until that init gets round to it. With this wrapper
// as its subreaper it is reaped the moment it dies, as containerd's shim does.
// SIGTERM, SIGINT, SIGHUP and SIGQUIT are passed on to PROGRAM, which dies
// with the wrapper.
#ifndef BERTH_RUNTIME_SHIM_REAPER_H_
#define BERTH_RUNTIME_SHIM_REAPER_H_

namespace berth::shim {

// argv: PROGRAM and its arguments, null-terminated; PROGRAM is a path.
int RunReaping(char** argv);

}  // namespace berth::shim

#endif  // BERTH_RUNTIME_SHIM_REAPER_H_
