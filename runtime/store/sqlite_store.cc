#include "runtime/store/sqlite_store.h"

#include <sqlite3.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::store {
namespace {

// Each entry moves the schema from version i to i+1. Append only: a released
// migration is never edited, since databases out there already ran it.
constexpr const char* kMigrations[] = {
    // v1: every object as a JSON document.
    R"sql(
      CREATE TABLE objects (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        doc TEXT NOT NULL,
        created_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)),
        updated_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)),
        PRIMARY KEY (kind, id)
      ) WITHOUT ROWID;
    )sql",
    // v2: references between objects, so garbage collection can find what is
    // unused without scanning every document.
    R"sql(
      CREATE TABLE refs (
        from_kind TEXT NOT NULL,
        from_id TEXT NOT NULL,
        to_kind TEXT NOT NULL,
        to_id TEXT NOT NULL,
        PRIMARY KEY (from_kind, from_id, to_kind, to_id),
        FOREIGN KEY (from_kind, from_id) REFERENCES objects (kind, id) ON DELETE CASCADE
      ) WITHOUT ROWID;
      CREATE INDEX refs_to ON refs (to_kind, to_id);
    )sql",
};
constexpr int kLatestVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

absl::Status SqliteError(sqlite3* db, std::string_view what) {
  return absl::InternalError(StrCat("store: ", what, ": ", sqlite3_errmsg(db)));
}

std::optional<Kind> KindFromName(std::string_view name) {
  for (Kind k : {Kind::kSetting, Kind::kPod, Kind::kContainer, Kind::kImage, Kind::kImageName,
                 Kind::kBlob, Kind::kSnapshot, Kind::kAttachment, Kind::kLease, Kind::kName}) {
    if (KindName(k) == name) return k;
  }
  return std::nullopt;
}

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status Prepared(std::string_view what) const {
    return rc_ == SQLITE_OK ? absl::OkStatus() : SqliteError(db_, what);
  }
  Statement& Bind(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  std::string Column(int index) const {
    const unsigned char* text = sqlite3_column_text(stmt_, index);
    return text ? std::string(reinterpret_cast<const char*>(text),
                              sqlite3_column_bytes(stmt_, index))
                : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

class SqliteTransaction : public Transaction {
 public:
  explicit SqliteTransaction(sqlite3* db) : db_(db) {}

  absl::StatusOr<std::optional<nlohmann::json>> Get(Kind kind, std::string_view id) const override {
    Statement stmt(db_, "SELECT doc FROM objects WHERE kind = ?1 AND id = ?2");
    RETURN_IF_ERROR(stmt.Prepared("get"));
    stmt.Bind(1, KindName(kind)).Bind(2, id);
    int rc = stmt.Step();
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) return SqliteError(db_, StrCat("get ", KindName(kind), " ", id));
    return ParseDoc(kind, id, stmt.Column(0));
  }

  absl::StatusOr<std::vector<Record>> List(Kind kind, std::string_view id_prefix) const override {
    // substr() rather than LIKE: ids may contain '%' and '_'.
    Statement stmt(db_,
                   "SELECT id, doc FROM objects WHERE kind = ?1 AND substr(id, 1, length(?2)) = ?2 "
                   "ORDER BY id");
    RETURN_IF_ERROR(stmt.Prepared("list"));
    stmt.Bind(1, KindName(kind)).Bind(2, id_prefix);
    std::vector<Record> records;
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      std::string id = stmt.Column(0);
      ASSIGN_OR_RETURN(nlohmann::json doc, ParseDoc(kind, id, stmt.Column(1)));
      records.push_back({std::move(id), std::move(doc)});
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, StrCat("list ", KindName(kind)));
    return records;
  }

  absl::StatusOr<std::vector<Ref>> RefsFrom(Kind kind, std::string_view id) const override {
    return QueryRefs("SELECT to_kind, to_id FROM refs WHERE from_kind = ?1 AND from_id = ?2", kind,
                     id);
  }

  absl::StatusOr<std::vector<Ref>> RefsTo(Kind kind, std::string_view id) const override {
    return QueryRefs("SELECT from_kind, from_id FROM refs WHERE to_kind = ?1 AND to_id = ?2", kind,
                     id);
  }

  absl::Status Put(Kind kind, std::string_view id, const nlohmann::json& doc) override {
    return Exec(
        "INSERT INTO objects (kind, id, doc) VALUES (?1, ?2, ?3) ON CONFLICT (kind, id) DO "
        "UPDATE SET doc = excluded.doc, updated_at = CAST(strftime('%s','now') AS INTEGER)",
        {KindName(kind), id, doc.dump()}, StrCat("put ", KindName(kind), " ", id));
  }

  absl::Status Create(Kind kind, std::string_view id, const nlohmann::json& doc) override {
    Statement stmt(db_, "INSERT INTO objects (kind, id, doc) VALUES (?1, ?2, ?3)");
    RETURN_IF_ERROR(stmt.Prepared("create"));
    std::string text = doc.dump();
    stmt.Bind(1, KindName(kind)).Bind(2, id).Bind(3, text);
    int rc = stmt.Step();
    if (rc == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(StrCat(KindName(kind), " ", id, " already exists"));
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, StrCat("create ", KindName(kind), " ", id));
    return absl::OkStatus();
  }

  absl::Status Delete(Kind kind, std::string_view id) override {
    ASSIGN_OR_RETURN(std::vector<Ref> users, RefsTo(kind, id));
    if (!users.empty()) {
      return absl::FailedPreconditionError(
          StrCat(KindName(kind), " ", id, " is still used by ", KindName(users[0].kind), " ",
                 users[0].id, users.size() > 1 ? StrCat(" and ", users.size() - 1, " more") : ""));
    }
    // The refs from this object go with it (ON DELETE CASCADE).
    return Exec("DELETE FROM objects WHERE kind = ?1 AND id = ?2", {KindName(kind), id},
                StrCat("delete ", KindName(kind), " ", id));
  }

  absl::Status AddRef(Kind from_kind, std::string_view from_id, Kind to_kind,
                      std::string_view to_id) override {
    return Exec(
        "INSERT OR IGNORE INTO refs (from_kind, from_id, to_kind, to_id) VALUES (?1, ?2, ?3, ?4)",
        {KindName(from_kind), from_id, KindName(to_kind), to_id},
        StrCat("reference ", KindName(from_kind), " ", from_id, " -> ", KindName(to_kind), " ",
               to_id, " (does the referring object exist?)"));
  }

  absl::Status RemoveRef(Kind from_kind, std::string_view from_id, Kind to_kind,
                         std::string_view to_id) override {
    return Exec(
        "DELETE FROM refs WHERE from_kind = ?1 AND from_id = ?2 AND to_kind = ?3 AND to_id = ?4",
        {KindName(from_kind), from_id, KindName(to_kind), to_id}, "remove reference");
  }

 private:
  static absl::StatusOr<nlohmann::json> ParseDoc(Kind kind, std::string_view id,
                                                 const std::string& text) {
    nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      return absl::DataLossError(
          StrCat("store: ", KindName(kind), " ", id, " holds a document that is not JSON"));
    }
    return doc;
  }

  absl::Status Exec(std::string_view sql, std::initializer_list<std::string_view> args,
                    std::string_view what) {
    Statement stmt(db_, sql);
    RETURN_IF_ERROR(stmt.Prepared(what));
    int index = 1;
    for (std::string_view arg : args) stmt.Bind(index++, arg);
    if (stmt.Step() != SQLITE_DONE) return SqliteError(db_, what);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Ref>> QueryRefs(std::string_view sql, Kind kind,
                                             std::string_view id) const {
    Statement stmt(db_, sql);
    RETURN_IF_ERROR(stmt.Prepared("refs"));
    stmt.Bind(1, KindName(kind)).Bind(2, id);
    std::vector<Ref> refs;
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      std::optional<Kind> k = KindFromName(stmt.Column(0));
      if (!k) return absl::DataLossError("store: reference with unknown kind " + stmt.Column(0));
      refs.push_back({*k, stmt.Column(1)});
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "refs");
    return refs;
  }

  sqlite3* db_;
};

class SqliteStoreImpl : public Store {
 public:
  SqliteStoreImpl(sqlite3* db, int version) : db_(db), version_(version) {}
  ~SqliteStoreImpl() override { sqlite3_close_v2(db_); }

  absl::Status Update(const std::function<absl::Status(Transaction&)>& fn) override {
    absl::MutexLock lock(&mu_);
    // IMMEDIATE takes the write lock up front, so a transaction never fails
    // half-way because another connection (a second process) began writing.
    return RunInTransaction("BEGIN IMMEDIATE", [&](SqliteTransaction& tx) { return fn(tx); });
  }

  absl::Status View(const std::function<absl::Status(const ReadTransaction&)>& fn) override {
    absl::MutexLock lock(&mu_);
    return RunInTransaction("BEGIN DEFERRED", [&](SqliteTransaction& tx) { return fn(tx); });
  }

  int SchemaVersion() const override { return version_; }

 private:
  absl::Status RunInTransaction(const char* begin,
                                const std::function<absl::Status(SqliteTransaction&)>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (sqlite3_exec(db_, begin, nullptr, nullptr, nullptr) != SQLITE_OK) {
      return SqliteError(db_, "begin transaction");
    }
    SqliteTransaction tx(db_);
    absl::Status status = fn(tx);
    if (!status.ok()) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return status;
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      absl::Status err = SqliteError(db_, "commit");
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return err;
    }
    return absl::OkStatus();
  }

  absl::Mutex mu_;
  // One connection, used under mu_: SQLite connections are not to be shared
  // by threads at once, and the daemon's writes are small and quick.
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
  const int version_;
};

absl::Status ExecScript(sqlite3* db, const char* sql, std::string_view what) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    return absl::InternalError(StrCat("store: ", what, ": ", message));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> UserVersion(sqlite3* db) {
  Statement stmt(db, "PRAGMA user_version");
  RETURN_IF_ERROR(stmt.Prepared("read schema version"));
  if (stmt.Step() != SQLITE_ROW) return SqliteError(db, "read schema version");
  return std::stoi(stmt.Column(0));
}

absl::StatusOr<int> Migrate(sqlite3* db, const std::string& path) {
  ASSIGN_OR_RETURN(int version, UserVersion(db));
  if (version > kLatestVersion) {
    return absl::FailedPreconditionError(StrCat("store ", path, " has schema v", version,
                                                ", newer than this berthd's v", kLatestVersion,
                                                "; refusing to open it"));
  }
  for (; version < kLatestVersion; ++version) {
    // The schema change and the version bump commit together, so a crash in
    // a migration leaves the previous version intact.
    std::string script = StrCat("BEGIN IMMEDIATE;", kMigrations[version],
                                "PRAGMA user_version = ", version + 1, "; COMMIT;");
    absl::Status s =
        ExecScript(db, script.c_str(), StrCat("migrate ", path, " to schema v", version + 1));
    if (!s.ok()) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      return s;
    }
  }
  return version;
}

}  // namespace

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kSetting:
      return "setting";
    case Kind::kPod:
      return "pod";
    case Kind::kContainer:
      return "container";
    case Kind::kImage:
      return "image";
    case Kind::kImageName:
      return "image_name";
    case Kind::kBlob:
      return "blob";
    case Kind::kSnapshot:
      return "snapshot";
    case Kind::kAttachment:
      return "attachment";
    case Kind::kLease:
      return "lease";
    case Kind::kName:
      return "name";
  }
  return "unknown";
}

absl::StatusOr<SyncMode> ParseSyncMode(std::string_view name) {
  if (name == "normal") return SyncMode::kNormal;
  if (name == "full") return SyncMode::kFull;
  return absl::InvalidArgumentError(
      StrCat("store sync mode \"", name, "\" is not one of: normal, full"));
}

int SqliteStore::LatestSchemaVersion() { return kLatestVersion; }

absl::StatusOr<StorePtr> SqliteStore::Open(const SqliteStoreOptions& options) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(options.path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status err = absl::UnavailableError(
        StrCat("store: open ", options.path, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close_v2(db);
    return err;
  }
  auto close_on_error = [db](absl::Status s) {
    sqlite3_close_v2(db);
    return s;
  };
  // busy_timeout: another process (berthctl diagnostics, a test) may hold the
  // write lock briefly; wait instead of failing at once.
  std::string pragmas = StrCat(
      "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;"
      "PRAGMA synchronous = ",
      options.sync == SyncMode::kFull ? "FULL" : "NORMAL", ";");
  if (absl::Status s = ExecScript(db, pragmas.c_str(), "configure " + options.path); !s.ok()) {
    return close_on_error(s);
  }
  absl::StatusOr<int> version = Migrate(db, options.path);
  if (!version.ok()) return close_on_error(version.status());
  return StorePtr(new SqliteStoreImpl(db, *version));
}

}  // namespace berth::store
