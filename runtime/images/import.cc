// ImageManager::Import: images from an OCI-layout or `docker save` tar.
//
// The first pass over the tar keeps the small top-level JSON documents
// (index.json, manifest.json, docker-save configs) in memory and writes
// every blobs/sha256/<hex> into the content store, verified against its
// name. A legacy `docker save` names its layers by path ("<id>/layer.tar");
// their digests (the config's diff IDs) are known only from manifest.json,
// which comes last, so a second pass stores those. Then every image is
// unpacked from the content store like a pull's prefetched layers, and all
// are recorded in one transaction.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <map>
#include <system_error>

#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/image/digest.h"
#include "runtime/images/image_manager.h"
#include "runtime/images/import_format.h"

namespace berth::images {
namespace {

constexpr int64_t kMaxManifestBytes = 4 << 20;
constexpr int64_t kMaxConfigBytes = 16 << 20;
// All top-level JSON documents together (manifest.json and the configs of a
// docker save): they are held in memory.
constexpr int64_t kMaxDocumentBytes = 64 << 20;
constexpr int kMaxLinkHops = 16;
constexpr size_t kReadChunk = 1 << 20;

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

absl::Status ErrnoStatus(int err, std::string_view what) {
  std::string message = StrCat(what, ": ", ErrnoText(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case ENOENT:
      return absl::NotFoundError(message);
    default:
      return absl::InternalError(message);
  }
}

// The same status with context in front of its message.
absl::Status Prefixed(const absl::Status& status, std::string_view prefix) {
  return absl::Status(status.code(), StrCat(prefix, ": ", status.message()));
}

enum class EntryType { kFile, kDir, kSymlink, kHardlink, kOther };

struct Entry {
  std::string path;  // clean
  EntryType type = EntryType::kOther;
  int64_t size = 0;
  std::string link;  // a symlink's or hard link's target, as an archive path
};

// Reads a tar (plain, gzip or zstd) entry by entry.
class TarReader {
 public:
  static absl::StatusOr<std::unique_ptr<TarReader>> Open(const std::string& path) {
    std::unique_ptr<TarReader> reader(new TarReader());
    archive* a = archive_read_new();
    if (a == nullptr) return absl::ResourceExhaustedError("archive_read_new failed");
    reader->archive_.reset(a);
    if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(a) != ARCHIVE_OK) {
      return absl::InternalError(StrCat("set up tar reading: ", Message(a)));
    }
    if (archive_read_open_filename(a, path.c_str(), kReadChunk) != ARCHIVE_OK) {
      // libarchive recognizes the format while opening.
      switch (archive_errno(a)) {
        case ENOENT:
          return absl::NotFoundError(StrCat("open ", path, ": ", Message(a)));
        case EACCES:
        case EPERM:
          return absl::PermissionDeniedError(StrCat("open ", path, ": ", Message(a)));
        case EIO:
          return absl::InternalError(StrCat("open ", path, ": ", Message(a)));
        default:
          return absl::InvalidArgumentError(StrCat("not a tar archive: ", Message(a)));
      }
    }
    return reader;
  }

  // The next entry; nullopt at the end of the archive.
  absl::StatusOr<std::optional<Entry>> Next() {
    archive* a = archive_.get();
    archive_entry* e = nullptr;
    int result = archive_read_next_header(a, &e);
    if (result == ARCHIVE_EOF) return std::nullopt;
    if (result < ARCHIVE_WARN) {
      if (entries_ == 0) {
        return absl::InvalidArgumentError(StrCat("not a tar archive: ", Message(a)));
      }
      return absl::DataLossError(
          StrCat("archive is corrupt or truncated after ", entries_, " entries: ", Message(a)));
    }
    ++entries_;
    const char* name = archive_entry_pathname(e);
    if (name == nullptr) name = archive_entry_pathname_utf8(e);
    if (name == nullptr) return absl::InvalidArgumentError("archive entry without a name");
    Entry entry;
    ASSIGN_OR_RETURN(entry.path, CleanArchivePath(name));
    if (const char* target = archive_entry_hardlink(e)) {
      entry.type = EntryType::kHardlink;
      ASSIGN_OR_RETURN(entry.link, CleanArchivePath(target));
      return entry;
    }
    switch (archive_entry_filetype(e)) {
      case AE_IFREG:
        entry.type = EntryType::kFile;
        entry.size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        break;
      case AE_IFDIR:
        entry.type = EntryType::kDir;
        break;
      case AE_IFLNK: {
        entry.type = EntryType::kSymlink;
        const char* target = archive_entry_symlink(e);
        if (target == nullptr) target = archive_entry_symlink_utf8(e);
        ASSIGN_OR_RETURN(entry.link, ResolveSymlinkTarget(entry.path, target ? target : ""));
        break;
      }
      default:
        entry.type = EntryType::kOther;
    }
    return entry;
  }

  // Streams the current entry's content to fn.
  absl::Status ReadData(const Entry& entry,
                        const std::function<absl::Status(std::string_view)>& fn) {
    buffer_.resize(kReadChunk);
    while (true) {
      la_ssize_t n = archive_read_data(archive_.get(), buffer_.data(), buffer_.size());
      if (n == 0) return absl::OkStatus();
      if (n < 0) {
        return absl::DataLossError(StrCat("read ", entry.path, ": ", Message(archive_.get())));
      }
      RETURN_IF_ERROR(fn(std::string_view(buffer_.data(), static_cast<size_t>(n))));
    }
  }

 private:
  struct Deleter {
    void operator()(archive* a) const { archive_read_free(a); }
  };
  TarReader() = default;
  static std::string Message(archive* a) {
    const char* message = archive_error_string(a);
    return message ? message : "unknown error";
  }

  std::unique_ptr<archive, Deleter> archive_;
  int64_t entries_ = 0;
  std::string buffer_;
};

// What the first pass learned about the archive.
struct ArchiveContents {
  std::map<std::string, int64_t> files;          // regular files: path -> size
  std::map<std::string, std::string> links;      // link path -> target path
  std::map<std::string, std::string> documents;  // top-level JSON files, read whole
  int64_t document_bytes = 0;

  bool Has(const std::string& path) const { return files.count(path) || links.count(path); }

  // The regular file `path` names, following links.
  absl::StatusOr<std::string> Resolve(const std::string& path) const {
    std::string current = path;
    for (int hop = 0; hop <= kMaxLinkHops; ++hop) {
      if (files.count(current)) return current;
      auto link = links.find(current);
      if (link == links.end()) {
        return absl::InvalidArgumentError(StrCat("\"", path, "\" is not a file in the archive"));
      }
      current = link->second;
    }
    return absl::InvalidArgumentError(StrCat("\"", path, "\": too many levels of links"));
  }
};

// Top-level files read into memory: the layout's and docker save's JSON.
bool IsDocument(const std::string& path) {
  if (path.find('/') != std::string::npos) return false;
  return path == "oci-layout" || (path.size() > 5 && path.substr(path.size() - 5) == ".json");
}

int64_t DocumentLimit(const std::string& path) {
  return path == "index.json" || path == "manifest.json" || path == "oci-layout" ? kMaxManifestBytes
                                                                                 : kMaxConfigBytes;
}

// Stores `data` as a blob (a docker-save config, a synthesized manifest).
absl::Status PutBlob(content::ContentStore& content, const std::string& digest,
                     std::string_view data) {
  if (content.Has(digest)) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::unique_ptr<content::BlobWriter> writer,
                   content.NewWriter(digest, static_cast<int64_t>(data.size())));
  RETURN_IF_ERROR(writer->Write(data));
  return writer->Commit();
}

// The blob is in the content store with the size its descriptor gives.
absl::Status CheckBlob(const content::ContentStore& content, const image::Descriptor& d) {
  absl::StatusOr<int64_t> size = content.Size(d.digest);
  if (absl::IsNotFound(size.status())) {
    return absl::InvalidArgumentError(StrCat("blob ", d.digest, " is not in the archive"));
  }
  RETURN_IF_ERROR(size.status());
  if (*size != d.size) {
    return absl::DataLossError(
        StrCat("blob ", d.digest, " is ", *size, " bytes, its descriptor says ", d.size));
  }
  return absl::OkStatus();
}

// A manifest or index blob, checked against its descriptor and size limit.
absl::StatusOr<std::string> ReadManifestBlob(const content::ContentStore& content,
                                             const image::Descriptor& d) {
  if (d.size > kMaxManifestBytes) {
    return absl::InvalidArgumentError(StrCat("manifest ", d.digest, " is ", d.size,
                                             " bytes, more than the ", kMaxManifestBytes,
                                             " allowed"));
  }
  RETURN_IF_ERROR(CheckBlob(content, d));
  return content.ReadBlob(d.digest, kMaxManifestBytes);
}

// The first bytes of a stored blob, to tell how it is compressed.
absl::StatusOr<std::string> BlobHead(const content::ContentStore& content,
                                     const std::string& digest) {
  std::string path = content.BlobPath(digest);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, StrCat("blob ", digest, ": open ", path));
  char head[4];
  ssize_t n = ::pread(fd, head, sizeof(head), 0);
  int err = errno;
  ::close(fd);
  if (n < 0) return ErrnoStatus(err, StrCat("blob ", digest, ": read ", path));
  return std::string(head, static_cast<size_t>(n));
}

}  // namespace

ImportSpool::~ImportSpool() {
  if (fd_ >= 0) ::close(fd_);
  ::unlink(path_.c_str());
  live_.fetch_sub(1);
}

absl::Status ImportSpool::Write(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(StrCat("import spool ", path_, ": closed"));
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, StrCat("import spool: write ", path_));
    }
    data.remove_prefix(static_cast<size_t>(n));
    size_ += n;
  }
  return absl::OkStatus();
}

absl::Status ImportSpool::Close() {
  if (fd_ < 0) return absl::OkStatus();
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return ErrnoStatus(errno, StrCat("import spool: close ", path_));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ImportSpool>> ImageManager::NewImportSpool() {
  // Shared, so that a collection running now finishes cleaning ingest/
  // before the spool exists, and later ones see it counted.
  absl::ReaderMutexLock gc_lock(&gc_mu_);
  std::string path = StrCat(content_.root(), "/ingest/import-XXXXXX");
  int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, StrCat("import: create spool file ", path));
  live_spools_.fetch_add(1);
  return std::unique_ptr<ImportSpool>(new ImportSpool(std::move(path), fd, live_spools_));
}

absl::Status ImageManager::UnpackFromContent(const image::Manifest& manifest,
                                             const std::vector<std::string>& diff_ids,
                                             const std::vector<std::string>& chain_ids) {
  const size_t n = manifest.layers.size();
  for (size_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(std::optional<snapshot::SnapshotInfo> existing,
                     snapshotter_.Stat(chain_ids[i]));
    if (existing.has_value()) continue;
    const image::Descriptor& layer = manifest.layers[i];
    snapshot::FileSource source(content_.BlobPath(layer.digest));
    absl::StatusOr<snapshot::Usage> applied =
        snapshotter_.ApplyLayer(chain_ids[i], i == 0 ? "" : chain_ids[i - 1], source, diff_ids[i]);
    if (!applied.ok() && applied.status().code() != absl::StatusCode::kAlreadyExists) {
      return Prefixed(applied.status(), StrCat("layer ", i + 1, "/", n, " ", layer.digest));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ImageManager::ImageRecord> ImageManager::ImportImage(
    const image::Descriptor& top, const image::Descriptor& manifest_desc,
    std::vector<image::Reference> names) {
  ASSIGN_OR_RETURN(std::string body, ReadManifestBlob(content_, manifest_desc));
  std::string media_type = image::DetectMediaType(body, manifest_desc.media_type);
  if (!image::IsManifestMediaType(media_type)) {
    return absl::InvalidArgumentError(
        StrCat("manifest ", manifest_desc.digest, ": unsupported type \"", media_type, "\""));
  }
  absl::StatusOr<image::Manifest> parsed = image::ParseManifest(body);
  if (!parsed.ok()) return Prefixed(parsed.status(), manifest_desc.digest);
  const image::Manifest& manifest = *parsed;
  for (const image::Descriptor& layer : manifest.layers) {
    if (image::IsForeignLayerMediaType(layer.media_type)) {
      return absl::InvalidArgumentError(
          StrCat("foreign layer ", layer.digest, " is not supported"));
    }
    RETURN_IF_ERROR(image::ValidateLayerDescriptor(layer));
  }

  // The config names the uncompressed layers, which decide the chain IDs.
  if (manifest.config.size > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        StrCat("config ", manifest.config.digest, " is ", manifest.config.size, " bytes"));
  }
  RETURN_IF_ERROR(CheckBlob(content_, manifest.config));
  ASSIGN_OR_RETURN(std::string config_json,
                   content_.ReadBlob(manifest.config.digest, kMaxConfigBytes));
  absl::StatusOr<image::ImageConfig> config = image::ParseImageConfig(config_json);
  if (!config.ok()) return Prefixed(config.status(), StrCat("config ", manifest.config.digest));
  if (config->diff_ids.size() != manifest.layers.size()) {
    return absl::InvalidArgumentError(StrCat("config ", manifest.config.digest, " lists ",
                                             config->diff_ids.size(), " layers, manifest ",
                                             manifest.layers.size()));
  }
  for (const image::Descriptor& layer : manifest.layers)
    RETURN_IF_ERROR(CheckBlob(content_, layer));
  std::vector<std::string> chain_ids = ChainIds(config->diff_ids);
  RETURN_IF_ERROR(UnpackFromContent(manifest, config->diff_ids, chain_ids));

  ImageRecord record{.top = top,
                     .manifest = manifest_desc,
                     .parsed = manifest,
                     .chain_ids = std::move(chain_ids),
                     .names = std::move(names)};
  record.manifest.media_type = media_type;
  if (record.top.digest == record.manifest.digest) record.top.media_type = media_type;
  return record;
}

absl::StatusOr<std::vector<ImportedImage>> ImageManager::Import(const std::string& tar_path,
                                                                const std::string& default_name) {
  std::optional<image::Reference> fallback;
  if (!default_name.empty()) {
    absl::StatusOr<image::Reference> ref = image::ParseReference(default_name);
    if (!ref.ok()) return Prefixed(ref.status(), "import: name");
    if (!ref->digest.empty()) {
      return absl::InvalidArgumentError(
          StrCat("import: name \"", default_name, "\" must not pin a digest"));
    }
    fallback = *ref;
  }
  absl::ReaderMutexLock gc_lock(&gc_mu_);
  absl::StatusOr<std::vector<ImportedImage>> imported = ImportLocked(tar_path, fallback);
  if (!imported.ok()) return Prefixed(imported.status(), "import");
  return imported;
}

absl::StatusOr<std::vector<ImportedImage>> ImageManager::ImportLocked(
    const std::string& tar_path, const std::optional<image::Reference>& default_name) {
  // Pass 1: documents into memory, blobs/ into the content store.
  ArchiveContents contents;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<TarReader> reader, TarReader::Open(tar_path));
    while (true) {
      ASSIGN_OR_RETURN(std::optional<Entry> entry, reader->Next());
      if (!entry.has_value()) break;
      const std::string& path = entry->path;
      if (entry->type == EntryType::kDir) continue;
      if (path.empty()) {
        return absl::InvalidArgumentError("archive entry \".\" is not a directory");
      }
      if (contents.Has(path)) {
        // A later tar entry silently replaces an earlier one: refuse, so what
        // is verified is what is used.
        return absl::InvalidArgumentError(StrCat("archive entry \"", path, "\" appears twice"));
      }
      if (entry->type == EntryType::kSymlink || entry->type == EntryType::kHardlink) {
        contents.links[path] = entry->link;
        continue;
      }
      if (entry->type == EntryType::kOther) {
        return absl::InvalidArgumentError(
            StrCat("archive entry \"", path, "\" is not a file, directory or link"));
      }
      contents.files[path] = entry->size;
      ASSIGN_OR_RETURN(std::optional<std::string> digest, BlobDigestOfPath(path));
      if (digest.has_value()) {
        if (content_.Has(*digest)) continue;  // verified when it was stored
        absl::Status stored = [&]() -> absl::Status {
          ASSIGN_OR_RETURN(std::unique_ptr<content::BlobWriter> writer,
                           content_.NewWriter(*digest, entry->size));
          RETURN_IF_ERROR(reader->ReadData(
              *entry, [&](std::string_view chunk) { return writer->Write(chunk); }));
          return writer->Commit();
        }();
        if (!stored.ok()) return Prefixed(stored, path);
        continue;
      }
      if (!IsDocument(path)) continue;  // legacy layers: pass 2, if needed
      const int64_t limit = DocumentLimit(path);
      if (entry->size > limit) {
        return absl::InvalidArgumentError(
            StrCat(path, " is ", entry->size, " bytes, more than the ", limit, " allowed"));
      }
      if (contents.document_bytes + entry->size > kMaxDocumentBytes) {
        return absl::InvalidArgumentError(StrCat("the archive's top-level JSON files exceed ",
                                                 kMaxDocumentBytes, " bytes together"));
      }
      std::string& document = contents.documents[path];
      RETURN_IF_ERROR(reader->ReadData(*entry, [&](std::string_view chunk) -> absl::Status {
        if (static_cast<int64_t>(document.size() + chunk.size()) > limit) {
          return absl::InvalidArgumentError(StrCat(path, " is longer than its header says"));
        }
        document.append(chunk);
        return absl::OkStatus();
      }));
      contents.document_bytes += static_cast<int64_t>(document.size());
    }
  }

  std::vector<ImageRecord> records;
  if (auto index_json = contents.documents.find("index.json");
      index_json != contents.documents.end()) {
    // An OCI image layout (Docker 25+ writes one beside its manifest.json).
    if (auto layout = contents.documents.find("oci-layout"); layout != contents.documents.end()) {
      nlohmann::json doc = nlohmann::json::parse(layout->second, nullptr, false);
      if (!doc.is_object() || doc.value("imageLayoutVersion", "") != "1.0.0") {
        return absl::InvalidArgumentError(
            "oci-layout: imageLayoutVersion is not \"1.0.0\", the only version supported");
      }
    }
    absl::StatusOr<image::Index> index = image::ParseIndex(index_json->second);
    if (!index.ok()) return Prefixed(index.status(), "index.json");
    if (index->manifests.empty()) return absl::InvalidArgumentError("index.json lists no images");
    for (size_t i = 0; i < index->manifests.size(); ++i) {
      const image::Descriptor& entry = index->manifests[i];
      const std::string what = StrCat("index.json entry ", i, " (", entry.digest, ")");
      absl::StatusOr<std::vector<image::Reference>> names =
          OciImageNames(entry.annotations, default_name);
      if (!names.ok()) return Prefixed(names.status(), what);
      absl::StatusOr<std::string> body = ReadManifestBlob(content_, entry);
      if (!body.ok()) return Prefixed(body.status(), what);
      image::Descriptor top = entry;
      top.media_type = image::DetectMediaType(*body, entry.media_type);
      image::Descriptor chosen = top;
      if (image::IsIndexMediaType(top.media_type)) {
        absl::StatusOr<image::Index> nested = image::ParseIndex(*body);
        if (!nested.ok()) return Prefixed(nested.status(), what);
        absl::StatusOr<image::Descriptor> selected =
            image::SelectPlatform(*nested, options_.platform);
        if (!selected.ok()) return Prefixed(selected.status(), what);
        chosen = *selected;
        if (image::IsIndexMediaType(chosen.media_type)) {
          return absl::InvalidArgumentError(
              StrCat(what, ": nested index ", chosen.digest, " is not supported"));
        }
      } else if (image::IsManifestMediaType(top.media_type)) {
        // A layout may list one manifest per platform; only ours is imported.
        if (entry.platform.has_value() &&
            !image::SelectPlatform(image::Index{.manifests = {entry}}, options_.platform).ok()) {
          continue;
        }
      } else {
        return absl::InvalidArgumentError(
            StrCat(what, ": unsupported media type \"", top.media_type, "\""));
      }
      absl::StatusOr<ImageRecord> record = ImportImage(top, chosen, *std::move(names));
      if (!record.ok()) return Prefixed(record.status(), what);
      records.push_back(*std::move(record));
    }
    if (records.empty()) {
      return absl::NotFoundError(
          StrCat("index.json lists no image for ", options_.platform.String()));
    }
  } else if (auto manifest_json = contents.documents.find("manifest.json");
             manifest_json != contents.documents.end()) {
    // A `docker save` archive.
    ASSIGN_OR_RETURN(std::vector<DockerSaveImage> saved,
                     ParseDockerSaveManifest(manifest_json->second));
    struct Planned {
      image::Descriptor config;
      std::vector<std::string> layer_digests;
    };
    std::vector<Planned> plans;
    std::map<std::string, std::string> pending;  // legacy layer file -> expected digest
    for (size_t i = 0; i < saved.size(); ++i) {
      const std::string what = StrCat("manifest.json[", i, "]");
      Planned plan;
      absl::StatusOr<std::string> config_path = contents.Resolve(saved[i].config);
      if (!config_path.ok()) return Prefixed(config_path.status(), StrCat(what, ".Config"));
      ASSIGN_OR_RETURN(std::optional<std::string> config_digest, BlobDigestOfPath(*config_path));
      std::string config_json;
      if (config_digest.has_value()) {
        absl::StatusOr<int64_t> size = content_.Size(*config_digest);
        if (!size.ok()) return Prefixed(size.status(), StrCat(what, ".Config"));
        if (*size > kMaxConfigBytes) {
          return absl::InvalidArgumentError(
              StrCat(what, ": config ", *config_digest, " is ", *size, " bytes"));
        }
        ASSIGN_OR_RETURN(config_json, content_.ReadBlob(*config_digest, kMaxConfigBytes));
      } else {
        auto document = contents.documents.find(*config_path);
        if (document == contents.documents.end()) {
          return absl::InvalidArgumentError(
              StrCat(what, ".Config \"", saved[i].config,
                     "\" is neither blobs/sha256/<hex> nor a top-level .json file"));
        }
        config_json = document->second;
        config_digest = image::Sha256Digest(config_json);
        // docker save names the config by its digest, the image id.
        std::string stem = config_path->substr(0, config_path->size() - 5);
        if (image::IsSha256Hex(stem) && StrCat("sha256:", stem) != *config_digest) {
          return absl::DataLossError(
              StrCat(what, ": ", *config_path, " has digest ", *config_digest));
        }
        RETURN_IF_ERROR(PutBlob(content_, *config_digest, config_json));
      }
      plan.config = {.media_type = std::string(image::kDockerConfig),
                     .digest = *config_digest,
                     .size = static_cast<int64_t>(config_json.size())};
      absl::StatusOr<image::ImageConfig> config = image::ParseImageConfig(config_json);
      if (!config.ok()) return Prefixed(config.status(), StrCat(what, ": config"));
      if (config->diff_ids.size() != saved[i].layers.size()) {
        return absl::InvalidArgumentError(StrCat(what, ": config lists ", config->diff_ids.size(),
                                                 " layers, Layers ", saved[i].layers.size()));
      }
      for (size_t j = 0; j < saved[i].layers.size(); ++j) {
        absl::StatusOr<std::string> path = contents.Resolve(saved[i].layers[j]);
        if (!path.ok()) return Prefixed(path.status(), StrCat(what, ".Layers[", j, "]"));
        ASSIGN_OR_RETURN(std::optional<std::string> digest, BlobDigestOfPath(*path));
        if (!digest.has_value()) {
          // An uncompressed layer.tar: its digest is its diff ID.
          digest = config->diff_ids[j];
          auto [it, added] = pending.emplace(*path, *digest);
          if (!added && it->second != *digest) {
            return absl::InvalidArgumentError(
                StrCat(what, ": ", *path, " is used as two different layers"));
          }
        }
        plan.layer_digests.push_back(*digest);
      }
      plans.push_back(std::move(plan));
    }

    // Pass 2: the legacy layer files, now that their digests are known.
    if (!pending.empty()) {
      ASSIGN_OR_RETURN(std::unique_ptr<TarReader> reader, TarReader::Open(tar_path));
      size_t left = pending.size();
      while (left > 0) {
        ASSIGN_OR_RETURN(std::optional<Entry> entry, reader->Next());
        if (!entry.has_value()) break;
        if (entry->type != EntryType::kFile) continue;
        auto wanted = pending.find(entry->path);
        if (wanted == pending.end()) continue;
        --left;
        if (content_.Has(wanted->second)) continue;
        absl::Status stored = [&]() -> absl::Status {
          ASSIGN_OR_RETURN(std::unique_ptr<content::BlobWriter> writer,
                           content_.NewWriter(wanted->second, entry->size));
          RETURN_IF_ERROR(reader->ReadData(
              *entry, [&](std::string_view chunk) { return writer->Write(chunk); }));
          return writer->Commit();
        }();
        if (!stored.ok()) {
          return Prefixed(stored,
                          StrCat(entry->path, " (a layer whose diff ID is ", wanted->second, ")"));
        }
      }
    }

    for (size_t i = 0; i < saved.size(); ++i) {
      const std::string what = StrCat("manifest.json[", i, "]");
      std::vector<image::Descriptor> layers;
      for (const std::string& digest : plans[i].layer_digests) {
        absl::StatusOr<int64_t> size = content_.Size(digest);
        if (absl::IsNotFound(size.status())) {
          return absl::InvalidArgumentError(
              StrCat(what, ": layer ", digest, " is not in the archive"));
        }
        RETURN_IF_ERROR(size.status());
        ASSIGN_OR_RETURN(std::string head, BlobHead(content_, digest));
        layers.push_back({.media_type = std::string(DockerSaveLayerMediaType(head)),
                          .digest = digest,
                          .size = *size});
      }
      // A manifest as a registry would serve it, so the image has a manifest
      // digest and repo digests like a pulled one.
      std::string manifest = DockerSchema2Manifest(plans[i].config, layers);
      image::Descriptor desc{.media_type = std::string(image::kDockerManifest),
                             .digest = image::Sha256Digest(manifest),
                             .size = static_cast<int64_t>(manifest.size())};
      RETURN_IF_ERROR(PutBlob(content_, desc.digest, manifest));
      absl::StatusOr<std::vector<image::Reference>> names =
          DockerSaveImageNames(saved[i].repo_tags, default_name);
      if (!names.ok()) return Prefixed(names.status(), what);
      absl::StatusOr<ImageRecord> record = ImportImage(desc, desc, *std::move(names));
      if (!record.ok()) return Prefixed(record.status(), what);
      records.push_back(*std::move(record));
    }
  } else {
    return absl::InvalidArgumentError(
        "the archive has neither index.json (an OCI image layout) nor manifest.json (a docker "
        "save)");
  }

  // All images or none: one transaction.
  std::vector<ImportedImage> imported;
  RETURN_IF_ERROR(store_.Update([&](store::Transaction& tx) -> absl::Status {
    imported.clear();
    for (const ImageRecord& record : records) {
      ASSIGN_OR_RETURN(ImportedImage image, RecordImage(tx, record));
      auto same = std::find_if(imported.begin(), imported.end(),
                               [&](const ImportedImage& i) { return i.id == image.id; });
      if (same == imported.end()) {
        imported.push_back(std::move(image));
        continue;
      }
      for (auto [to, from] : {std::pair{&same->repo_tags, &image.repo_tags},
                              std::pair{&same->repo_digests, &image.repo_digests}}) {
        for (std::string& name : *from) {
          if (std::find(to->begin(), to->end(), name) == to->end()) to->push_back(name);
        }
      }
    }
    return absl::OkStatus();
  }));
  return imported;
}

}  // namespace berth::images
