// ImageManager: the node's images — pull, look up, list, remove, collect.
//
//   ASSIGN_OR_RETURN(auto images, ImageManager::Create(store, content, snapshotter, config));
//   ASSIGN_OR_RETURN(std::string id, images->Pull("busybox:1.36", credentials));
//   ASSIGN_OR_RETURN(std::optional<Image> image, images->Find("busybox:1.36"));
//   RETURN_IF_ERROR(images->Remove("docker.io/library/busybox:1.36"));
//
//   // Importing an OCI-layout or `docker save` tar received from a client:
//   ASSIGN_OR_RETURN(std::unique_ptr<ImportSpool> spool, images->NewImportSpool());
//   RETURN_IF_ERROR(spool->Write(chunk));  // ... for every chunk
//   RETURN_IF_ERROR(spool->Close());
//   ASSIGN_OR_RETURN(std::vector<ImportedImage> imported, images->Import(spool->path(), ""));
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
//
// Importing (import.cc) is the air-gapped path: the same verification and
// the same records as a pull, from a tar file instead of a registry.
#ifndef BERTH_RUNTIME_IMAGES_IMAGE_MANAGER_H_
#define BERTH_RUNTIME_IMAGES_IMAGE_MANAGER_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "runtime/content/content_store.h"
#include "runtime/image/manifest.h"
#include "runtime/image/reference.h"
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

// One image an import recorded, with the names it now has.
struct ImportedImage {
  std::string id;                         // "sha256:<config digest hex>"
  std::vector<std::string> repo_tags;     // "docker.io/library/busybox:1.36"
  std::vector<std::string> repo_digests;  // "docker.io/library/busybox@sha256:..."
};

// A temp file an upload is received into before Import() reads it. It lives
// in the content store's ingest directory, so what a crash leaves behind is
// removed at the next start; garbage collection leaves that directory alone
// while any spool exists. Destroying the spool removes the file. Not
// thread-safe; must not outlive the ImageManager that made it.
class ImportSpool {
 public:
  ImportSpool(const ImportSpool&) = delete;
  ImportSpool& operator=(const ImportSpool&) = delete;
  ~ImportSpool();

  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }

  // Appends data. ResourceExhausted when the disk is full, Internal for
  // other I/O errors, FailedPrecondition after Close().
  absl::Status Write(std::string_view data);

  // Closes the file; Import() may read it from then on.
  absl::Status Close();

 private:
  friend class ImageManager;
  ImportSpool(std::string path, int fd, std::atomic<int>& live)
      : path_(std::move(path)), fd_(fd), live_(live) {}

  const std::string path_;
  int fd_;  // -1 once closed
  int64_t size_ = 0;
  std::atomic<int>& live_;  // the manager's count of spools
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

  // A new, empty spool file for an upload to import (see ImportSpool).
  absl::StatusOr<std::unique_ptr<ImportSpool>> NewImportSpool();

  // Imports every image of the tar at tar_path: an OCI image layout
  // (oci-layout, index.json, blobs/sha256/...) or a `docker save` archive
  // (manifest.json, legacy <id>/layer.tar files or Docker 25's blobs/),
  // plain or gzip/zstd compressed. Blobs are verified against their digests
  // and descriptor sizes as a pull verifies them, layers are unpacked and
  // checked against the config's diff IDs, and the images are recorded just
  // like pulled ones. An index.json entry that is an index is narrowed to
  // the node's platform; a manifest entry for another platform is skipped.
  //
  // Names: an OCI entry's io.containerd.image.name, else its
  // org.opencontainers.image.ref.name (a full reference, or a tag put on
  // default_name's repository), else default_name; a docker-save image's
  // RepoTags, else default_name. An image nothing names is recorded by id
  // only. default_name may be "" (none); it must not pin a digest.
  //
  // InvalidArgument for a malformed archive, hostile paths, missing blobs,
  // oversize manifests or an unusable image; DataLoss when content does not
  // match its digest or size. Nothing is recorded unless every image
  // imports; what a failed import stored is collected as garbage.
  absl::StatusOr<std::vector<ImportedImage>> Import(const std::string& tar_path,
                                                    const std::string& default_name);

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
  // What one image's records are made of (Pull and Import).
  struct ImageRecord {
    image::Descriptor top;       // what repo digests pin: the index or the manifest
    image::Descriptor manifest;  // the platform manifest; == top without an index
    image::Manifest parsed;      // its config and layers
    std::vector<std::string> chain_ids;
    std::vector<image::Reference> names;  // each gives repo@top digest, plus repo:tag
  };
  // Records the image, its blobs, its names and their references in tx. A
  // tag moves to this image. Returns the image's id and the names recorded.
  absl::StatusOr<ImportedImage> RecordImage(store::Transaction& tx, const ImageRecord& record);

  // pull.cc: unpacks every layer of `manifest` that is not yet a snapshot.
  absl::Status UnpackLayers(const image::Reference& ref, const registry::Endpoint& endpoint,
                            const registry::Credentials& credentials,
                            const image::Manifest& manifest,
                            const std::vector<std::string>& diff_ids,
                            const std::vector<std::string>& chain_ids);
  absl::Status FetchToContent(const image::Reference& ref, const registry::Endpoint& endpoint,
                              const registry::Credentials& credentials,
                              const image::Descriptor& blob);

  // import.cc: the import itself, under the GC lock; and the unpacking of
  // one image whose top and platform manifest blobs are in the content
  // store, returning what to record.
  absl::StatusOr<std::vector<ImportedImage>> ImportLocked(
      const std::string& tar_path, const std::optional<image::Reference>& default_name);
  absl::StatusOr<ImageRecord> ImportImage(const image::Descriptor& top,
                                          const image::Descriptor& manifest,
                                          std::vector<image::Reference> names);
  // Unpacks every layer of `manifest` that is not yet a snapshot from the
  // content store.
  absl::Status UnpackFromContent(const image::Manifest& manifest,
                                 const std::vector<std::string>& diff_ids,
                                 const std::vector<std::string>& chain_ids);

  store::Store& store_;
  content::ContentStore& content_;
  snapshot::Snapshotter& snapshotter_;
  const ImageManagerOptions options_;
  registry::RegistryClient client_;
  // Pulls and imports hold it shared, garbage collection exclusively: a
  // layer a pull has unpacked but not yet recorded must not look like
  // garbage.
  absl::Mutex gc_mu_;
  // Import spools in existence; while any is, CollectGarbage leaves the
  // ingest directory (where they live) alone. Incremented under gc_mu_
  // shared, read under it exclusively.
  std::atomic<int> live_spools_{0};
};

// Chain IDs per the OCI image spec: chain[0] = diff_ids[0],
// chain[n] = sha256(chain[n-1] + " " + diff_ids[n]).
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

}  // namespace berth::images

#endif  // BERTH_RUNTIME_IMAGES_IMAGE_MANAGER_H_
