#include "runtime/snapshot/overlay_snapshotter.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"
#include "runtime/snapshot/fs_util.h"

namespace berth::snapshot {
namespace {

using store::Kind;
using store::ReadTransaction;
using store::Transaction;

// Deeper parent chains mean a corrupt store (a cycle); real images stay far below the
// ~120 layers an overlay mount can take anyway.
constexpr int kMaxChainLength = 500;

constexpr std::string_view kTempPrefix = "tmp-";

// A snapshot as its store record describes it.
struct Record {
  int64_t id = 0;
  std::string parent;
  SnapshotKind kind = SnapshotKind::kCommitted;
  std::optional<Usage> usage;
};

std::string_view KindName(SnapshotKind kind) {
  return kind == SnapshotKind::kCommitted ? "committed" : "active";
}

nlohmann::json ToJson(const Record& record) {
  nlohmann::json doc = {
      {"id", record.id}, {"parent", record.parent}, {"kind", std::string(KindName(record.kind))}};
  if (record.usage) {
    doc["usage"] = {{"bytes", record.usage->bytes}, {"inodes", record.usage->inodes}};
  }
  return doc;
}

absl::StatusOr<Record> FromJson(const std::string& key, const nlohmann::json& doc) {
  auto corrupt = [&](std::string_view why) {
    return absl::DataLossError(StrCat("snapshot ", key, ": store record ", why));
  };
  if (!doc.is_object()) return corrupt("is not an object");
  Record record;
  auto id = doc.find("id");
  if (id == doc.end() || !id->is_number_integer() || id->get<int64_t>() <= 0) {
    return corrupt("has no valid id");
  }
  record.id = id->get<int64_t>();
  auto parent = doc.find("parent");
  if (parent == doc.end() || !parent->is_string()) return corrupt("has no parent field");
  record.parent = parent->get<std::string>();
  auto kind = doc.find("kind");
  if (kind == doc.end() || !kind->is_string()) return corrupt("has no kind");
  if (*kind == "committed") {
    record.kind = SnapshotKind::kCommitted;
  } else if (*kind == "active") {
    record.kind = SnapshotKind::kActive;
  } else {
    return corrupt(StrCat("has unknown kind ", kind->dump()));
  }
  if (auto usage = doc.find("usage"); usage != doc.end()) {
    auto bytes = usage->find("bytes");
    auto inodes = usage->find("inodes");
    if (!usage->is_object() || bytes == usage->end() || inodes == usage->end() ||
        !bytes->is_number_integer() || !inodes->is_number_integer()) {
      return corrupt("has a malformed usage");
    }
    record.usage = Usage{.bytes = bytes->get<int64_t>(), .inodes = inodes->get<int64_t>()};
  }
  return record;
}

absl::StatusOr<std::optional<Record>> ReadRecord(const ReadTransaction& tx,
                                                 const std::string& key) {
  ASSIGN_OR_RETURN(std::optional<nlohmann::json> doc, tx.Get(Kind::kSnapshot, key));
  if (!doc) return std::nullopt;
  ASSIGN_OR_RETURN(Record record, FromJson(key, *doc));
  return record;
}

absl::Status NotFound(const std::string& key) {
  return absl::NotFoundError(StrCat("snapshot ", key, " not found"));
}

// OK when `parent` can carry a new snapshot `key`: "" or a committed snapshot.
absl::Status CheckParent(const ReadTransaction& tx, const std::string& key,
                         const std::string& parent) {
  if (parent.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::optional<Record> record, ReadRecord(tx, parent));
  if (!record) {
    return absl::NotFoundError(StrCat("parent snapshot ", parent, " of ", key, " not found"));
  }
  if (record->kind != SnapshotKind::kCommitted) {
    return absl::FailedPreconditionError(StrCat("parent snapshot ", parent, " of ", key,
                                                " is active; only committed snapshots can be "
                                                "parents"));
  }
  return absl::OkStatus();
}

// The ids of `record`'s ancestors, nearest first.
absl::StatusOr<std::vector<int64_t>> AncestorIds(const ReadTransaction& tx, const std::string& key,
                                                 const Record& record) {
  std::vector<int64_t> ids;
  std::string parent = record.parent;
  while (!parent.empty()) {
    if (ids.size() >= kMaxChainLength) {
      return absl::DataLossError(
          StrCat("snapshot ", key, ": parent chain longer than ", kMaxChainLength, " (a cycle?)"));
    }
    ASSIGN_OR_RETURN(std::optional<Record> ancestor, ReadRecord(tx, parent));
    if (!ancestor) {
      return absl::DataLossError(
          StrCat("snapshot ", key, ": ancestor ", parent, " has no store record"));
    }
    ids.push_back(ancestor->id);
    parent = ancestor->parent;
  }
  return ids;
}

// The id a directory name under snapshots/ stands for, if it is one.
std::optional<int64_t> ParseId(std::string_view name) {
  int64_t id = 0;
  auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (error != std::errc() || end != name.data() + name.size() || id <= 0) return std::nullopt;
  if (name.front() == '0') return std::nullopt;  // "007" is not how we name things
  return id;
}

absl::Status MakeDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0) return ErrnoStatus(errno, StrCat("mkdir ", path));
  // Explicit: berthd's umask must not shape a container's root directory.
  if (chmod(path.c_str(), mode) != 0) return ErrnoStatus(errno, StrCat("chmod ", path));
  return absl::OkStatus();
}

absl::Status Prefixed(std::string_view prefix, const absl::Status& status) {
  return absl::Status(status.code(), StrCat(prefix, ": ", status.message()));
}

std::string Basename(const std::string& path) { return path.substr(path.rfind('/') + 1); }

}  // namespace

absl::StatusOr<SnapshotterPtr> OverlaySnapshotter::Create(std::string root_dir,
                                                          store::Store& store) {
  if (root_dir.empty()) return absl::InvalidArgumentError("overlay snapshotter: empty root dir");
  std::error_code error;
  std::filesystem::path root = std::filesystem::absolute(root_dir, error).lexically_normal();
  if (error) {
    return absl::InternalError(StrCat("overlay snapshotter: ", root_dir, ": ", error.message()));
  }
  std::string snapshots_dir = (root / "snapshots").string();
  if (snapshots_dir.find_first_of(":,") != std::string::npos) {
    return absl::InvalidArgumentError(StrCat("overlay snapshotter: ", snapshots_dir,
                                             " contains ':' or ',', which overlay mount options "
                                             "cannot carry"));
  }
  std::filesystem::create_directories(snapshots_dir, error);
  if (error) {
    return absl::InternalError(
        StrCat("overlay snapshotter: create ", snapshots_dir, ": ", error.message()));
  }
  // Layers hold setuid binaries and secrets baked into images: only root may look.
  if (chmod(snapshots_dir.c_str(), 0700) != 0) {
    return ErrnoStatus(errno, StrCat("overlay snapshotter: chmod ", snapshots_dir));
  }

  // New ids continue after every id in use, recorded or left on disk by a crash.
  int64_t max_id = 0;
  RETURN_IF_ERROR(store.View([&](const ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<store::Record> records, tx.List(Kind::kSnapshot));
    for (const store::Record& r : records) {
      ASSIGN_OR_RETURN(Record record, FromJson(r.id, r.doc));
      max_id = std::max(max_id, record.id);
    }
    return absl::OkStatus();
  }));
  for (const auto& entry : std::filesystem::directory_iterator(snapshots_dir, error)) {
    if (std::optional<int64_t> id = ParseId(entry.path().filename().string())) {
      max_id = std::max(max_id, *id);
    }
  }
  if (error) {
    return absl::InternalError(
        StrCat("overlay snapshotter: list ", snapshots_dir, ": ", error.message()));
  }
  return SnapshotterPtr(new OverlaySnapshotter(std::move(snapshots_dir), store, max_id + 1));
}

OverlaySnapshotter::OverlaySnapshotter(std::string snapshots_dir, store::Store& store,
                                       int64_t next_id)
    : snapshots_dir_(std::move(snapshots_dir)), store_(store), next_id_(next_id) {}

std::string OverlaySnapshotter::Dir(int64_t id) const { return StrCat(snapshots_dir_, "/", id); }

absl::StatusOr<std::optional<SnapshotInfo>> OverlaySnapshotter::Stat(const std::string& key) {
  std::optional<SnapshotInfo> info;
  RETURN_IF_ERROR(store_.View([&](const ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<Record> record, ReadRecord(tx, key));
    if (record) info = SnapshotInfo{.key = key, .parent = record->parent, .kind = record->kind};
    return absl::OkStatus();
  }));
  return info;
}

absl::StatusOr<Usage> OverlaySnapshotter::ApplyLayer(const std::string& key,
                                                     const std::string& parent, ByteSource& layer,
                                                     const std::string& expected_diff_id) {
  if (key.empty()) return absl::InvalidArgumentError("apply layer: empty snapshot key");
  const std::string what = StrCat("apply layer ", key);
  {
    absl::MutexLock lock(&mu_);
    while (applying_.contains(key)) applied_.Wait(&mu_);
    applying_.insert(key);
  }
  absl::Cleanup done = [&] {
    absl::MutexLock lock(&mu_);
    applying_.erase(key);
    applied_.SignalAll();
  };

  // Before reading a byte: the layer may already be there (a concurrent pull finished
  // it while we waited) or have nowhere to go.
  RETURN_IF_ERROR(store_.View([&](const ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<Record> existing, ReadRecord(tx, key));
    if (existing) return absl::AlreadyExistsError(StrCat("snapshot ", key, " already exists"));
    return CheckParent(tx, key, parent);
  }));

  ASSIGN_OR_RETURN(std::string temp, MakeTempDir(what));
  absl::Cleanup drop_temp = [&] {
    (void)RemoveAll(temp);
    Forget(Basename(temp));
  };
  RETURN_IF_ERROR(MakeDir(temp + "/fs", 0755));
  absl::StatusOr<UnpackResult> unpacked = UnpackLayer(layer, temp + "/fs");
  if (!unpacked.ok()) return Prefixed(what, unpacked.status());
  if (unpacked->diff_id != expected_diff_id) {
    return absl::DataLossError(
        StrCat(what, ": layer has diff_id ", unpacked->diff_id, ", expected ", expected_diff_id));
  }
  absl::StatusOr<DiskUsage> measured = MeasureTree(temp);
  if (!measured.ok()) return Prefixed(what, measured.status());
  Usage usage{.bytes = measured->bytes, .inodes = measured->inodes};
  RETURN_IF_ERROR(Commit(key, parent, SnapshotKind::kCommitted, temp, usage));
  return usage;
}

absl::StatusOr<std::vector<Mount>> OverlaySnapshotter::Prepare(const std::string& key,
                                                               const std::string& parent) {
  if (key.empty()) return absl::InvalidArgumentError("prepare snapshot: empty key");
  const std::string what = StrCat("prepare snapshot ", key);
  RETURN_IF_ERROR(store_.View([&](const ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<Record> existing, ReadRecord(tx, key));
    if (existing) return absl::AlreadyExistsError(StrCat("snapshot ", key, " already exists"));
    return CheckParent(tx, key, parent);
  }));
  ASSIGN_OR_RETURN(std::string temp, MakeTempDir(what));
  absl::Cleanup drop_temp = [&] {
    (void)RemoveAll(temp);
    Forget(Basename(temp));
  };
  RETURN_IF_ERROR(MakeDir(temp + "/fs", 0755));
  RETURN_IF_ERROR(MakeDir(temp + "/work", 0700));
  RETURN_IF_ERROR(Commit(key, parent, SnapshotKind::kActive, temp, std::nullopt));
  return Mounts(key);
}

absl::StatusOr<std::vector<Mount>> OverlaySnapshotter::Mounts(const std::string& key) {
  Record record;
  std::vector<int64_t> ancestors;
  RETURN_IF_ERROR(store_.View([&](const ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<Record> found, ReadRecord(tx, key));
    if (!found) return NotFound(key);
    record = *std::move(found);
    ASSIGN_OR_RETURN(ancestors, AncestorIds(tx, key, record));
    return absl::OkStatus();
  }));
  auto lowerdir = [&](const std::vector<int64_t>& ids) {
    std::string option = "lowerdir=";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) option.push_back(':');
      option += Dir(ids[i]) + "/fs";
    }
    return option;
  };
  const std::string fs = Dir(record.id) + "/fs";
  // index=off: with the index on, overlayfs records the upper and lower directories it
  // was first mounted with and refuses a later mount whose layers moved or changed.
  if (record.kind == SnapshotKind::kActive) {
    if (ancestors.empty()) return std::vector<Mount>{{"bind", fs, {"rbind", "rw"}}};
    return std::vector<Mount>{{"overlay",
                               "overlay",
                               {lowerdir(ancestors), "upperdir=" + fs,
                                "workdir=" + Dir(record.id) + "/work", "index=off"}}};
  }
  // A committed snapshot is viewed read-only. overlayfs wants two lower layers when it
  // has no upper one, so a single layer is a read-only bind mount.
  if (ancestors.empty()) return std::vector<Mount>{{"bind", fs, {"rbind", "ro"}}};
  ancestors.insert(ancestors.begin(), record.id);
  return std::vector<Mount>{{"overlay", "overlay", {lowerdir(ancestors), "index=off"}}};
}

absl::Status OverlaySnapshotter::Remove(const std::string& key) {
  std::optional<Record> record;
  RETURN_IF_ERROR(store_.View([&](const ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(record, ReadRecord(tx, key));
    return absl::OkStatus();
  }));
  if (!record) return absl::OkStatus();
  // Marked before the record goes, so that Cleanup never races us for the directory.
  // (Not from inside the transaction: Cleanup takes mu_ and then the store, so taking
  // them the other way round could deadlock.)
  const std::string name = std::to_string(record->id);
  {
    absl::MutexLock lock(&mu_);
    in_flight_.insert(name);
  }
  absl::Cleanup forget = [&] { Forget(name); };
  bool deleted = false;
  RETURN_IF_ERROR(store_.Update([&](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<Record> current, ReadRecord(tx, key));
    if (!current) return absl::OkStatus();  // removed meanwhile
    if (current->id != record->id) {
      return absl::AbortedError(StrCat("remove snapshot ", key, ": it was re-created meanwhile"));
    }
    // The store refuses while a child snapshot (or a container, an image) refers to it.
    absl::Status status = tx.Delete(Kind::kSnapshot, key);
    if (!status.ok()) return Prefixed(StrCat("remove snapshot ", key), status);
    deleted = true;
    return absl::OkStatus();
  }));
  if (!deleted) return absl::OkStatus();
  absl::Status removed = RemoveAll(Dir(record->id));
  if (!removed.ok()) {
    return Prefixed(
        StrCat("remove snapshot ", key, ": removed from the store, its files remain until Cleanup"),
        removed);
  }
  return absl::OkStatus();
}

absl::StatusOr<Usage> OverlaySnapshotter::GetUsage(const std::string& key) {
  std::optional<Record> record;
  RETURN_IF_ERROR(store_.View([&](const ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(record, ReadRecord(tx, key));
    return absl::OkStatus();
  }));
  if (!record) return NotFound(key);
  // A committed snapshot never changes: its usage was measured once, when it was made.
  if (record->kind == SnapshotKind::kCommitted && record->usage) return *record->usage;
  absl::StatusOr<DiskUsage> usage = MeasureTree(Dir(record->id));
  if (!usage.ok()) return Prefixed(StrCat("usage of snapshot ", key), usage.status());
  return Usage{.bytes = usage->bytes, .inodes = usage->inodes};
}

absl::StatusOr<std::vector<SnapshotInfo>> OverlaySnapshotter::List() {
  std::vector<SnapshotInfo> infos;
  RETURN_IF_ERROR(store_.View([&](const ReadTransaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<store::Record> records, tx.List(Kind::kSnapshot));
    for (const store::Record& r : records) {
      ASSIGN_OR_RETURN(Record record, FromJson(r.id, r.doc));
      infos.push_back({.key = r.id, .parent = record.parent, .kind = record.kind});
    }
    return absl::OkStatus();
  }));
  return infos;
}

absl::Status OverlaySnapshotter::Cleanup() {
  std::vector<std::string> garbage;
  {
    // Held across the store read and the listing: a snapshot committed in between is
    // still in flight when we look, so it is never mistaken for an orphan.
    absl::MutexLock lock(&mu_);
    std::set<std::string> live;
    RETURN_IF_ERROR(store_.View([&](const ReadTransaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(std::vector<store::Record> records, tx.List(Kind::kSnapshot));
      for (const store::Record& r : records) {
        ASSIGN_OR_RETURN(Record record, FromJson(r.id, r.doc));
        live.insert(std::to_string(record.id));
      }
      return absl::OkStatus();
    }));
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(snapshots_dir_, error)) {
      std::string name = entry.path().filename().string();
      if (in_flight_.contains(name) || live.contains(name)) continue;
      // Only what we make: tmp-* directories, id directories and RemoveAll's ".rm-*".
      if (name.starts_with(kTempPrefix) || name.starts_with(".rm-") || ParseId(name)) {
        garbage.push_back(std::move(name));
      }
    }
    if (error) {
      return absl::InternalError(
          StrCat("snapshot cleanup: list ", snapshots_dir_, ": ", error.message()));
    }
  }
  absl::Status first_error;
  for (const std::string& name : garbage) {
    absl::Status removed = RemoveAll(StrCat(snapshots_dir_, "/", name));
    if (!removed.ok() && first_error.ok()) first_error = Prefixed("snapshot cleanup", removed);
  }
  return first_error;
}

absl::StatusOr<std::string> OverlaySnapshotter::MakeTempDir(std::string_view what) {
  std::string path = StrCat(snapshots_dir_, "/", kTempPrefix, "XXXXXX");
  absl::MutexLock lock(&mu_);
  if (mkdtemp(path.data()) == nullptr) return ErrnoStatus(errno, StrCat(what, ": mkdtemp"));
  in_flight_.insert(Basename(path));
  return path;
}

absl::Status OverlaySnapshotter::Commit(const std::string& key, const std::string& parent,
                                        SnapshotKind kind, const std::string& temp,
                                        const std::optional<Usage>& usage) {
  int64_t id;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    in_flight_.insert(std::to_string(id));
  }
  const std::string dir = Dir(id);
  bool renamed = false;
  absl::Status status = store_.Update([&](Transaction& tx) -> absl::Status {
    RETURN_IF_ERROR(CheckParent(tx, key, parent));  // it may have gone while we unpacked
    Record record{.id = id, .parent = parent, .kind = kind, .usage = usage};
    RETURN_IF_ERROR(tx.Create(Kind::kSnapshot, key, ToJson(record)));
    if (!parent.empty()) RETURN_IF_ERROR(tx.AddRef(Kind::kSnapshot, key, Kind::kSnapshot, parent));
    // Inside the transaction: if the rename fails nothing is recorded, and if we die
    // before the commit the directory is an orphan that Cleanup removes.
    if (rename(temp.c_str(), dir.c_str()) != 0) {
      return ErrnoStatus(errno, StrCat("snapshot ", key, ": rename ", temp, " to ", dir));
    }
    renamed = true;
    return absl::OkStatus();
  });
  if (!status.ok() && renamed) (void)RemoveAll(dir);  // the commit itself failed
  Forget(std::to_string(id));
  return status;
}

void OverlaySnapshotter::Forget(const std::string& name) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(name);
}

}  // namespace berth::snapshot
