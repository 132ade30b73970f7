#include "runtime/container/user.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::container {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# a comment\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "broken line without fields\n"
    "app:x:1000:1000:App:/home/app:/bin/sh\n"
    "nohome:x:1001:100::::\n"
    "+nis\n";

constexpr char kGroup[] =
    "root:x:0:\n"
    "daemon:x:1:\n"
    "users:x:100:app\n"
    "app:x:1000:\n"
    "staff:x:50:nohome, app\n"
    "wheel:x:10:root\n"
    "video:x:44:other,app\n";

class UserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/user_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    rootfs_ = dir_ + "/rootfs";
    fs::create_directories(rootfs_ + "/etc");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Write(const std::string& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
  }
  void WriteImageFiles() {
    Write(rootfs_ + "/etc/passwd", kPasswd);
    Write(rootfs_ + "/etc/group", kGroup);
  }

  std::string dir_;
  std::string rootfs_;
};

TEST_F(UserTest, EmptyRequestIsRootWithItsHome) {
  WriteImageFiles();
  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->uid, 0u);
  EXPECT_EQ(user->gid, 0u);
  EXPECT_EQ(user->name, "root");
  EXPECT_EQ(user->home, "/root");
  // root's own gid, then wheel (lists root).
  EXPECT_EQ(user->additional_gids, (std::vector<uint32_t>{0, 10}));
}

TEST_F(UserTest, NumericUidTakesGidAndGroupsFromPasswd) {
  WriteImageFiles();
  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.run_as_user = 1000});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->uid, 1000u);
  EXPECT_EQ(user->gid, 1000u);
  EXPECT_EQ(user->name, "app");
  EXPECT_EQ(user->home, "/home/app");
  EXPECT_EQ(user->additional_gids, (std::vector<uint32_t>{1000, 100, 50, 44}));
}

TEST_F(UserTest, NumericUidNotInPasswdRunsWithGidZero) {
  WriteImageFiles();
  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.run_as_user = 4242});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->uid, 4242u);
  EXPECT_EQ(user->gid, 0u);
  EXPECT_EQ(user->name, "");
  EXPECT_EQ(user->home, "/");
  EXPECT_EQ(user->additional_gids, (std::vector<uint32_t>{0}));
}

TEST_F(UserTest, GroupOrderIsPrimaryThenCriThenImageWithoutRepeats) {
  WriteImageFiles();
  // critest's order: `id -G` must list the primary gid, then the CRI groups,
  // then the image's; 50 appears in both and is kept where the CRI put it.
  absl::StatusOr<ResolvedUser> user =
      ResolveUser(rootfs_, {.run_as_user = 1000, .supplemental_groups = {5555, 50, 1000, 6666}});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->additional_gids, (std::vector<uint32_t>{1000, 5555, 50, 6666, 100, 44}));
}

TEST_F(UserTest, RunAsGroupOverridesThePrimaryGid) {
  WriteImageFiles();
  absl::StatusOr<ResolvedUser> user =
      ResolveUser(rootfs_, {.run_as_user = 1000, .run_as_group = 3000});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->gid, 3000u);
  EXPECT_EQ(user->additional_gids, (std::vector<uint32_t>{3000, 100, 50, 44}));
}

TEST_F(UserTest, RunAsUsernameWinsOverRunAsUser) {
  WriteImageFiles();
  absl::StatusOr<ResolvedUser> user =
      ResolveUser(rootfs_, {.run_as_user = 0, .run_as_group = 7, .run_as_username = "app"});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->uid, 1000u);
  EXPECT_EQ(user->gid, 7u);
}

TEST_F(UserTest, RunAsGroupWithoutUserIsRefused) {
  WriteImageFiles();
  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.run_as_group = 100});
  ASSERT_EQ(user.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(user.status().message()), HasSubstr("run_as_group 100"));
}

TEST_F(UserTest, CriUserWinsOverImageUser) {
  WriteImageFiles();
  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.run_as_user = 1, .image_user = "app"});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->uid, 1u);
  EXPECT_EQ(user->home, "/usr/sbin");
}

struct ImageUserCase {
  std::string user;
  uint32_t uid;
  uint32_t gid;
  std::vector<uint32_t> additional_gids;
};

TEST_F(UserTest, ImageUserForms) {
  WriteImageFiles();
  const ImageUserCase cases[] = {
      {"app", 1000, 1000, {1000, 100, 50, 44}}, {"1000", 1000, 1000, {1000, 100, 50, 44}},
      {"1000:44", 1000, 44, {44, 100, 50}},     {"app:44", 1000, 44, {44, 100, 50}},
      {"1000:staff", 1000, 50, {50, 100, 44}},  {"app:staff", 1000, 50, {50, 100, 44}},
      {"nohome:users", 1001, 100, {100, 50}},   {"4242:4242", 4242, 4242, {4242}},
  };
  for (const ImageUserCase& c : cases) {
    absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.image_user = c.user});
    ASSERT_TRUE(user.ok()) << c.user << ": " << user.status();
    EXPECT_EQ(user->uid, c.uid) << c.user;
    EXPECT_EQ(user->gid, c.gid) << c.user;
    EXPECT_EQ(user->additional_gids, c.additional_gids) << c.user;
  }
}

TEST_F(UserTest, PasswdEntryWithoutHomeGetsSlash) {
  WriteImageFiles();
  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.run_as_username = "nohome"});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->home, "/");
}

TEST_F(UserTest, UnknownNamesAreInvalidArgumentNamingThem) {
  WriteImageFiles();
  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.run_as_username = "ghost"});
  ASSERT_EQ(user.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(user.status().message()), HasSubstr("\"ghost\""));

  user = ResolveUser(rootfs_, {.image_user = "app:ghosts"});
  ASSERT_EQ(user.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(user.status().message()), HasSubstr("\"ghosts\""));
}

TEST_F(UserTest, MalformedAndOutOfRangeIdsAreRefused) {
  WriteImageFiles();
  for (const char* bad : {"1000:", ":1000", "99999999999", "4294967295"}) {
    absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.image_user = bad});
    EXPECT_EQ(user.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ResolveUser(rootfs_, {.run_as_user = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveUser(rootfs_, {.run_as_user = 1, .supplemental_groups = {-5}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(UserTest, MissingFilesAreFineForNumericUsers) {
  absl::StatusOr<ResolvedUser> user =
      ResolveUser(rootfs_, {.run_as_user = 1000, .supplemental_groups = {5}});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->gid, 0u);
  EXPECT_EQ(user->additional_gids, (std::vector<uint32_t>{0, 5}));

  user = ResolveUser(rootfs_, {.image_user = "app"});
  ASSERT_EQ(user.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(user.status().message()), HasSubstr("no /etc/passwd"));
}

TEST_F(UserTest, EmptyRootfsReadsNothing) {
  absl::StatusOr<ResolvedUser> user = ResolveUser("", {.image_user = "12:34"});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->uid, 12u);
  EXPECT_EQ(user->gid, 34u);
}

TEST_F(UserTest, SymlinksResolveInsideTheRootfs) {
  // An absolute symlink means the image's own /etc/passwd.real.
  Write(rootfs_ + "/etc/passwd.real", kPasswd);
  fs::create_symlink("/etc/passwd.real", rootfs_ + "/etc/passwd");
  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.run_as_username = "app"});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->uid, 1000u);
}

class HostileSymlinkTest : public UserTest, public ::testing::WithParamInterface<std::string> {};

// A hostile image points /etc/passwd and /etc/group at a host file; the host
// file defines "intruder". Resolved inside the rootfs the link leads nowhere,
// so the name is unknown and the numeric uid gets none of the host's values.
TEST_P(HostileSymlinkTest, NeverReadsTheHostFile) {
  const std::string host_file = dir_ + "/host_accounts";
  Write(host_file, "intruder:x:4242:4242::/host-home:/bin/sh\n");
  std::string target = GetParam() == "absolute" ? host_file : "../../../../../../.." + host_file;
  fs::create_symlink(target, rootfs_ + "/etc/passwd");
  fs::create_symlink(target, rootfs_ + "/etc/group");

  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.run_as_username = "intruder"});
  EXPECT_EQ(user.status().code(), absl::StatusCode::kInvalidArgument) << user.status();

  user = ResolveUser(rootfs_, {.run_as_user = 4242});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->gid, 0u);
  EXPECT_EQ(user->home, "/");
  EXPECT_EQ(user->name, "");

  absl::StatusOr<std::optional<std::string>> content =
      ReadFileInRoot(rootfs_, "/etc/passwd", 1 << 20);
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_FALSE(content->has_value());
}

INSTANTIATE_TEST_SUITE_P(Targets, HostileSymlinkTest, ::testing::Values("absolute", "dotdot"));

TEST_F(UserTest, FifoPasswdIsAnErrorNotAHang) {
  ASSERT_EQ(mkfifo((rootfs_ + "/etc/passwd").c_str(), 0644), 0);
  absl::StatusOr<ResolvedUser> user = ResolveUser(rootfs_, {.run_as_user = 1});
  EXPECT_EQ(user.status().code(), absl::StatusCode::kFailedPrecondition) << user.status();
  EXPECT_THAT(std::string(user.status().message()), HasSubstr("not a regular file"));
}

TEST_F(UserTest, OversizedFilesAreRefused) {
  Write(rootfs_ + "/etc/big", std::string(100, 'x'));
  absl::StatusOr<std::optional<std::string>> content = ReadFileInRoot(rootfs_, "etc/big", 99);
  EXPECT_EQ(content.status().code(), absl::StatusCode::kResourceExhausted);
  content = ReadFileInRoot(rootfs_, "etc/big", 100);
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(content->value().size(), 100u);
}

TEST(UserStringTest, FollowsContainerdsPrecedence) {
  EXPECT_EQ(*UserString({}), "");
  EXPECT_EQ(*UserString({.image_user = "app:staff"}), "app:staff");
  EXPECT_EQ(*UserString({.run_as_user = 0, .image_user = "app"}), "0");
  EXPECT_EQ(*UserString({.run_as_user = 5, .run_as_group = 6}), "5:6");
  EXPECT_EQ(*UserString({.run_as_user = 5, .run_as_username = "bob"}), "bob");
  EXPECT_EQ(*UserString({.run_as_group = 6, .run_as_username = "bob"}), "bob:6");
}

}  // namespace
}  // namespace berth::container
