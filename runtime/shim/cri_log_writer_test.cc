#include "runtime/shim/cri_log_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace berth::shim {
namespace {

// 2024-01-02T03:04:05.123456789Z
int64_t FixedClock() { return 1704164645123456789LL; }
constexpr char kTs[] = "2024-01-02T03:04:05.123456789Z";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class CriLogWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    dir_ = std::string(tmp != nullptr ? tmp : "/tmp") + "/crilog-XXXXXX";
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
    path_ = dir_ + "/0.log";
  }
  void TearDown() override { ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0); }

  std::string Record(const char* stream, const char* tag, const std::string& text) {
    return std::string(kTs) + " " + stream + " " + tag + " " + text + "\n";
  }

  std::string dir_;
  std::string path_;
};

TEST_F(CriLogWriterTest, OneRecordPerLineWithStreamAndTag) {
  CriLogWriter log(path_, kDefaultMaxLogLine, FixedClock);
  std::string error;
  ASSERT_TRUE(log.Open(&error)) << error;
  log.Write(CriStream::kStdout, "hello\nwor", 9);
  log.Write(CriStream::kStderr, "oops\n", 5);
  log.Write(CriStream::kStdout, "ld\n\n", 4);
  log.Finish(CriStream::kStdout);
  log.Finish(CriStream::kStderr);
  EXPECT_EQ(ReadFile(path_), Record("stdout", "F", "hello") + Record("stderr", "F", "oops") +
                                 Record("stdout", "F", "world") + Record("stdout", "F", ""));
}

TEST_F(CriLogWriterTest, LongLinesAreSplitIntoPartials) {
  CriLogWriter log(path_, kDefaultMaxLogLine, FixedClock);
  std::string error;
  ASSERT_TRUE(log.Open(&error)) << error;
  std::string line40k(40 * 1024, 'x');
  for (size_t i = 0; i < line40k.size(); ++i) line40k[i] = 'a' + i % 26;
  std::string input = line40k + "\n";
  // Fed in odd chunks, as a pipe delivers it.
  for (size_t off = 0; off < input.size(); off += 4093) {
    log.Write(CriStream::kStdout, input.data() + off, std::min<size_t>(4093, input.size() - off));
  }
  EXPECT_EQ(ReadFile(path_), Record("stdout", "P", line40k.substr(0, 16384)) +
                                 Record("stdout", "P", line40k.substr(16384, 16384)) +
                                 Record("stdout", "F", line40k.substr(32768)));
}

TEST_F(CriLogWriterTest, SplitBoundaries) {
  CriLogWriter log(path_, 8, FixedClock);
  std::string error;
  ASSERT_TRUE(log.Open(&error)) << error;
  std::string input =
      "12345678\n"
      "123456789\n"
      "1234567812345678\n";
  log.Write(CriStream::kStdout, input.data(), input.size());
  EXPECT_EQ(ReadFile(path_), Record("stdout", "F", "12345678") + Record("stdout", "P", "12345678") +
                                 Record("stdout", "F", "9") + Record("stdout", "P", "12345678") +
                                 Record("stdout", "F", "12345678"));
}

TEST_F(CriLogWriterTest, UnterminatedLastLineIsPartial) {
  CriLogWriter log(path_, 8, FixedClock);
  std::string error;
  ASSERT_TRUE(log.Open(&error)) << error;
  log.Write(CriStream::kStdout, "done\nno newline", 15);
  log.Write(CriStream::kStderr, "e", 1);
  log.Finish(CriStream::kStdout);
  log.Finish(CriStream::kStderr);
  log.Finish(CriStream::kStderr);  // twice is harmless
  EXPECT_EQ(ReadFile(path_), Record("stdout", "F", "done") + Record("stdout", "P", "no newli") +
                                 Record("stdout", "P", "ne") + Record("stderr", "P", "e"));
}

TEST_F(CriLogWriterTest, CarriageReturnNewlineIsALineEnd) {
  CriLogWriter log(path_, 4, FixedClock);
  std::string error;
  ASSERT_TRUE(log.Open(&error)) << error;
  // "\r\n" ends a line (a tty writes it); a lone "\r" is text. A "\r" that arrives in one
  // read and its "\n" in the next is still one line end, even at the split boundary.
  log.Write(CriStream::kStdout, "tty\r\na\rb\n", 9);
  log.Write(CriStream::kStdout, "abcd\r", 5);
  log.Write(CriStream::kStdout, "\n", 1);
  log.Write(CriStream::kStdout, "abcd\r", 5);
  log.Write(CriStream::kStdout, "x\n", 2);
  log.Write(CriStream::kStdout, "end\r", 4);
  log.Finish(CriStream::kStdout);
  EXPECT_EQ(ReadFile(path_), Record("stdout", "F", "tty") + Record("stdout", "F", "a\rb") +
                                 Record("stdout", "F", "abcd") + Record("stdout", "P", "abcd") +
                                 Record("stdout", "F", "\rx") + Record("stdout", "P", "end\r"));
}

// Whatever the chunking of the pipe reads, the records are the same.
TEST_F(CriLogWriterTest, ChunkingDoesNotMatter) {
  std::mt19937 rng(42);
  std::string input;
  const char alphabet[] = "ab\r\n\n";
  for (int i = 0; i < 20000; ++i) input += alphabet[rng() % 5];
  input += std::string(100, 'z');  // an unterminated tail
  std::string whole_path = dir_ + "/whole.log";
  {
    CriLogWriter whole(whole_path, 7, FixedClock);
    std::string error;
    ASSERT_TRUE(whole.Open(&error));
    whole.Write(CriStream::kStdout, input.data(), input.size());
    whole.Finish(CriStream::kStdout);
  }
  for (int round = 0; round < 5; ++round) {
    std::string path = dir_ + "/chunked" + std::to_string(round) + ".log";
    CriLogWriter chunked(path, 7, FixedClock);
    std::string error;
    ASSERT_TRUE(chunked.Open(&error));
    for (size_t off = 0; off < input.size();) {
      size_t n = std::min<size_t>(1 + rng() % 40, input.size() - off);
      chunked.Write(CriStream::kStdout, input.data() + off, n);
      off += n;
    }
    chunked.Finish(CriStream::kStdout);
    ASSERT_EQ(ReadFile(path), ReadFile(whole_path)) << "round " << round;
  }
}

TEST_F(CriLogWriterTest, ReopenSwitchesToANewFile) {
  CriLogWriter log(path_, kDefaultMaxLogLine, FixedClock);
  std::string error;
  ASSERT_TRUE(log.Open(&error)) << error;
  log.Write(CriStream::kStdout, "before\nhalf", 11);
  ASSERT_EQ(rename(path_.c_str(), (path_ + ".1").c_str()), 0);  // kubelet rotates
  ASSERT_TRUE(log.Reopen(&error)) << error;
  log.Write(CriStream::kStdout, " line\nafter\n", 12);
  EXPECT_EQ(ReadFile(path_ + ".1"), Record("stdout", "F", "before"));
  EXPECT_EQ(ReadFile(path_), Record("stdout", "F", "half line") + Record("stdout", "F", "after"));

  // A failed reopen keeps the old file.
  std::string dir2 = dir_ + "/gone";
  ASSERT_EQ(mkdir(dir2.c_str(), 0755), 0);
  CriLogWriter moved(dir2 + "/0.log", kDefaultMaxLogLine, FixedClock);
  ASSERT_TRUE(moved.Open(&error)) << error;
  ASSERT_EQ(rename(dir2.c_str(), (dir_ + "/elsewhere").c_str()), 0);
  EXPECT_FALSE(moved.Reopen(&error));
  EXPECT_NE(error.find("open log " + dir2 + "/0.log: "), std::string::npos) << error;
  moved.Write(CriStream::kStderr, "still\n", 6);
  EXPECT_EQ(ReadFile(dir_ + "/elsewhere/0.log"), Record("stderr", "F", "still"));
}

TEST_F(CriLogWriterTest, OpenFailsWithTheReason) {
  CriLogWriter log(dir_ + "/missing/0.log");
  std::string error;
  EXPECT_FALSE(log.Open(&error));
  EXPECT_EQ(error, "open log " + dir_ + "/missing/0.log: No such file or directory");
}

TEST_F(CriLogWriterTest, NoPathDiscards) {
  CriLogWriter log("");
  std::string error;
  EXPECT_TRUE(log.Open(&error));
  log.Write(CriStream::kStdout, "x\n", 2);
  log.Finish(CriStream::kStdout);
}

TEST(CriTimestampTest, MatchesGoRfc3339Nano) {
  EXPECT_EQ(CriLogWriter::FormatTimestamp(1704164645123456789LL), "2024-01-02T03:04:05.123456789Z");
  EXPECT_EQ(CriLogWriter::FormatTimestamp(1704164645100000000LL), "2024-01-02T03:04:05.1Z");
  EXPECT_EQ(CriLogWriter::FormatTimestamp(1704164645000000000LL), "2024-01-02T03:04:05Z");
  EXPECT_EQ(CriLogWriter::FormatTimestamp(1704164645000000010LL), "2024-01-02T03:04:05.00000001Z");
}

}  // namespace
}  // namespace berth::shim
