// ImageManager: the node's images — pull, look up, list, remove, collect.
//
//   ASSIGN_OR_RETURN(auto images, ImageManager::Create(store, content, snapshotter, config));
//   ASSIGN_OR_RETURN(std::string id, images->Pull("busybox:1.36", credentials));
//   ASSIGN_OR_RETURN(std::optional<Image> image, images->Find("busybox:1.36"));
//   RETURN_IF_ERROR(images->Remove("docker.io/library/busybox:1.36"));
//
// An image is its config digest (the id), the manifest it came from, its
// layers and their chain IDs, and the names that point at it: "repo:tag"
// and "repo@sha256:<manifest digest>". Metadata lives in the store
// (Kind::kImage, Kind::kImageName, Kind::kBlob) with references image ->
// blobs, image -> top snapshot and name -> image; blobs live in the content
// store; unpacked layers in the snapshotter, one committed snapshot per
// chain ID shared by every image that has that layer stack.
//
// Pulling streams: the first layer that is not yet unpacked is extracted
// while it downloads; up to max_concurrent_downloads-1 later layers are
// fetched into the content store meanwhile and applied in order from there.
// Nothing is recorded until every layer is unpacked and verified, so a pull
// that fails or is killed leaves no image, and what it downloaded is
// collected (CollectGarbage, run at start-up and after removals).
#ifndef BERTH_RUNTIME_IMAGES_IMAGE_MANAGER_H_
#define BERTH_RUNTIME_IMAGES_IMAGE_MANAGER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "runtime/content/content_store.h"
#include "runtime/image/manifest.h"
#include "runtime/registry/registry_client.h"
#include "runtime/snapshot/snapshotter.h"
#include "runtime/store/store.h"

namespace berth::images {

struct Image {
  std::string id;                         // "sha256:<config digest hex>"
  std::vector<std::string> repo_tags;     // "docker.io/library/busybox:1.36"
  std::vector<std::string> repo_digests;  // "docker.io/library/busybox@sha256:..."
  int64_t size = 0;                       // config plus compressed layers, in bytes
  std::string manifest_digest;            // the platform manifest
  std::vector<std::string> chain_ids;     // one per layer, base first
  image::ImageConfig config;
  std::string config_json;  // the config blob, for verbose status

  // The committed snapshot a container's rootfs is prepared on.
  std::string TopSnapshot() const { return chain_ids.empty() ? "" : chain_ids.back(); }
};

struct ImageManagerOptions {
  registry::RegistryConfig registry;
  image::Platform platform{.os = "linux", .architecture = "amd64"};
};

class ImageManager {
 public:
  static absl::StatusOr<std::unique_ptr<ImageManager>> Create(store::Store& store,
                                                              content::ContentStore& content,
                                                              snapshot::Snapshotter& snapshotter,
                                                              ImageManagerOptions options);

  // Pulls `reference` (tag, digest, or both; normalized like Docker) and
  // returns the image id. InvalidArgument for a malformed reference.
  absl::StatusOr<std::string> Pull(const std::string& reference,
                                   const registry::Credentials& credentials);

  // Looks up by id ("sha256:<hex>" or bare hex), by name with tag or digest,
  // or by short name ("busybox" = docker.io/library/busybox:latest).
  // nullopt when there is no such image; InvalidArgument when `ref` is
  // neither an id nor a valid reference.
  absl::StatusOr<std::optional<Image>> Find(const std::string& ref);

  // Every image; when `ref` is non-empty, only the one it names.
  absl::StatusOr<std::vector<Image>> List(const std::string& ref = "");

  // Removes what `ref` names. By id, the image and all its names go. By
  // name, only that name goes while the image has other tags; its last tag
  // takes the image (and its digest names) with it. Removing a missing image
  // is OK, as the CRI wants. Storage is reclaimed by CollectGarbage().
  absl::Status Remove(const std::string& ref);

  // Deletes blobs and committed snapshots that nothing refers to, blob files
  // with no record (left by interrupted pulls), and snapshotter leftovers.
  // Waits for pulls in flight.
  absl::Status CollectGarbage();

  const registry::RegistryClient& registry_client() const { return client_; }

 private:
  ImageManager(store::Store& store, content::ContentStore& content,
               snapshot::Snapshotter& snapshotter, ImageManagerOptions options)
      : store_(store),
        content_(content),
        snapshotter_(snapshotter),
        options_(options),
        client_(options.registry) {}

  absl::StatusOr<std::optional<Image>> Load(const store::ReadTransaction& tx,
                                            const std::string& id);
  absl::StatusOr<std::optional<std::string>> ResolveId(const store::ReadTransaction& tx,
                                                       const std::string& ref);
  // pull.cc: unpacks every layer of `manifest` that is not yet a snapshot.
  absl::Status UnpackLayers(const image::Reference& ref, const registry::Endpoint& endpoint,
                            const registry::Credentials& credentials,
                            const image::Manifest& manifest,
                            const std::vector<std::string>& diff_ids,
                            const std::vector<std::string>& chain_ids);
  absl::Status FetchToContent(const image::Reference& ref, const registry::Endpoint& endpoint,
                              const registry::Credentials& credentials,
                              const image::Descriptor& blob);

  store::Store& store_;
  content::ContentStore& content_;
  snapshot::Snapshotter& snapshotter_;
  const ImageManagerOptions options_;
  registry::RegistryClient client_;
  // Pulls hold it shared, garbage collection exclusively: a layer a pull has
  // unpacked but not yet recorded must not look like garbage.
  absl::Mutex gc_mu_;
};

// Chain IDs per the OCI image spec: chain[0] = diff_ids[0],
// chain[n] = sha256(chain[n-1] + " " + diff_ids[n]).
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

}  // namespace berth::images

#endif  // BERTH_RUNTIME_IMAGES_IMAGE_MANAGER_H_
