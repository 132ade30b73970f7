// A node for container tests: the image kit's busybox in a private registry,
// a berthd that reaches it through a "*" mirror, and the image pulled as
// busybox:1.36.
//
//   absl::StatusOr<BusyboxNode> node = StartBusyboxNode();
//   ASSERT_TRUE(node.ok()) << node.status();
#ifndef BERTH_E2E_BUSYBOX_NODE_H_
#define BERTH_E2E_BUSYBOX_NODE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "e2e/berthd_fixture.h"
#include "e2e/fixtures/registry.h"

namespace berth::testing {

struct BusyboxNode {
  std::unique_ptr<Registry> registry;
  std::unique_ptr<BerthdFixture> berthd;
};

// extra_toml is appended to berthd's configuration after the mirror.
absl::StatusOr<BusyboxNode> StartBusyboxNode(const std::string& extra_toml = "");

}  // namespace berth::testing

#endif  // BERTH_E2E_BUSYBOX_NODE_H_
