// SPDY/3.1 framing (the chromium.org "SPDY Protocol - Draft 3.1", version field 3): the
// frames Kubernetes' remotecommand and portforward protocols ride on, as moby/spdystream
// (kubectl, the kubelet, crictl) speaks them. Pure byte work: no sockets, no threads.
//
//   FrameEncoder encoder;                                  // one per connection: it owns
//   ASSIGN_OR_RETURN(std::string bytes,                    // our header compression stream
//                    encoder.Encode(SynReply{.stream_id = 1}));
//
//   FrameDecoder decoder;                                  // one per connection: it owns
//   decoder.Feed(bytes_read_from_socket);                  // the peer's compression stream
//   while (true) {
//     ASSIGN_OR_RETURN(std::optional<ReceivedFrame> frame, decoder.Next());
//     if (!frame) break;                                   // need more bytes
//     std::visit(handler, *frame);                         // Data, SynStream, ..., StreamError
//   }
//
// Error model, the spec's two kinds (section 2.4):
//  - A session error comes back as a non-OK absl::Status from FrameDecoder::Next(): the
//    bytes can no longer be framed or the header compression state is lost. Send GOAWAY
//    (PROTOCOL_ERROR) and close the connection. The decoder stays failed.
//  - A stream error comes back as a StreamError frame: the frame was framed and its
//    header block decompressed fine, but its headers break the rules. Answer RST_STREAM
//    with its status; the session goes on.
//
// What the decoder checks: the version (3), the exact or minimum length of each control
// frame type, stream id 0 where a stream is required, RST_STREAM status 0, and every
// frame length against FrameDecoder::Options::max_frame_payload before buffering it.
// What it leaves to the session: stream states (SYN_STREAM ids increasing and odd, DATA
// for an open stream), WINDOW_UPDATE deltas (flow_control.h), PING parity. Unknown
// control frame types are skipped, as the spec requires. Flag bits a frame type does not
// define are ignored; reserved bits ('X') in stream ids are masked off.
#ifndef BERTH_SERVER_STREAMING_SPDY_FRAME_H_
#define BERTH_SERVER_STREAMING_SPDY_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "server/streaming/spdy_headers.h"

namespace berth::streaming::spdy {

inline constexpr uint16_t kVersion = 3;
inline constexpr size_t kFrameHeaderSize = 8;
// The 24-bit length field: no frame payload can be larger.
inline constexpr uint32_t kMaxFramePayload = (1u << 24) - 1;
inline constexpr uint32_t kMaxStreamId = 0x7fffffff;

enum class ControlType : uint16_t {
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};

// RST_STREAM status codes (section 2.6.3); 0 is invalid, 10 is retired.
enum class RstStatus : uint32_t {
  kProtocolError = 1,
  kInvalidStream = 2,
  kRefusedStream = 3,
  kUnsupportedVersion = 4,
  kCancel = 5,
  kInternalError = 6,
  kFlowControlError = 7,
  kStreamInUse = 8,
  kStreamAlreadyClosed = 9,
  kFrameTooLarge = 11,
};

// GOAWAY status codes (section 2.6.6). A peer may send other values; they pass through.
enum class GoAwayStatus : uint32_t {
  kOk = 0,
  kProtocolError = 1,
  kInternalError = 2,
};

// SETTINGS ids (section 2.6.4). Only kInitialWindowSize matters to berth.
enum class SettingId : uint32_t {
  kUploadBandwidth = 1,
  kDownloadBandwidth = 2,
  kRoundTripTime = 3,
  kMaxConcurrentStreams = 4,
  kCurrentCwnd = 5,
  kDownloadRetransRate = 6,
  kInitialWindowSize = 7,
  kClientCertificateVectorSize = 8,
};

// Per-entry SETTINGS flags.
inline constexpr uint8_t kSettingPersistValue = 0x1;  // server asks the client to persist
inline constexpr uint8_t kSettingPersisted = 0x2;     // client returns a persisted value

std::string_view ToString(ControlType type);
std::string_view ToString(RstStatus status);

struct Data {
  uint32_t stream_id = 0;
  bool fin = false;
  std::string data;
  bool operator==(const Data&) const = default;
};

struct SynStream {
  uint32_t stream_id = 0;
  uint32_t associated_stream_id = 0;  // 0: independent (Kubernetes never associates)
  uint8_t priority = 0;               // 0 (highest) to 7
  uint8_t slot = 0;                   // unused since SPDY/3.1 (was CREDENTIAL's)
  bool fin = false;
  bool unidirectional = false;
  HeaderBlock headers;
  bool operator==(const SynStream&) const = default;
};

struct SynReply {
  uint32_t stream_id = 0;
  bool fin = false;
  HeaderBlock headers;
  bool operator==(const SynReply&) const = default;
};

struct RstStream {
  uint32_t stream_id = 0;
  RstStatus status = RstStatus::kCancel;
  bool operator==(const RstStream&) const = default;
};

struct Setting {
  uint32_t id = 0;  // a SettingId, or one berth does not know (24 bits)
  uint32_t value = 0;
  uint8_t flags = 0;
  bool operator==(const Setting&) const = default;
};

struct Settings {
  bool clear_settings = false;  // FLAG_SETTINGS_CLEAR_SETTINGS
  // In frame order. The decoder keeps only the first entry of each id, as the spec says.
  std::vector<Setting> entries;

  std::optional<uint32_t> Find(SettingId id) const;
  bool operator==(const Settings&) const = default;
};

struct Ping {
  uint32_t id = 0;  // odd from the client, even from the server
  bool operator==(const Ping&) const = default;
};

struct GoAway {
  uint32_t last_good_stream_id = 0;
  GoAwayStatus status = GoAwayStatus::kOk;
  bool operator==(const GoAway&) const = default;
};

struct Headers {
  uint32_t stream_id = 0;
  bool fin = false;
  HeaderBlock headers;
  bool operator==(const Headers&) const = default;
};

struct WindowUpdate {
  uint32_t stream_id = 0;  // 0: the session window
  uint32_t delta_window_size = 0;
  bool operator==(const WindowUpdate&) const = default;
};

// Every frame berth sends.
using Frame = std::variant<Data, SynStream, SynReply, RstStream, Settings, Ping, GoAway, Headers,
                           WindowUpdate>;

// A stream-level problem with a received frame: answer RST_STREAM{stream_id, status} and
// ignore the frame. `message` says what was wrong, for the log.
struct StreamError {
  uint32_t stream_id = 0;
  RstStatus status = RstStatus::kProtocolError;
  std::string message;
  bool operator==(const StreamError&) const = default;
};

// Every frame the decoder can report: the frames, or a StreamError in place of one.
using ReceivedFrame = std::variant<Data, SynStream, SynReply, RstStream, Settings, Ping, GoAway,
                                   Headers, WindowUpdate, StreamError>;

// Turns frames into bytes. Owns the sending header compression stream, so frames that
// carry headers must be encoded in the order they are written to the connection.
class FrameEncoder {
 public:
  // Appends the frame's exact wire bytes to `out`. InvalidArgument for a frame that cannot
  // be sent (stream id 0 or above 2^31-1 where a stream is needed, priority above 7, a
  // payload over 2^24-1 bytes, RST_STREAM status 0, WINDOW_UPDATE delta 0 or above
  // 2^31-1, invalid headers); `out` is unchanged then, and so is the compression state
  // when the headers are the problem. Internal if zlib fails: the session must end.
  absl::Status EncodeTo(const Frame& frame, std::string& out);
  absl::StatusOr<std::string> Encode(const Frame& frame);

 private:
  HeaderCompressor compressor_;
};

// Turns bytes into frames, incrementally: feed bytes as they arrive, take whole frames
// out. Owns the receiving header decompression stream. Memory is bounded by one frame
// (plus whatever was fed and not yet taken out): a frame whose length is over the limit
// fails as soon as its 8-byte header is in, before its payload is buffered.
class FrameDecoder {
 public:
  struct Options {
    // Largest frame payload accepted (control or data). The spec allows 2^24-1 and
    // requires at least 8192 for control frames; moby/spdystream sends each Write() as
    // one DATA frame, so clients copying with 32 KiB buffers stay far below.
    uint32_t max_frame_payload = kMaxFramePayload;
    // Largest decompressed header block (see HeaderDecompressor).
    size_t max_header_block_bytes = HeaderDecompressor::kDefaultMaxBlockBytes;
  };

  FrameDecoder() : FrameDecoder(Options{}) {}
  explicit FrameDecoder(Options options);

  // Appends bytes received from the peer.
  void Feed(std::string_view bytes);

  // The next whole frame, nullopt if more bytes are needed, or a session error (see the
  // top of this file). After an error every call returns the same error.
  absl::StatusOr<std::optional<ReceivedFrame>> Next();

  // Bytes fed but not yet returned as frames.
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  absl::StatusOr<std::optional<ReceivedFrame>> DecodeControl(uint16_t version, uint16_t type,
                                                             uint8_t flags,
                                                             std::string_view payload);
  absl::StatusOr<std::optional<ReceivedFrame>> Fail(absl::Status status);

  Options options_;
  HeaderDecompressor decompressor_;
  std::string buffer_;
  size_t consumed_ = 0;  // bytes of buffer_ already decoded
  absl::Status status_;  // sticky session error
};

}  // namespace berth::streaming::spdy

#endif  // BERTH_SERVER_STREAMING_SPDY_FRAME_H_
