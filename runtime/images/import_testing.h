// Test-only archives for image import: `docker save` tars in the legacy
// format, and OCI layouts whose index.json and blobs the test chooses.
//
//   absl::StatusOr<SavedImage> saved = SaveableImage("berth-test/app", "v1",
//                                                    ImageConfig{.user = "1001"},
//                                                    {busybox_entries});
//   absl::StatusOr<std::string> tar = DockerSaveTar({*saved});
//
// Layers of a docker save are uncompressed tars whose sha256 is the layer's
// diff ID; a layer that two images share is written once and linked from the
// other image's directory, as `docker save` does.
#ifndef BERTH_RUNTIME_IMAGES_IMPORT_TESTING_H_
#define BERTH_RUNTIME_IMAGES_IMPORT_TESTING_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "e2e/fixtures/image_kit.h"
#include "nlohmann/json.hpp"

namespace berth::images::testing {

struct SavedImage {
  berth::testing::OciImage image;       // its config lists the diff IDs of layer_tars
  std::vector<std::string> layer_tars;  // uncompressed, base first
  std::vector<std::string> repo_tags;   // manifest.json RepoTags; "name:tag" by default
};

// An image whose layers are these tar entry lists, kept uncompressed for a
// docker save.
absl::StatusOr<SavedImage> SaveableImage(
    std::string name, std::string tag, const berth::testing::ImageConfig& config,
    const std::vector<std::vector<berth::testing::TarEntry>>& layers);

// The entries of a kit layer (gzip-compressed), to build a SaveableImage from.
absl::StatusOr<std::vector<berth::testing::TarEntry>> LayerEntries(
    const berth::testing::Layer& layer);

// A legacy `docker save` archive: manifest.json, <config hex>.json,
// <v1 id>/{VERSION,json,layer.tar} and repositories.
absl::StatusOr<std::string> DockerSaveTar(const std::vector<SavedImage>& images);

// A tar of the given files (path -> content), in path order, with the
// directories blobs/ and blobs/sha256/ first.
absl::StatusOr<std::string> FilesTar(const std::map<std::string, std::string>& files);

// The files of an OCI layout of `images` with index.json as given: every
// blob of every image under blobs/sha256/, plus oci-layout and index.json.
std::map<std::string, std::string> LayoutFiles(const std::vector<berth::testing::OciImage>& images,
                                               const std::string& index_json);

// A descriptor of blob for index.json or an index, with annotations and,
// when os is not empty, a platform.
nlohmann::json DescriptorJson(const berth::testing::Blob& blob,
                              const std::map<std::string, std::string>& annotations = {},
                              const std::string& os = "", const std::string& architecture = "");

}  // namespace berth::images::testing

#endif  // BERTH_RUNTIME_IMAGES_IMPORT_TESTING_H_
