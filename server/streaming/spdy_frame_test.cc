#include "server/streaming/spdy_frame.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace berth::streaming::spdy {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

// One connection's worth of frames written by moby/spdystream's Framer, the SPDY code of
// kubectl, the kubelet and crictl (Go's deflate, not zlib), in this order:
//   SYN_STREAM 1 {streamtype: error}; SYN_STREAM 3 FIN assoc 1 pri 7 {x-multi: [a, b]};
//   SYN_REPLY 1 {}; HEADERS 1 FIN {port: 8080}; DATA 1 FIN "hello";
//   SETTINGS {MAX_CONCURRENT_STREAMS=100 persist, INITIAL_WINDOW_SIZE=1048576};
//   PING 2; WINDOW_UPDATE 1 +4096; RST_STREAM 3 CANCEL; GOAWAY 3 OK.
const std::string kSpdystreamSynStream1 =
    Bytes({0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x29, 0x00, 0x00, 0x00, 0x01, 0x00,
           0x00, 0x00, 0x00, 0x00, 0x00, 0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x62, 0x60,
           0x60, 0x60, 0x04, 0xa7, 0xb3, 0x92, 0xa2, 0xd4, 0xc4, 0x5c, 0x68, 0x51, 0xc2,
           0x9a, 0x0a, 0x0a, 0x68, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff});
const std::string kSpdystreamSynStream3 =
    Bytes({0x80, 0x03, 0x00, 0x01, 0x01, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x03, 0x00,
           0x00, 0x00, 0x01, 0xe0, 0x00, 0x82, 0x4a, 0xb1, 0x57, 0xe8, 0xe6, 0x96, 0xe6,
           0x94, 0x64, 0x82, 0x0b, 0x4c, 0x86, 0x24, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff});
const std::string kSpdystreamSynReply1 =
    Bytes({0x80, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00,
           0x01, 0x62, 0x60, 0x60, 0x60, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff});
const std::string kSpdystreamHeaders1 = Bytes(
    {0x80, 0x03, 0x00, 0x08, 0x01, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x01, 0x82, 0xca, 0xb0,
     0x14, 0xe4, 0x17, 0x81, 0xf3, 0x87, 0x85, 0x81, 0x85, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff});
const std::string kSpdystreamData1 =
    Bytes({0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f});
const std::string kSpdystreamSettings =
    Bytes({0x80, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00,
           0x00, 0x04, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x07, 0x00, 0x10, 0x00, 0x00});
const std::string kSpdystreamPing =
    Bytes({0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02});
const std::string kSpdystreamWindowUpdate = Bytes({0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08,
                                                   0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x10, 0x00});
const std::string kSpdystreamRstStream = Bytes({0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08,
                                                0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x05});
const std::string kSpdystreamGoAway = Bytes({0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08, 0x00,
                                             0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00});

std::string SpdystreamConnection() {
  return kSpdystreamSynStream1 + kSpdystreamSynStream3 + kSpdystreamSynReply1 +
         kSpdystreamHeaders1 + kSpdystreamData1 + kSpdystreamSettings + kSpdystreamPing +
         kSpdystreamWindowUpdate + kSpdystreamRstStream + kSpdystreamGoAway;
}

std::vector<ReceivedFrame> SpdystreamFrames() {
  SynStream syn3{.stream_id = 3, .associated_stream_id = 1, .priority = 7, .fin = true};
  syn3.headers.Add("x-multi", "a");
  syn3.headers.Add("x-multi", "b");
  return {
      SynStream{.stream_id = 1, .headers = {{"streamtype", "error"}}},
      syn3,
      SynReply{.stream_id = 1},
      Headers{.stream_id = 1, .fin = true, .headers = {{"port", "8080"}}},
      Data{.stream_id = 1, .fin = true, .data = "hello"},
      Settings{.entries = {{static_cast<uint32_t>(SettingId::kMaxConcurrentStreams), 100,
                            kSettingPersistValue},
                           {static_cast<uint32_t>(SettingId::kInitialWindowSize), 1048576, 0}}},
      Ping{2},
      WindowUpdate{1, 4096},
      RstStream{3, RstStatus::kCancel},
      GoAway{3, GoAwayStatus::kOk},
  };
}

// Feeds `bytes` in chunks of `chunk` bytes, collecting frames until the decoder wants more.
absl::StatusOr<std::vector<ReceivedFrame>> DecodeAll(FrameDecoder& decoder, std::string_view bytes,
                                                     size_t chunk) {
  std::vector<ReceivedFrame> frames;
  for (size_t at = 0; at < bytes.size(); at += chunk) {
    decoder.Feed(bytes.substr(at, chunk));
    while (true) {
      absl::StatusOr<std::optional<ReceivedFrame>> frame = decoder.Next();
      if (!frame.ok()) return frame.status();
      if (!frame->has_value()) break;
      frames.push_back(**std::move(frame));
    }
  }
  return frames;
}

absl::StatusOr<std::vector<ReceivedFrame>> DecodeAll(std::string_view bytes, size_t chunk = 1 << 30,
                                                     FrameDecoder::Options options = {}) {
  FrameDecoder decoder(options);
  return DecodeAll(decoder, bytes, chunk);
}

absl::Status DecodeError(std::string_view bytes, FrameDecoder::Options options = {}) {
  return DecodeAll(bytes, 1 << 30, options).status();
}

TEST(FrameDecoderTest, DecodesWhatSpdystreamWrites) {
  const std::string connection = SpdystreamConnection();
  const std::vector<ReceivedFrame> expected = SpdystreamFrames();
  for (size_t chunk : {connection.size(), size_t{1}, size_t{3}, size_t{7}, size_t{64}}) {
    absl::StatusOr<std::vector<ReceivedFrame>> frames = DecodeAll(connection, chunk);
    ASSERT_TRUE(frames.ok()) << "chunk " << chunk << ": " << frames.status();
    ASSERT_EQ(frames->size(), expected.size()) << "chunk " << chunk;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_TRUE((*frames)[i] == expected[i]) << "chunk " << chunk << ", frame " << i;
    }
  }
}

TEST(FrameEncoderTest, WritesTheSameBytesAsSpdystreamForFramesWithoutHeaders) {
  FrameEncoder encoder;
  auto encode = [&](const Frame& frame) {
    absl::StatusOr<std::string> bytes = encoder.Encode(frame);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return bytes.value_or("");
  };
  EXPECT_EQ(encode(Data{.stream_id = 1, .fin = true, .data = "hello"}), kSpdystreamData1);
  EXPECT_EQ(encode(Settings{
                .entries = {{static_cast<uint32_t>(SettingId::kMaxConcurrentStreams), 100,
                             kSettingPersistValue},
                            {static_cast<uint32_t>(SettingId::kInitialWindowSize), 1048576, 0}}}),
            kSpdystreamSettings);
  EXPECT_EQ(encode(Ping{2}), kSpdystreamPing);
  EXPECT_EQ(encode(WindowUpdate{1, 4096}), kSpdystreamWindowUpdate);
  EXPECT_EQ(encode(RstStream{3, RstStatus::kCancel}), kSpdystreamRstStream);
  EXPECT_EQ(encode(GoAway{3, GoAwayStatus::kOk}), kSpdystreamGoAway);
}

TEST(FrameEncoderTest, WritesHeaderFramesWithTheSpecLayout) {
  FrameEncoder encoder;
  absl::StatusOr<std::string> syn = encoder.Encode(SynStream{.stream_id = 5,
                                                             .associated_stream_id = 0,
                                                             .priority = 2,
                                                             .fin = true,
                                                             .unidirectional = true,
                                                             .headers = {{"streamtype", "stdin"}}});
  ASSERT_TRUE(syn.ok()) << syn.status();
  ASSERT_GT(syn->size(), 18u);
  // Control bit + version 3, type 1; flags FIN|UNIDIRECTIONAL; the length counts the 10
  // fixed bytes and the compressed block.
  EXPECT_EQ(syn->substr(0, 5), Bytes({0x80, 0x03, 0x00, 0x01, 0x03}));
  uint32_t length = static_cast<uint8_t>((*syn)[5]) << 16 | static_cast<uint8_t>((*syn)[6]) << 8 |
                    static_cast<uint8_t>((*syn)[7]);
  EXPECT_EQ(length, syn->size() - 8);
  EXPECT_EQ(syn->substr(8, 10), Bytes({0, 0, 0, 5, 0, 0, 0, 0, 0x40, 0x00}));  // priority 2 << 5
  // The block is the zlib stream's first: zlib header with the SPDY/3 dictionary id.
  EXPECT_EQ(syn->substr(20, 4), Bytes({0xe3, 0xc6, 0xa7, 0xc2}));

  absl::StatusOr<std::string> reply = encoder.Encode(SynReply{.stream_id = 5});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->substr(0, 5), Bytes({0x80, 0x03, 0x00, 0x02, 0x00}));
  EXPECT_EQ(reply->substr(8, 4), Bytes({0, 0, 0, 5}));

  absl::StatusOr<std::string> headers = encoder.Encode(Headers{.stream_id = 5, .fin = true});
  ASSERT_TRUE(headers.ok());
  EXPECT_EQ(headers->substr(0, 5), Bytes({0x80, 0x03, 0x00, 0x08, 0x01}));

  FrameDecoder decoder;
  absl::StatusOr<std::vector<ReceivedFrame>> frames =
      DecodeAll(decoder, *syn + *reply + *headers, 1);
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->size(), 3u);
  const auto& decoded = std::get<SynStream>((*frames)[0]);
  EXPECT_EQ(decoded.priority, 2);
  EXPECT_TRUE(decoded.fin);
  EXPECT_TRUE(decoded.unidirectional);
  EXPECT_EQ(decoded.headers.Get("streamtype"), "stdin");
}

TEST(FrameCodecTest, RoundTripsEveryFrameTypeInAnyChunking) {
  std::vector<Frame> frames = {
      SynStream{.stream_id = 1, .priority = 0, .headers = {{"streamtype", "error"}}},
      SynStream{.stream_id = 3, .headers = {{"streamtype", "stdout"}}},
      SynReply{.stream_id = 1, .headers = {{"status", "200"}}},
      Data{.stream_id = 3, .data = std::string(70000, 'x')},
      Data{.stream_id = 3, .fin = true},
      Headers{.stream_id = 1, .headers = {{"x", "y"}}},
      Settings{.clear_settings = true,
               .entries = {{static_cast<uint32_t>(SettingId::kInitialWindowSize), 1 << 20, 0}}},
      Settings{},
      Ping{1},
      WindowUpdate{0, 0x7fffffff},
      RstStream{1, RstStatus::kFlowControlError},
      GoAway{3, GoAwayStatus::kProtocolError},
  };
  FrameEncoder encoder;
  std::string wire;
  for (const Frame& frame : frames) {
    ASSERT_TRUE(encoder.EncodeTo(frame, wire).ok());
  }
  std::mt19937 random(7);
  for (int round = 0; round < 20; ++round) {
    FrameDecoder decoder;
    std::vector<ReceivedFrame> decoded;
    size_t at = 0;
    while (at < wire.size()) {
      size_t chunk = std::min<size_t>(wire.size() - at, 1 + random() % 5000);
      decoder.Feed(std::string_view(wire).substr(at, chunk));
      at += chunk;
      while (true) {
        absl::StatusOr<std::optional<ReceivedFrame>> frame = decoder.Next();
        ASSERT_TRUE(frame.ok()) << frame.status();
        if (!frame->has_value()) break;
        decoded.push_back(**std::move(frame));
      }
    }
    EXPECT_EQ(decoder.buffered(), 0u);
    ASSERT_EQ(decoded.size(), frames.size());
    for (size_t i = 0; i < frames.size(); ++i) {
      std::visit([&](const auto& sent) { EXPECT_TRUE(decoded[i] == ReceivedFrame(sent)) << i; },
                 frames[i]);
    }
  }
}

TEST(FrameDecoderTest, ReservedBitsInStreamIdsAreMasked) {
  std::string window_update = Bytes({0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08, 0x80, 0x00,
                                     0x00, 0x05, 0x80, 0x00, 0x00, 0x10});
  absl::StatusOr<std::vector<ReceivedFrame>> frames = DecodeAll(window_update);
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_TRUE(frames->at(0) == ReceivedFrame(WindowUpdate{5, 16}));
}

TEST(FrameDecoderTest, RefusesOtherVersions) {
  std::string ping_v2 = kSpdystreamPing;
  ping_v2[1] = 0x02;
  absl::Status status = DecodeError(ping_v2);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("version 2"), absl::string_view::npos) << status;
}

TEST(FrameDecoderTest, RefusesAnOversizedFrameBeforeItsPayloadArrives) {
  FrameDecoder decoder({.max_frame_payload = 1024});
  // Only the 8-byte header of a 1 MiB DATA frame.
  decoder.Feed(Bytes({0x00, 0x00, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00}));
  absl::StatusOr<std::optional<ReceivedFrame>> frame = decoder.Next();
  EXPECT_EQ(frame.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(decoder.buffered(), 0u);
  // Sticky: the session is over.
  decoder.Feed(kSpdystreamPing);
  EXPECT_EQ(decoder.Next().status().code(), absl::StatusCode::kResourceExhausted);

  // Exactly at the limit is fine.
  FrameDecoder exact({.max_frame_payload = 5});
  exact.Feed(kSpdystreamData1);
  absl::StatusOr<std::optional<ReceivedFrame>> data = exact.Next();
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(data->has_value());

  // Control frames too.
  FrameDecoder small({.max_frame_payload = 16});
  small.Feed(kSpdystreamSynStream1);
  EXPECT_EQ(small.Next().status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(FrameDecoderTest, WaitsForWholeFrames) {
  FrameDecoder decoder;
  std::string ping = kSpdystreamPing;
  decoder.Feed(ping.substr(0, 7));
  absl::StatusOr<std::optional<ReceivedFrame>> frame = decoder.Next();
  ASSERT_TRUE(frame.ok());
  EXPECT_FALSE(frame->has_value());
  decoder.Feed(ping.substr(7, 4));
  frame = decoder.Next();
  ASSERT_TRUE(frame.ok());
  EXPECT_FALSE(frame->has_value());
  EXPECT_EQ(decoder.buffered(), 11u);
  decoder.Feed(ping.substr(11));
  frame = decoder.Next();
  ASSERT_TRUE(frame.ok());
  ASSERT_TRUE(frame->has_value());
  EXPECT_TRUE(**frame == ReceivedFrame(Ping{2}));
}

TEST(FrameDecoderTest, RefusesWrongControlFrameLengths) {
  struct Case {
    const char* name;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"SYN_STREAM shorter than 10",
       Bytes({0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0})},
      {"SYN_REPLY shorter than 4",
       Bytes({0x80, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0, 0, 1})},
      {"HEADERS shorter than 4", Bytes({0x80, 0x03, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00})},
      {"RST_STREAM of 4", Bytes({0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1})},
      {"PING of 8",
       Bytes({0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0, 1})},
      // SPDY/2's 4-byte GOAWAY.
      {"GOAWAY of 4", Bytes({0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1})},
      {"WINDOW_UPDATE of 4", Bytes({0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1})},
      {"SETTINGS shorter than 4", Bytes({0x80, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02, 0, 0})},
      {"SETTINGS claiming 2^32-1 entries",
       Bytes({0x80, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x0c, 0xff, 0xff,
              0xff, 0xff, 0,    0,    0,    7,    0,    0,    0,    1})},
      {"SETTINGS with a partial entry",
       Bytes({0x80, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0, 7})},
  };
  for (const Case& c : cases) {
    absl::Status status = DecodeError(c.bytes);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name << ": " << status;
  }
}

TEST(FrameDecoderTest, RefusesStreamZeroAndStatusZero) {
  EXPECT_EQ(DecodeError(Bytes({0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})).code(),
            absl::StatusCode::kInvalidArgument);  // DATA on stream 0
  EXPECT_EQ(
      DecodeError(Bytes({0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 1}))
          .code(),
      absl::StatusCode::kInvalidArgument);  // RST_STREAM on stream 0
  EXPECT_EQ(
      DecodeError(Bytes({0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0, 0}))
          .code(),
      absl::StatusCode::kInvalidArgument);  // RST_STREAM status 0

  // SYN_STREAM on stream 0, with a valid block so only the id is wrong.
  FrameEncoder encoder;
  std::string syn = *encoder.Encode(SynStream{.stream_id = 1});
  syn[11] = 0;
  EXPECT_EQ(DecodeError(syn).code(), absl::StatusCode::kInvalidArgument);
}

TEST(FrameDecoderTest, SkipsUnknownControlFrames) {
  // SPDY/3's retired CREDENTIAL (type 10), then an undefined type 0xB, then a PING.
  std::string credential = Bytes({0x80, 0x03, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5});
  std::string unknown = Bytes({0x80, 0x03, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x02, 0xd4, 0x74});
  absl::StatusOr<std::vector<ReceivedFrame>> frames =
      DecodeAll(credential + unknown + kSpdystreamPing, 1);
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->size(), 1u);
  EXPECT_TRUE(frames->at(0) == ReceivedFrame(Ping{2}));
}

TEST(FrameDecoderTest, KeepsTheFirstValueOfARepeatedSetting) {
  std::string settings = Bytes({0x80, 0x03, 0x00, 0x04, 0x01, 0x00, 0x00, 0x14,  // CLEAR flag
                                0,    0,    0,    2,                             // two entries
                                0,    0,    0,    7,    0,    0,    0x10, 0,     // 4096
                                0,    0,    0,    7,    0,    0,    0x20, 0});   // 8192
  absl::StatusOr<std::vector<ReceivedFrame>> frames = DecodeAll(settings);
  ASSERT_TRUE(frames.ok()) << frames.status();
  const auto& decoded = std::get<Settings>(frames->at(0));
  EXPECT_TRUE(decoded.clear_settings);
  ASSERT_EQ(decoded.entries.size(), 1u);
  EXPECT_EQ(decoded.Find(SettingId::kInitialWindowSize), 4096u);
  EXPECT_EQ(decoded.Find(SettingId::kMaxConcurrentStreams), std::nullopt);
}

// Builds a SYN_STREAM around an already compressed block.
std::string SynStreamWithBlock(uint32_t stream_id, std::string_view compressed) {
  std::string frame = Bytes({0x80, 0x03, 0x00, 0x01, 0x00});
  size_t length = 10 + compressed.size();
  frame += Bytes({int(length >> 16 & 0xff), int(length >> 8 & 0xff), int(length & 0xff)});
  frame += Bytes({0, 0, 0, int(stream_id), 0, 0, 0, 0, 0, 0});
  frame += compressed;
  return frame;
}

TEST(FrameDecoderTest, InvalidHeadersAreAStreamErrorAndTheSessionGoesOn) {
  HeaderCompressor peer;
  // "Host" is not lowercase: the spec makes that a stream error.
  std::string bad_block = Bytes({0, 0, 0, 1, 0, 0, 0, 4}) + "Host" + Bytes({0, 0, 0, 1}) + "x";
  std::string bad = SynStreamWithBlock(1, *peer.CompressSerialized(bad_block));
  std::string good = SynStreamWithBlock(3, *peer.Compress(HeaderBlock{{"streamtype", "stdout"}}));
  absl::StatusOr<std::vector<ReceivedFrame>> frames = DecodeAll(bad + good);
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->size(), 2u);
  const auto* error = std::get_if<StreamError>(&frames->at(0));
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->stream_id, 1u);
  EXPECT_EQ(error->status, RstStatus::kProtocolError);
  EXPECT_NE(error->message.find("lowercase"), std::string::npos) << error->message;
  // The second block only decodes if the first one went through the inflater.
  EXPECT_EQ(std::get<SynStream>(frames->at(1)).headers.Get("streamtype"), "stdout");
}

TEST(FrameDecoderTest, StructurallyBrokenHeaderBlockIsASessionError) {
  HeaderCompressor peer;
  // Claims two pairs, holds one.
  std::string truncated = Bytes({0, 0, 0, 2, 0, 0, 0, 1}) + "a" + Bytes({0, 0, 0, 1}) + "b";
  absl::Status status = DecodeError(SynStreamWithBlock(1, *peer.CompressSerialized(truncated)));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;

  // A block that is not zlib at all.
  status = DecodeError(SynStreamWithBlock(1, "garbage!"));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;

  // A SYN_STREAM with no block at all.
  status = DecodeError(SynStreamWithBlock(1, ""));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
}

TEST(FrameDecoderTest, HostileBytesNeverCrash) {
  // Every single-byte corruption of a real connection, and random noise: the decoder must
  // return frames or an error, never read out of bounds or hang.
  const std::string connection = SpdystreamConnection();
  for (size_t i = 0; i < connection.size(); ++i) {
    for (int flip : {0x01, 0x80, 0xff}) {
      std::string corrupt = connection;
      corrupt[i] = static_cast<char>(corrupt[i] ^ flip);
      (void)DecodeAll(corrupt, 3);
    }
  }
  std::mt19937 random(42);
  for (int round = 0; round < 2000; ++round) {
    std::string noise(random() % 200, '\0');
    for (char& c : noise) c = static_cast<char>(random());
    if (round % 2 == 0 && noise.size() > 2) {
      noise[0] = static_cast<char>(0x80);  // make control frames likely
      noise[1] = 0x03;
    }
    (void)DecodeAll(noise, 1 + round % 17, {.max_frame_payload = 64});
  }
}

TEST(FrameEncoderTest, RefusesFramesThatCannotBeSent) {
  FrameEncoder encoder;
  const std::vector<std::pair<const char*, Frame>> invalid = {
      {"DATA on stream 0", Data{.stream_id = 0}},
      {"DATA on stream 2^31", Data{.stream_id = 0x80000000}},
      {"SYN_STREAM on stream 0", SynStream{.stream_id = 0}},
      {"SYN_STREAM priority 8", SynStream{.stream_id = 1, .priority = 8}},
      {"SYN_REPLY on stream 0", SynReply{.stream_id = 0}},
      {"HEADERS on stream 0", Headers{.stream_id = 0}},
      {"RST_STREAM status 0", RstStream{1, static_cast<RstStatus>(0)}},
      {"RST_STREAM on stream 0", RstStream{0, RstStatus::kCancel}},
      {"WINDOW_UPDATE delta 0", WindowUpdate{1, 0}},
      {"WINDOW_UPDATE delta 2^31", WindowUpdate{1, 0x80000000}},
      {"SETTINGS id over 24 bits", Settings{.entries = {{0x1000000, 1, 0}}}},
      {"invalid header", SynReply{.stream_id = 1, .headers = {{"", "x"}}}},
  };
  for (const auto& [name, frame] : invalid) {
    std::string out = "kept";
    absl::Status status = encoder.EncodeTo(frame, out);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name << ": " << status;
    EXPECT_EQ(out, "kept") << name;
  }
  // The largest DATA payload fits; one more byte does not.
  std::string out;
  EXPECT_TRUE(
      encoder.EncodeTo(Data{.stream_id = 1, .data = std::string(kMaxFramePayload, 'a')}, out).ok());
  EXPECT_EQ(out.size(), 8 + kMaxFramePayload);
  EXPECT_EQ(encoder.Encode(Data{.stream_id = 1, .data = std::string(kMaxFramePayload + 1, 'a')})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);

  // After refusing an invalid header block the compression stream still matches the peer's.
  absl::StatusOr<std::string> after =
      encoder.Encode(SynReply{.stream_id = 1, .headers = {{"a", "b"}}});
  ASSERT_TRUE(after.ok());
  absl::StatusOr<std::vector<ReceivedFrame>> frames = DecodeAll(*after);
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_EQ(std::get<SynReply>(frames->at(0)).headers.Get("a"), "b");
}

TEST(FrameDecoderTest, DiscardsDecodedBytesAsItGoes) {
  FrameDecoder decoder;
  for (int i = 0; i < 10000; ++i) {
    decoder.Feed(kSpdystreamPing);
    absl::StatusOr<std::optional<ReceivedFrame>> frame = decoder.Next();
    ASSERT_TRUE(frame.ok());
    ASSERT_TRUE(frame->has_value());
  }
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(SpdyNamesTest, NamesForLogs) {
  EXPECT_EQ(ToString(ControlType::kWindowUpdate), "WINDOW_UPDATE");
  EXPECT_EQ(ToString(RstStatus::kFlowControlError), "FLOW_CONTROL_ERROR");
  EXPECT_EQ(ToString(static_cast<RstStatus>(10)), "UNKNOWN");
}

}  // namespace
}  // namespace berth::streaming::spdy
