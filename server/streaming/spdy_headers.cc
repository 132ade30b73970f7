#include "server/streaming/spdy_headers.h"

#include <zlib.h>

#include <array>
#include <cstdint>
#include <unordered_set>
#include <utility>

#include "runtime/base/strings.h"

namespace berth::streaming::spdy {
namespace {

// The SPDY/3 dictionary is a run of 4-byte-length-prefixed words (the common header names
// and values) followed by a raw tail of status lines, dates and media types. Writing it
// as words keeps it reviewable against the spec; the test pins its length and Adler-32.
constexpr std::array<std::string_view, 65> kDictionaryWords = {
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
};

constexpr std::string_view kDictionaryTail =
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information"
    "204 No Content"
    "301 Moved Permanently"
    "400 Bad Request"
    "401 Unauthorized"
    "403 Forbidden"
    "404 Not Found"
    "500 Internal Server Error"
    "501 Not Implemented"
    "503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,"
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

void AppendUint32(std::string& out, uint32_t value) {
  out.push_back(static_cast<char>(value >> 24));
  out.push_back(static_cast<char>(value >> 16));
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value));
}

uint32_t ReadUint32(std::string_view bytes) {
  return static_cast<uint32_t>(static_cast<uint8_t>(bytes[0])) << 24 |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[1])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[2])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[3]));
}

std::string AsciiLower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

// Splits a wire value into its NUL-separated values; "" is one empty value.
std::vector<std::string_view> SplitValues(std::string_view value) {
  std::vector<std::string_view> values;
  size_t start = 0;
  while (true) {
    size_t nul = value.find('\0', start);
    if (nul == std::string_view::npos) {
      values.push_back(value.substr(start));
      return values;
    }
    values.push_back(value.substr(start, nul - start));
    start = nul + 1;
  }
}

// The spec's rules for one header, shared by the sender and the receiver.
absl::Status ValidateHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return absl::InvalidArgumentError("header with an empty name");
  for (char c : name) {
    if (c == '\0') return absl::InvalidArgumentError(StrCat("header name has a NUL byte"));
    if (c >= 'A' && c <= 'Z') {
      return absl::InvalidArgumentError(StrCat("header name '", name, "' is not lowercase"));
    }
  }
  if (!value.empty() && (value.front() == '\0' || value.back() == '\0' ||
                         value.find(std::string_view("\0\0", 2)) != std::string_view::npos)) {
    return absl::InvalidArgumentError(
        StrCat("header '", name, "': a value with several entries has an empty one"));
  }
  return absl::OkStatus();
}

std::string ZlibMessage(const z_stream& stream, int code) {
  return StrCat(stream.msg != nullptr ? stream.msg : "no message", " (zlib code ", code, ")");
}

}  // namespace

std::string_view HeaderDictionary() {
  static const std::string* const dictionary = [] {
    auto* bytes = new std::string;
    for (std::string_view word : kDictionaryWords) {
      AppendUint32(*bytes, static_cast<uint32_t>(word.size()));
      bytes->append(word);
    }
    bytes->append(kDictionaryTail);
    return bytes;
  }();
  return *dictionary;
}

HeaderBlock::HeaderBlock(
    std::initializer_list<std::pair<std::string_view, std::string_view>> headers) {
  for (const auto& [name, value] : headers) Add(name, value);
}

void HeaderBlock::Add(std::string_view name, std::string_view value) {
  std::string lower = AsciiLower(name);
  for (Header& header : headers_) {
    if (header.name == lower) {
      header.value.push_back('\0');
      header.value.append(value);
      return;
    }
  }
  headers_.push_back({std::move(lower), std::string(value)});
}

std::optional<std::string_view> HeaderBlock::Get(std::string_view name) const {
  std::string lower = AsciiLower(name);
  for (const Header& header : headers_) {
    if (header.name == lower) return SplitValues(header.value).front();
  }
  return std::nullopt;
}

std::vector<std::string_view> HeaderBlock::GetAll(std::string_view name) const {
  std::string lower = AsciiLower(name);
  for (const Header& header : headers_) {
    if (header.name == lower) return SplitValues(header.value);
  }
  return {};
}

absl::StatusOr<std::string> SerializeHeaderBlock(const HeaderBlock& headers) {
  std::string out;
  AppendUint32(out, static_cast<uint32_t>(headers.size()));
  for (const Header& header : headers.headers()) {
    if (absl::Status status = ValidateHeader(header.name, header.value); !status.ok()) {
      return status;
    }
    AppendUint32(out, static_cast<uint32_t>(header.name.size()));
    out.append(header.name);
    AppendUint32(out, static_cast<uint32_t>(header.value.size()));
    out.append(header.value);
  }
  return out;
}

absl::StatusOr<HeaderBlock> ParseHeaderBlock(std::string_view raw) {
  const size_t total = raw.size();
  auto truncated = [&](std::string_view what) {
    return absl::DataLossError(
        StrCat("header block truncated: ", what, " at byte ", total - raw.size(), " of ", total));
  };
  if (raw.size() < 4) return truncated("pair count");
  uint32_t count = ReadUint32(raw);
  raw.remove_prefix(4);
  // Each pair takes at least 8 bytes: a count beyond that is a lie, and trusting it would
  // let 4 bytes reserve gigabytes.
  if (count > raw.size() / 8) {
    return absl::DataLossError(
        StrCat("header block claims ", count, " pairs but has only ", raw.size(), " bytes left"));
  }
  HeaderBlock block;
  block.headers_.reserve(count);
  std::unordered_set<std::string_view> names;
  absl::Status first_invalid;  // keep parsing: a structural error outranks a semantic one
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view field[2];
    for (std::string_view& part : field) {
      if (raw.size() < 4) return truncated("length");
      uint32_t length = ReadUint32(raw);
      raw.remove_prefix(4);
      if (length > raw.size()) {
        return absl::DataLossError(
            StrCat("header block: a length of ", length, " with only ", raw.size(), " bytes left"));
      }
      part = raw.substr(0, length);
      raw.remove_prefix(length);
    }
    if (first_invalid.ok()) {
      first_invalid = ValidateHeader(field[0], field[1]);
      if (first_invalid.ok() && !names.insert(field[0]).second) {
        first_invalid = absl::InvalidArgumentError(StrCat("header '", field[0], "' appears twice"));
      }
    }
    block.headers_.push_back({std::string(field[0]), std::string(field[1])});
  }
  if (!raw.empty()) {
    return absl::DataLossError(
        StrCat("header block has ", raw.size(), " bytes after its ", count, " pairs"));
  }
  if (!first_invalid.ok()) return first_invalid;
  return block;
}

// Also runs for a stream whose init failed: deflateEnd and inflateEnd check the stream's
// state first and then do nothing.
void ZStreamDeleter::operator()(z_stream_s* stream) const {
  if (deflating) {
    deflateEnd(stream);
  } else {
    inflateEnd(stream);
  }
  delete stream;
}

HeaderCompressor::HeaderCompressor() : stream_(new z_stream{}, ZStreamDeleter{true}) {
  // A 2 KiB window and the smallest memLevel, as the spec suggests and Chromium did:
  // header blocks are small, and a session holds this state for its whole life (~10 KiB
  // instead of ~256 KiB with zlib's defaults). Any inflater accepts any window size.
  int code = deflateInit2(stream_.get(), Z_DEFAULT_COMPRESSION, Z_DEFLATED, /*windowBits=*/11,
                          /*memLevel=*/1, Z_DEFAULT_STRATEGY);
  if (code != Z_OK) {
    status_ = absl::InternalError(
        StrCat("spdy header compressor: deflateInit2 failed (zlib code ", code, ")"));
    return;
  }
  std::string_view dictionary = HeaderDictionary();
  code = deflateSetDictionary(stream_.get(), reinterpret_cast<const Bytef*>(dictionary.data()),
                              static_cast<uInt>(dictionary.size()));
  if (code != Z_OK) {
    status_ = absl::InternalError(
        StrCat("spdy header compressor: set dictionary: ", ZlibMessage(*stream_, code)));
  }
}

absl::StatusOr<std::string> HeaderCompressor::Compress(const HeaderBlock& headers) {
  absl::StatusOr<std::string> raw = SerializeHeaderBlock(headers);
  if (!raw.ok()) return raw.status();
  return CompressSerialized(*raw);
}

absl::StatusOr<std::string> HeaderCompressor::CompressSerialized(std::string_view raw) {
  if (!status_.ok()) return status_;
  z_stream& stream = *stream_;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  stream.avail_in = static_cast<uInt>(raw.size());
  std::string out;
  // Deflate until the flush is complete: zlib signals that by leaving output space unused.
  do {
    size_t used = out.size();
    out.resize(used + deflateBound(&stream, stream.avail_in) + 16);
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    stream.avail_out = static_cast<uInt>(out.size() - used);
    int code = deflate(&stream, Z_SYNC_FLUSH);
    if (code != Z_OK && code != Z_BUF_ERROR) {
      status_ = absl::InternalError(StrCat("spdy header compressor: ", ZlibMessage(stream, code)));
      return status_;
    }
    out.resize(out.size() - stream.avail_out);
  } while (stream.avail_out == 0 || stream.avail_in > 0);
  return out;
}

HeaderDecompressor::HeaderDecompressor(size_t max_block_bytes)
    : stream_(new z_stream{}, ZStreamDeleter{false}), max_block_bytes_(max_block_bytes) {
  int code = inflateInit(stream_.get());
  if (code != Z_OK) {
    status_ = absl::InternalError(
        StrCat("spdy header decompressor: inflateInit failed (zlib code ", code, ")"));
  }
}

absl::StatusOr<std::string> HeaderDecompressor::Decompress(std::string_view compressed) {
  if (!status_.ok()) return status_;
  if (compressed.empty()) {
    status_ = absl::DataLossError("spdy header block: no compressed bytes");
    return status_;
  }
  if (ended_) {
    status_ = absl::DataLossError("spdy header block after the peer ended its zlib stream");
    return status_;
  }
  z_stream& stream = *stream_;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  std::string out;
  constexpr size_t kChunk = 4096;
  while (true) {
    size_t used = out.size();
    out.resize(used + kChunk);
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    stream.avail_out = kChunk;
    int code = inflate(&stream, Z_SYNC_FLUSH);
    if (code == Z_NEED_DICT) {
      // The first block names its dictionary by Adler-32; inflateSetDictionary refuses
      // (Z_DATA_ERROR) a peer that primed its stream with another one.
      std::string_view dictionary = HeaderDictionary();
      code = inflateSetDictionary(&stream, reinterpret_cast<const Bytef*>(dictionary.data()),
                                  static_cast<uInt>(dictionary.size()));
      if (code != Z_OK) {
        status_ = absl::DataLossError(
            "spdy header block: compressed with a dictionary other than SPDY/3's");
        return status_;
      }
      code = inflate(&stream, Z_SYNC_FLUSH);
    }
    out.resize(out.size() - stream.avail_out);
    if (out.size() > max_block_bytes_) {
      status_ = absl::ResourceExhaustedError(
          StrCat("spdy header block inflates to more than ", max_block_bytes_, " bytes"));
      return status_;
    }
    if (code == Z_STREAM_END) {
      ended_ = true;
      if (stream.avail_in > 0) {
        status_ = absl::DataLossError("spdy header block: bytes after the end of the zlib stream");
        return status_;
      }
      return out;
    }
    if (code == Z_BUF_ERROR) {
      // No progress possible: either all input is consumed and all output delivered (the
      // normal end of a sync-flushed block) or the block stops mid-way; the parser
      // catches a cut block by its lengths.
      if (stream.avail_in == 0) return out;
      status_ = absl::DataLossError("spdy header block: zlib made no progress");
      return status_;
    }
    if (code != Z_OK) {
      status_ = absl::DataLossError(StrCat("spdy header block: ", ZlibMessage(stream, code)));
      return status_;
    }
    // Z_OK: done once the input is consumed and zlib had output space to spare (nothing
    // is pending); otherwise go round for more output.
    if (stream.avail_in == 0 && stream.avail_out > 0) return out;
  }
}

}  // namespace berth::streaming::spdy
