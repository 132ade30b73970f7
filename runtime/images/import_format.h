// The pure parts of image import (import.cc): paths inside an archive, the
// `docker save` manifest.json, the manifest synthesized for a docker-save
// image, and the names an imported image gets. No I/O here.
//
//   ASSIGN_OR_RETURN(std::string path, CleanArchivePath(archive_entry_pathname(entry)));
//   ASSIGN_OR_RETURN(std::optional<std::string> digest, BlobDigestOfPath(path));
//   ASSIGN_OR_RETURN(std::vector<DockerSaveImage> images, ParseDockerSaveManifest(json));
//   ASSIGN_OR_RETURN(std::vector<image::Reference> names,
//                    OciImageNames(index_entry.annotations, default_name));
//
// Archives are untrusted: every path is cleaned and checked before it is
// looked up, and a path that would leave the archive (absolute, "..") is
// InvalidArgument naming it. Nothing throws.
#ifndef BERTH_RUNTIME_IMAGES_IMPORT_FORMAT_H_
#define BERTH_RUNTIME_IMAGES_IMPORT_FORMAT_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/image/manifest.h"
#include "runtime/image/reference.h"

namespace berth::images {

// index.json annotations that name an image. containerd, BuildKit and
// Docker 25+ put the full reference in the first; the OCI spec's ref.name is
// usually just a tag.
inline constexpr std::string_view kAnnotationImageName = "io.containerd.image.name";
inline constexpr std::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";

// "./blobs//sha256/ab" -> "blobs/sha256/ab"; "." and "./" -> "" (the archive
// root, only valid for a directory entry). InvalidArgument for an absolute
// path, a ".." component or a NUL byte.
absl::StatusOr<std::string> CleanArchivePath(std::string_view path);

// The archive path a symlink at `link_path` (clean) with `target` names:
// resolved against the link's directory, as `docker save` writes
// "<id>/layer.tar -> ../<other id>/layer.tar". InvalidArgument for an
// absolute target or one that leaves the archive.
absl::StatusOr<std::string> ResolveSymlinkTarget(std::string_view link_path,
                                                 std::string_view target);

// "sha256:<hex>" for "blobs/sha256/<hex>"; nullopt for a path outside
// blobs/. Anything else under blobs/ (another algorithm, a malformed digest,
// deeper paths) is InvalidArgument: an OCI layout's blobs are named by their
// digest, and the name is what they are verified against.
absl::StatusOr<std::optional<std::string>> BlobDigestOfPath(std::string_view clean_path);

// One entry of a `docker save` manifest.json.
struct DockerSaveImage {
  std::string config;                  // clean archive path: "<hex>.json" or "blobs/sha256/<hex>"
  std::vector<std::string> repo_tags;  // as written, e.g. "busybox:1.36"; may be empty
  std::vector<std::string> layers;     // clean archive paths, base layer first
};

// Parses manifest.json: [{"Config": ..., "RepoTags": [...] or null,
// "Layers": [...]}, ...]. Unknown fields (Parent, LayerSources) are ignored.
// InvalidArgument naming the entry and field for anything malformed,
// including a path that leaves the archive, and for an empty list.
absl::StatusOr<std::vector<DockerSaveImage>> ParseDockerSaveManifest(std::string_view json);

// The Docker schema2 manifest berth records for a docker-save image, so it
// has a manifest digest and repo digests like a pulled one. Deterministic:
// the same image always gives the same bytes.
std::string DockerSchema2Manifest(const image::Descriptor& config,
                                  const std::vector<image::Descriptor>& layers);

// The layer media type for a docker-save layer blob, from its first bytes:
// uncompressed tar (what `docker save` writes), gzip or zstd.
std::string_view DockerSaveLayerMediaType(std::string_view head);

// The names of an OCI-layout index entry:
//   1. io.containerd.image.name, a full reference;
//   2. else org.opencontainers.image.ref.name: a full reference when it
//      holds '/', ':' or '@'; else a tag, put on default_name's repository;
//   3. else default_name itself.
// Empty when nothing names the image (it is then known by its id only).
// InvalidArgument for an annotation that is not a valid reference or tag.
absl::StatusOr<std::vector<image::Reference>> OciImageNames(
    const std::map<std::string, std::string>& annotations,
    const std::optional<image::Reference>& default_name);

// The names of a docker-save image: its RepoTags, else default_name.
absl::StatusOr<std::vector<image::Reference>> DockerSaveImageNames(
    const std::vector<std::string>& repo_tags, const std::optional<image::Reference>& default_name);

}  // namespace berth::images

#endif  // BERTH_RUNTIME_IMAGES_IMPORT_FORMAT_H_
