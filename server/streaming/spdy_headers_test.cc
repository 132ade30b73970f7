#include "server/streaming/spdy_headers.h"

#include <zlib.h>

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

std::string U32(uint32_t v) {
  return Bytes({int(v >> 24), int(v >> 16 & 0xff), int(v >> 8 & 0xff), int(v & 0xff)});
}

// A serialized block built by hand from the spec's layout.
std::string RawBlock(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string out = U32(static_cast<uint32_t>(pairs.size()));
  for (const auto& [name, value] : pairs) {
    out += U32(static_cast<uint32_t>(name.size())) + name;
    out += U32(static_cast<uint32_t>(value.size())) + value;
  }
  return out;
}

// Deflates `raw` the way a peer would, but primed with `dictionary`.
std::string DeflateWithDictionary(std::string_view raw, std::string_view dictionary,
                                  int flush = Z_SYNC_FLUSH) {
  z_stream stream{};
  EXPECT_EQ(deflateInit(&stream, Z_DEFAULT_COMPRESSION), Z_OK);
  EXPECT_EQ(deflateSetDictionary(&stream, reinterpret_cast<const Bytef*>(dictionary.data()),
                                 dictionary.size()),
            Z_OK);
  std::string out(raw.size() + 256, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  stream.avail_in = raw.size();
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = out.size();
  int code = deflate(&stream, flush);
  EXPECT_TRUE(code == Z_OK || code == Z_STREAM_END) << code;
  out.resize(out.size() - stream.avail_out);
  deflateEnd(&stream);
  return out;
}

// Inflates with plain zlib, independent of HeaderDecompressor. Returns the zlib code that
// stopped it, and the output in `out`.
int InflateWithDictionary(std::string_view compressed, std::string_view dictionary,
                          std::string& out) {
  z_stream stream{};
  EXPECT_EQ(inflateInit(&stream), Z_OK);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = compressed.size();
  out.assign(64 * 1024, '\0');
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = out.size();
  int code = inflate(&stream, Z_SYNC_FLUSH);
  if (code == Z_NEED_DICT) {
    code = inflateSetDictionary(&stream, reinterpret_cast<const Bytef*>(dictionary.data()),
                                dictionary.size());
    if (code == Z_OK) code = inflate(&stream, Z_SYNC_FLUSH);
  }
  out.resize(out.size() - stream.avail_out);
  inflateEnd(&stream);
  return code;
}

TEST(HeaderDictionaryTest, MatchesTheSpecByLengthAndChecksum) {
  std::string_view dictionary = HeaderDictionary();
  EXPECT_EQ(dictionary.size(), 1423u);
  // The Adler-32 is the DICTID in the zlib header of every SPDY/3 header stream: Chromium,
  // Firefox and Go's spdy all put e3 c6 a7 c2 there.
  uLong adler = adler32(0, Z_NULL, 0);
  EXPECT_EQ(adler32(adler, reinterpret_cast<const Bytef*>(dictionary.data()), dictionary.size()),
            0xe3c6a7c2u);
  EXPECT_EQ(dictionary.substr(0, 11), Bytes({0, 0, 0, 7}) + "options");
  EXPECT_EQ(dictionary.substr(dictionary.size() - 7), ",enq=0.");
}

TEST(HeaderBlockTest, AddLowercasesAndJoinsRepeatedNamesWithNul) {
  HeaderBlock block;
  block.Add("streamType", "error");
  block.Add("X-Multi", "a");
  block.Add("x-multi", "b");
  ASSERT_EQ(block.size(), 2u);
  EXPECT_EQ(block.headers()[0], (Header{"streamtype", "error"}));
  EXPECT_EQ(block.headers()[1], (Header{"x-multi", std::string("a\0b", 3)}));
  EXPECT_EQ(block.Get("STREAMTYPE"), "error");
  EXPECT_EQ(block.Get("x-multi"), "a");
  EXPECT_EQ(block.GetAll("x-multi"), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_EQ(block.Get("absent"), std::nullopt);
  EXPECT_TRUE(block.GetAll("absent").empty());
}

TEST(HeaderBlockTest, SerializesToTheSpecLayout) {
  HeaderBlock block{{"streamtype", "data"}, {"port", "8080"}, {"requestid", "0"}};
  std::string expected = Bytes({0, 0, 0, 3,  // three pairs
                                0, 0, 0, 10}) +
                         "streamtype" +                       //
                         Bytes({0, 0, 0, 4}) + "data" +       //
                         Bytes({0, 0, 0, 4}) + "port" +       //
                         Bytes({0, 0, 0, 4}) + "8080" +       //
                         Bytes({0, 0, 0, 9}) + "requestid" +  //
                         Bytes({0, 0, 0, 1}) + "0";
  absl::StatusOr<std::string> raw = SerializeHeaderBlock(block);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(*raw, expected);

  absl::StatusOr<HeaderBlock> parsed = ParseHeaderBlock(expected);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, block);
}

TEST(HeaderBlockTest, EmptyBlockAndEmptyValue) {
  absl::StatusOr<std::string> raw = SerializeHeaderBlock(HeaderBlock{});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(*raw, Bytes({0, 0, 0, 0}));

  HeaderBlock block{{"pragma", ""}};
  raw = SerializeHeaderBlock(block);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(*raw, RawBlock({{"pragma", ""}}));
  absl::StatusOr<HeaderBlock> parsed = ParseHeaderBlock(*raw);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->Get("pragma"), "");
  EXPECT_EQ(parsed->GetAll("pragma"), (std::vector<std::string_view>{""}));
}

TEST(HeaderBlockTest, SerializeRefusesAnEmptyValueAmongSeveral) {
  HeaderBlock block;
  block.Add("x", "a");
  block.Add("x", "");
  absl::StatusOr<std::string> raw = SerializeHeaderBlock(block);
  EXPECT_EQ(raw.status().code(), absl::StatusCode::kInvalidArgument);

  HeaderBlock empty_name{{"", "v"}};
  EXPECT_EQ(SerializeHeaderBlock(empty_name).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseHeaderBlockTest, EveryTruncationIsDataLoss) {
  std::string raw = RawBlock({{"streamtype", "error"}, {"port", "80"}});
  for (size_t n = 0; n < raw.size(); ++n) {
    absl::StatusOr<HeaderBlock> parsed = ParseHeaderBlock(std::string_view(raw).substr(0, n));
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss) << "prefix of " << n;
  }
}

TEST(ParseHeaderBlockTest, StructuralLiesAreDataLoss) {
  // Four billion pairs claimed in 4 bytes: refused before any allocation.
  EXPECT_EQ(ParseHeaderBlock(Bytes({0xff, 0xff, 0xff, 0xff})).status().code(),
            absl::StatusCode::kDataLoss);
  // A name length past the end.
  EXPECT_EQ(
      ParseHeaderBlock(Bytes({0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0})).status().code(),
      absl::StatusCode::kDataLoss);
  // A value length past the end.
  EXPECT_EQ(ParseHeaderBlock(U32(1) + U32(1) + "a" + U32(2) + "b").status().code(),
            absl::StatusCode::kDataLoss);
  // Bytes after the last pair.
  EXPECT_EQ(ParseHeaderBlock(RawBlock({{"a", "b"}}) + "x").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(ParseHeaderBlockTest, InvalidHeadersAreInvalidArgument) {
  const std::vector<std::vector<std::pair<std::string, std::string>>> invalid = {
      {{"", "value"}},                    // empty name
      {{"Host", "x"}},                    // uppercase name
      {{std::string("a\0b", 3), "x"}},    // NUL in a name
      {{"a", "1"}, {"a", "2"}},           // repeated name
      {{"a", std::string("\0x", 2)}},     // leading NUL
      {{"a", std::string("x\0", 2)}},     // trailing NUL
      {{"a", std::string("x\0\0y", 4)}},  // an empty value among several
  };
  for (const auto& pairs : invalid) {
    absl::StatusOr<HeaderBlock> parsed = ParseHeaderBlock(RawBlock(pairs));
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << pairs.front().first << " -> " << parsed.status();
  }
  // A structural error later in the block outranks an invalid header earlier in it.
  EXPECT_EQ(ParseHeaderBlock(RawBlock({{"A", "x"}}) + "junk").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(ParseHeaderBlockTest, MultipleValues) {
  absl::StatusOr<HeaderBlock> parsed =
      ParseHeaderBlock(RawBlock({{"accept", std::string("a\0b\0c", 5)}}));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->GetAll("accept"), (std::vector<std::string_view>{"a", "b", "c"}));
}

// Header blocks written by moby/spdystream's framer (the SPDY code of kubectl, the kubelet
// and crictl; Go's own deflate, not zlib) into one connection, in order: each frame's
// compressed bytes depend on the ones before.
TEST(HeaderDecompressorTest, KnownAnswerFromSpdystream) {
  const std::string syn_stream_1 =  // {"streamtype": "error"}
      Bytes({0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x62, 0x60, 0x60, 0x60, 0x04,
             0xa7, 0xb3, 0x92, 0xa2, 0xd4, 0xc4, 0x5c, 0x68, 0x51, 0xc2, 0x9a,
             0x0a, 0x0a, 0x68, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff});
  const std::string syn_stream_3 =  // {"x-multi": ["a", "b"]}
      Bytes({0x82, 0x4a, 0xb1, 0x57, 0xe8, 0xe6, 0x96, 0xe6, 0x94, 0x64, 0x82,
             0x0b, 0x4c, 0x86, 0x24, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff});
  const std::string syn_reply_1 =  // {}
      Bytes({0x62, 0x60, 0x60, 0x60, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff});
  const std::string headers_1 =  // {"port": "8080"}
      Bytes({0x82, 0xca, 0xb0, 0x14, 0xe4, 0x17, 0x81, 0xf3, 0x87, 0x85, 0x81, 0x85, 0x01, 0x00,
             0x00, 0x00, 0xff, 0xff});

  HeaderDecompressor decompressor;
  absl::StatusOr<std::string> raw = decompressor.Decompress(syn_stream_1);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(*raw, RawBlock({{"streamtype", "error"}}));
  raw = decompressor.Decompress(syn_stream_3);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(*raw, RawBlock({{"x-multi", std::string("a\0b", 3)}}));
  raw = decompressor.Decompress(syn_reply_1);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(*raw, RawBlock({}));
  raw = decompressor.Decompress(headers_1);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(*raw, RawBlock({{"port", "8080"}}));

  // Out of order, the second block means nothing to a fresh stream.
  HeaderDecompressor fresh;
  EXPECT_FALSE(fresh.Decompress(syn_stream_3).ok());
}

TEST(HeaderCompressorTest, RoundTripsThroughOneStreamPerDirection) {
  HeaderCompressor compressor;
  HeaderDecompressor decompressor;
  const std::vector<HeaderBlock> blocks = {
      {{"streamtype", "error"}},
      {{"streamtype", "stdout"}},
      {},
      {{"streamtype", "data"}, {"port", "8080"}, {"requestid", "0"}},
      {{"streamtype", "data"}, {"port", "8080"}, {"requestid", "0"}},
  };
  std::vector<size_t> sizes;
  for (const HeaderBlock& block : blocks) {
    absl::StatusOr<std::string> wire = compressor.Compress(block);
    ASSERT_TRUE(wire.ok()) << wire.status();
    // Each block ends at a sync flush point: the empty stored block 00 00 ff ff.
    ASSERT_GE(wire->size(), 4u);
    EXPECT_EQ(wire->substr(wire->size() - 4), Bytes({0, 0, 0xff, 0xff}));
    sizes.push_back(wire->size());
    absl::StatusOr<std::string> raw = decompressor.Decompress(*wire);
    ASSERT_TRUE(raw.ok()) << raw.status();
    absl::StatusOr<HeaderBlock> parsed = ParseHeaderBlock(*raw);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, block);
  }
  // The state carries across frames: a repeated block costs a fraction of the first.
  EXPECT_LT(sizes[4], sizes[3]);
}

TEST(HeaderCompressorTest, OutputIsPlainZlibPrimedWithTheSpdyDictionary) {
  HeaderCompressor compressor;
  HeaderBlock block{{"streamtype", "stdin"}};
  absl::StatusOr<std::string> wire = compressor.Compress(block);
  ASSERT_TRUE(wire.ok()) << wire.status();
  // zlib header: deflate with a 2 KiB window, FDICT set, DICTID = the dictionary's Adler-32.
  EXPECT_EQ(static_cast<uint8_t>((*wire)[0]), 0x38);
  EXPECT_TRUE(static_cast<uint8_t>((*wire)[1]) & 0x20);
  EXPECT_EQ(wire->substr(2, 4), Bytes({0xe3, 0xc6, 0xa7, 0xc2}));

  std::string raw;
  EXPECT_EQ(InflateWithDictionary(*wire, HeaderDictionary(), raw), Z_OK);
  EXPECT_EQ(raw, RawBlock({{"streamtype", "stdin"}}));

  // Any other dictionary is refused by zlib itself.
  std::string wrong(HeaderDictionary());
  wrong[100] ^= 1;
  EXPECT_EQ(InflateWithDictionary(*wire, wrong, raw), Z_DATA_ERROR);
}

TEST(HeaderCompressorTest, InvalidBlockLeavesTheStreamUsable) {
  HeaderCompressor compressor;
  HeaderDecompressor decompressor;
  HeaderBlock invalid{{"", "x"}};
  EXPECT_EQ(compressor.Compress(invalid).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::string> wire = compressor.Compress(HeaderBlock{{"a", "b"}});
  ASSERT_TRUE(wire.ok());
  absl::StatusOr<std::string> raw = decompressor.Decompress(*wire);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(*raw, RawBlock({{"a", "b"}}));
}

TEST(HeaderDecompressorTest, RefusesAnotherDictionary) {
  std::string raw = RawBlock({{"a", "b"}});
  // SPDY/2's dictionary started like this; any other dictionary is just as wrong.
  std::string wire = DeflateWithDictionary(raw, "optionsgetheadpostputdeletetraceaccept");
  HeaderDecompressor decompressor;
  absl::StatusOr<std::string> out = decompressor.Decompress(wire);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(out.status().message().find("dictionary"), absl::string_view::npos) << out.status();
}

TEST(HeaderDecompressorTest, AcceptsAnyWindowSizeAPeerChooses) {
  std::string raw = RawBlock({{"streamtype", "resize"}});
  std::string wire = DeflateWithDictionary(raw, HeaderDictionary());  // 32 KiB window
  HeaderDecompressor decompressor;
  absl::StatusOr<std::string> out = decompressor.Decompress(wire);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, raw);
}

TEST(HeaderDecompressorTest, GarbageIsDataLossAndSticky) {
  HeaderDecompressor decompressor;
  EXPECT_EQ(decompressor.Decompress("not zlib at all").status().code(),
            absl::StatusCode::kDataLoss);
  HeaderCompressor compressor;
  absl::StatusOr<std::string> wire = compressor.Compress(HeaderBlock{{"a", "b"}});
  ASSERT_TRUE(wire.ok());
  EXPECT_EQ(decompressor.Decompress(*wire).status().code(), absl::StatusCode::kDataLoss);
}

TEST(HeaderDecompressorTest, EmptyInputIsDataLoss) {
  HeaderDecompressor decompressor;
  EXPECT_EQ(decompressor.Decompress("").status().code(), absl::StatusCode::kDataLoss);
}

TEST(HeaderDecompressorTest, RefusesADecompressionBomb) {
  HeaderCompressor compressor;
  HeaderBlock big{{"x", std::string(200 * 1024, 'a')}};
  absl::StatusOr<std::string> wire = compressor.Compress(big);
  ASSERT_TRUE(wire.ok());
  EXPECT_LT(wire->size(), 4096u);
  HeaderDecompressor decompressor(/*max_block_bytes=*/64 * 1024);
  EXPECT_EQ(decompressor.Decompress(*wire).status().code(), absl::StatusCode::kResourceExhausted);

  HeaderCompressor compressor2;
  wire = compressor2.Compress(big);
  ASSERT_TRUE(wire.ok());
  HeaderDecompressor roomy;  // the 1 MiB default
  absl::StatusOr<std::string> raw = roomy.Decompress(*wire);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(raw->size(), 4 + 4 + 1 + 4 + 200 * 1024u);
}

TEST(HeaderDecompressorTest, BlockAfterThePeerEndedItsStreamIsRefused) {
  std::string raw = RawBlock({{"a", "b"}});
  std::string finished = DeflateWithDictionary(raw, HeaderDictionary(), Z_FINISH);
  HeaderDecompressor decompressor;
  absl::StatusOr<std::string> out = decompressor.Decompress(finished);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, raw);
  EXPECT_EQ(decompressor.Decompress(Bytes({0x02, 0x00})).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(HostileInputTest, ParserAndDecompressorNeverCrash) {
  std::mt19937 random(1);
  for (int round = 0; round < 3000; ++round) {
    std::string noise(random() % 300, '\0');
    for (char& c : noise) c = static_cast<char>(random() % (round % 2 ? 256 : 4));
    (void)ParseHeaderBlock(noise);
    HeaderDecompressor decompressor(4096);
    (void)decompressor.Decompress(noise);
  }
  // Every single-byte corruption of a real compressed block.
  HeaderCompressor compressor;
  std::string wire = *compressor.Compress(HeaderBlock{{"streamtype", "data"}, {"port", "80"}});
  for (size_t i = 0; i < wire.size(); ++i) {
    std::string corrupt = wire;
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
    HeaderDecompressor decompressor;
    absl::StatusOr<std::string> raw = decompressor.Decompress(corrupt);
    if (raw.ok()) (void)ParseHeaderBlock(*raw);
  }
}

}  // namespace
}  // namespace berth::streaming::spdy
