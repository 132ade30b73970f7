// Image references ("busybox", "registry.k8s.io/pause:3.9", "repo@sha256:...")
// parsed and normalized the way Docker and containerd do it
// (github.com/distribution/reference, ParseNormalizedNamed).
//
//   ASSIGN_OR_RETURN(Reference ref, ParseReference("busybox"));
//   ref.domain        // "docker.io"
//   ref.path          // "library/busybox"
//   ref.tag           // "latest"
//   ref.Repository()  // "docker.io/library/busybox"
//   ref.String()      // "docker.io/library/busybox:latest"
//
//   if (IsImageId(text)) id = NormalizeImageId(text);   // "sha256:<hex>"
//
// Normalization: a first component that contains '.' or ':', is "localhost",
// or has an uppercase letter names a registry; otherwise the registry is
// docker.io. On docker.io a single-component path gets "library/", and
// "index.docker.io" becomes "docker.io". The tag "latest" is implied only
// when neither a tag nor a digest is given; both together are kept.
#ifndef BERTH_RUNTIME_IMAGE_REFERENCE_H_
#define BERTH_RUNTIME_IMAGE_REFERENCE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace berth::image {

inline constexpr std::string_view kDefaultDomain = "docker.io";
inline constexpr std::string_view kDefaultTag = "latest";

struct Reference {
  std::string domain;  // "docker.io", "registry.k8s.io", "127.0.0.1:5000", "localhost:5000"
  std::string path;    // "library/busybox"
  std::string tag;     // "3.9"; "" when the reference pins only a digest
  std::string digest;  // "sha256:<64 hex>" or ""

  // domain/path, e.g. "docker.io/library/busybox".
  std::string Repository() const;
  // The canonical form: Repository()[:tag][@digest].
  std::string String() const;

  bool operator==(const Reference&) const = default;
};

// Parses and normalizes text. InvalidArgument naming the input and the
// reason: empty or malformed name, uppercase repository, bad tag (must match
// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}), bad digest (only sha256 with 64
// lowercase hex), a bare 64-hex name (an image id, not a repository), or a
// normalized name longer than 255 characters.
absl::StatusOr<Reference> ParseReference(std::string_view text);

// True for image ids: "sha256:<64 lowercase hex>" or the bare 64 hex digits.
bool IsImageId(std::string_view text);

// "sha256:<hex>" for a bare 64-hex id; any other text is returned unchanged.
std::string NormalizeImageId(std::string_view text);

}  // namespace berth::image

#endif  // BERTH_RUNTIME_IMAGE_REFERENCE_H_
