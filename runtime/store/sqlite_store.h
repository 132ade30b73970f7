// SqliteStore: the Store on SQLite in WAL mode, one database file per daemon.
//
//   absl::StatusOr<StorePtr> store = SqliteStore::Open({.path = root + "/berth.db"});
//
// Open() creates the file if needed and brings its schema to the newest
// version by running the pending migrations, each in its own transaction. A
// database written by a newer berthd is refused rather than guessed at.
#ifndef BERTH_RUNTIME_STORE_SQLITE_STORE_H_
#define BERTH_RUNTIME_STORE_SQLITE_STORE_H_

#include <string>

#include "absl/status/statusor.h"
#include "runtime/store/store.h"

namespace berth::store {

// How hard a commit waits for the disk. Both survive kill -9 of the process;
// they differ only on power loss (docs/store.md).
enum class SyncMode {
  kNormal,  // fsync at WAL checkpoints: a power cut may drop the last commits
  kFull,    // fsync every commit: a power cut drops nothing committed
};

absl::StatusOr<SyncMode> ParseSyncMode(std::string_view name);

struct SqliteStoreOptions {
  std::string path;
  SyncMode sync = SyncMode::kNormal;
};

class SqliteStore {
 public:
  static absl::StatusOr<StorePtr> Open(const SqliteStoreOptions& options);

  // The schema version this build migrates to.
  static int LatestSchemaVersion();
};

}  // namespace berth::store

#endif  // BERTH_RUNTIME_STORE_SQLITE_STORE_H_
