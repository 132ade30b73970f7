// The metadata store: every object berth must remember across a restart.
//
// Pods, containers, images, snapshots, network attachments, leases and
// daemon settings are kept as JSON documents keyed by (kind, id). References
// between objects (an image holds a blob, a container holds a snapshot) are
// kept as edges so that garbage collection can ask "who still uses this?".
//
// All access goes through a transaction:
//
//   std::unique_ptr<Store> store = ...;   // see sqlite_store.h
//   absl::Status s = store->Update([&](Transaction& tx) -> absl::Status {
//     RETURN_IF_ERROR(tx.Put(Kind::kPod, pod_id, pod_json));
//     return tx.AddRef(Kind::kPod, pod_id, Kind::kSnapshot, snapshot_id);
//   });
//   std::optional<nlohmann::json> pod;
//   absl::Status s = store->View([&](const ReadTransaction& tx) -> absl::Status {
//     ASSIGN_OR_RETURN(pod, tx.Get(Kind::kPod, pod_id));
//     return absl::OkStatus();
//   });
//
// Update() commits when the callback returns OK and rolls back otherwise, so
// an error half-way leaves nothing behind. Transactions are serialized: one
// writer at a time, readers see a consistent snapshot.
//
// Durability (see docs/store.md): a committed Update survives kill -9 of the
// daemon. After a power cut the store is consistent; with sync = "normal"
// the last few commits may be lost, with sync = "full" none are.
#ifndef BERTH_RUNTIME_STORE_STORE_H_
#define BERTH_RUNTIME_STORE_STORE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace berth::store {

// What a record is. The names are stored on disk: never rename one.
enum class Kind {
  kSetting,     // daemon-wide settings, e.g. the pod CIDR from UpdateRuntimeConfig
  kPod,         // pod sandboxes
  kContainer,   // containers
  kImage,       // images by id
  kImageName,   // image references ("docker.io/library/busybox:1.36", "...@sha256:") -> image id
  kBlob,        // content-store blobs by digest
  kSnapshot,    // snapshotter layers and active snapshots
  kAttachment,  // CNI network attachments of a pod
  kLease,       // short-lived holds that keep objects from GC while in use
  kName,        // unique names held by objects, e.g. "pod/<name>_<namespace>_<uid>_<attempt>"
};

std::string_view KindName(Kind kind);

struct Record {
  std::string id;
  nlohmann::json doc;
};

struct Ref {
  Kind kind;
  std::string id;
};

// Read access inside a transaction.
class ReadTransaction {
 public:
  virtual ~ReadTransaction() = default;

  // The document stored under (kind, id), or nullopt when there is none.
  virtual absl::StatusOr<std::optional<nlohmann::json>> Get(Kind kind,
                                                            std::string_view id) const = 0;
  // Every record of a kind whose id starts with id_prefix, ordered by id.
  virtual absl::StatusOr<std::vector<Record>> List(Kind kind,
                                                   std::string_view id_prefix = "") const = 0;
  // The objects that (kind, id) refers to.
  virtual absl::StatusOr<std::vector<Ref>> RefsFrom(Kind kind, std::string_view id) const = 0;
  // The objects that refer to (kind, id); empty means it is unreferenced.
  virtual absl::StatusOr<std::vector<Ref>> RefsTo(Kind kind, std::string_view id) const = 0;
};

// Read and write access inside a transaction.
class Transaction : public ReadTransaction {
 public:
  // Inserts or replaces the document.
  virtual absl::Status Put(Kind kind, std::string_view id, const nlohmann::json& doc) = 0;
  // Inserts the document; AlreadyExists when (kind, id) is taken.
  virtual absl::Status Create(Kind kind, std::string_view id, const nlohmann::json& doc) = 0;
  // Removes the record and every reference from it. Removing a missing record is OK.
  // FailedPrecondition while other objects still refer to it.
  virtual absl::Status Delete(Kind kind, std::string_view id) = 0;
  // Records that `from` uses `to`. Adding an existing reference is OK.
  virtual absl::Status AddRef(Kind from_kind, std::string_view from_id, Kind to_kind,
                              std::string_view to_id) = 0;
  virtual absl::Status RemoveRef(Kind from_kind, std::string_view from_id, Kind to_kind,
                                 std::string_view to_id) = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Runs fn in a write transaction; commits if it returns OK, else rolls back
  // and returns its status.
  virtual absl::Status Update(const std::function<absl::Status(Transaction&)>& fn) = 0;

  // Runs fn in a read transaction that sees one consistent state; returns its status.
  virtual absl::Status View(const std::function<absl::Status(const ReadTransaction&)>& fn) = 0;

  // The schema version the store is at (after migrations).
  virtual int SchemaVersion() const = 0;
};

using StorePtr = std::unique_ptr<Store>;

// Resolves an id the way crictl users type them: the exact id, or a prefix
// that only one record of `kind` has. nullopt when none matches;
// InvalidArgument for an empty or ambiguous prefix. `what` names the object
// in messages ("pod sandbox", "container").
absl::StatusOr<std::optional<std::string>> ResolveIdPrefix(Store& store, Kind kind,
                                                           const std::string& id_or_prefix,
                                                           std::string_view what);

}  // namespace berth::store

#endif  // BERTH_RUNTIME_STORE_STORE_H_
