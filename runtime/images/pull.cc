// ImageManager::Pull: resolve the manifest, fetch the config, unpack the
// layers (streaming the first missing one), then record the image.
#include <thread>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/image/digest.h"
#include "runtime/image/reference.h"
#include "runtime/images/byte_pipe.h"
#include "runtime/images/image_manager.h"

namespace berth::images {
namespace {

// How much of a layer may sit in memory between download and unpacking.
constexpr size_t kPipeCapacity = 8 << 20;
constexpr int64_t kMaxConfigBytes = 16 << 20;

// A download running in the background into the content store.
struct Prefetch {
  std::thread thread;
  absl::Status result;
};

}  // namespace

absl::Status ImageManager::FetchToContent(const image::Reference& ref,
                                          const registry::Endpoint& endpoint,
                                          const registry::Credentials& credentials,
                                          const image::Descriptor& blob) {
  if (content_.Has(blob.digest)) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::unique_ptr<content::BlobWriter> writer,
                   content_.NewWriter(blob.digest, blob.size));
  RETURN_IF_ERROR(client_.FetchBlob(endpoint, ref, blob, credentials,
                                    [&](std::string_view chunk) { return writer->Write(chunk); }));
  return writer->Commit();
}

absl::Status ImageManager::UnpackLayers(const image::Reference& ref,
                                        const registry::Endpoint& endpoint,
                                        const registry::Credentials& credentials,
                                        const image::Manifest& manifest,
                                        const std::vector<std::string>& diff_ids,
                                        const std::vector<std::string>& chain_ids) {
  const size_t n = manifest.layers.size();
  std::vector<bool> needed(n, false);
  for (size_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(std::optional<snapshot::SnapshotInfo> existing,
                     snapshotter_.Stat(chain_ids[i]));
    needed[i] = !existing.has_value();
  }

  std::vector<std::unique_ptr<Prefetch>> prefetch(n);
  auto join_all = [&] {
    for (auto& p : prefetch) {
      if (p && p->thread.joinable()) p->thread.join();
    }
  };
  // Keeps up to max_concurrent_downloads-1 later layers downloading while
  // layer `current` unpacks.
  auto start_prefetches = [&](size_t current) {
    int running = 0;
    for (size_t j = current + 1; j < n; ++j) {
      if (prefetch[j] && prefetch[j]->thread.joinable()) ++running;
    }
    for (size_t j = current + 1; j < n && running < options_.registry.max_concurrent_downloads - 1;
         ++j) {
      if (!needed[j] || prefetch[j] || content_.Has(manifest.layers[j].digest)) continue;
      prefetch[j] = std::make_unique<Prefetch>();
      Prefetch* p = prefetch[j].get();
      const image::Descriptor& blob = manifest.layers[j];
      p->thread = std::thread([this, p, &ref, &endpoint, &credentials, &blob] {
        p->result = FetchToContent(ref, endpoint, credentials, blob);
      });
      ++running;
    }
  };

  absl::Status status;
  for (size_t i = 0; i < n && status.ok(); ++i) {
    if (!needed[i]) continue;
    start_prefetches(i);
    const image::Descriptor& layer = manifest.layers[i];
    const std::string parent = i == 0 ? "" : chain_ids[i - 1];
    absl::StatusOr<snapshot::Usage> applied;

    if (prefetch[i] != nullptr) {
      prefetch[i]->thread.join();
      status = prefetch[i]->result;
      if (!status.ok()) break;
    }
    if (content_.Has(layer.digest)) {
      snapshot::FileSource source(content_.BlobPath(layer.digest));
      applied = snapshotter_.ApplyLayer(chain_ids[i], parent, source, diff_ids[i]);
    } else {
      // Stream: the download feeds the content store and the unpacker at
      // once; EOF reaches the unpacker only after the blob was verified and
      // committed, so a corrupt blob never becomes a snapshot.
      BytePipe pipe(kPipeCapacity);
      std::thread download([&] {
        absl::StatusOr<std::unique_ptr<content::BlobWriter>> writer =
            content_.NewWriter(layer.digest, layer.size);
        absl::Status s = writer.status();
        if (s.ok()) {
          s = client_.FetchBlob(endpoint, ref, layer, credentials, [&](std::string_view chunk) {
            RETURN_IF_ERROR((*writer)->Write(chunk));
            return pipe.Write(chunk);
          });
        }
        if (s.ok()) s = (*writer)->Commit();
        pipe.Close(s);
      });
      applied = snapshotter_.ApplyLayer(chain_ids[i], parent, pipe, diff_ids[i]);
      if (!applied.ok()) pipe.Abort(applied.status());
      download.join();
    }
    if (!applied.ok() && applied.status().code() == absl::StatusCode::kAlreadyExists) {
      continue;  // another pull unpacked the same layer meanwhile
    }
    if (!applied.ok()) {
      status = absl::Status(
          applied.status().code(),
          StrCat("layer ", i + 1, "/", n, " ", layer.digest, ": ", applied.status().message()));
    }
  }
  join_all();
  return status;
}

absl::StatusOr<std::string> ImageManager::Pull(const std::string& reference,
                                               const registry::Credentials& credentials) {
  ASSIGN_OR_RETURN(image::Reference ref, image::ParseReference(reference));
  absl::ReaderMutexLock gc_lock(&gc_mu_);

  // The top manifest: by digest when pinned, else by tag.
  std::string wanted = ref.digest.empty() ? ref.tag : ref.digest;
  ASSIGN_OR_RETURN(registry::FetchedManifest top, client_.FetchManifest(ref, wanted, credentials));
  registry::FetchedManifest platform_manifest = top;
  if (image::IsIndexMediaType(top.media_type)) {
    ASSIGN_OR_RETURN(image::Index index, image::ParseIndex(top.body));
    ASSIGN_OR_RETURN(image::Descriptor chosen, image::SelectPlatform(index, options_.platform));
    ASSIGN_OR_RETURN(platform_manifest,
                     client_.FetchManifestFrom(top.endpoint, ref, chosen.digest, credentials));
    if (image::IsIndexMediaType(platform_manifest.media_type)) {
      return absl::InvalidArgumentError(
          StrCat("pull ", ref.String(), ": nested index ", chosen.digest, " is not supported"));
    }
  } else if (!image::IsManifestMediaType(top.media_type)) {
    return absl::InvalidArgumentError(
        StrCat("pull ", ref.String(), ": unsupported manifest type \"", top.media_type, "\""));
  }
  ASSIGN_OR_RETURN(image::Manifest manifest, image::ParseManifest(platform_manifest.body));
  for (const image::Descriptor& layer : manifest.layers) {
    if (image::IsForeignLayerMediaType(layer.media_type)) {
      return absl::InvalidArgumentError(
          StrCat("pull ", ref.String(), ": foreign layer ", layer.digest, " is not supported"));
    }
    RETURN_IF_ERROR(image::ValidateLayerDescriptor(layer));
  }

  // The config names the uncompressed layers, which decide the chain IDs.
  if (manifest.config.size > kMaxConfigBytes) {
    return absl::InvalidArgumentError(StrCat("pull ", ref.String(), ": config ",
                                             manifest.config.digest, " is ", manifest.config.size,
                                             " bytes"));
  }
  RETURN_IF_ERROR(FetchToContent(ref, top.endpoint, credentials, manifest.config));
  ASSIGN_OR_RETURN(std::string config_json,
                   content_.ReadBlob(manifest.config.digest, kMaxConfigBytes));
  ASSIGN_OR_RETURN(image::ImageConfig config, image::ParseImageConfig(config_json));
  if (config.diff_ids.size() != manifest.layers.size()) {
    return absl::InvalidArgumentError(StrCat("pull ", ref.String(), ": config lists ",
                                             config.diff_ids.size(), " layers, manifest ",
                                             manifest.layers.size()));
  }
  std::vector<std::string> chain_ids = ChainIds(config.diff_ids);

  absl::Status unpacked =
      UnpackLayers(ref, top.endpoint, credentials, manifest, config.diff_ids, chain_ids);
  if (!unpacked.ok()) {
    return absl::Status(unpacked.code(), StrCat("pull ", ref.String(), ": ", unpacked.message()));
  }

  // Manifests go to the content store too: they are what the digest names.
  for (const registry::FetchedManifest* m : {&top, &platform_manifest}) {
    ASSIGN_OR_RETURN(std::unique_ptr<content::BlobWriter> writer,
                     content_.NewWriter(m->digest, static_cast<int64_t>(m->body.size())));
    RETURN_IF_ERROR(writer->Write(m->body));
    RETURN_IF_ERROR(writer->Commit());
  }

  ImageRecord record{.top = {.media_type = top.media_type,
                             .digest = top.digest,
                             .size = static_cast<int64_t>(top.body.size())},
                     .manifest = {.media_type = platform_manifest.media_type,
                                  .digest = platform_manifest.digest,
                                  .size = static_cast<int64_t>(platform_manifest.body.size())},
                     .parsed = manifest,
                     .chain_ids = chain_ids,
                     .names = {ref}};
  const std::string id = manifest.config.digest;
  RETURN_IF_ERROR(
      store_.Update([&](store::Transaction& tx) { return RecordImage(tx, record).status(); }));
  return id;
}

}  // namespace berth::images
