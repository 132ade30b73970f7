#include "cli/cri_log.h"

#include <stdio.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace berth::cli {
namespace {

constexpr char kT1[] = "2024-01-02T03:04:05.000000001Z";
constexpr char kT2[] = "2024-01-02T03:04:05.000000002Z";
constexpr char kT3[] = "2024-01-02T03:04:05.000000003Z";

// A CRI record as the shim writes it.
std::string Record(const std::string& time, const std::string& stream, const std::string& tag,
                   const std::string& text) {
  return time + " " + stream + " " + tag + " " + text + "\n";
}
std::string Out(const std::string& text, const std::string& tag = "F") {
  return Record(kT1, "stdout", tag, text);
}

std::vector<LogLine> Parse(const std::string& bytes) {
  CriLogParser parser;
  std::vector<LogLine> lines;
  parser.Feed(bytes, lines);
  return lines;
}

std::vector<std::string> Texts(const std::vector<LogLine>& lines) {
  std::vector<std::string> texts;
  for (const LogLine& line : lines) texts.push_back(line.text);
  return texts;
}

TEST(CriLogParserTest, JoinsEachStreamsPartsWithItsFullRecordWhenStreamsInterleave) {
  std::vector<LogLine> lines = Parse(Record(kT1, "stdout", "P", "hel") +  //
                                     Record(kT2, "stderr", "P", "oo") +   //
                                     Record(kT2, "stdout", "P", "lo ") +  //
                                     Record(kT3, "stderr", "F", "ps") +   //
                                     Record(kT3, "stdout", "F", "world"));
  ASSERT_EQ(lines.size(), 2u);
  // In the order their F records came, each stamped with the time of its first record.
  EXPECT_EQ(lines[0].stream, LogStream::kStderr);
  EXPECT_EQ(lines[0].text, "oops");
  EXPECT_EQ(lines[0].timestamp, kT2);
  EXPECT_TRUE(lines[0].complete);
  EXPECT_EQ(lines[1].stream, LogStream::kStdout);
  EXPECT_EQ(lines[1].text, "hello world");
  EXPECT_EQ(lines[1].timestamp, kT1);
  EXPECT_TRUE(lines[1].complete);
}

TEST(CriLogParserTest, ARecordCutByTheEndOfTheBytesWaitsForTheRest) {
  CriLogParser parser;
  std::vector<LogLine> lines;
  parser.Feed(std::string(kT1) + " stdout F ab", lines);
  EXPECT_TRUE(lines.empty());
  parser.Feed("c\n" + std::string(kT2) + " std", lines);
  parser.Feed("err F x\n", lines);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].text, "abc");
  EXPECT_EQ(lines[1].text, "x");
  EXPECT_EQ(lines[1].stream, LogStream::kStderr);
}

TEST(CriLogParserTest, SkipsLinesThatAreNotRecords) {
  std::vector<LogLine> lines = Parse(
      "not a record\n"
      "garbage\n"
      "\n" +
      std::string(kT1) + " stdin F wrong stream\n" + kT1 + " stdout\n" +
      // The tag is a ':'-separated list; its first item decides.
      Out("kept", "F:extra") + Out("also kept"));
  EXPECT_EQ(Texts(lines), (std::vector<std::string>{"kept", "also kept"}));
}

TEST(CriLogParserTest, EmptyTextIsAnEmptyLineWithOrWithoutItsSpace) {
  std::vector<LogLine> lines =
      Parse(Out("") + std::string(kT1) + " stdout F\n" + Out("", "P") + Out("x"));
  EXPECT_EQ(Texts(lines), (std::vector<std::string>{"", "", "x"}));
}

TEST(CriLogParserTest, FlushHandsOutPartsNoFullRecordEnded) {
  CriLogParser parser;
  std::vector<LogLine> lines;
  parser.Feed(Out("abc", "P") + Record(kT2, "stderr", "P", "def"), lines);
  EXPECT_TRUE(lines.empty());
  parser.Flush(lines);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].text, "abc");
  EXPECT_FALSE(lines[0].complete);
  EXPECT_EQ(lines[1].text, "def");
  EXPECT_FALSE(lines[1].complete);
  lines.clear();
  parser.Flush(lines);
  EXPECT_TRUE(lines.empty());
}

TEST(CriLogParserTest, EndOfFileDropsACutRecordButKeepsParts) {
  CriLogParser parser;
  std::vector<LogLine> lines;
  parser.Feed(Out("ab", "P") + std::string(kT1) + " stdout F cut off", lines);
  parser.EndOfFile();
  parser.Feed(Record(kT2, "stdout", "F", "cd"), lines);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text, "abcd");
  EXPECT_EQ(lines[0].timestamp, kT1);
}

// CriLogFollower over files in a temp dir, printing to strings.
class CriLogFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/cri-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/ctr.log";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static void Append(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::app) << bytes;
  }
  static void Overwrite(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::trunc) << bytes;
  }

  // The whole file printed as `logs` without -f prints it.
  void PrintAll(const std::string& bytes, const LogPrintOptions& options) {
    Overwrite(path_, bytes);
    CriLogFollower log(path_, options, out_, err_);
    ASSERT_TRUE(log.ReadExisting().ok());
    log.Finish();
  }

  std::string dir_, path_;
  std::ostringstream out_, err_;
};

TEST_F(CriLogFollowerTest, APartialRecordAtTheEndIsPrintedWithoutANewline) {
  PrintAll(Out("one") + Out("two", "P"), {});
  EXPECT_EQ(out_.str(), "one\ntwo");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CriLogFollowerTest, StdoutAndStderrGoApartAndTimestampsComeFirst) {
  PrintAll(Record(kT1, "stdout", "P", "hello ") + Record(kT2, "stderr", "F", "oops") +
               Record(kT3, "stdout", "F", "world") + Record(kT3, "stderr", "F", ""),
           {.timestamps = true});
  EXPECT_EQ(out_.str(), std::string(kT1) + " hello world\n");
  EXPECT_EQ(err_.str(), std::string(kT2) + " oops\n" + kT3 + " \n");
}

TEST_F(CriLogFollowerTest, TailCountsLinesNotRecordsAcrossBothStreams) {
  // Lines complete in this order: aaa (3 records), b, dd (stderr, its 2 records
  // around those), cc (2 records), e (a part no F record ends).
  const std::string log = Out("a", "P") + Record(kT2, "stderr", "P", "d") + Out("a", "P") +
                          Out("a") + Out("b") + Record(kT2, "stderr", "F", "d") + Out("c", "P") +
                          Out("c") + Out("e", "P");
  struct Case {
    int64_t tail;
    std::string out, err;
  } cases[] = {{-1, "aaa\nb\ncc\ne", "dd\n"},
               {0, "", ""},
               {1, "e", ""},
               {2, "cc\ne", ""},
               {3, "cc\ne", "dd\n"},
               {4, "b\ncc\ne", "dd\n"},
               {100, "aaa\nb\ncc\ne", "dd\n"}};
  for (const Case& c : cases) {
    out_.str("");
    err_.str("");
    PrintAll(log, {.tail = c.tail});
    EXPECT_EQ(out_.str(), c.out) << "tail " << c.tail;
    EXPECT_EQ(err_.str(), c.err) << "tail " << c.tail;
  }
}

TEST_F(CriLogFollowerTest, AFileNotThereYetIsNotFoundThenFollowedOnceItIs) {
  CriLogFollower log(path_, {}, out_, err_);
  EXPECT_TRUE(absl::IsNotFound(log.ReadExisting()));
  EXPECT_TRUE(log.Poll().ok());
  Append(path_, Out("first"));
  ASSERT_TRUE(log.Poll().ok());
  EXPECT_EQ(out_.str(), "first\n");
}

TEST_F(CriLogFollowerTest, FollowsTheLogAcrossARotation) {
  Append(path_, Out("one"));
  CriLogFollower log(path_, {}, out_, err_);
  ASSERT_TRUE(log.ReadExisting().ok());
  EXPECT_EQ(out_.str(), "one\n");

  // As the kubelet rotates: rename the file away; the writer keeps writing the
  // old file until it is asked to reopen the path.
  const std::string old_path = path_ + ".1";
  ASSERT_EQ(rename(path_.c_str(), old_path.c_str()), 0);
  Append(old_path, Out("two"));
  ASSERT_TRUE(log.Poll().ok());
  EXPECT_EQ(out_.str(), "one\ntwo\n");

  // The last records of the old file: a part, and a record cut off mid-line
  // that can never be finished. Then the new file at the path.
  Append(old_path, Out("thr", "P") + std::string(kT1) + " stdout F cut off");
  Append(path_, Out("ee") + Out("four"));
  ASSERT_TRUE(log.Poll().ok());
  EXPECT_EQ(out_.str(), "one\ntwo\nthree\nfour\n");

  // From now on, the new file only.
  Append(old_path, Out("late"));
  Append(path_, Out("five"));
  ASSERT_TRUE(log.Poll().ok());
  EXPECT_EQ(out_.str(), "one\ntwo\nthree\nfour\nfive\n");
}

TEST_F(CriLogFollowerTest, StartsOverWhenTheFileIsTruncatedInPlace) {
  Append(path_, Out("one") + Out("two"));
  CriLogFollower log(path_, {}, out_, err_);
  ASSERT_TRUE(log.ReadExisting().ok());
  // logrotate's copytruncate: same file, shorter than what was read.
  Overwrite(path_, Out("3"));
  ASSERT_TRUE(log.Poll().ok());
  Append(path_, Out("4"));
  ASSERT_TRUE(log.Poll().ok());
  EXPECT_EQ(out_.str(), "one\ntwo\n3\n4\n");
}

TEST_F(CriLogFollowerTest, FollowReleasesTheTailAndReadsOnceMoreAfterTheEnd) {
  Append(path_, Out("x") + Out("a"));
  CriLogFollower log(path_, {.tail = 1}, out_, err_);
  ASSERT_TRUE(log.ReadExisting().ok());
  EXPECT_EQ(out_.str(), "");  // held back until it is known to be the tail

  // Each call to `ended` is one wait; the writer acts between them.
  int calls = 0;
  absl::Status followed = log.Follow(
      [&]() -> absl::StatusOr<bool> {
        ++calls;
        if (calls == 1) {
          EXPECT_EQ(out_.str(), "a\n");
          Append(path_, Out("b"));
          return false;
        }
        // The writer's last output comes just before it reports its end.
        Append(path_, Out("c") + Out("d", "P"));
        return true;
      },
      std::chrono::milliseconds(0));
  ASSERT_TRUE(followed.ok()) << followed;
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(out_.str(), "a\nb\nc\nd");
}

TEST_F(CriLogFollowerTest, FollowStopsAtTheFirstErrorOfEnded) {
  Append(path_, Out("a"));
  CriLogFollower log(path_, {}, out_, err_);
  ASSERT_TRUE(log.ReadExisting().ok());
  absl::Status followed =
      log.Follow([]() -> absl::StatusOr<bool> { return absl::UnavailableError("gone"); },
                 std::chrono::milliseconds(0));
  EXPECT_EQ(followed, absl::UnavailableError("gone"));
  EXPECT_EQ(out_.str(), "a\n");
}

}  // namespace
}  // namespace berth::cli
