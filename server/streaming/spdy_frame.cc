#include "server/streaming/spdy_frame.h"

#include <type_traits>
#include <unordered_set>
#include <utility>

#include "runtime/base/strings.h"

namespace berth::streaming::spdy {
namespace {

constexpr uint8_t kFlagFin = 0x01;
constexpr uint8_t kFlagUnidirectional = 0x02;
constexpr uint8_t kFlagClearSettings = 0x01;
constexpr uint32_t kStreamIdMask = 0x7fffffff;  // drops the reserved 'X' bit

void AppendUint32(std::string& out, uint32_t value) {
  out.push_back(static_cast<char>(value >> 24));
  out.push_back(static_cast<char>(value >> 16));
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value));
}

uint32_t ReadUint32(std::string_view bytes, size_t at) {
  return static_cast<uint32_t>(static_cast<uint8_t>(bytes[at])) << 24 |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 1])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 2])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 3]));
}

// Flags (8 bits) and length (24 bits) share the second word of every frame header.
void AppendFlagsAndLength(std::string& out, uint8_t flags, size_t length) {
  AppendUint32(out, static_cast<uint32_t>(flags) << 24 | static_cast<uint32_t>(length));
}

void AppendControlHeader(std::string& out, ControlType type, uint8_t flags, size_t length) {
  AppendUint32(out,
               0x80000000u | static_cast<uint32_t>(kVersion) << 16 | static_cast<uint32_t>(type));
  AppendFlagsAndLength(out, flags, length);
}

absl::Status CheckStreamId(std::string_view frame, uint32_t id, bool zero_allowed) {
  if (id > kMaxStreamId) {
    return absl::InvalidArgumentError(StrCat(frame, ": stream id ", id, " is over 2^31-1"));
  }
  if (id == 0 && !zero_allowed) return absl::InvalidArgumentError(StrCat(frame, ": stream id 0"));
  return absl::OkStatus();
}

absl::Status CheckPayload(std::string_view frame, size_t length) {
  if (length > kMaxFramePayload) {
    return absl::InvalidArgumentError(
        StrCat(frame, ": payload of ", length, " bytes is over the 2^24-1 limit"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view ToString(ControlType type) {
  switch (type) {
    case ControlType::kSynStream:
      return "SYN_STREAM";
    case ControlType::kSynReply:
      return "SYN_REPLY";
    case ControlType::kRstStream:
      return "RST_STREAM";
    case ControlType::kSettings:
      return "SETTINGS";
    case ControlType::kPing:
      return "PING";
    case ControlType::kGoAway:
      return "GOAWAY";
    case ControlType::kHeaders:
      return "HEADERS";
    case ControlType::kWindowUpdate:
      return "WINDOW_UPDATE";
  }
  return "UNKNOWN";
}

std::string_view ToString(RstStatus status) {
  switch (status) {
    case RstStatus::kProtocolError:
      return "PROTOCOL_ERROR";
    case RstStatus::kInvalidStream:
      return "INVALID_STREAM";
    case RstStatus::kRefusedStream:
      return "REFUSED_STREAM";
    case RstStatus::kUnsupportedVersion:
      return "UNSUPPORTED_VERSION";
    case RstStatus::kCancel:
      return "CANCEL";
    case RstStatus::kInternalError:
      return "INTERNAL_ERROR";
    case RstStatus::kFlowControlError:
      return "FLOW_CONTROL_ERROR";
    case RstStatus::kStreamInUse:
      return "STREAM_IN_USE";
    case RstStatus::kStreamAlreadyClosed:
      return "STREAM_ALREADY_CLOSED";
    case RstStatus::kFrameTooLarge:
      return "FRAME_TOO_LARGE";
  }
  return "UNKNOWN";
}

std::optional<uint32_t> Settings::Find(SettingId id) const {
  for (const Setting& entry : entries) {
    if (entry.id == static_cast<uint32_t>(id)) return entry.value;
  }
  return std::nullopt;
}

absl::StatusOr<std::string> FrameEncoder::Encode(const Frame& frame) {
  std::string out;
  if (absl::Status status = EncodeTo(frame, out); !status.ok()) return status;
  return out;
}

absl::Status FrameEncoder::EncodeTo(const Frame& frame, std::string& out) {
  // Frames that carry headers: the common part after the frame header, then the
  // compressed block. Validation happens before compressing so a refused frame leaves
  // the compression stream untouched.
  auto encode_with_headers = [&](ControlType type, std::string_view name, uint8_t flags,
                                 std::string prefix, const HeaderBlock& headers) -> absl::Status {
    absl::StatusOr<std::string> block = compressor_.Compress(headers);
    if (!block.ok()) {
      return absl::Status(block.status().code(), StrCat(name, ": ", block.status().message()));
    }
    size_t length = prefix.size() + block->size();
    if (absl::Status status = CheckPayload(name, length); !status.ok()) {
      // The block went through the compressor, so the peer's state expects it: the
      // session cannot recover from this one.
      return absl::InternalError(
          StrCat(status.message(), "; the header compression state is now out of sync"));
    }
    AppendControlHeader(out, type, flags, length);
    out.append(prefix);
    out.append(*block);
    return absl::OkStatus();
  };

  return std::visit(
      [&](const auto& f) -> absl::Status {
        using T = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<T, Data>) {
          if (absl::Status s = CheckStreamId("DATA", f.stream_id, false); !s.ok()) return s;
          if (absl::Status s = CheckPayload("DATA", f.data.size()); !s.ok()) return s;
          AppendUint32(out, f.stream_id);
          AppendFlagsAndLength(out, f.fin ? kFlagFin : 0, f.data.size());
          out.append(f.data);
          return absl::OkStatus();
        } else if constexpr (std::is_same_v<T, SynStream>) {
          if (absl::Status s = CheckStreamId("SYN_STREAM", f.stream_id, false); !s.ok()) return s;
          if (absl::Status s = CheckStreamId("SYN_STREAM associated", f.associated_stream_id, true);
              !s.ok()) {
            return s;
          }
          if (f.priority > 7) {
            return absl::InvalidArgumentError(
                StrCat("SYN_STREAM: priority ", static_cast<int>(f.priority), " is over 7"));
          }
          std::string prefix;
          AppendUint32(prefix, f.stream_id);
          AppendUint32(prefix, f.associated_stream_id);
          prefix.push_back(static_cast<char>(f.priority << 5));  // 3 bits, then 5 unused
          prefix.push_back(static_cast<char>(f.slot));
          uint8_t flags = (f.fin ? kFlagFin : 0) | (f.unidirectional ? kFlagUnidirectional : 0);
          return encode_with_headers(ControlType::kSynStream, "SYN_STREAM", flags,
                                     std::move(prefix), f.headers);
        } else if constexpr (std::is_same_v<T, SynReply> || std::is_same_v<T, Headers>) {
          constexpr bool kReply = std::is_same_v<T, SynReply>;
          std::string_view name = kReply ? "SYN_REPLY" : "HEADERS";
          if (absl::Status s = CheckStreamId(name, f.stream_id, false); !s.ok()) return s;
          std::string prefix;
          AppendUint32(prefix, f.stream_id);
          return encode_with_headers(kReply ? ControlType::kSynReply : ControlType::kHeaders, name,
                                     f.fin ? kFlagFin : 0, std::move(prefix), f.headers);
        } else if constexpr (std::is_same_v<T, RstStream>) {
          if (absl::Status s = CheckStreamId("RST_STREAM", f.stream_id, false); !s.ok()) return s;
          if (static_cast<uint32_t>(f.status) == 0) {
            return absl::InvalidArgumentError("RST_STREAM: status 0 is not valid");
          }
          AppendControlHeader(out, ControlType::kRstStream, 0, 8);
          AppendUint32(out, f.stream_id);
          AppendUint32(out, static_cast<uint32_t>(f.status));
          return absl::OkStatus();
        } else if constexpr (std::is_same_v<T, Settings>) {
          size_t length = 4 + 8 * f.entries.size();
          if (absl::Status s = CheckPayload("SETTINGS", length); !s.ok()) return s;
          for (const Setting& entry : f.entries) {
            if (entry.id > 0xffffff) {
              return absl::InvalidArgumentError(
                  StrCat("SETTINGS: id ", entry.id, " does not fit in 24 bits"));
            }
          }
          AppendControlHeader(out, ControlType::kSettings,
                              f.clear_settings ? kFlagClearSettings : 0, length);
          AppendUint32(out, static_cast<uint32_t>(f.entries.size()));
          for (const Setting& entry : f.entries) {
            // SPDY/3 fixed SPDY/2's byte order here: flags first, then a big-endian id.
            AppendUint32(out, static_cast<uint32_t>(entry.flags) << 24 | entry.id);
            AppendUint32(out, entry.value);
          }
          return absl::OkStatus();
        } else if constexpr (std::is_same_v<T, Ping>) {
          AppendControlHeader(out, ControlType::kPing, 0, 4);
          AppendUint32(out, f.id);
          return absl::OkStatus();
        } else if constexpr (std::is_same_v<T, GoAway>) {
          if (absl::Status s = CheckStreamId("GOAWAY", f.last_good_stream_id, true); !s.ok()) {
            return s;
          }
          AppendControlHeader(out, ControlType::kGoAway, 0, 8);
          AppendUint32(out, f.last_good_stream_id);
          AppendUint32(out, static_cast<uint32_t>(f.status));
          return absl::OkStatus();
        } else {
          static_assert(std::is_same_v<T, WindowUpdate>);
          if (absl::Status s = CheckStreamId("WINDOW_UPDATE", f.stream_id, true); !s.ok()) {
            return s;
          }
          if (f.delta_window_size == 0 || f.delta_window_size > 0x7fffffff) {
            return absl::InvalidArgumentError(
                StrCat("WINDOW_UPDATE: delta ", f.delta_window_size, " is outside 1..2^31-1"));
          }
          AppendControlHeader(out, ControlType::kWindowUpdate, 0, 8);
          AppendUint32(out, f.stream_id);
          AppendUint32(out, f.delta_window_size);
          return absl::OkStatus();
        }
      },
      frame);
}

FrameDecoder::FrameDecoder(Options options)
    : options_(options), decompressor_(options.max_header_block_bytes) {}

void FrameDecoder::Feed(std::string_view bytes) {
  if (!status_.ok()) return;  // nothing more will be decoded
  // Drop what was already decoded before growing, so a long session does not keep every
  // byte it ever received.
  if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

absl::StatusOr<std::optional<ReceivedFrame>> FrameDecoder::Fail(absl::Status status) {
  status_ = std::move(status);
  buffer_.clear();
  buffer_.shrink_to_fit();
  consumed_ = 0;
  return status_;
}

absl::StatusOr<std::optional<ReceivedFrame>> FrameDecoder::Next() {
  while (true) {
    if (!status_.ok()) return status_;
    std::string_view pending = std::string_view(buffer_).substr(consumed_);
    if (pending.size() < kFrameHeaderSize) return std::nullopt;
    uint32_t first = ReadUint32(pending, 0);
    uint32_t second = ReadUint32(pending, 4);
    uint8_t flags = static_cast<uint8_t>(second >> 24);
    uint32_t length = second & 0xffffff;
    bool control = (first & 0x80000000u) != 0;
    // Refuse a frame whose length is over the limit now, not once its payload has been
    // buffered: a peer announcing 16 MiB frames must not make us hold 16 MiB.
    if (length > options_.max_frame_payload) {
      return Fail(absl::ResourceExhaustedError(
          StrCat("spdy: ", control ? "control" : "DATA", " frame of ", length,
                 " bytes is over the limit of ", options_.max_frame_payload)));
    }
    if (pending.size() < kFrameHeaderSize + length) return std::nullopt;
    std::string_view payload = pending.substr(kFrameHeaderSize, length);
    consumed_ += kFrameHeaderSize + length;

    if (!control) {
      uint32_t stream_id = first & kStreamIdMask;
      if (stream_id == 0) return Fail(absl::InvalidArgumentError("spdy: DATA frame on stream 0"));
      return ReceivedFrame(Data{stream_id, (flags & kFlagFin) != 0, std::string(payload)});
    }
    uint16_t version = static_cast<uint16_t>((first >> 16) & 0x7fff);
    uint16_t type = static_cast<uint16_t>(first & 0xffff);
    absl::StatusOr<std::optional<ReceivedFrame>> frame =
        DecodeControl(version, type, flags, payload);
    if (!frame.ok()) return Fail(frame.status());
    if (frame->has_value()) return frame;
    // An unknown control type: skipped, on to the next frame.
  }
}

absl::StatusOr<std::optional<ReceivedFrame>> FrameDecoder::DecodeControl(uint16_t version,
                                                                         uint16_t type,
                                                                         uint8_t flags,
                                                                         std::string_view payload) {
  // Another version means another header dictionary and frame layout: nothing after this
  // frame can be trusted.
  if (version != kVersion) {
    return absl::FailedPreconditionError(
        StrCat("spdy: control frame of version ", version, ", only version 3 is spoken"));
  }
  const auto control_type = static_cast<ControlType>(type);
  std::string_view name = ToString(control_type);
  auto bad_length = [&](std::string_view expected) {
    return absl::InvalidArgumentError(
        StrCat("spdy: ", name, " frame of length ", payload.size(), ", expected ", expected));
  };
  auto stream_zero = [&]() {
    return absl::InvalidArgumentError(StrCat("spdy: ", name, " frame on stream 0"));
  };
  // SYN_STREAM, SYN_REPLY and HEADERS: always inflate the block (the zlib state must
  // advance whatever happens to the frame), then check the headers. A block that does
  // not parse structurally is a session error; one with invalid headers, a stream error.
  auto read_headers = [&](uint32_t stream_id, std::string_view compressed,
                          HeaderBlock& headers) -> absl::StatusOr<std::optional<StreamError>> {
    absl::StatusOr<std::string> raw = decompressor_.Decompress(compressed);
    if (!raw.ok()) {
      return absl::Status(raw.status().code(), StrCat("spdy: ", name, " on stream ", stream_id,
                                                      ": ", raw.status().message()));
    }
    absl::StatusOr<HeaderBlock> parsed = ParseHeaderBlock(*raw);
    if (parsed.ok()) {
      headers = *std::move(parsed);
      return std::nullopt;
    }
    if (parsed.status().code() == absl::StatusCode::kInvalidArgument) {
      return StreamError{stream_id, RstStatus::kProtocolError,
                         StrCat(name, ": ", parsed.status().message())};
    }
    return absl::Status(parsed.status().code(), StrCat("spdy: ", name, " on stream ", stream_id,
                                                       ": ", parsed.status().message()));
  };

  switch (control_type) {
    case ControlType::kSynStream: {
      if (payload.size() < 10) return bad_length("at least 10");
      SynStream frame;
      frame.stream_id = ReadUint32(payload, 0) & kStreamIdMask;
      frame.associated_stream_id = ReadUint32(payload, 4) & kStreamIdMask;
      frame.priority = static_cast<uint8_t>(payload[8]) >> 5;
      frame.slot = static_cast<uint8_t>(payload[9]);
      frame.fin = (flags & kFlagFin) != 0;
      frame.unidirectional = (flags & kFlagUnidirectional) != 0;
      absl::StatusOr<std::optional<StreamError>> error =
          read_headers(frame.stream_id, payload.substr(10), frame.headers);
      if (!error.ok()) return error.status();
      if (frame.stream_id == 0) return stream_zero();
      if (error->has_value()) return ReceivedFrame(**std::move(error));
      return ReceivedFrame(std::move(frame));
    }
    case ControlType::kSynReply:
    case ControlType::kHeaders: {
      if (payload.size() < 4) return bad_length("at least 4");
      uint32_t stream_id = ReadUint32(payload, 0) & kStreamIdMask;
      HeaderBlock headers;
      absl::StatusOr<std::optional<StreamError>> error =
          read_headers(stream_id, payload.substr(4), headers);
      if (!error.ok()) return error.status();
      if (stream_id == 0) return stream_zero();
      if (error->has_value()) return ReceivedFrame(**std::move(error));
      bool fin = (flags & kFlagFin) != 0;
      if (control_type == ControlType::kSynReply) {
        return ReceivedFrame(SynReply{stream_id, fin, std::move(headers)});
      }
      return ReceivedFrame(Headers{stream_id, fin, std::move(headers)});
    }
    case ControlType::kRstStream: {
      if (payload.size() != 8) return bad_length("8");
      uint32_t stream_id = ReadUint32(payload, 0) & kStreamIdMask;
      uint32_t status = ReadUint32(payload, 4);
      if (stream_id == 0) return stream_zero();
      if (status == 0) return absl::InvalidArgumentError("spdy: RST_STREAM with status 0");
      return ReceivedFrame(RstStream{stream_id, static_cast<RstStatus>(status)});
    }
    case ControlType::kSettings: {
      if (payload.size() < 4) return bad_length("at least 4");
      uint32_t count = ReadUint32(payload, 0);
      // Compare without multiplying: 8 * count could overflow.
      if ((payload.size() - 4) % 8 != 0 || count != (payload.size() - 4) / 8) {
        return absl::InvalidArgumentError(StrCat("spdy: SETTINGS frame of length ", payload.size(),
                                                 " cannot hold its ", count, " entries"));
      }
      Settings frame;
      frame.clear_settings = (flags & kFlagClearSettings) != 0;
      std::unordered_set<uint32_t> seen;
      for (uint32_t i = 0; i < count; ++i) {
        uint32_t flags_and_id = ReadUint32(payload, 4 + 8 * i);
        Setting entry{flags_and_id & 0xffffff, ReadUint32(payload, 8 + 8 * i),
                      static_cast<uint8_t>(flags_and_id >> 24)};
        // "If the recipient ... discovers multiple values for the same ID, it MUST
        // ignore all values except the first one."
        if (seen.insert(entry.id).second) frame.entries.push_back(entry);
      }
      return ReceivedFrame(std::move(frame));
    }
    case ControlType::kPing: {
      if (payload.size() != 4) return bad_length("4");
      return ReceivedFrame(Ping{ReadUint32(payload, 0)});
    }
    case ControlType::kGoAway: {
      if (payload.size() != 8) return bad_length("8");
      return ReceivedFrame(GoAway{ReadUint32(payload, 0) & kStreamIdMask,
                                  static_cast<GoAwayStatus>(ReadUint32(payload, 4))});
    }
    case ControlType::kWindowUpdate: {
      if (payload.size() != 8) return bad_length("8");
      return ReceivedFrame(WindowUpdate{ReadUint32(payload, 0) & kStreamIdMask,
                                        ReadUint32(payload, 4) & 0x7fffffff});
    }
  }
  // "If an endpoint receives a control frame for a type it does not recognize, it MUST
  // ignore the frame." (This includes SPDY/3's retired CREDENTIAL, type 10.)
  return std::optional<ReceivedFrame>();
}

}  // namespace berth::streaming::spdy
