#include "runtime/images/import_testing.h"

#include "runtime/base/strings.h"

namespace berth::images::testing {

using berth::testing::Blob;
using berth::testing::OciImage;
using berth::testing::TarEntry;

absl::StatusOr<SavedImage> SaveableImage(std::string name, std::string tag,
                                         const berth::testing::ImageConfig& config,
                                         const std::vector<std::vector<TarEntry>>& layers) {
  SavedImage saved;
  std::vector<berth::testing::Layer> kit_layers;
  for (const std::vector<TarEntry>& entries : layers) {
    absl::StatusOr<std::string> tar = berth::testing::WriteTar(entries);
    if (!tar.ok()) return tar.status();
    absl::StatusOr<berth::testing::Layer> layer = berth::testing::LayerFromTar(*tar);
    if (!layer.ok()) return layer.status();
    saved.layer_tars.push_back(*tar);
    kit_layers.push_back(*std::move(layer));
  }
  saved.repo_tags = {StrCat(name, ":", tag)};
  absl::StatusOr<OciImage> image =
      berth::testing::BuildImage(std::move(name), std::move(tag), config, std::move(kit_layers));
  if (!image.ok()) return image.status();
  saved.image = *std::move(image);
  return saved;
}

absl::StatusOr<std::vector<TarEntry>> LayerEntries(const berth::testing::Layer& layer) {
  return berth::testing::ReadTar(layer.blob.data);
}

absl::StatusOr<std::string> DockerSaveTar(const std::vector<SavedImage>& images) {
  std::vector<TarEntry> entries;
  nlohmann::json manifest = nlohmann::json::array();
  nlohmann::json repositories = nlohmann::json::object();
  std::map<std::string, std::string> written;  // diff ID -> path of its layer.tar
  for (const SavedImage& saved : images) {
    const OciImage& image = saved.image;
    std::string config_hex = image.config.digest.substr(7);
    entries.push_back(TarEntry::File(config_hex + ".json", image.config.data));
    nlohmann::json layers = nlohmann::json::array();
    for (size_t i = 0; i < saved.layer_tars.size(); ++i) {
      // Legacy v1 ids depend on the image, so a shared layer sits in two
      // directories, one of them a link.
      std::string v1_id = berth::testing::Sha256Digest(StrCat(image.config.digest, i)).substr(7);
      std::string path = v1_id + "/layer.tar";
      entries.push_back(TarEntry::Dir(v1_id));
      entries.push_back(TarEntry::File(v1_id + "/VERSION", "1.0"));
      entries.push_back(TarEntry::File(v1_id + "/json", R"({"id":")" + v1_id + R"("})"));
      const std::string& diff_id = image.layers[i].diff_id;
      if (auto first = written.find(diff_id); first != written.end()) {
        entries.push_back(TarEntry::Symlink(path, "../" + first->second));
      } else {
        entries.push_back(TarEntry::File(path, saved.layer_tars[i]));
        written[diff_id] = path;
      }
      layers.push_back(path);
    }
    manifest.push_back(
        {{"Config", config_hex + ".json"}, {"RepoTags", saved.repo_tags}, {"Layers", layers}});
    for (const std::string& tag : saved.repo_tags) {
      size_t colon = tag.rfind(':');
      repositories[tag.substr(0, colon)][tag.substr(colon + 1)] = config_hex;
    }
  }
  // docker save writes these last: an importer cannot know the layers'
  // digests before it has read the whole archive.
  entries.push_back(TarEntry::File("manifest.json", manifest.dump()));
  entries.push_back(TarEntry::File("repositories", repositories.dump()));
  return berth::testing::WriteTar(entries);
}

absl::StatusOr<std::string> FilesTar(const std::map<std::string, std::string>& files) {
  std::vector<TarEntry> entries = {TarEntry::Dir("blobs"), TarEntry::Dir("blobs/sha256")};
  for (const auto& [path, data] : files) entries.push_back(TarEntry::File(path, data));
  return berth::testing::WriteTar(entries);
}

std::map<std::string, std::string> LayoutFiles(const std::vector<OciImage>& images,
                                               const std::string& index_json) {
  std::map<std::string, std::string> files;
  auto add = [&](const Blob& blob) { files["blobs/sha256/" + blob.digest.substr(7)] = blob.data; };
  for (const OciImage& image : images) {
    add(image.manifest);
    add(image.config);
    for (const berth::testing::Layer& layer : image.layers) add(layer.blob);
  }
  files["oci-layout"] = R"({"imageLayoutVersion":"1.0.0"})";
  files["index.json"] = index_json;
  return files;
}

nlohmann::json DescriptorJson(const Blob& blob,
                              const std::map<std::string, std::string>& annotations,
                              const std::string& os, const std::string& architecture) {
  nlohmann::json d = {
      {"mediaType", blob.media_type}, {"digest", blob.digest}, {"size", blob.data.size()}};
  if (!annotations.empty()) d["annotations"] = annotations;
  if (!os.empty()) d["platform"] = {{"os", os}, {"architecture", architecture}};
  return d;
}

}  // namespace berth::images::testing
