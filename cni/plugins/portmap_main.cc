// berth-portmap: see portmap.h.
#include "cni/plugins/portmap.h"

int main() {
  using namespace berth::cni::plugins;
  return PluginMain({.name = "berth-portmap",
                     .add = PortmapAdd,
                     .del = PortmapDel,
                     .check = PortmapCheck,
                     .gc = PortmapGc});
}
