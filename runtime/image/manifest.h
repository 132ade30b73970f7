// OCI and Docker image manifests, indexes and configs: media types, parsing,
// and platform selection.
//
//   std::string type = DetectMediaType(body, response_content_type);
//   if (IsIndexMediaType(type)) {
//     ASSIGN_OR_RETURN(Index index, ParseIndex(body));
//     ASSIGN_OR_RETURN(Descriptor chosen, SelectPlatform(index, DefaultPlatform()));
//     ... fetch chosen.digest, then parse it as a manifest ...
//   }
//   ASSIGN_OR_RETURN(Manifest manifest, ParseManifest(body));
//   for (const Descriptor& layer : manifest.layers)
//   RETURN_IF_ERROR(ValidateLayerDescriptor(layer)); ASSIGN_OR_RETURN(ImageConfig config,
//   ParseImageConfig(config_body));
//
// Every parser takes untrusted registry bytes: malformed JSON, wrong types
// and bad digests come back as InvalidArgument naming the document and the
// field ("manifest: layers[1].digest: ..."); nothing throws. Callers add the
// object's name ("pull busybox: manifest sha256:...: ..."). Unknown fields
// are ignored, as the specs require. Docker schema1 manifests are refused.
#ifndef BERTH_RUNTIME_IMAGE_MANIFEST_H_
#define BERTH_RUNTIME_IMAGE_MANIFEST_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::image {

// OCI image-spec media types.
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
// Non-distributable ("foreign") OCI layers: deprecated in image-spec 1.1 but
// still found in old images; their content lives at the descriptor's urls.
inline constexpr std::string_view kOciForeignLayer =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
inline constexpr std::string_view kOciForeignLayerGzip =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr std::string_view kOciForeignLayerZstd =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

// Docker image manifest v2 schema 2 media types.
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
// Uncompressed Docker layers: not in the schema2 spec, but written by some
// tools and accepted by Docker and containerd.
inline constexpr std::string_view kDockerLayer = "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr std::string_view kDockerForeignLayerGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
// Docker schema 1: recognized only to be refused with a clear message.
inline constexpr std::string_view kDockerSchema1Manifest =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1SignedManifest =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

// What a registry client should Accept when fetching a manifest by tag, most
// preferred first. Schema1 is left out so registries convert or refuse.
inline constexpr std::array<std::string_view, 4> kAcceptedManifestTypes = {
    kOciIndex, kDockerManifestList, kOciManifest, kDockerManifest};

// BuildKit marks the provenance/SBOM manifests it adds to an index with this
// annotation (and platform unknown/unknown); they are not runnable images.
inline constexpr std::string_view kAnnotationReferenceType = "vnd.docker.reference.type";
inline constexpr std::string_view kAttestationManifest = "attestation-manifest";

struct Platform {
  std::string os;            // "linux"
  std::string architecture;  // "amd64", "arm64", "arm"
  std::string variant;       // "v7" for arm; usually empty otherwise

  // "linux/arm/v7", or "linux/amd64" when there is no variant.
  std::string String() const;

  bool operator==(const Platform&) const = default;
};

// The platform this binary was built for, e.g. linux/amd64 or linux/arm64.
Platform DefaultPlatform();

struct Descriptor {
  std::string media_type;
  std::string digest;  // validated: "sha256:<64 hex>"
  int64_t size = 0;    // validated: >= 0
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> urls;
};

struct Manifest {
  std::string media_type;  // the body's mediaType; kOciManifest when it has none
  Descriptor config;
  std::vector<Descriptor> layers;  // base layer first
};

struct Index {
  std::string media_type;  // the body's mediaType; kOciIndex when it has none
  std::vector<Descriptor> manifests;
};

// The parts of an image config a runtime uses. Absent and null fields are
// empty.
struct ImageConfig {
  std::string user;
  std::vector<std::string> env;  // "KEY=value"
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string working_dir;
  std::string stop_signal;
  std::map<std::string, std::string> labels;
  std::vector<std::string> exposed_ports;  // "80/tcp", sorted
  std::vector<std::string> volumes;        // "/data", sorted
  std::vector<std::string> diff_ids;       // uncompressed layer digests, base first
  std::string os;
  std::string architecture;
  std::string created;  // RFC 3339, as written by the image builder
};

enum class Compression { kNone, kGzip, kZstd };

// kOciIndex or kDockerManifestList.
bool IsIndexMediaType(std::string_view media_type);
// kOciManifest or kDockerManifest (schema1 is not a manifest berth can use).
bool IsManifestMediaType(std::string_view media_type);
bool IsSchema1MediaType(std::string_view media_type);
// Any OCI or Docker layer type above, foreign ones included.
bool IsLayerMediaType(std::string_view media_type);
// Layers whose content the registry may not serve: fetch them from urls.
bool IsForeignLayerMediaType(std::string_view media_type);
// How a layer of this media type is compressed; InvalidArgument when it is
// not a layer type.
absl::StatusOr<Compression> LayerCompression(std::string_view media_type);

// The media type of a manifest-like body. Registries and proxies sometimes
// send a wrong or empty Content-Type ("application/json", "text/plain"), so:
//   1. the body's own "mediaType" field, when it has one: it is covered by
//      the digest, the header is not;
//   2. else content_type (parameters such as "; charset=utf-8" dropped) when
//      it names an index, manifest or schema1 type;
//   3. else the body's shape: schemaVersion 1 -> schema1; "manifests" ->
//      index; "layers" -> manifest (Docker's when its config is a Docker
//      config);
//   4. else content_type as given, which callers then refuse.
std::string DetectMediaType(std::string_view body, std::string_view content_type);

// Image manifest (OCI or Docker schema2). Checks the structure and every
// descriptor's digest and size, not the layer media types (see
// ValidateLayerDescriptor). InvalidArgument "schema1 manifests are not
// supported" for schema1, and a hint when the body is an index.
absl::StatusOr<Manifest> ParseManifest(std::string_view body);

// Image index (OCI) or manifest list (Docker).
absl::StatusOr<Index> ParseIndex(std::string_view body);

// The index entry to run on `want`. Attestation entries (unknown/unknown or
// the BuildKit annotation) and entries that are neither manifests nor indexes
// are skipped. OS and architecture must match after normalizing aliases
// (x86_64 -> amd64, aarch64 -> arm64, arm64/v8 -> arm64, arm -> arm/v7). The
// exact variant wins; otherwise an older compatible one (arm/v6 runs on
// arm/v7, amd64 on amd64/v3), the nearest first; ties go to the earlier entry.
// An entry without a platform is taken only when nothing else matches.
// NotFound naming `want` and the platforms the index offers.
absl::StatusOr<Descriptor> SelectPlatform(const Index& index, const Platform& want);

// Image config (OCI or Docker). Entrypoint and Cmd may be a list, a single
// string (as Docker accepts) or null.
absl::StatusOr<ImageConfig> ParseImageConfig(std::string_view body);

// A layer berth can fetch and unpack: valid digest, size >= 0, known layer
// media type. InvalidArgument naming the layer's digest otherwise.
absl::Status ValidateLayerDescriptor(const Descriptor& layer);

}  // namespace berth::image

#endif  // BERTH_RUNTIME_IMAGE_MANIFEST_H_
