#include "runtime/snapshot/layer_unpacker.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "e2e/fixtures/image_kit.h"
#include "gtest/gtest.h"
#include "runtime/base/strings.h"
#include "runtime/snapshot/fs_util.h"

namespace berth::snapshot {
namespace {

namespace fs = std::filesystem;
using ::berth::testing::BuildLayer;
using ::berth::testing::kFixedMtime;
using ::berth::testing::Layer;
using ::berth::testing::LayerFromTar;
using ::berth::testing::Sha256Digest;
using ::berth::testing::TarEntry;
using ::berth::testing::WriteTar;

// A fresh directory for one test, removed (with everything beneath it) at the end, pass
// or fail. Holds `root` (the unpack destination) and `outside`, which hostile layers aim
// at and which must stay empty.
class Sandbox {
 public:
  Sandbox() {
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern = StrCat(base != nullptr ? base : "/tmp", "/unpack-XXXXXX");
    char* made = mkdtemp(pattern.data());
    if (made == nullptr) abort();
    dir_ = made;
    fs::create_directory(root());
    fs::create_directory(outside());
  }
  ~Sandbox() {
    absl::Status removed = RemoveAll(dir_);
    if (!removed.ok()) ADD_FAILURE() << "clean up " << dir_ << ": " << removed.ToString();
  }

  std::string dir() const { return dir_; }
  std::string root() const { return dir_ + "/root"; }
  std::string outside() const { return dir_ + "/outside"; }
  std::string Path(std::string_view rel) const { return StrCat(root(), "/", rel); }

  // What the sandbox holds besides `root`: must be exactly the empty `outside`.
  void ExpectNothingOutside() const {
    std::set<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.insert(entry.path().filename().string());
    }
    EXPECT_EQ(names, (std::set<std::string>{"outside", "root"}));
    EXPECT_TRUE(fs::is_empty(outside())) << "a hostile layer wrote into " << outside();
  }

 private:
  std::string dir_;
};

// Hands out a blob in small pieces, to exercise chunk boundaries everywhere.
class ChunkedSource : public ByteSource {
 public:
  ChunkedSource(std::string_view data, size_t chunk) : data_(data), chunk_(chunk) {}
  absl::StatusOr<std::string_view> Read() override {
    std::string_view next = data_.substr(0, chunk_);
    data_.remove_prefix(next.size());
    return next;
  }

 private:
  std::string_view data_;
  size_t chunk_;
};

// Fails after handing out `good` bytes, as a broken download would.
class FailingSource : public ByteSource {
 public:
  explicit FailingSource(std::string_view data) : data_(data) {}
  absl::StatusOr<std::string_view> Read() override {
    if (served_) return absl::UnavailableError("registry connection reset");
    served_ = true;
    return data_;
  }

 private:
  std::string_view data_;
  bool served_ = false;
};

absl::StatusOr<UnpackResult> Unpack(const std::string& blob, const Sandbox& sandbox) {
  StringSource source(blob);
  return UnpackLayer(source, sandbox.root());
}

// Unpacks a layer of `entries` and expects InvalidArgument mentioning `needle`, with
// nothing written outside the root.
void ExpectHostile(const std::vector<TarEntry>& entries, std::string_view needle) {
  Sandbox sandbox;
  absl::StatusOr<Layer> layer = BuildLayer(entries);
  ASSERT_TRUE(layer.ok()) << layer.status();
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_FALSE(result.ok()) << "hostile layer unpacked";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_NE(result.status().message().find(std::string(needle)), std::string::npos)
      << result.status();
  sandbox.ExpectNothingOutside();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << strerror(errno);
  return st;
}

std::string GetXattr(const std::string& path, const char* name) {
  char value[256];
  ssize_t n = lgetxattr(path.c_str(), name, value, sizeof(value));
  if (n < 0) return StrCat("<", strerror(errno), ">");
  return std::string(value, static_cast<size_t>(n));
}

// The tar compressed with zstd through libarchive's raw writer.
std::string Zstd(const std::string& data) {
  std::string out;
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                            archive_write_free);
  EXPECT_EQ(archive_write_set_format_raw(a.get()), ARCHIVE_OK);
  EXPECT_EQ(archive_write_add_filter_zstd(a.get()), ARCHIVE_OK) << archive_error_string(a.get());
  EXPECT_EQ(archive_write_set_bytes_in_last_block(a.get(), 1), ARCHIVE_OK);
  auto append = [](archive*, void* client, const void* buffer, size_t length) -> la_ssize_t {
    static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
    return static_cast<la_ssize_t>(length);
  };
  EXPECT_EQ(archive_write_open(a.get(), &out, nullptr, append, nullptr), ARCHIVE_OK);
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(),
                                                                  archive_entry_free);
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(data.size()));
  EXPECT_EQ(archive_write_header(a.get(), e.get()), ARCHIVE_OK);
  EXPECT_EQ(archive_write_data(a.get(), data.data(), data.size()),
            static_cast<la_ssize_t>(data.size()));
  EXPECT_EQ(archive_write_close(a.get()), ARCHIVE_OK);
  return out;
}

std::vector<TarEntry> SimpleEntries() {
  return {TarEntry::Dir("etc"), TarEntry::File("etc/hostname", "berth\n"),
          TarEntry::Symlink("etc/link", "hostname")};
}

void ExpectSimpleTree(const Sandbox& sandbox) {
  EXPECT_EQ(ReadFile(sandbox.Path("etc/hostname")), "berth\n");
  EXPECT_TRUE(fs::is_symlink(sandbox.Path("etc/link")));
}

TEST(LayerUnpackerTest, UnpacksEveryKindOfEntryFaithfully) {
  TarEntry setuid = TarEntry::File("bin/su", "#!/bin/sh\n", 04755);
  TarEntry setgid = TarEntry::File("bin/wall", "wall", 02711);
  TarEntry owned = TarEntry::File("home/berth/notes", "mine", 0600);
  owned.uid = 1001;
  owned.gid = 1002;
  TarEntry home = TarEntry::Dir("home/berth", 0750);
  home.uid = 1001;
  home.gid = 1002;
  TarEntry tagged = TarEntry::File("data/tagged", "x");
  tagged.xattrs = {{"user.berth.color", "blue"}};
  TarEntry tagged_dir = TarEntry::Dir("data", 0755);
  tagged_dir.xattrs = {{"user.berth.kind", "dir"}};
  TarEntry link_owned = TarEntry::Symlink("home/berth/link", "/etc/shadow");
  link_owned.uid = 1001;
  link_owned.gid = 1002;
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 3);

  absl::StatusOr<Layer> layer = BuildLayer({
      TarEntry::Dir("bin"),
      setuid,
      setgid,
      TarEntry::Dir("tmp", 01777),
      TarEntry::Dir("home", 0755),
      home,
      owned,
      link_owned,
      tagged_dir,
      tagged,
      TarEntry::File("data/big", big),
      TarEntry::Hardlink("data/big-link", "data/big"),
      TarEntry::Symlink("data/abs", "/etc/passwd"),
      TarEntry::Symlink("data/up", "../../../../outside"),
      TarEntry::Fifo("data/pipe"),
      // No directory entries for these parents: they are made, 0755.
      TarEntry::File("deep/a/b/c", "deep"),
  });
  ASSERT_TRUE(layer.ok()) << layer.status();
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->diff_id, layer->diff_id);

  EXPECT_EQ(Lstat(sandbox.Path("bin/su")).st_mode, S_IFREG | 04755);
  EXPECT_EQ(Lstat(sandbox.Path("bin/wall")).st_mode, S_IFREG | 02711);
  EXPECT_EQ(Lstat(sandbox.Path("tmp")).st_mode, S_IFDIR | 01777);
  EXPECT_EQ(Lstat(sandbox.Path("home/berth")).st_mode, S_IFDIR | 0750);
  EXPECT_EQ(Lstat(sandbox.Path("home/berth/notes")).st_mode, S_IFREG | 0600);
  EXPECT_EQ(ReadFile(sandbox.Path("bin/su")), "#!/bin/sh\n");
  EXPECT_EQ(ReadFile(sandbox.Path("data/big")), big);

  struct stat big_st = Lstat(sandbox.Path("data/big"));
  struct stat link_st = Lstat(sandbox.Path("data/big-link"));
  EXPECT_EQ(big_st.st_ino, link_st.st_ino);
  EXPECT_EQ(big_st.st_nlink, 2u);

  EXPECT_EQ(fs::read_symlink(sandbox.Path("data/abs")), "/etc/passwd");
  EXPECT_EQ(fs::read_symlink(sandbox.Path("data/up")), "../../../../outside");
  EXPECT_TRUE(S_ISFIFO(Lstat(sandbox.Path("data/pipe")).st_mode));
  EXPECT_EQ(ReadFile(sandbox.Path("deep/a/b/c")), "deep");
  for (const char* parent : {"deep", "deep/a", "deep/a/b"}) {
    EXPECT_EQ(Lstat(sandbox.Path(parent)).st_mode, S_IFDIR | 0755) << parent;
  }

  EXPECT_EQ(GetXattr(sandbox.Path("data/tagged"), "user.berth.color"), "blue");
  EXPECT_EQ(GetXattr(sandbox.Path("data"), "user.berth.kind"), "dir");

  // Every entry carries the kit's fixed mtime; directories keep theirs even though
  // children were created in them afterwards.
  for (const char* path : {"bin", "bin/su", "home", "home/berth", "home/berth/link", "data",
                           "data/big", "data/pipe", "tmp"}) {
    EXPECT_EQ(Lstat(sandbox.Path(path)).st_mtime, kFixedMtime) << path;
  }

  if (!HasHostRoot()) {
    GTEST_SKIP() << "NOT ROOT (in the initial user namespace): ownership (uid/gid 1001:1002) "
                    "was not checked; run as root";
  }
  for (const char* path : {"home/berth", "home/berth/notes", "home/berth/link"}) {
    struct stat st = Lstat(sandbox.Path(path));
    EXPECT_EQ(st.st_uid, 1001u) << path;
    EXPECT_EQ(st.st_gid, 1002u) << path;
  }
  EXPECT_EQ(Lstat(sandbox.Path("bin/su")).st_uid, 0u);
}

TEST(LayerUnpackerTest, DiffIdAndSizeCoverTheWholeUncompressedStream) {
  absl::StatusOr<std::string> tar = WriteTar(SimpleEntries());
  ASSERT_TRUE(tar.ok()) << tar.status();
  // Tar writers pad to a 10 KiB record after the end-of-archive blocks; that padding
  // is part of the blob the diff_id names.
  std::string padded = *tar + std::string(10240, '\0');
  absl::StatusOr<Layer> layer = LayerFromTar(padded);
  ASSERT_TRUE(layer.ok()) << layer.status();
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->diff_id, layer->diff_id);
  EXPECT_EQ(result->uncompressed_bytes, static_cast<int64_t>(padded.size()));
  ExpectSimpleTree(sandbox);
}

TEST(LayerUnpackerTest, UnpacksPlainTar) {
  absl::StatusOr<std::string> tar = WriteTar(SimpleEntries());
  ASSERT_TRUE(tar.ok()) << tar.status();
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(*tar, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->diff_id, Sha256Digest(*tar));
  ExpectSimpleTree(sandbox);
}

TEST(LayerUnpackerTest, UnpacksZstd) {
  absl::StatusOr<std::string> tar = WriteTar(SimpleEntries());
  ASSERT_TRUE(tar.ok()) << tar.status();
  std::string blob = Zstd(*tar);
  ASSERT_EQ(blob.substr(0, 4), std::string("\x28\xb5\x2f\xfd", 4)) << "not a zstd frame";
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(blob, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->diff_id, Sha256Digest(*tar));
  ExpectSimpleTree(sandbox);
}

TEST(LayerUnpackerTest, StreamsFromTinyChunksAndFromFiles) {
  absl::StatusOr<Layer> layer = BuildLayer(SimpleEntries());
  ASSERT_TRUE(layer.ok()) << layer.status();
  {
    Sandbox sandbox;
    ChunkedSource source(layer->blob.data, 7);
    absl::StatusOr<UnpackResult> result = UnpackLayer(source, sandbox.root());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->diff_id, layer->diff_id);
    ExpectSimpleTree(sandbox);
  }
  {
    Sandbox sandbox;
    std::string blob_path = sandbox.dir() + "/blob";
    std::ofstream(blob_path, std::ios::binary) << layer->blob.data;
    FileSource source(blob_path);
    absl::StatusOr<UnpackResult> result = UnpackLayer(source, sandbox.root());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->diff_id, layer->diff_id);
    ExpectSimpleTree(sandbox);
  }
  FileSource missing("/nonexistent/berth-blob");
  Sandbox sandbox;
  EXPECT_EQ(UnpackLayer(missing, sandbox.root()).status().code(), absl::StatusCode::kNotFound);
}

TEST(LayerUnpackerTest, WhiteoutsBecomeWhiteoutDevices) {
  absl::StatusOr<Layer> layer = BuildLayer({
      TarEntry::Dir("etc"), TarEntry::File("etc/motd", "replaced in this very layer"),
      TarEntry::Whiteout("etc/motd"), TarEntry::Whiteout("etc/issue"),
      TarEntry::File("etc/.wh..wh.plnk", ""),  // aufs bookkeeping: ignored
      TarEntry::Whiteout("gone/deeper"),       // parent made on the way
  });
  ASSERT_TRUE(layer.ok()) << layer.status();
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->diff_id, layer->diff_id);

  for (const char* path : {"etc/motd", "etc/issue", "gone/deeper"}) {
    struct stat st = Lstat(sandbox.Path(path));
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << path;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << path;
  }
  EXPECT_FALSE(fs::exists(sandbox.Path("etc/.wh.motd")));
  EXPECT_FALSE(fs::exists(sandbox.Path("etc/.wh..wh.plnk")));
}

TEST(LayerUnpackerTest, OpaqueWhiteoutMarksTheDirectory) {
  if (!HasHostRoot()) {
    GTEST_SKIP() << "NOT ROOT (in the initial user namespace): trusted.overlay.opaque cannot "
                    "be set, opaque whiteouts were not checked; run as root";
  }
  absl::StatusOr<Layer> layer = BuildLayer({
      TarEntry::Dir("var"),
      TarEntry::OpaqueWhiteout("var"),
      TarEntry::File("var/kept", "new"),
      TarEntry::OpaqueWhiteout("made/on/the/way"),
  });
  ASSERT_TRUE(layer.ok()) << layer.status();
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(GetXattr(sandbox.Path("var"), "trusted.overlay.opaque"), "y");
  EXPECT_EQ(GetXattr(sandbox.Path("made/on/the/way"), "trusted.overlay.opaque"), "y");
  EXPECT_FALSE(fs::exists(sandbox.Path("var/.wh..wh..opq")));
  EXPECT_EQ(ReadFile(sandbox.Path("var/kept")), "new");
}

TEST(LayerUnpackerTest, IgnoresOverlayXattrsCarriedByTheLayer) {
  if (!HasHostRoot()) {
    GTEST_SKIP() << "NOT ROOT (in the initial user namespace): trusted.* xattrs cannot be "
                    "read; run as root";
  }
  TarEntry forged = TarEntry::Dir("etc");
  forged.xattrs = {{"trusted.overlay.redirect", "/secret"}, {"trusted.overlay.opaque", "y"}};
  absl::StatusOr<Layer> layer = BuildLayer({forged});
  ASSERT_TRUE(layer.ok()) << layer.status();
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(lgetxattr(sandbox.Path("etc").c_str(), "trusted.overlay.redirect", nullptr, 0), -1);
  EXPECT_EQ(lgetxattr(sandbox.Path("etc").c_str(), "trusted.overlay.opaque", nullptr, 0), -1);
}

TEST(LayerUnpackerTest, LaterEntriesReplaceEarlierOnes) {
  absl::StatusOr<Layer> layer = BuildLayer({
      TarEntry::File("a", "file first"),
      TarEntry::Dir("a"),  // file -> directory
      TarEntry::File("a/child", "kept"),
      TarEntry::Dir("a", 0700),  // directory over directory: metadata only
      TarEntry::Dir("b"),
      TarEntry::File("b/inner", "lost"),
      TarEntry::Symlink("b", "a"),  // non-empty directory -> symlink
      TarEntry::File("c", "old"),
      TarEntry::File("c", "new"),
  });
  ASSERT_TRUE(layer.ok()) << layer.status();
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(Lstat(sandbox.Path("a")).st_mode, S_IFDIR | 0700);
  EXPECT_EQ(ReadFile(sandbox.Path("a/child")), "kept");
  EXPECT_EQ(fs::read_symlink(sandbox.Path("b")), "a");
  EXPECT_EQ(ReadFile(sandbox.Path("c")), "new");
}

TEST(LayerUnpackerTest, SymlinksInsideTheLayerAreFollowedForParents) {
  absl::StatusOr<Layer> layer = BuildLayer({
      TarEntry::Dir("usr"),
      TarEntry::Dir("usr/lib"),
      TarEntry::Symlink("lib", "usr/lib"),
      TarEntry::File("lib/libc.so", "elf"),
      TarEntry::Dir("usr/share"),
      TarEntry::Symlink("usr/share/up", "../lib"),  // ".." that stays inside
      TarEntry::File("usr/share/up/libm.so", "elf"),
  });
  ASSERT_TRUE(layer.ok()) << layer.status();
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(ReadFile(sandbox.Path("usr/lib/libc.so")), "elf");
  EXPECT_EQ(ReadFile(sandbox.Path("usr/lib/libm.so")), "elf");
}

TEST(LayerUnpackerTest, NeverWritesThroughAnExistingSymlink) {
  Sandbox sandbox;
  absl::StatusOr<Layer> layer = BuildLayer({
      TarEntry::Symlink("f", "../outside/f"), TarEntry::File("f", "replaces the symlink"),
      TarEntry::Symlink("d", "../outside"), TarEntry::Dir("d"),
      TarEntry::Symlink("evil", "/etc/shadow"),
      TarEntry::Hardlink("linked", "evil"),  // links the symlink, not what it names
  });
  ASSERT_TRUE(layer.ok()) << layer.status();
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(ReadFile(sandbox.Path("f")), "replaces the symlink");
  EXPECT_TRUE(fs::is_directory(fs::symlink_status(sandbox.Path("d"))));
  EXPECT_EQ(fs::read_symlink(sandbox.Path("linked")), "/etc/shadow");
  sandbox.ExpectNothingOutside();
}

// One 512-byte ustar header block, written by hand: the kit (libarchive in the C
// locale) refuses non-ASCII names that real layers carry.
std::string UstarHeader(std::string_view name, char type, size_t size) {
  std::string header(512, '\0');
  auto put = [&](size_t offset, std::string_view value) {
    header.replace(offset, value.size(), value);
  };
  auto octal = [](uint64_t value, int width) { return fmt::format("{:0{}o}", value, width); };
  put(0, name.substr(0, 100));
  put(100, octal(0644, 7));
  put(108, octal(0, 7));
  put(116, octal(0, 7));
  put(124, octal(size, 11));
  put(136, octal(kFixedMtime, 11));
  put(148, "        ");
  header[156] = type;
  put(257, std::string_view("ustar\0"
                            "00",
                            8));
  unsigned checksum = 0;
  for (unsigned char c : header) checksum += c;
  put(148, octal(checksum, 6));
  header[154] = '\0';
  return header;
}

std::string Padded(std::string data) {
  data.resize((data.size() + 511) / 512 * 512, '\0');
  return data;
}

// A pax extended header setting `path`, as Go's archive/tar (docker, buildkit) writes
// for non-ASCII names.
std::string PaxPath(std::string_view path) {
  std::string record = StrCat(" path=", path, "\n");
  // The length prefix counts itself.
  size_t length = record.size() + 1;
  while (std::to_string(length).size() + record.size() != length) ++length;
  record = StrCat(length, record);
  return UstarHeader("PaxHeaders/x", 'x', record.size()) + Padded(record);
}

TEST(LayerUnpackerTest, KeepsNonAsciiNamesByteForByte) {
  const std::string utf8_dir =
      "donn\xc3\xa9"
      "es";
  const std::string utf8_file = utf8_dir + "/caf\xc3\xa9";
  const std::string latin1 = "latin1-\xe9";
  std::string tar = PaxPath(utf8_dir + "/") + UstarHeader("placeholder/", '5', 0) +
                    PaxPath(utf8_file) + UstarHeader("placeholder", '0', 5) + Padded("utf-8") +
                    UstarHeader(latin1, '0', 9) + Padded("not utf-8") + std::string(1024, '\0');
  absl::StatusOr<Layer> layer = LayerFromTar(tar);
  ASSERT_TRUE(layer.ok()) << layer.status();
  Sandbox sandbox;
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->diff_id, layer->diff_id);
  EXPECT_EQ(ReadFile(sandbox.Path(utf8_file)), "utf-8");
  EXPECT_EQ(ReadFile(sandbox.Path(latin1)), "not utf-8");
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(sandbox.root())) {
    names.insert(entry.path().filename().string());
  }
  EXPECT_EQ(names, (std::set<std::string>{utf8_dir, latin1}));
}

TEST(LayerUnpackerTest, RejectsAbsolutePaths) {
  ExpectHostile({TarEntry::File("/berth-unpack-absolute", "boom")}, "is an absolute path");
  EXPECT_FALSE(fs::exists("/berth-unpack-absolute"));
}

TEST(LayerUnpackerTest, RejectsDotDotPaths) {
  ExpectHostile({TarEntry::File("../outside/escape", "boom")}, "\"..\" component");
  ExpectHostile({TarEntry::Dir("a"), TarEntry::File("a/../../outside/escape", "boom")},
                "\"..\" component");
}

TEST(LayerUnpackerTest, RejectsEntriesBeneathSymlinksThatEscape) {
  ExpectHostile({TarEntry::Symlink("escape", "/"), TarEntry::File("escape/berth-unpack-root", "x")},
                "resolves outside the layer");
  EXPECT_FALSE(fs::exists("/berth-unpack-root"));
  ExpectHostile({TarEntry::Symlink("escape", "../outside"), TarEntry::File("escape/x", "x")},
                "resolves outside the layer");
  ExpectHostile({TarEntry::Dir("a"), TarEntry::Symlink("a/up", "../../outside"),
                 TarEntry::File("a/up/x", "x")},
                "resolves outside the layer");
  // The sandbox's own absolute path: inside the file system, outside the layer.
  Sandbox probe;
  ExpectHostile({TarEntry::Symlink("escape", probe.outside()), TarEntry::Dir("escape/d")},
                "resolves outside the layer");
  EXPECT_TRUE(fs::is_empty(probe.outside()));
  // A whiteout or opaque marker beneath an escaping symlink is refused too.
  ExpectHostile({TarEntry::Symlink("escape", "../outside"), TarEntry::Whiteout("escape/x")},
                "resolves outside the layer");
  ExpectHostile({TarEntry::Symlink("escape", "../outside"), TarEntry::OpaqueWhiteout("escape")},
                "resolves outside the layer");
}

TEST(LayerUnpackerTest, RejectsHardLinksThatEscape) {
  ExpectHostile({TarEntry::Hardlink("passwd", "/etc/passwd")}, "is an absolute path");
  ExpectHostile({TarEntry::Hardlink("x", "../outside/secret")}, "\"..\" component");
  ExpectHostile(
      {TarEntry::Symlink("escape", "/etc"), TarEntry::Hardlink("passwd", "escape/passwd")},
      "resolves outside the layer");
  ExpectHostile({TarEntry::Hardlink("x", "missing")}, "does not exist in the layer");
}

TEST(LayerUnpackerTest, RejectsDeviceNodes) {
  ExpectHostile({TarEntry::Dir("dev"), TarEntry::CharDevice("dev/mem", 1, 1)},
                "is a character device");
  ExpectHostile({TarEntry::Dir("dev"), TarEntry::BlockDevice("dev/sda", 8, 0)},
                "is a block device");
  // Not even the whiteout device itself: whiteouts come as .wh. files, never as devices.
  ExpectHostile({TarEntry::CharDevice("fake", 0, 0)}, "is a character device");
}

TEST(LayerUnpackerTest, NamesTheHostileEntry) {
  Sandbox sandbox;
  absl::StatusOr<Layer> layer =
      BuildLayer({TarEntry::Dir("ok"), TarEntry::File("ok/../../outside/evil", "x")});
  ASSERT_TRUE(layer.ok()) << layer.status();
  absl::StatusOr<UnpackResult> result = Unpack(layer->blob.data, sandbox);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "layer entry \"ok/../../outside/evil\" has a \"..\" component");
}

TEST(LayerUnpackerTest, RejectsCorruptAndTruncatedBlobs) {
  std::string big(256 << 10, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 2654435761u >> 24);
  absl::StatusOr<std::string> tar = WriteTar({TarEntry::File("a", big), TarEntry::File("b", big)});
  ASSERT_TRUE(tar.ok()) << tar.status();
  absl::StatusOr<Layer> layer = LayerFromTar(*tar);
  ASSERT_TRUE(layer.ok()) << layer.status();
  const std::string& gz = layer->blob.data;

  auto expect_data_loss = [](const std::string& blob, std::string_view label) {
    Sandbox sandbox;
    absl::StatusOr<UnpackResult> result = Unpack(blob, sandbox);
    ASSERT_FALSE(result.ok()) << label << " unpacked";
    EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss)
        << label << ": " << result.status();
    sandbox.ExpectNothingOutside();
  };
  expect_data_loss(gz.substr(0, gz.size() / 2), "gzip cut in half");
  expect_data_loss(gz.substr(0, gz.size() - 4), "gzip without its length trailer");
  std::string corrupt = gz;
  for (size_t i = corrupt.size() / 3; i < corrupt.size() / 3 + 64; ++i) corrupt[i] ^= 0x5a;
  expect_data_loss(corrupt, "corrupt gzip");
  expect_data_loss(tar->substr(0, 512 + big.size() / 2), "plain tar cut inside a file");
  expect_data_loss(std::string(4096, 'z'), "not a tar");
  expect_data_loss("", "empty blob");
}

TEST(LayerUnpackerTest, SourceErrorsPassThrough) {
  absl::StatusOr<Layer> layer = BuildLayer(SimpleEntries());
  ASSERT_TRUE(layer.ok()) << layer.status();
  Sandbox sandbox;
  FailingSource source(std::string_view(layer->blob.data).substr(0, layer->blob.data.size() / 2));
  absl::StatusOr<UnpackResult> result = UnpackLayer(source, sandbox.root());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_EQ(result.status().message(), "registry connection reset");
}

TEST(LayerUnpackerTest, MissingDestinationIsAnError) {
  absl::StatusOr<Layer> layer = BuildLayer(SimpleEntries());
  ASSERT_TRUE(layer.ok()) << layer.status();
  StringSource source(layer->blob.data);
  EXPECT_EQ(UnpackLayer(source, "/nonexistent/berth-dest").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace berth::snapshot
