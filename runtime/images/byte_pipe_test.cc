#include "runtime/images/byte_pipe.h"

#include <thread>

#include "gtest/gtest.h"

namespace berth::images {
namespace {

std::string Drain(BytePipe& pipe, absl::Status* end) {
  std::string out;
  while (true) {
    absl::StatusOr<std::string_view> chunk = pipe.Read();
    if (!chunk.ok()) {
      *end = chunk.status();
      return out;
    }
    if (chunk->empty()) {
      *end = absl::OkStatus();
      return out;
    }
    out.append(*chunk);
  }
}

TEST(BytePipeTest, CarriesBytesInOrderAcrossThreadsWithBackpressure) {
  BytePipe pipe(/*capacity=*/16);
  std::string expected;
  for (int i = 0; i < 1000; ++i) expected += std::to_string(i) + ",";
  std::thread producer([&] {
    for (size_t i = 0; i < expected.size(); i += 7) {
      ASSERT_TRUE(pipe.Write(std::string_view(expected).substr(i, 7)).ok());
    }
    pipe.Close(absl::OkStatus());
  });
  absl::Status end;
  EXPECT_EQ(Drain(pipe, &end), expected);
  EXPECT_TRUE(end.ok());
  producer.join();
}

TEST(BytePipeTest, ProducerErrorReachesTheReaderAfterTheData) {
  BytePipe pipe(1024);
  ASSERT_TRUE(pipe.Write("abc").ok());
  pipe.Close(absl::DataLossError("digest mismatch"));
  absl::Status end;
  EXPECT_EQ(Drain(pipe, &end), "abc");
  EXPECT_EQ(end.code(), absl::StatusCode::kDataLoss);
}

TEST(BytePipeTest, ReaderAbortUnblocksAndFailsTheProducer) {
  BytePipe pipe(/*capacity=*/4);
  std::thread producer([&] {
    absl::Status s;
    for (int i = 0; i < 100 && s.ok(); ++i) s = pipe.Write("xxxx");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  });
  ASSERT_TRUE(pipe.Read().ok());
  pipe.Abort(absl::InvalidArgumentError("hostile layer"));
  producer.join();
}

}  // namespace
}  // namespace berth::images
