#include "server/streaming/remotecommand.h"

#include "gtest/gtest.h"

namespace berth::streaming::remotecommand {
namespace {

// The expected strings are Go's json.Marshal of metav1.Status, built the way the
// kubelet's streaming server builds it around containerd's exit error.

TEST(StatusJsonTest, Success) {
  EXPECT_EQ(SuccessStatusJson(), R"({"metadata":{},"status":"Success"})");
}

TEST(StatusJsonTest, NonZeroExitCode) {
  EXPECT_EQ(NonZeroExitStatusJson(3, {"sh", "-c", "exit 3"}),
            R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero )"
            R"(exit code: error executing command [sh -c exit 3], exit code 3","reason":)"
            R"("NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}})");
  EXPECT_EQ(NonZeroExitMessage(3, {"sh", "-c", "exit 3"}),
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], "
            "exit code 3");
}

TEST(StatusJsonTest, EscapesLikeGo) {
  // Quotes, HTML characters, a tab, U+2028 and an invalid UTF-8 byte.
  std::string json = NonZeroExitStatusJson(
      255, {"sh", "-c", "test -f \"/x\" && echo <a> > /dev/null\u2028\xff", "tab\there"});
  EXPECT_EQ(json,
            R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero )"
            R"(exit code: error executing command [sh -c test -f \"/x\" \u0026\u0026 echo )"
            R"(\u003ca\u003e \u003e /dev/null\u2028\ufffd tab\there], exit code 255",)"
            R"("reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode",)"
            R"("message":"255"}]}})");
}

TEST(StatusJsonTest, InternalError) {
  EXPECT_EQ(
      InternalErrorStatusJson("error executing command in container: container \"abc\" not found"),
      R"({"metadata":{},"status":"Failure","message":"Internal error occurred: error )"
      R"(executing command in container: container \"abc\" not found","reason":)"
      R"("InternalError","details":{"causes":[{"message":"error executing command in )"
      R"(container: container \"abc\" not found"}]},"code":500})");
}

TEST(ExitCodeFromStatusJsonTest, ReadsWhatTheServerWrites) {
  EXPECT_EQ(ExitCodeFromStatusJson(SuccessStatusJson()).value(), 0);
  EXPECT_EQ(ExitCodeFromStatusJson(NonZeroExitStatusJson(3, {"false"})).value(), 3);
  EXPECT_EQ(ExitCodeFromStatusJson(NonZeroExitStatusJson(255, {"x"})).value(), 255);
  absl::StatusOr<int> internal = ExitCodeFromStatusJson(InternalErrorStatusJson("boom"));
  EXPECT_EQ(internal.status().code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(internal.status().message(), "Internal error occurred: boom");
}

TEST(ExitCodeFromStatusJsonTest, RefusesWhatClientGoRefuses) {
  const char* invalid[] = {
      "",
      "not json",
      "[]",
      R"({"status":"Weird"})",
      R"({"status":"Failure","reason":"NonZeroExitCode"})",
      R"({"status":"Failure","reason":"NonZeroExitCode","details":{}})",
      R"({"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"256"}]}})",
      R"({"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"-1"}]}})",
      R"({"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":""}]}})",
  };
  for (const char* json : invalid) {
    EXPECT_EQ(ExitCodeFromStatusJson(json).status().code(), absl::StatusCode::kInvalidArgument)
        << json;
  }
  // Other causes are skipped; leading zeros parse.
  EXPECT_EQ(ExitCodeFromStatusJson(
                R"({"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[)"
                R"({"reason":"Other","message":"x"},{"reason":"ExitCode","message":"007"}]}})")
                .value(),
            7);
}

TEST(TerminalSizeTest, EncodesLikeClientGo) {
  EXPECT_EQ(EncodeTerminalSize({80, 24}), "{\"Width\":80,\"Height\":24}\n");
}

TEST(TerminalSizeTest, DecodesAStreamSplitAnywhere) {
  std::string stream = EncodeTerminalSize({80, 24}) + EncodeTerminalSize({120, 40}) +
                       R"(  {"width": 1, "HEIGHT": 2, "extra": {"nested": "}"}})" + "\r\n";
  for (size_t chunk : {stream.size(), size_t{1}, size_t{5}}) {
    TerminalSizeDecoder decoder;
    std::vector<TerminalSize> sizes;
    for (size_t at = 0; at < stream.size(); at += chunk) {
      absl::StatusOr<std::vector<TerminalSize>> more = decoder.Feed(stream.substr(at, chunk));
      ASSERT_TRUE(more.ok()) << more.status();
      sizes.insert(sizes.end(), more->begin(), more->end());
    }
    EXPECT_EQ(sizes, (std::vector<TerminalSize>{{80, 24}, {120, 40}, {1, 2}})) << chunk;
  }
}

TEST(TerminalSizeTest, MissingAndNullFieldsAreZero) {
  TerminalSizeDecoder decoder;
  absl::StatusOr<std::vector<TerminalSize>> sizes =
      decoder.Feed(R"({"Width":100}{"Width":null,"Height":5}{})");
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ(*sizes, (std::vector<TerminalSize>{{100, 0}, {0, 5}, {0, 0}}));
}

TEST(TerminalSizeTest, RefusesBadInputAndStaysFailed) {
  const char* invalid[] = {
      "[80, 24]",          "80",
      R"({"Width":-1})",   R"({"Width":65536})",
      R"({"Width":80.5})", R"({"Width":"80"})",
      R"({"Width":80,})",
  };
  for (const char* input : invalid) {
    TerminalSizeDecoder decoder;
    EXPECT_EQ(decoder.Feed(input).status().code(), absl::StatusCode::kInvalidArgument) << input;
    EXPECT_EQ(decoder.Feed(EncodeTerminalSize({1, 1})).status().code(),
              absl::StatusCode::kInvalidArgument)
        << input;
  }
  // An object that never ends cannot make the decoder buffer without bound.
  TerminalSizeDecoder decoder;
  EXPECT_TRUE(decoder.Feed("{\"Width\":\"").ok());
  absl::Status status;
  for (int i = 0; i < 10 && status.ok(); ++i)
    status = decoder.Feed(std::string(1000, 'x')).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth::streaming::remotecommand
