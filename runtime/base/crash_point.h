// Fault injection for the recovery tests: berthd dies by SIGKILL, as in a
// crash, at the named point of an operation when the environment variable
// BERTH_CRASH_POINT names it. Unset (always, outside those tests), a crash
// point costs one cached comparison.
//
//   CrashPoint("container.shim_started");
//
// The points: pod.pinned, cni.first_plugin_added, pod.network_attached,
// pod.infra_started (RunPodSandbox), container.mounted,
// container.shim_started (CreateContainer). docs/recovery.md says what a
// restart does with what each leaves behind.
#ifndef BERTH_RUNTIME_BASE_CRASH_POINT_H_
#define BERTH_RUNTIME_BASE_CRASH_POINT_H_

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <string_view>

namespace berth {

inline void CrashPoint(std::string_view name) {
  static const std::string armed = [] {
    const char* value = getenv("BERTH_CRASH_POINT");
    return std::string(value == nullptr ? "" : value);
  }();
  if (!armed.empty() && armed == name) kill(getpid(), SIGKILL);
}

}  // namespace berth

#endif  // BERTH_RUNTIME_BASE_CRASH_POINT_H_
