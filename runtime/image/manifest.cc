#include "runtime/image/manifest.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/image/digest.h"

namespace berth::image {
namespace {

using nlohmann::json;

// Errors name the document and the field path: "manifest: layers[1].size: ...".
template <typename... Args>
absl::Status Invalid(std::string_view where, const Args&... args) {
  return absl::InvalidArgumentError(StrCat(where, ": ", args...));
}

std::string Field(std::string_view where, std::string_view key) {
  return StrCat(where, where.find(':') == std::string_view::npos ? ": " : ".", key);
}

absl::Status WrongType(std::string_view where, std::string_view key, std::string_view want,
                       const json& got) {
  return absl::InvalidArgumentError(
      StrCat(Field(where, key), ": must be ", want, ", got ", got.type_name()));
}

constexpr std::string_view kSchema1Unsupported =
    "schema1 manifests are not supported (push the image again with a current Docker or "
    "BuildKit to get schema2 or OCI)";

absl::StatusOr<json> ParseObject(std::string_view body, std::string_view what) {
  // allow_exceptions=false: a hostile body must never throw through us.
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Invalid(what, "malformed JSON");
  if (!j.is_object()) return Invalid(what, "must be a JSON object, got ", j.type_name());
  return j;
}

// obj[key], or nullptr when it is absent or null (JSON writers disagree on
// which of the two an empty field is).
const json* Find(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status GetString(const json& obj, const char* key, std::string_view where, std::string& out) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return WrongType(where, key, "a string", *v);
  out = v->get<std::string>();
  return absl::OkStatus();
}

// A list of strings. With allow_single, a lone string is a one-element list,
// as Docker's strslice accepts for Entrypoint and Cmd.
absl::Status GetStringList(const json& obj, const char* key, std::string_view where,
                           std::vector<std::string>& out, bool allow_single = false) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (allow_single && v->is_string()) {
    out = {v->get<std::string>()};
    return absl::OkStatus();
  }
  if (!v->is_array()) return WrongType(where, key, "a list of strings", *v);
  out.clear();
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    if (!e.is_string()) return WrongType(where, StrCat(key, "[", i, "]"), "a string", e);
    out.push_back(e.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status GetStringMap(const json& obj, const char* key, std::string_view where,
                          std::map<std::string, std::string>& out) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_object()) return WrongType(where, key, "an object of strings", *v);
  out.clear();
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_string()) {
      return WrongType(where, StrCat(key, "[\"", it.key(), "\"]"), "a string", it.value());
    }
    out.emplace(it.key(), it.value().get<std::string>());
  }
  return absl::OkStatus();
}

// The keys of an object used as a set, like ExposedPorts {"80/tcp": {}}.
absl::Status GetObjectKeys(const json& obj, const char* key, std::string_view where,
                           std::vector<std::string>& out) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_object()) return WrongType(where, key, "an object", *v);
  out.clear();
  for (auto it = v->begin(); it != v->end(); ++it) out.push_back(it.key());
  std::sort(out.begin(), out.end());  // nlohmann's object is a std::map already; be explicit
  return absl::OkStatus();
}

// schemaVersion must be 2 when present; 1 is Docker schema1.
absl::Status CheckSchemaVersion(const json& obj, std::string_view what) {
  const json* v = Find(obj, "schemaVersion");
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number_integer()) return WrongType(what, "schemaVersion", "an integer", *v);
  int64_t version = v->get<int64_t>();
  if (version == 1) return Invalid(what, kSchema1Unsupported);
  if (version != 2) return Invalid(what, "unsupported schemaVersion ", version, " (want 2)");
  return absl::OkStatus();
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& j, std::string_view where) {
  if (!j.is_object()) return Invalid(where, "must be an object, got ", j.type_name());
  Descriptor d;
  RETURN_IF_ERROR(GetString(j, "mediaType", where, d.media_type));
  if (d.media_type.empty()) return Invalid(Field(where, "mediaType"), "missing");
  RETURN_IF_ERROR(GetString(j, "digest", where, d.digest));
  if (d.digest.empty()) return Invalid(Field(where, "digest"), "missing");
  if (absl::Status s = ValidateDigest(d.digest); !s.ok()) {
    return Invalid(Field(where, "digest"), s.message());
  }
  const json* size = Find(j, "size");
  if (size == nullptr) return Invalid(Field(where, "size"), "missing");
  if (!size->is_number_integer()) return WrongType(where, "size", "an integer", *size);
  if (size->is_number_unsigned() &&
      size->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Invalid(Field(where, "size"), "too large");
  }
  d.size = size->get<int64_t>();
  if (d.size < 0) return Invalid(Field(where, "size"), "negative (", d.size, ")");
  if (const json* p = Find(j, "platform"); p != nullptr) {
    if (!p->is_object()) return WrongType(where, "platform", "an object", *p);
    std::string pw = Field(where, "platform");
    Platform platform;
    RETURN_IF_ERROR(GetString(*p, "os", pw, platform.os));
    RETURN_IF_ERROR(GetString(*p, "architecture", pw, platform.architecture));
    RETURN_IF_ERROR(GetString(*p, "variant", pw, platform.variant));
    d.platform = std::move(platform);
  }
  RETURN_IF_ERROR(GetStringMap(j, "annotations", where, d.annotations));
  RETURN_IF_ERROR(GetStringList(j, "urls", where, d.urls));
  return d;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// containerd's platforms.Normalize, for the architectures images ship.
Platform Normalize(const Platform& in) {
  Platform p{Lower(in.os), Lower(in.architecture), Lower(in.variant)};
  if (p.architecture == "i386") {
    p.architecture = "386";
  } else if (p.architecture == "x86_64" || p.architecture == "x86-64") {
    p.architecture = "amd64";
  } else if (p.architecture == "aarch64") {
    p.architecture = "arm64";
  } else if (p.architecture == "armhf") {
    p.architecture = "arm";
    if (p.variant.empty()) p.variant = "v7";
  } else if (p.architecture == "armel") {
    p.architecture = "arm";
    if (p.variant.empty()) p.variant = "v6";
  }
  if (p.architecture == "amd64" && p.variant == "v1") p.variant.clear();
  if (p.architecture == "arm64" && (p.variant == "8" || p.variant == "v8")) p.variant.clear();
  if (p.architecture == "arm") {
    if (p.variant.empty()) p.variant = "v7";
    if (p.variant.size() == 1 && p.variant[0] >= '5' && p.variant[0] <= '8') {
      p.variant = StrCat("v", p.variant);
    }
  }
  return p;
}

// "v7" -> 7; "" -> 1 (the baseline of amd64); -1 when it is not vN.
int VariantLevel(std::string_view v) {
  if (v.empty()) return 1;
  if (v.size() != 2 || v[0] != 'v' || v[1] < '1' || v[1] > '9') return -1;
  return v[1] - '0';
}

constexpr int kNoMatch = -1;
constexpr int kWeakMatch = 100;    // same os/arch, entry names no variant
constexpr int kNoPlatform = 1000;  // entry names no platform at all

// Lower is better. Older arm and amd64 micro-architecture levels run on newer
// CPUs, so they match with a distance.
int MatchScore(const Platform& have, const Platform& want) {
  if (have.os != want.os || have.architecture != want.architecture) return kNoMatch;
  if (have.variant == want.variant) return 0;
  if (have.architecture == "arm" || have.architecture == "amd64") {
    int h = VariantLevel(have.variant);
    int w = VariantLevel(want.variant);
    if (h > 0 && w > 0 && h < w) return w - h;
    return kNoMatch;
  }
  if (have.variant.empty()) return kWeakMatch;
  return kNoMatch;
}

bool IsAttestation(const Descriptor& d) {
  auto it = d.annotations.find(std::string(kAnnotationReferenceType));
  if (it != d.annotations.end() && it->second == kAttestationManifest) return true;
  return d.platform && d.platform->os == "unknown" && d.platform->architecture == "unknown";
}

}  // namespace

std::string Platform::String() const {
  return variant.empty() ? StrCat(os, "/", architecture)
                         : StrCat(os, "/", architecture, "/", variant);
}

Platform DefaultPlatform() {
#if defined(__x86_64__)
  return {"linux", "amd64", ""};
#elif defined(__aarch64__)
  return {"linux", "arm64", ""};
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH == 6
  return {"linux", "arm", "v6"};
#elif defined(__arm__)
  return {"linux", "arm", "v7"};
#elif defined(__i386__)
  return {"linux", "386", ""};
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return {"linux", "ppc64le", ""};
#elif defined(__s390x__)
  return {"linux", "s390x", ""};
#elif defined(__riscv) && __riscv_xlen == 64
  return {"linux", "riscv64", ""};
#else
#error "berth: unknown architecture; add it to DefaultPlatform()"
#endif
}

bool IsIndexMediaType(std::string_view t) { return t == kOciIndex || t == kDockerManifestList; }

bool IsManifestMediaType(std::string_view t) { return t == kOciManifest || t == kDockerManifest; }

bool IsSchema1MediaType(std::string_view t) {
  return t == kDockerSchema1Manifest || t == kDockerSchema1SignedManifest;
}

bool IsForeignLayerMediaType(std::string_view t) {
  return t == kDockerForeignLayerGzip || t == kOciForeignLayer || t == kOciForeignLayerGzip ||
         t == kOciForeignLayerZstd;
}

bool IsLayerMediaType(std::string_view t) { return LayerCompression(t).ok(); }

absl::StatusOr<Compression> LayerCompression(std::string_view t) {
  if (t == kOciLayer || t == kOciForeignLayer || t == kDockerLayer) return Compression::kNone;
  if (t == kOciLayerGzip || t == kOciForeignLayerGzip || t == kDockerLayerGzip ||
      t == kDockerForeignLayerGzip) {
    return Compression::kGzip;
  }
  if (t == kOciLayerZstd || t == kOciForeignLayerZstd) return Compression::kZstd;
  return absl::InvalidArgumentError(StrCat("media type \"", t, "\" is not a layer type"));
}

std::string DetectMediaType(std::string_view body, std::string_view content_type) {
  std::string_view ct = content_type;
  if (size_t semi = ct.find(';'); semi != std::string_view::npos) ct = ct.substr(0, semi);
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t')) ct.remove_suffix(1);
  std::string header = Lower(ct);

  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    if (const json* mt = Find(j, "mediaType"); mt != nullptr && mt->is_string()) {
      std::string from_body = mt->get<std::string>();
      if (!from_body.empty()) return from_body;
    }
  }
  if (IsIndexMediaType(header) || IsManifestMediaType(header) || IsSchema1MediaType(header)) {
    return header;
  }
  if (j.is_object()) {
    if (const json* v = Find(j, "schemaVersion");
        v != nullptr && v->is_number_integer() && v->get<int64_t>() == 1) {
      return std::string(kDockerSchema1Manifest);
    }
    if (const json* m = Find(j, "manifests"); m != nullptr && m->is_array()) {
      return std::string(kOciIndex);
    }
    if (const json* l = Find(j, "layers"); l != nullptr && l->is_array()) {
      if (const json* c = Find(j, "config"); c != nullptr && c->is_object()) {
        if (const json* cmt = Find(*c, "mediaType");
            cmt != nullptr && cmt->is_string() && cmt->get<std::string>() == kDockerConfig) {
          return std::string(kDockerManifest);
        }
      }
      return std::string(kOciManifest);
    }
  }
  return std::string(content_type);
}

absl::StatusOr<Manifest> ParseManifest(std::string_view body) {
  constexpr std::string_view kWhat = "manifest";
  ASSIGN_OR_RETURN(json j, ParseObject(body, kWhat));
  RETURN_IF_ERROR(CheckSchemaVersion(j, kWhat));
  Manifest m;
  RETURN_IF_ERROR(GetString(j, "mediaType", kWhat, m.media_type));
  if (IsSchema1MediaType(m.media_type)) return Invalid(kWhat, kSchema1Unsupported);
  if (IsIndexMediaType(m.media_type)) {
    return Invalid(kWhat, "mediaType is ", m.media_type, ": an index, not a manifest");
  }
  if (!m.media_type.empty() && !IsManifestMediaType(m.media_type)) {
    return Invalid(kWhat, "unsupported mediaType \"", m.media_type, "\"");
  }
  if (m.media_type.empty()) m.media_type = std::string(kOciManifest);

  const json* config = Find(j, "config");
  if (config == nullptr) {
    if (Find(j, "manifests") != nullptr) return Invalid(kWhat, "has \"manifests\": it is an index");
    if (Find(j, "fsLayers") != nullptr) return Invalid(kWhat, kSchema1Unsupported);
    return Invalid(kWhat, "config is missing");
  }
  ASSIGN_OR_RETURN(m.config, ParseDescriptor(*config, "manifest: config"));
  const json* layers = Find(j, "layers");
  if (layers == nullptr) return Invalid(kWhat, "layers is missing");
  if (!layers->is_array()) return WrongType(kWhat, "layers", "a list", *layers);
  m.layers.reserve(layers->size());
  for (size_t i = 0; i < layers->size(); ++i) {
    ASSIGN_OR_RETURN(Descriptor d,
                     ParseDescriptor((*layers)[i], StrCat("manifest: layers[", i, "]")));
    m.layers.push_back(std::move(d));
  }
  return m;
}

absl::StatusOr<Index> ParseIndex(std::string_view body) {
  constexpr std::string_view kWhat = "index";
  ASSIGN_OR_RETURN(json j, ParseObject(body, kWhat));
  RETURN_IF_ERROR(CheckSchemaVersion(j, kWhat));
  Index index;
  RETURN_IF_ERROR(GetString(j, "mediaType", kWhat, index.media_type));
  if (IsSchema1MediaType(index.media_type)) return Invalid(kWhat, kSchema1Unsupported);
  if (IsManifestMediaType(index.media_type)) {
    return Invalid(kWhat, "mediaType is ", index.media_type, ": a manifest, not an index");
  }
  if (!index.media_type.empty() && !IsIndexMediaType(index.media_type)) {
    return Invalid(kWhat, "unsupported mediaType \"", index.media_type, "\"");
  }
  if (index.media_type.empty()) index.media_type = std::string(kOciIndex);

  const json* manifests = Find(j, "manifests");
  if (manifests == nullptr) {
    if (Find(j, "layers") != nullptr) return Invalid(kWhat, "has \"layers\": it is a manifest");
    return Invalid(kWhat, "manifests is missing");
  }
  if (!manifests->is_array()) return WrongType(kWhat, "manifests", "a list", *manifests);
  index.manifests.reserve(manifests->size());
  for (size_t i = 0; i < manifests->size(); ++i) {
    ASSIGN_OR_RETURN(Descriptor d,
                     ParseDescriptor((*manifests)[i], StrCat("index: manifests[", i, "]")));
    index.manifests.push_back(std::move(d));
  }
  return index;
}

absl::StatusOr<Descriptor> SelectPlatform(const Index& index, const Platform& want) {
  Platform w = Normalize(want);
  const Descriptor* best = nullptr;
  int best_score = kNoMatch;
  std::string available;
  for (const Descriptor& d : index.manifests) {
    if (IsAttestation(d)) continue;
    if (!IsManifestMediaType(d.media_type) && !IsIndexMediaType(d.media_type)) continue;
    int score = kNoPlatform;
    if (d.platform) {
      if (!available.empty()) available += ", ";
      available += d.platform->String();
      score = MatchScore(Normalize(*d.platform), w);
    }
    if (score == kNoMatch) continue;
    if (best == nullptr || score < best_score) {
      best = &d;
      best_score = score;
    }
  }
  if (best == nullptr) {
    return absl::NotFoundError(StrCat("index has no manifest for platform ", want.String(),
                                      " (available: ", available.empty() ? "none" : available,
                                      ")"));
  }
  return *best;
}

absl::StatusOr<ImageConfig> ParseImageConfig(std::string_view body) {
  constexpr std::string_view kWhat = "image config";
  ASSIGN_OR_RETURN(json j, ParseObject(body, kWhat));
  ImageConfig c;
  RETURN_IF_ERROR(GetString(j, "os", kWhat, c.os));
  RETURN_IF_ERROR(GetString(j, "architecture", kWhat, c.architecture));
  RETURN_IF_ERROR(GetString(j, "created", kWhat, c.created));
  if (const json* cfg = Find(j, "config"); cfg != nullptr) {
    if (!cfg->is_object()) return WrongType(kWhat, "config", "an object", *cfg);
    constexpr std::string_view kCfg = "image config: config";
    RETURN_IF_ERROR(GetString(*cfg, "User", kCfg, c.user));
    RETURN_IF_ERROR(GetStringList(*cfg, "Env", kCfg, c.env));
    RETURN_IF_ERROR(GetStringList(*cfg, "Entrypoint", kCfg, c.entrypoint, /*allow_single=*/true));
    RETURN_IF_ERROR(GetStringList(*cfg, "Cmd", kCfg, c.cmd, /*allow_single=*/true));
    RETURN_IF_ERROR(GetString(*cfg, "WorkingDir", kCfg, c.working_dir));
    RETURN_IF_ERROR(GetString(*cfg, "StopSignal", kCfg, c.stop_signal));
    RETURN_IF_ERROR(GetStringMap(*cfg, "Labels", kCfg, c.labels));
    RETURN_IF_ERROR(GetObjectKeys(*cfg, "ExposedPorts", kCfg, c.exposed_ports));
    RETURN_IF_ERROR(GetObjectKeys(*cfg, "Volumes", kCfg, c.volumes));
  }
  if (const json* rootfs = Find(j, "rootfs"); rootfs != nullptr) {
    if (!rootfs->is_object()) return WrongType(kWhat, "rootfs", "an object", *rootfs);
    constexpr std::string_view kRootfs = "image config: rootfs";
    std::string type;
    RETURN_IF_ERROR(GetString(*rootfs, "type", kRootfs, type));
    if (!type.empty() && type != "layers") {
      return Invalid(Field(kRootfs, "type"), "\"", type, "\" (want \"layers\")");
    }
    RETURN_IF_ERROR(GetStringList(*rootfs, "diff_ids", kRootfs, c.diff_ids));
    for (size_t i = 0; i < c.diff_ids.size(); ++i) {
      if (absl::Status s = ValidateDigest(c.diff_ids[i]); !s.ok()) {
        return Invalid(StrCat(kRootfs, ".diff_ids[", i, "]"), s.message());
      }
    }
  }
  return c;
}

absl::Status ValidateLayerDescriptor(const Descriptor& layer) {
  if (absl::Status s = ValidateDigest(layer.digest); !s.ok()) {
    return absl::InvalidArgumentError(StrCat("layer: ", s.message()));
  }
  auto invalid = [&](const auto&... args) {
    return absl::InvalidArgumentError(StrCat("layer ", layer.digest, ": ", args...));
  };
  if (layer.size < 0) return invalid("negative size ", layer.size);
  if (IsSchema1MediaType(layer.media_type)) return invalid(kSchema1Unsupported);
  if (!IsLayerMediaType(layer.media_type)) {
    return invalid("unsupported media type \"", layer.media_type, "\"");
  }
  return absl::OkStatus();
}

}  // namespace berth::image
