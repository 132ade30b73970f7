#include "runtime/images/import_format.h"

#include <set>

#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/image/digest.h"

namespace berth::images {
namespace {

using nlohmann::json;

// Joins clean components, dropping "." and empty ones and applying "..";
// InvalidArgument when ".." would climb above the archive root.
absl::StatusOr<std::string> JoinClean(std::string_view base, std::string_view path,
                                      std::string_view what) {
  std::vector<std::string> parts;
  for (std::string_view text : {base, path}) {
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('/', start);
      if (end == std::string_view::npos) end = text.size();
      std::string_view part = text.substr(start, end - start);
      start = end + 1;
      if (part.empty() || part == ".") continue;
      if (part == "..") {
        if (parts.empty()) {
          return absl::InvalidArgumentError(StrCat(what, " leaves the archive"));
        }
        parts.pop_back();
        continue;
      }
      parts.emplace_back(part);
    }
  }
  std::string out;
  for (const std::string& part : parts) {
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

absl::Status CheckRelative(std::string_view path, std::string_view what) {
  if (path.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat(what, " contains a NUL byte"));
  }
  if (!path.empty() && path.front() == '/') {
    return absl::InvalidArgumentError(StrCat(what, " is absolute"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> StringField(const json& entry, const char* key, std::string_view what) {
  auto it = entry.find(key);
  if (it == entry.end() || !it->is_string()) {
    return absl::InvalidArgumentError(StrCat(what, ".", key, " is missing or not a string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> StringList(const json& entry, const char* key,
                                                    std::string_view what) {
  std::vector<std::string> out;
  auto it = entry.find(key);
  if (it == entry.end() || it->is_null()) return out;
  if (!it->is_array()) {
    return absl::InvalidArgumentError(StrCat(what, ".", key, " is not a list"));
  }
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string()) {
      return absl::InvalidArgumentError(StrCat(what, ".", key, "[", i, "] is not a string"));
    }
    out.push_back((*it)[i].get<std::string>());
  }
  return out;
}

json DescriptorJson(const image::Descriptor& d) {
  return {{"mediaType", d.media_type}, {"size", d.size}, {"digest", d.digest}};
}

absl::StatusOr<image::Reference> ParseName(const std::string& text, std::string_view what) {
  absl::StatusOr<image::Reference> ref = image::ParseReference(text);
  if (!ref.ok()) {
    return absl::InvalidArgumentError(StrCat(what, " \"", text, "\": ", ref.status().message()));
  }
  return ref;
}

}  // namespace

absl::StatusOr<std::string> CleanArchivePath(std::string_view path) {
  const std::string what = StrCat("archive entry \"", path, "\"");
  RETURN_IF_ERROR(CheckRelative(path, what));
  return JoinClean("", path, what);
}

absl::StatusOr<std::string> ResolveSymlinkTarget(std::string_view link_path,
                                                 std::string_view target) {
  const std::string what = StrCat("symlink \"", link_path, "\" -> \"", target, "\"");
  RETURN_IF_ERROR(CheckRelative(target, what));
  size_t slash = link_path.rfind('/');
  std::string_view dir = slash == std::string_view::npos ? "" : link_path.substr(0, slash);
  ASSIGN_OR_RETURN(std::string resolved, JoinClean(dir, target, what));
  if (resolved.empty()) return absl::InvalidArgumentError(StrCat(what, " names the archive root"));
  return resolved;
}

absl::StatusOr<std::optional<std::string>> BlobDigestOfPath(std::string_view clean_path) {
  constexpr std::string_view kBlobs = "blobs/";
  if (clean_path.substr(0, kBlobs.size()) != kBlobs) return std::nullopt;
  std::string_view rest = clean_path.substr(kBlobs.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("archive entry \"", clean_path, "\": expected blobs/<algorithm>/<digest>"));
  }
  std::string_view algorithm = rest.substr(0, slash);
  std::string_view hex = rest.substr(slash + 1);
  if (algorithm != "sha256") {
    return absl::InvalidArgumentError(
        StrCat("archive entry \"", clean_path, "\": only sha256 ", "blobs are supported"));
  }
  if (!image::IsSha256Hex(hex)) {
    return absl::InvalidArgumentError(
        StrCat("archive entry \"", clean_path, "\": not named by a sha256 digest"));
  }
  return StrCat("sha256:", hex);
}

absl::StatusOr<std::vector<DockerSaveImage>> ParseDockerSaveManifest(std::string_view text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("manifest.json: not valid JSON");
  if (!doc.is_array()) return absl::InvalidArgumentError("manifest.json: not a list");
  if (doc.empty()) return absl::InvalidArgumentError("manifest.json: lists no images");
  std::vector<DockerSaveImage> images;
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string what = StrCat("manifest.json[", i, "]");
    const json& entry = doc[i];
    if (!entry.is_object()) return absl::InvalidArgumentError(StrCat(what, ": not an object"));
    DockerSaveImage image;
    ASSIGN_OR_RETURN(std::string config, StringField(entry, "Config", what));
    ASSIGN_OR_RETURN(image.config, CleanArchivePath(config));
    if (image.config.empty()) return absl::InvalidArgumentError(StrCat(what, ".Config is empty"));
    ASSIGN_OR_RETURN(image.repo_tags, StringList(entry, "RepoTags", what));
    if (entry.find("Layers") == entry.end()) {
      return absl::InvalidArgumentError(StrCat(what, ".Layers is missing"));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> layers, StringList(entry, "Layers", what));
    for (const std::string& layer : layers) {
      ASSIGN_OR_RETURN(std::string path, CleanArchivePath(layer));
      if (path.empty())
        return absl::InvalidArgumentError(StrCat(what, ".Layers has an empty path"));
      image.layers.push_back(std::move(path));
    }
    images.push_back(std::move(image));
  }
  return images;
}

std::string DockerSchema2Manifest(const image::Descriptor& config,
                                  const std::vector<image::Descriptor>& layers) {
  json layer_list = json::array();
  for (const image::Descriptor& layer : layers) layer_list.push_back(DescriptorJson(layer));
  // nlohmann's objects are ordered maps: the keys always come out sorted.
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", std::string(image::kDockerManifest)},
                   {"config", DescriptorJson(config)},
                   {"layers", std::move(layer_list)}};
  return manifest.dump();
}

std::string_view DockerSaveLayerMediaType(std::string_view head) {
  if (head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b) {
    return image::kDockerLayerGzip;
  }
  if (head.size() >= 4 && head.substr(0, 4) == std::string_view("\x28\xb5\x2f\xfd", 4)) {
    return image::kOciLayerZstd;
  }
  return image::kDockerLayer;
}

absl::StatusOr<std::vector<image::Reference>> OciImageNames(
    const std::map<std::string, std::string>& annotations,
    const std::optional<image::Reference>& default_name) {
  auto full = annotations.find(std::string(kAnnotationImageName));
  if (full != annotations.end() && !full->second.empty()) {
    ASSIGN_OR_RETURN(image::Reference ref, ParseName(full->second, kAnnotationImageName));
    return std::vector<image::Reference>{ref};
  }
  auto ref_name = annotations.find(std::string(kAnnotationRefName));
  if (ref_name != annotations.end() && !ref_name->second.empty()) {
    const std::string& text = ref_name->second;
    if (text.find_first_of("/:@") != std::string::npos) {
      ASSIGN_OR_RETURN(image::Reference ref, ParseName(text, kAnnotationRefName));
      return std::vector<image::Reference>{ref};
    }
    // Just a tag: it needs a repository to mean anything.
    if (!default_name.has_value()) return std::vector<image::Reference>{};
    ASSIGN_OR_RETURN(image::Reference ref,
                     ParseName(StrCat(default_name->Repository(), ":", text), kAnnotationRefName));
    return std::vector<image::Reference>{ref};
  }
  if (default_name.has_value()) return std::vector<image::Reference>{*default_name};
  return std::vector<image::Reference>{};
}

absl::StatusOr<std::vector<image::Reference>> DockerSaveImageNames(
    const std::vector<std::string>& repo_tags,
    const std::optional<image::Reference>& default_name) {
  std::vector<image::Reference> names;
  std::set<std::string> seen;
  for (const std::string& tag : repo_tags) {
    ASSIGN_OR_RETURN(image::Reference ref, ParseName(tag, "manifest.json RepoTags"));
    if (seen.insert(ref.String()).second) names.push_back(std::move(ref));
  }
  if (names.empty() && default_name.has_value()) names.push_back(*default_name);
  return names;
}

}  // namespace berth::images
