#include "server/socket_guard.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace berth::server {
namespace {

class SocketGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-guard-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/b.sock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A bound unix socket; listening when `listen_too`.
  int Bind(bool listen_too) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, socket_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    if (listen_too) {
      EXPECT_EQ(listen(fd, 1), 0);
    }
    return fd;
  }

  std::string dir_;
  std::string socket_;
};

TEST_F(SocketGuardTest, FreshPathIsClaimedAndReleased) {
  {
    absl::StatusOr<std::unique_ptr<SocketGuard>> guard = SocketGuard::Acquire(socket_);
    ASSERT_TRUE(guard.ok()) << guard.status();
    EXPECT_FALSE((*guard)->removed_stale_socket());
    int fd = Bind(true);
    close(fd);
  }
  // The guard removed the socket file, and the lock is free again.
  EXPECT_FALSE(std::filesystem::exists(socket_));
  EXPECT_TRUE(SocketGuard::Acquire(socket_).ok());
}

TEST_F(SocketGuardTest, StaleSocketOfADeadOwnerIsReplaced) {
  int fd = Bind(false);
  close(fd);  // the file stays, nobody listens: what kill -9 leaves behind
  ASSERT_TRUE(std::filesystem::exists(socket_));
  absl::StatusOr<std::unique_ptr<SocketGuard>> guard = SocketGuard::Acquire(socket_);
  ASSERT_TRUE(guard.ok()) << guard.status();
  EXPECT_TRUE((*guard)->removed_stale_socket());
  EXPECT_FALSE(std::filesystem::exists(socket_));
}

TEST_F(SocketGuardTest, SecondClaimWhileHeldIsRefusedNamingTheHolder) {
  // The holder is another process, as a second berthd would see it.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t holder = fork();
  ASSERT_GE(holder, 0);
  if (holder == 0) {
    auto guard = SocketGuard::Acquire(socket_);
    char ok = guard.ok() ? 'y' : 'n';
    if (write(ready[1], &ok, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  ASSERT_EQ(ok, 'y');

  absl::StatusOr<std::unique_ptr<SocketGuard>> second = SocketGuard::Acquire(socket_);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(holder)), std::string::npos)
      << second.status();

  // When the holder dies (however it dies) the claim is free.
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  EXPECT_TRUE(SocketGuard::Acquire(socket_).ok());
  close(ready[0]);
  close(ready[1]);
}

TEST_F(SocketGuardTest, ForeignListenerIsNotStolen) {
  int fd = Bind(true);
  absl::StatusOr<std::unique_ptr<SocketGuard>> guard = SocketGuard::Acquire(socket_);
  EXPECT_EQ(guard.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(std::filesystem::exists(socket_));
  close(fd);
}

TEST_F(SocketGuardTest, RegularFileIsNeverDeleted) {
  std::ofstream(socket_) << "precious";
  absl::StatusOr<std::unique_ptr<SocketGuard>> guard = SocketGuard::Acquire(socket_);
  EXPECT_EQ(guard.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(guard.status().message().find("not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(socket_));
}

}  // namespace
}  // namespace berth::server
