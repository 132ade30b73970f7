#include "e2e/busybox_node.h"

#include "e2e/fixtures/image_kit.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::testing {

absl::StatusOr<BusyboxNode> StartBusyboxNode(const std::string& extra_toml) {
  BusyboxNode node;
  ASSIGN_OR_RETURN(OciImage busybox, BuildBusyboxImage());
  ASSIGN_OR_RETURN(node.registry, Registry::Start());
  RETURN_IF_ERROR(node.registry->Push(busybox, "library/busybox", "1.36"));
  ASSIGN_OR_RETURN(node.berthd,
                   BerthdFixture::Start({.config_toml = StrCat("[registries.\"*\"]\nmirrors = [\"",
                                                               node.registry->url(), "\"]\n",
                                                               extra_toml)}));
  grpc::ClientContext ctx;
  runtime::v1::PullImageRequest pull;
  pull.mutable_image()->set_image("busybox:1.36");
  runtime::v1::PullImageResponse pulled;
  grpc::Status s = node.berthd->image().PullImage(&ctx, pull, &pulled);
  if (!s.ok()) return absl::UnavailableError(StrCat("pull busybox:1.36: ", s.error_message()));
  return node;
}

}  // namespace berth::testing
