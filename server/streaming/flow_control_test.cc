#include "server/streaming/flow_control.h"

#include "gtest/gtest.h"

namespace berth::streaming::spdy {
namespace {

using Enforcement = FlowController::Enforcement;

FlowController Strict() { return FlowController({.enforcement = Enforcement::kAlways}); }

Settings InitialWindow(uint32_t size) {
  return Settings{.entries = {{static_cast<uint32_t>(SettingId::kInitialWindowSize), size, 0}}};
}

TEST(FlowControllerTest, WindowsStartAt64KiB) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  EXPECT_EQ(flow.send_stream_window(1), 65536);
  EXPECT_EQ(flow.send_session_window(), 65536);
  EXPECT_EQ(flow.receive_stream_window(1), 65536);
  EXPECT_EQ(flow.receive_session_window(), 65536);
  EXPECT_EQ(flow.SendableBytes(1), 65536);
  EXPECT_TRUE(flow.AnnouncementFrames().empty());
}

TEST(FlowControllerTest, StreamsMustBeOpen) {
  FlowController flow = Strict();
  EXPECT_EQ(flow.OpenStream(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(flow.OpenStream(0x80000000).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(flow.OpenStream(1).ok());
  EXPECT_EQ(flow.OpenStream(1).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(flow.SendableBytes(3), 0);
  EXPECT_EQ(flow.OnDataSent(3, 1).code(), absl::StatusCode::kFailedPrecondition);
  flow.CloseStream(1);
  EXPECT_EQ(flow.send_stream_window(1), std::nullopt);
  EXPECT_TRUE(flow.OpenStream(1).ok());  // an id may be tracked again after closing
}

TEST(FlowControllerTest, SendingIsBoundByTheSmallerOfStreamAndSessionWindows) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  ASSERT_TRUE(flow.OpenStream(3).ok());
  ASSERT_TRUE(flow.OnDataSent(1, 40000).ok());
  EXPECT_EQ(flow.SendableBytes(1), 25536);
  EXPECT_EQ(flow.SendableBytes(3), 25536);  // the session window is shared
  ASSERT_TRUE(flow.OnDataSent(3, 25536).ok());
  EXPECT_EQ(flow.SendableBytes(1), 0);
  EXPECT_EQ(flow.SendableBytes(3), 0);
  // More than allowed is the caller's bug; an empty frame (a FIN) is always fine.
  EXPECT_EQ(flow.OnDataSent(1, 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(flow.OnDataSent(1, 0).ok());

  // The peer returns session space: stream 3 still has 40000 of its own.
  ASSERT_TRUE(flow.OnWindowUpdate({0, 50000}).ok());
  EXPECT_EQ(flow.SendableBytes(3), 40000);
  EXPECT_EQ(flow.SendableBytes(1), 25536);
  absl::StatusOr<std::optional<StreamError>> result = flow.OnWindowUpdate({1, 30000});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, std::nullopt);
  EXPECT_EQ(flow.send_stream_window(1), 55536);
  EXPECT_EQ(flow.SendableBytes(1), 50000);  // now the session window is the smaller
}

TEST(FlowControllerTest, WindowUpdateOverflowIsAnError) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  // Up to exactly 2^31-1 is allowed.
  absl::StatusOr<std::optional<StreamError>> result = flow.OnWindowUpdate({1, 0x7fffffff - 65536});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, std::nullopt);
  EXPECT_EQ(flow.send_stream_window(1), 0x7fffffff);
  // One more byte: the stream is reset with FLOW_CONTROL_ERROR, its window unchanged.
  result = flow.OnWindowUpdate({1, 1});
  ASSERT_TRUE(result.ok());
  ASSERT_TRUE(result->has_value());
  EXPECT_EQ((*result)->stream_id, 1u);
  EXPECT_EQ((*result)->status, RstStatus::kFlowControlError);
  EXPECT_EQ(flow.send_stream_window(1), 0x7fffffff);

  // For the session window it is a session error.
  ASSERT_TRUE(flow.OnWindowUpdate({0, 0x7fffffff - 65536}).ok());
  EXPECT_EQ(flow.OnWindowUpdate({0, 1}).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(FlowControllerTest, WindowUpdateDeltaMustBeInRange) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  absl::StatusOr<std::optional<StreamError>> result = flow.OnWindowUpdate({1, 0});
  ASSERT_TRUE(result.ok());
  ASSERT_TRUE(result->has_value());
  EXPECT_EQ((*result)->status, RstStatus::kProtocolError);
  EXPECT_EQ(flow.OnWindowUpdate({0, 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(flow.OnWindowUpdate({0, 0x80000000}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FlowControllerTest, WindowUpdateForAClosedStreamIsIgnored) {
  FlowController flow = Strict();
  absl::StatusOr<std::optional<StreamError>> result = flow.OnWindowUpdate({7, 100});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, std::nullopt);
}

// The spec's own example: 60 KB sent, then the peer sets the initial window to 16 KB.
TEST(FlowControllerTest, InitialWindowSizeChangeCanMakeAWindowNegative) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  ASSERT_TRUE(flow.OnDataSent(1, 60 * 1024).ok());
  absl::StatusOr<std::vector<StreamError>> errors = flow.OnSettings(InitialWindow(16 * 1024));
  ASSERT_TRUE(errors.ok());
  EXPECT_TRUE(errors->empty());
  EXPECT_EQ(flow.send_stream_window(1), -44 * 1024);
  EXPECT_EQ(flow.SendableBytes(1), 0);
  // A WINDOW_UPDATE that leaves it negative still allows nothing...
  ASSERT_TRUE(flow.OnWindowUpdate({1, 40 * 1024}).ok());
  ASSERT_TRUE(flow.OnWindowUpdate({0, 60 * 1024}).ok());
  EXPECT_EQ(flow.SendableBytes(1), 0);
  // ...until it is positive again.
  ASSERT_TRUE(flow.OnWindowUpdate({1, 5 * 1024}).ok());
  EXPECT_EQ(flow.SendableBytes(1), 1024);

  // New streams start at the new size; the session window is not a setting.
  ASSERT_TRUE(flow.OpenStream(3).ok());
  EXPECT_EQ(flow.send_stream_window(3), 16 * 1024);
  EXPECT_EQ(flow.send_session_window(), 64 * 1024);
}

TEST(FlowControllerTest, InitialWindowSizeIncreaseAppliesToOpenStreams) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  ASSERT_TRUE(flow.OpenStream(3).ok());
  ASSERT_TRUE(flow.OnDataSent(1, 1000).ok());
  ASSERT_TRUE(flow.OnSettings(InitialWindow(1 << 20)).ok());
  EXPECT_EQ(flow.send_stream_window(1), (1 << 20) - 1000);
  EXPECT_EQ(flow.send_stream_window(3), 1 << 20);
}

TEST(FlowControllerTest, InitialWindowSizeOverflowResetsOnlyTheStreamsPushedOver) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  ASSERT_TRUE(flow.OpenStream(3).ok());
  ASSERT_TRUE(flow.OpenStream(5).ok());
  ASSERT_TRUE(flow.OnWindowUpdate({3, 0x7fffffff - 65536}).ok());  // 3 at the maximum
  ASSERT_TRUE(flow.OnWindowUpdate({5, 1000}).ok());
  absl::StatusOr<std::vector<StreamError>> errors = flow.OnSettings(InitialWindow(65536 + 1000));
  ASSERT_TRUE(errors.ok()) << errors.status();
  ASSERT_EQ(errors->size(), 1u);
  EXPECT_EQ(errors->at(0).stream_id, 3u);
  EXPECT_EQ(errors->at(0).status, RstStatus::kFlowControlError);
  EXPECT_EQ(flow.send_stream_window(1), 65536 + 1000);
  EXPECT_EQ(flow.send_stream_window(3), 0x7fffffff);
  EXPECT_EQ(flow.send_stream_window(5), 65536 + 2000);

  EXPECT_EQ(flow.OnSettings(InitialWindow(0x80000000)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FlowControllerTest, SettingsWithoutInitialWindowSizeChangeNoWindow) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  Settings settings{.entries = {{static_cast<uint32_t>(SettingId::kMaxConcurrentStreams), 100, 0}}};
  absl::StatusOr<std::vector<StreamError>> errors = flow.OnSettings(settings);
  ASSERT_TRUE(errors.ok());
  EXPECT_TRUE(errors->empty());
  EXPECT_EQ(flow.send_stream_window(1), 65536);
}

TEST(FlowControllerTest, ReceivingChargesStreamAndSession) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  ASSERT_TRUE(flow.OpenStream(3).ok());
  absl::StatusOr<std::optional<StreamError>> result = flow.OnDataReceived(1, 30000);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, std::nullopt);
  EXPECT_EQ(flow.receive_stream_window(1), 65536 - 30000);
  EXPECT_EQ(flow.receive_session_window(), 65536 - 30000);
  // DATA for a stream we do not know still counts against the session.
  ASSERT_TRUE(flow.OnDataReceived(9, 1000).ok());
  EXPECT_EQ(flow.receive_session_window(), 65536 - 31000);

  // Overrunning a stream window (with room in the session's) resets the stream.
  FlowController roomy({.enforcement = Enforcement::kAlways, .receive_session_window = 1 << 20});
  ASSERT_TRUE(roomy.OpenStream(3).ok());
  result = roomy.OnDataReceived(3, 65537);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->has_value());
  EXPECT_EQ((*result)->stream_id, 3u);
  EXPECT_EQ((*result)->status, RstStatus::kFlowControlError);
}

TEST(FlowControllerTest, OverrunningTheSessionWindowIsASessionError) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  ASSERT_TRUE(flow.OpenStream(3).ok());
  ASSERT_TRUE(flow.OnDataReceived(1, 40000).ok());
  EXPECT_EQ(flow.OnDataReceived(3, 30000).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(FlowControllerTest, WindowUpdatesAreBatchedAtHalfTheWindow) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  ASSERT_TRUE(flow.OnDataReceived(1, 65536).ok());
  EXPECT_TRUE(flow.OnDataConsumed(1, 10000).empty());
  EXPECT_TRUE(flow.OnDataConsumed(1, 20000).empty());
  std::vector<WindowUpdate> updates = flow.OnDataConsumed(1, 2768);  // 32768 in all
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_EQ(updates[0], (WindowUpdate{1, 32768}));
  EXPECT_EQ(updates[1], (WindowUpdate{0, 32768}));
  EXPECT_EQ(flow.receive_stream_window(1), 32768);
  EXPECT_EQ(flow.receive_session_window(), 32768);
  updates = flow.OnDataConsumed(1, 32768);
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_EQ(flow.receive_stream_window(1), 65536);
  EXPECT_EQ(flow.receive_session_window(), 65536);
}

TEST(FlowControllerTest, ConsumedDataOfAClosedStreamReturnsOnlySessionSpace) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  ASSERT_TRUE(flow.OnDataReceived(1, 40000).ok());
  flow.CloseStream(1);
  std::vector<WindowUpdate> updates = flow.OnDataConsumed(1, 40000);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0], (WindowUpdate{0, 40000}));
}

TEST(FlowControllerTest, OverCountedConsumptionNeverGrowsAWindowPastItsSize) {
  FlowController flow = Strict();
  ASSERT_TRUE(flow.OpenStream(1).ok());
  ASSERT_TRUE(flow.OnDataReceived(1, 40000).ok());
  std::vector<WindowUpdate> updates = flow.OnDataConsumed(1, 1'000'000);
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_EQ(updates[0], (WindowUpdate{1, 40000}));
  EXPECT_EQ(updates[1], (WindowUpdate{0, 40000}));
  EXPECT_TRUE(flow.OnDataConsumed(1, 1'000'000).empty());
  EXPECT_EQ(flow.receive_stream_window(1), 65536);
}

TEST(FlowControllerTest, LargerReceiveWindowsAreAnnounced) {
  FlowController flow({.enforcement = Enforcement::kAlways,
                       .receive_stream_window = 1 << 20,
                       .receive_session_window = 4 << 20});
  std::vector<Frame> frames = flow.AnnouncementFrames();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(std::get<Settings>(frames[0]).Find(SettingId::kInitialWindowSize), 1u << 20);
  EXPECT_EQ(std::get<WindowUpdate>(frames[1]), (WindowUpdate{0, (4 << 20) - 65536}));
  ASSERT_TRUE(flow.OpenStream(1).ok());
  EXPECT_EQ(flow.receive_stream_window(1), 1 << 20);
  EXPECT_EQ(flow.receive_session_window(), 4 << 20);
  // Batching follows the window size.
  ASSERT_TRUE(flow.OnDataReceived(1, 600000).ok());
  std::vector<WindowUpdate> updates = flow.OnDataConsumed(1, 600000);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0], (WindowUpdate{1, 600000}));

  // Smaller windows are clamped to the spec's default.
  FlowController small({.receive_stream_window = 10, .receive_session_window = 10});
  EXPECT_TRUE(small.AnnouncementFrames().empty());
}

// moby/spdystream, which kubectl, the kubelet and crictl use, neither sends nor honours
// WINDOW_UPDATE: by default the windows are tracked but do not bind until the peer shows
// it does flow control.
TEST(FlowControllerTest, WindowsDoNotBindUntilThePeerParticipates) {
  FlowController flow;
  ASSERT_TRUE(flow.OpenStream(1).ok());
  EXPECT_FALSE(flow.windows_bind());
  EXPECT_EQ(flow.SendableBytes(1), kMaxWindowSize);
  ASSERT_TRUE(flow.OnDataSent(1, 1 << 20).ok());  // 1 MiB of stdout, no WINDOW_UPDATE seen
  EXPECT_EQ(flow.send_stream_window(1), 65536 - (1 << 20));
  // The peer floods stdin past our windows: tolerated.
  absl::StatusOr<std::optional<StreamError>> result = flow.OnDataReceived(1, 1 << 20);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, std::nullopt);
  EXPECT_EQ(flow.SendableBytes(7), 0);  // unknown streams still get nothing

  // A peer that sends SETTINGS (or WINDOW_UPDATE) does flow control: windows bind.
  ASSERT_TRUE(flow.OnSettings(Settings{}).ok());
  EXPECT_TRUE(flow.peer_participates());
  EXPECT_TRUE(flow.windows_bind());
  EXPECT_EQ(flow.SendableBytes(1), 0);

  FlowController other;
  ASSERT_TRUE(other.OpenStream(1).ok());
  ASSERT_TRUE(other.OnWindowUpdate({1, 10}).ok());
  EXPECT_TRUE(other.windows_bind());
  EXPECT_EQ(other.SendableBytes(1), 65536);
}

}  // namespace
}  // namespace berth::streaming::spdy
