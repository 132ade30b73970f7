// ImageManager: lookup, listing, removal and garbage collection. Pulling is
// in pull.cc.
#include "runtime/images/image_manager.h"

#include <algorithm>
#include <set>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/image/digest.h"
#include "runtime/image/reference.h"

namespace berth::images {

using store::Kind;

std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> chain;
  for (const std::string& diff_id : diff_ids) {
    chain.push_back(chain.empty() ? diff_id
                                  : image::Sha256Digest(StrCat(chain.back(), " ", diff_id)));
  }
  return chain;
}

absl::StatusOr<std::unique_ptr<ImageManager>> ImageManager::Create(
    store::Store& store, content::ContentStore& content, snapshot::Snapshotter& snapshotter,
    ImageManagerOptions options) {
  return std::unique_ptr<ImageManager>(
      new ImageManager(store, content, snapshotter, std::move(options)));
}

absl::StatusOr<ImportedImage> ImageManager::RecordImage(store::Transaction& tx,
                                                        const ImageRecord& record) {
  const image::Manifest& manifest = record.parsed;
  const std::string id = manifest.config.digest;
  int64_t size = manifest.config.size;
  for (const image::Descriptor& layer : manifest.layers) size += layer.size;
  nlohmann::json doc = {{"manifest_digest", record.manifest.digest},
                        {"top_digest", record.top.digest},
                        {"config_digest", manifest.config.digest},
                        {"chain_ids", record.chain_ids},
                        {"size", size}};
  RETURN_IF_ERROR(tx.Put(Kind::kImage, id, doc));
  auto blob = [&](const image::Descriptor& d) -> absl::Status {
    RETURN_IF_ERROR(
        tx.Put(Kind::kBlob, d.digest, {{"size", d.size}, {"media_type", d.media_type}}));
    return tx.AddRef(Kind::kImage, id, Kind::kBlob, d.digest);
  };
  RETURN_IF_ERROR(blob(record.top));
  RETURN_IF_ERROR(blob(record.manifest));
  RETURN_IF_ERROR(blob(manifest.config));
  for (const image::Descriptor& layer : manifest.layers) RETURN_IF_ERROR(blob(layer));
  if (!record.chain_ids.empty()) {
    RETURN_IF_ERROR(tx.AddRef(Kind::kImage, id, Kind::kSnapshot, record.chain_ids.back()));
  }
  // Names: a tag moves to this image; the digest name is added.
  ImportedImage recorded{.id = id};
  for (const image::Reference& ref : record.names) {
    std::string digest_name = StrCat(ref.Repository(), "@", record.top.digest);
    if (std::find(recorded.repo_digests.begin(), recorded.repo_digests.end(), digest_name) ==
        recorded.repo_digests.end()) {
      recorded.repo_digests.push_back(std::move(digest_name));
    }
    if (!ref.tag.empty()) recorded.repo_tags.push_back(StrCat(ref.Repository(), ":", ref.tag));
  }
  for (const auto* names : {&recorded.repo_digests, &recorded.repo_tags}) {
    for (const std::string& name : *names) {
      RETURN_IF_ERROR(tx.Delete(Kind::kImageName, name));
      RETURN_IF_ERROR(tx.Put(Kind::kImageName, name, {{"id", id}}));
      RETURN_IF_ERROR(tx.AddRef(Kind::kImageName, name, Kind::kImage, id));
    }
  }
  return recorded;
}

absl::StatusOr<std::optional<std::string>> ImageManager::ResolveId(const store::ReadTransaction& tx,
                                                                   const std::string& ref) {
  if (image::IsImageId(ref)) {
    std::string id = image::NormalizeImageId(ref);
    ASSIGN_OR_RETURN(std::optional<nlohmann::json> doc, tx.Get(Kind::kImage, id));
    if (doc.has_value()) return id;
    // A bare 64-hex string could still be meant as an id only; nothing else
    // can match it, since references refuse 64-hex repository names.
    return std::nullopt;
  }
  ASSIGN_OR_RETURN(image::Reference parsed, image::ParseReference(ref));
  // With both a tag and a digest the digest decides, as in containerd.
  std::string name = parsed.digest.empty() ? StrCat(parsed.Repository(), ":", parsed.tag)
                                           : StrCat(parsed.Repository(), "@", parsed.digest);
  ASSIGN_OR_RETURN(std::optional<nlohmann::json> doc, tx.Get(Kind::kImageName, name));
  if (!doc.has_value()) return std::nullopt;
  return doc->value("id", "");
}

absl::StatusOr<std::optional<Image>> ImageManager::Load(const store::ReadTransaction& tx,
                                                        const std::string& id) {
  ASSIGN_OR_RETURN(std::optional<nlohmann::json> doc, tx.Get(Kind::kImage, id));
  if (!doc.has_value()) return std::nullopt;
  Image image;
  image.id = id;
  image.size = doc->value("size", int64_t{0});
  image.manifest_digest = doc->value("manifest_digest", "");
  image.chain_ids = doc->value("chain_ids", std::vector<std::string>{});
  std::string config_digest = doc->value("config_digest", "");
  ASSIGN_OR_RETURN(std::vector<store::Ref> names, tx.RefsTo(Kind::kImage, id));
  for (const store::Ref& name : names) {
    if (name.kind != Kind::kImageName) continue;
    (name.id.find('@') != std::string::npos ? image.repo_digests : image.repo_tags)
        .push_back(name.id);
  }
  std::sort(image.repo_tags.begin(), image.repo_tags.end());
  std::sort(image.repo_digests.begin(), image.repo_digests.end());
  absl::StatusOr<std::string> config = content_.ReadBlob(config_digest, 16 << 20);
  if (!config.ok()) {
    return absl::DataLossError(StrCat("image ", id, ": config blob ", config_digest,
                                      " is unreadable: ", config.status().message()));
  }
  image.config_json = *config;
  ASSIGN_OR_RETURN(image.config, image::ParseImageConfig(*config));
  return image;
}

absl::StatusOr<std::optional<Image>> ImageManager::Find(const std::string& ref) {
  std::optional<Image> found;
  RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(tx, ref));
    if (!id.has_value()) return absl::OkStatus();
    ASSIGN_OR_RETURN(found, Load(tx, *id));
    return absl::OkStatus();
  }));
  return found;
}

absl::StatusOr<std::vector<Image>> ImageManager::List(const std::string& ref) {
  std::vector<Image> images;
  RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    std::vector<std::string> ids;
    if (!ref.empty()) {
      ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(tx, ref));
      if (id.has_value()) ids.push_back(*id);
    } else {
      ASSIGN_OR_RETURN(std::vector<store::Record> records, tx.List(Kind::kImage));
      for (const store::Record& r : records) ids.push_back(r.id);
    }
    for (const std::string& id : ids) {
      ASSIGN_OR_RETURN(std::optional<Image> image, Load(tx, id));
      if (image.has_value()) images.push_back(*std::move(image));
    }
    return absl::OkStatus();
  }));
  return images;
}

absl::Status ImageManager::Remove(const std::string& ref) {
  return store_.Update([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<std::string> id, ResolveId(tx, ref));
    if (!id.has_value()) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::vector<store::Ref> names, tx.RefsTo(Kind::kImage, *id));
    std::vector<std::string> tags;
    for (const store::Ref& name : names) {
      if (name.kind == Kind::kImageName && name.id.find('@') == std::string::npos) {
        tags.push_back(name.id);
      }
    }
    if (!image::IsImageId(ref) && tags.size() > 1) {
      // One of several tags: untag only.
      ASSIGN_OR_RETURN(image::Reference parsed, image::ParseReference(ref));
      if (parsed.digest.empty()) {
        return tx.Delete(Kind::kImageName, StrCat(parsed.Repository(), ":", parsed.tag));
      }
    }
    for (const store::Ref& name : names) {
      if (name.kind == Kind::kImageName) RETURN_IF_ERROR(tx.Delete(Kind::kImageName, name.id));
    }
    // Anything else still referring to the image (a container, later) keeps
    // the store from deleting it: that is FailedPrecondition, and correct.
    return tx.Delete(Kind::kImage, *id);
  });
}

absl::Status ImageManager::CollectGarbage() {
  absl::MutexLock lock(&gc_mu_);
  // Blobs: recorded ones nobody refers to, then files with no record.
  std::vector<std::string> free_blobs;
  std::set<std::string> recorded;
  RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<store::Record> blobs, tx.List(Kind::kBlob));
    for (const store::Record& blob : blobs) {
      recorded.insert(blob.id);
      ASSIGN_OR_RETURN(std::vector<store::Ref> users, tx.RefsTo(Kind::kBlob, blob.id));
      if (users.empty()) free_blobs.push_back(blob.id);
    }
    return absl::OkStatus();
  }));
  for (const std::string& digest : free_blobs) {
    RETURN_IF_ERROR(store_.Update([&](store::Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(std::vector<store::Ref> users, tx.RefsTo(Kind::kBlob, digest));
      if (!users.empty()) return absl::OkStatus();  // taken again meanwhile
      return tx.Delete(Kind::kBlob, digest);
    }));
    RETURN_IF_ERROR(content_.Delete(digest));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> files, content_.List());
  for (const std::string& digest : files) {
    if (!recorded.count(digest)) RETURN_IF_ERROR(content_.Delete(digest));
  }
  // An import spool is received outside any lock, so a spool in ingest/
  // may be in use; the leftovers of a crash go at the next start.
  if (live_spools_.load() == 0) RETURN_IF_ERROR(content_.CleanIngest());

  // Committed snapshots nothing refers to; removing a child may free its
  // parent, so repeat until a pass removes nothing.
  for (bool removed = true; removed;) {
    removed = false;
    ASSIGN_OR_RETURN(std::vector<snapshot::SnapshotInfo> snapshots, snapshotter_.List());
    for (const snapshot::SnapshotInfo& info : snapshots) {
      if (info.kind != snapshot::SnapshotKind::kCommitted) continue;
      bool used = false;
      RETURN_IF_ERROR(store_.View([&](const store::ReadTransaction& tx) -> absl::Status {
        ASSIGN_OR_RETURN(std::vector<store::Ref> users, tx.RefsTo(Kind::kSnapshot, info.key));
        used = !users.empty();
        return absl::OkStatus();
      }));
      if (used) continue;
      RETURN_IF_ERROR(snapshotter_.Remove(info.key));
      removed = true;
    }
  }
  return snapshotter_.Cleanup();
}

}  // namespace berth::images
