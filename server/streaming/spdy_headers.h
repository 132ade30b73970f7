// SPDY/3 name/value header blocks (SPDY/3.1 draft, section 2.6.10): the headers carried by
// SYN_STREAM, SYN_REPLY and HEADERS, and their zlib compression.
//
//   HeaderBlock headers;
//   headers.Add("streamType", "error");               // names are stored lowercase
//   HeaderCompressor compressor;                       // one per connection direction
//   ASSIGN_OR_RETURN(std::string wire, compressor.Compress(headers));
//
//   HeaderDecompressor decompressor;                   // one per connection direction
//   ASSIGN_OR_RETURN(std::string raw, decompressor.Decompress(wire));
//   ASSIGN_OR_RETURN(HeaderBlock parsed, ParseHeaderBlock(raw));
//   std::optional<std::string_view> type = parsed.Get("streamtype");   // "error"
//
// Wire form (before compression): a 32-bit count of pairs, then per pair a 32-bit name
// length, the name, a 32-bit value length and the value, all big-endian. Names are
// non-empty lowercase US-ASCII and unique within a block; several values of one name
// travel as one value with the values separated by single NUL bytes (never leading,
// trailing or doubled). An empty value is allowed when it is the only one.
//
// Compression: one zlib stream per direction for the whole connection, primed with the
// SPDY/3 dictionary and flushed with Z_SYNC_FLUSH after each block, so each frame's
// compressed bytes decode on their own but only in order. A peer and we must process
// every header block, even of a stream we reject, or the two zlib states diverge: a
// decompression error is therefore a session error (GOAWAY), never a stream error.
//
// The compressor and decompressor are not thread-safe; a session owns one of each.
#ifndef BERTH_SERVER_STREAMING_SPDY_HEADERS_H_
#define BERTH_SERVER_STREAMING_SPDY_HEADERS_H_

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct z_stream_s;

namespace berth::streaming::spdy {

// The zlib dictionary every SPDY/3 header compression stream starts from (the spec's
// SPDY_dictionary_txt, 1423 bytes). Its Adler-32, 0xe3c6a7c2, is the DICTID in the zlib
// header of every SPDY/3 header stream.
std::string_view HeaderDictionary();

// One header as on the wire: a lowercase name and its value, several values joined by NUL.
struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header&) const = default;
};

// The headers of one SYN_STREAM, SYN_REPLY or HEADERS frame, in the order they were added
// or received.
class HeaderBlock {
 public:
  HeaderBlock() = default;
  // {{"streamtype", "error"}, {"port", "8080"}}: each pair goes through Add().
  HeaderBlock(std::initializer_list<std::pair<std::string_view, std::string_view>> headers);

  // Adds `value` under `name` (ASCII-lowercased, as SPDY requires). A second value for a
  // name already present is appended to it after a NUL: SPDY forbids repeated names.
  void Add(std::string_view name, std::string_view value);

  // The first value of `name` (matched case-insensitively), or nullopt if absent.
  std::optional<std::string_view> Get(std::string_view name) const;
  // Every value of `name`, in order; empty if absent.
  std::vector<std::string_view> GetAll(std::string_view name) const;

  const std::vector<Header>& headers() const { return headers_; }
  bool empty() const { return headers_.empty(); }
  size_t size() const { return headers_.size(); }
  bool operator==(const HeaderBlock&) const = default;

 private:
  friend absl::StatusOr<HeaderBlock> ParseHeaderBlock(std::string_view raw);
  std::vector<Header> headers_;
};

// The uncompressed wire form of `headers`. InvalidArgument when a header breaks the rules
// above (an empty name, an empty value among several, a NUL in a name).
absl::StatusOr<std::string> SerializeHeaderBlock(const HeaderBlock& headers);

// Parses an uncompressed header block. Never reads past `raw` and allocates no more than
// `raw` holds, whatever the counts claim. Two kinds of errors, because the spec treats
// them differently:
//  - DataLoss: the block is structurally broken (truncated, a length past the end, bytes
//    left over). The framing can no longer be trusted: a session error.
//  - InvalidArgument: the block is well-formed but a header is not valid SPDY (empty or
//    uppercase name, NUL in a name, repeated name, a value with a leading, trailing or
//    doubled NUL): a stream error, RST_STREAM with PROTOCOL_ERROR.
absl::StatusOr<HeaderBlock> ParseHeaderBlock(std::string_view raw);

// Deleter for the heap-allocated zlib stream (zlib keeps a pointer back to the z_stream,
// so it must not move once initialized).
struct ZStreamDeleter {
  bool deflating = false;
  void operator()(z_stream_s* stream) const;
};
using ZStreamPtr = std::unique_ptr<z_stream_s, ZStreamDeleter>;

// The sending half: one deflate stream for every header block we send on a connection.
class HeaderCompressor {
 public:
  HeaderCompressor();

  // Serializes and compresses `headers`, ending with a sync flush so the peer can decode
  // the block from this frame alone. InvalidArgument for an invalid block (nothing is fed
  // to zlib then, so the stream stays usable); Internal if zlib fails, after which the
  // compressor is unusable and the session must end.
  absl::StatusOr<std::string> Compress(const HeaderBlock& headers);
  // The same for an already serialized block (tests, or a block built by hand).
  absl::StatusOr<std::string> CompressSerialized(std::string_view raw);

 private:
  ZStreamPtr stream_;
  absl::Status status_;  // first zlib failure: sticky
};

// The receiving half: one inflate stream for every header block the peer sends.
class HeaderDecompressor {
 public:
  // Decompressed header blocks larger than `max_block_bytes` are refused (a small frame
  // can inflate to a lot: zlib's ratio reaches ~1000:1).
  static constexpr size_t kDefaultMaxBlockBytes = 1 << 20;
  explicit HeaderDecompressor(size_t max_block_bytes = kDefaultMaxBlockBytes);

  // Inflates one frame's compressed header block into its serialized form (feed that to
  // ParseHeaderBlock). Blocks must be passed in arrival order. DataLoss for corrupt
  // input, a stream primed with another dictionary, or a peer that ended its zlib
  // stream; ResourceExhausted past max_block_bytes. Any error is sticky: the zlib state
  // is lost, and so is the session.
  absl::StatusOr<std::string> Decompress(std::string_view compressed);

 private:
  ZStreamPtr stream_;
  size_t max_block_bytes_;
  bool ended_ = false;   // the peer finished its zlib stream (Z_STREAM_END)
  absl::Status status_;  // first failure: sticky
};

}  // namespace berth::streaming::spdy

#endif  // BERTH_SERVER_STREAMING_SPDY_HEADERS_H_
