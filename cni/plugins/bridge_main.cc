// berth-bridge: see bridge.h.
#include "cni/plugins/bridge.h"

int main() {
  using namespace berth::cni::plugins;
  return PluginMain({.name = "berth-bridge",
                     .add = BridgeAdd,
                     .del = BridgeDel,
                     .check = BridgeCheck,
                     .status = BridgeStatus,
                     .gc = BridgeGc});
}
