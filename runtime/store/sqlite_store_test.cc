#include "runtime/store/sqlite_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::store {
namespace {

using nlohmann::json;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/berth.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  StorePtr OpenOrDie() {
    absl::StatusOr<StorePtr> store = SqliteStore::Open({.path = path_});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::optional<json> Get(Store& store, Kind kind, const std::string& id) {
    std::optional<json> doc;
    absl::Status s = store.View([&](const ReadTransaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(doc, tx.Get(kind, id));
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    return doc;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(SqliteStoreTest, PutGetListDelete) {
  StorePtr store = OpenOrDie();
  ASSERT_TRUE(store
                  ->Update([](Transaction& tx) -> absl::Status {
                    RETURN_IF_ERROR(tx.Put(Kind::kPod, "b", {{"name", "second"}}));
                    RETURN_IF_ERROR(tx.Put(Kind::kPod, "a", {{"name", "first"}}));
                    return tx.Put(Kind::kContainer, "a", {{"name", "other kind"}});
                  })
                  .ok());

  EXPECT_EQ(Get(*store, Kind::kPod, "a"), json({{"name", "first"}}));
  EXPECT_EQ(Get(*store, Kind::kPod, "missing"), std::nullopt);

  std::vector<Record> pods;
  ASSERT_TRUE(store
                  ->View([&](const ReadTransaction& tx) -> absl::Status {
                    ASSIGN_OR_RETURN(pods, tx.List(Kind::kPod));
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_EQ(pods.size(), 2u);
  EXPECT_EQ(pods[0].id, "a");
  EXPECT_EQ(pods[1].id, "b");

  ASSERT_TRUE(store->Update([](Transaction& tx) {
                     return tx.Put(Kind::kPod, "a", {{"v", 2}});
                   })
                  .ok());
  EXPECT_EQ(Get(*store, Kind::kPod, "a"), json({{"v", 2}}));

  ASSERT_TRUE(store->Update([](Transaction& tx) { return tx.Delete(Kind::kPod, "a"); }).ok());
  EXPECT_EQ(Get(*store, Kind::kPod, "a"), std::nullopt);
  // Deleting what is not there is not an error: callers retry deletes after crashes.
  EXPECT_TRUE(store->Update([](Transaction& tx) { return tx.Delete(Kind::kPod, "a"); }).ok());
}

TEST_F(SqliteStoreTest, ListByPrefixTreatsWildcardsLiterally) {
  StorePtr store = OpenOrDie();
  ASSERT_TRUE(store
                  ->Update([](Transaction& tx) -> absl::Status {
                    RETURN_IF_ERROR(tx.Put(Kind::kBlob, "sha256:ab", json::object()));
                    RETURN_IF_ERROR(tx.Put(Kind::kBlob, "sha256:ac", json::object()));
                    return tx.Put(Kind::kBlob, "sha256_x", json::object());
                  })
                  .ok());
  std::vector<Record> found;
  ASSERT_TRUE(store
                  ->View([&](const ReadTransaction& tx) -> absl::Status {
                    ASSIGN_OR_RETURN(found, tx.List(Kind::kBlob, "sha256:"));
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(found.size(), 2u);
  ASSERT_TRUE(store
                  ->View([&](const ReadTransaction& tx) -> absl::Status {
                    ASSIGN_OR_RETURN(found, tx.List(Kind::kBlob, "sha256_"));
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].id, "sha256_x");
}

TEST_F(SqliteStoreTest, CreateRefusesDuplicates) {
  StorePtr store = OpenOrDie();
  ASSERT_TRUE(store->Update([](Transaction& tx) { return tx.Create(Kind::kPod, "p", {}); }).ok());
  absl::Status again =
      store->Update([](Transaction& tx) { return tx.Create(Kind::kPod, "p", {}); });
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_NE(again.message().find("pod p"), std::string::npos) << again;
}

TEST_F(SqliteStoreTest, FailedUpdateLeavesNothing) {
  StorePtr store = OpenOrDie();
  absl::Status s = store->Update([](Transaction& tx) -> absl::Status {
    RETURN_IF_ERROR(tx.Put(Kind::kPod, "half-made", {{"step", 1}}));
    return absl::InternalError("network setup failed");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Get(*store, Kind::kPod, "half-made"), std::nullopt);
}

TEST_F(SqliteStoreTest, ReferencesGuardDeletesAndGoWithTheirOwner) {
  StorePtr store = OpenOrDie();
  ASSERT_TRUE(store
                  ->Update([](Transaction& tx) -> absl::Status {
                    RETURN_IF_ERROR(tx.Put(Kind::kBlob, "sha256:layer", json::object()));
                    RETURN_IF_ERROR(tx.Put(Kind::kImage, "img1", json::object()));
                    RETURN_IF_ERROR(tx.Put(Kind::kImage, "img2", json::object()));
                    RETURN_IF_ERROR(tx.AddRef(Kind::kImage, "img1", Kind::kBlob, "sha256:layer"));
                    RETURN_IF_ERROR(tx.AddRef(Kind::kImage, "img2", Kind::kBlob, "sha256:layer"));
                    // Adding twice is harmless.
                    return tx.AddRef(Kind::kImage, "img2", Kind::kBlob, "sha256:layer");
                  })
                  .ok());

  absl::Status in_use =
      store->Update([](Transaction& tx) { return tx.Delete(Kind::kBlob, "sha256:layer"); });
  EXPECT_EQ(in_use.code(), absl::StatusCode::kFailedPrecondition) << in_use;
  EXPECT_NE(in_use.message().find("still used by image img1 and 1 more"), std::string::npos)
      << in_use;

  // Deleting the images drops their references; then the blob may go.
  ASSERT_TRUE(store
                  ->Update([](Transaction& tx) -> absl::Status {
                    RETURN_IF_ERROR(tx.Delete(Kind::kImage, "img1"));
                    return tx.RemoveRef(Kind::kImage, "img2", Kind::kBlob, "sha256:layer");
                  })
                  .ok());
  std::vector<Ref> users;
  ASSERT_TRUE(store
                  ->View([&](const ReadTransaction& tx) -> absl::Status {
                    ASSIGN_OR_RETURN(users, tx.RefsTo(Kind::kBlob, "sha256:layer"));
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_TRUE(users.empty());
  EXPECT_TRUE(
      store->Update([](Transaction& tx) { return tx.Delete(Kind::kBlob, "sha256:layer"); }).ok());
}

TEST_F(SqliteStoreTest, ReferenceFromMissingObjectIsRefused) {
  StorePtr store = OpenOrDie();
  absl::Status s = store->Update(
      [](Transaction& tx) { return tx.AddRef(Kind::kImage, "ghost", Kind::kBlob, "b"); });
  EXPECT_FALSE(s.ok());
}

TEST_F(SqliteStoreTest, NewDatabaseIsAtLatestSchemaInWalMode) {
  StorePtr store = OpenOrDie();
  EXPECT_EQ(store->SchemaVersion(), SqliteStore::LatestSchemaVersion());
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(SqliteStoreTest, MigratesAnOlderSchemaKeepingData) {
  // A database as schema v1 left it: objects only, no refs table.
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE objects (kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT "
                         "NULL, created_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT "
                         "NULL DEFAULT 0, PRIMARY KEY (kind, id)) WITHOUT ROWID;"
                         "INSERT INTO objects (kind, id, doc) VALUES ('pod', 'old', '{\"v\":1}');"
                         "PRAGMA user_version = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);

  StorePtr store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), 2);
  EXPECT_EQ(Get(*store, Kind::kPod, "old"), json({{"v", 1}}));
  ASSERT_TRUE(store
                  ->Update([](Transaction& tx) {
                    return tx.AddRef(Kind::kPod, "old", Kind::kSnapshot, "s");
                  })
                  .ok());
}

TEST_F(SqliteStoreTest, RefusesSchemaFromTheFuture) {
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99;", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  absl::StatusOr<StorePtr> store = SqliteStore::Open({.path = path_});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_NE(store.status().message().find("schema v99"), std::string::npos);
}

TEST_F(SqliteStoreTest, UnwritablePathIsAClearError) {
  absl::StatusOr<StorePtr> store = SqliteStore::Open({.path = dir_ + "/no/such/dir/berth.db"});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("no/such/dir"), std::string::npos) << store.status();
}

// A writer killed with SIGKILL in the middle of a stream of transactions: on
// reopen every acknowledged commit is there, and no transaction is half there.
TEST_F(SqliteStoreTest, SurvivesKillNineDuringWrites) {
  int acks[2];
  ASSERT_EQ(pipe(acks), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(acks[0]);
    absl::StatusOr<StorePtr> store = SqliteStore::Open({.path = path_});
    if (!store.ok()) _exit(2);
    for (int i = 1;; ++i) {
      std::string id = StrCat("n", i);
      absl::Status s = (*store)->Update([&](Transaction& tx) -> absl::Status {
        RETURN_IF_ERROR(tx.Put(Kind::kPod, id, {{"i", i}}));
        RETURN_IF_ERROR(tx.Put(Kind::kContainer, id, {{"i", i}, {"pad", std::string(512, 'x')}}));
        RETURN_IF_ERROR(tx.AddRef(Kind::kContainer, id, Kind::kPod, id));
        return tx.Put(Kind::kSetting, "counter", {{"i", i}});
      });
      if (!s.ok()) _exit(3);
      if (write(acks[1], &i, sizeof(i)) != sizeof(i)) _exit(4);
    }
  }
  close(acks[1]);
  int acknowledged = 0;
  while (acknowledged < 300) {
    ASSERT_EQ(read(acks[0], &acknowledged, sizeof(acknowledged)),
              static_cast<ssize_t>(sizeof(acknowledged)));
  }
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int wstatus;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "writer exited early with " << WEXITSTATUS(wstatus);
  // Acks sent between our last read and the kill still count.
  int more;
  while (read(acks[0], &more, sizeof(more)) == sizeof(more)) acknowledged = more;
  close(acks[0]);

  StorePtr store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  std::optional<json> counter = Get(*store, Kind::kSetting, "counter");
  ASSERT_TRUE(counter.has_value());
  int committed = (*counter)["i"];
  EXPECT_GE(committed, acknowledged);

  std::vector<Record> pods, containers;
  ASSERT_TRUE(store
                  ->View([&](const ReadTransaction& tx) -> absl::Status {
                    ASSIGN_OR_RETURN(pods, tx.List(Kind::kPod));
                    ASSIGN_OR_RETURN(containers, tx.List(Kind::kContainer));
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(pods.size(), static_cast<size_t>(committed));
  EXPECT_EQ(containers.size(), static_cast<size_t>(committed));

  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "ok");
  sqlite3_finalize(stmt);
  sqlite3_close(db);

  // And the store keeps working.
  EXPECT_TRUE(store->Update([](Transaction& tx) { return tx.Put(Kind::kPod, "after", {}); }).ok());
}

}  // namespace
}  // namespace berth::store
