// pull_bench: image pull + unpack from a local registry, berth against
// containerd 1.6 (when installed) and against plain libcurl + tar, in one run.
//
//   bazel run //bench:pull_bench -- --rounds 5
//
// It builds a deterministic image of several layers (mostly incompressible data
// plus many small files; ~100 MB compressed by default), pushes it to a private
// docker-registry on 127.0.0.1, then each round times, each against a fresh root
// so nothing is cached:
//
//   berth       a fresh berthd; CRI PullImage over its socket (returns once unpacked)
//   containerd  a fresh `containerd` (own root, state, socket; CRI plugin,
//               overlayfs); CRI PullImage over its socket. Skipped when not on PATH.
//   baseline    libcurl GETs of manifest, config and layers into files, then
//               `tar -xzf` of each layer into its own directory (no verification)
//   floor       libcurl feeding libarchive in memory, layer after layer, no
//               verification: the floor for "unpack while downloading"
//
// and prints median / min of each and the ratios berth ÷ each (target for
// berth ÷ containerd: ≤ 0.6×). Only daemon start-up is outside the timings;
// the order of the contenders rotates each round. Pulls write to a fresh
// loop-mounted ext4 (see ScratchFs) unless --scratch tmp. It needs root (layers
// are unpacked with their owners) and runs everything on loopback; processes it
// starts are stopped by PID, and its files and mounts are removed at the end.
#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/cleanup/cleanup.h"
#include "bench/bench_util.h"
#include "bench/containerd_instance.h"
#include "e2e/berthd_fixture.h"
#include "e2e/fixtures/image_kit.h"
#include "e2e/fixtures/registry.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/strings.h"

namespace berth::bench {
namespace {

namespace v1 = ::runtime::v1;
using berth::testing::BerthdFixture;
using berth::testing::Layer;
using berth::testing::OciImage;
using berth::testing::Registry;
using berth::testing::TarEntry;

constexpr char kRepo[] = "bench/pull";
constexpr char kTag[] = "v1";

struct Flags {
  int rounds = 5;
  int warmup = 1;
  int layers = 5;
  int layer_mb = 20;
  std::string berthd;
  std::string containerd;
  bool skip_containerd = false;
  bool remove_each_pull = false;
  std::string scratch = "ext4";
};

// ---- the image ---------------------------------------------------------------

// Words for the text-like small files: they compress roughly 3:1, like source
// and config files in real images.
constexpr const char* kWords[] = {"container", "runtime", "layer",  "snapshot", "overlay",
                                  "registry",  "kubelet", "config", "manifest", "digest",
                                  "the",       "of",      "and",    "berth",    "pull",
                                  "image",     "\n",      " ",      "{",        "}"};

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string out(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    memcpy(&out[i], &v, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<char>(rng());
  return out;
}

std::string TextBytes(std::mt19937_64& rng, size_t n) {
  std::string out;
  out.reserve(n + 16);
  while (out.size() < n) {
    out += kWords[rng() % std::size(kWords)];
    out += ' ';
  }
  out.resize(n);
  return out;
}

// One layer of about `bytes` uncompressed: 92% in four incompressible files, the
// rest in small files (0.25..4 KiB, half random, half text) spread over 32
// directories, plus a few symlinks. Seeded by `index`: the same bytes every run.
std::vector<TarEntry> LayerEntries(int index, size_t bytes) {
  std::mt19937_64 rng(0xbe27 + index);
  std::vector<TarEntry> entries;
  const std::string top = StrCat("data/l", index);
  // Every layer names its parent directories, as image builders write them.
  entries.push_back(TarEntry::Dir("data"));
  entries.push_back(TarEntry::Dir(top));
  const size_t big_total = bytes / 100 * 92;
  for (int k = 0; k < 4; ++k) {
    entries.push_back(
        TarEntry::File(StrCat(top, "/blob", k, ".bin"), RandomBytes(rng, big_total / 4)));
  }
  constexpr int kDirs = 32;
  for (int d = 0; d < kDirs; ++d) entries.push_back(TarEntry::Dir(StrCat(top, "/d", d)));
  size_t small_total = 0;
  for (int k = 0; small_total < bytes - big_total; ++k) {
    size_t size = 256 + rng() % 3841;
    std::string path = StrCat(top, "/d", k % kDirs, "/f", k, k % 2 ? ".txt" : ".bin");
    entries.push_back(
        TarEntry::File(path, k % 2 ? TextBytes(rng, size) : RandomBytes(rng, size), 0644));
    if (k % 50 == 0) {
      entries.push_back(TarEntry::Symlink(path + ".link", StrCat("f", k, k % 2 ? ".txt" : ".bin")));
    }
    small_total += size;
  }
  return entries;
}

struct ImageFacts {
  int64_t compressed = 0;    // layers + config, as pulled
  int64_t uncompressed = 0;  // file contents, as unpacked
  size_t files = 0;
};

absl::StatusOr<OciImage> BuildBenchImage(const Flags& flags, ImageFacts* facts) {
  const size_t layer_bytes = static_cast<size_t>(flags.layer_mb) << 20;
  struct Built {
    absl::StatusOr<Layer> layer;
    int64_t bytes = 0;
    size_t files = 0;
  };
  // Layers are independent: build (mostly gzip) them in parallel.
  std::vector<std::future<Built>> futures;
  for (int i = 0; i < flags.layers; ++i) {
    futures.push_back(std::async(std::launch::async, [i, layer_bytes]() {
      std::vector<TarEntry> entries = LayerEntries(i, layer_bytes);
      Built built{.layer = berth::testing::BuildLayer(entries)};
      for (const TarEntry& e : entries) {
        if (e.type != TarEntry::Type::kFile) continue;
        built.bytes += static_cast<int64_t>(e.content.size());
        ++built.files;
      }
      return built;
    }));
  }
  std::vector<Layer> layers;
  for (auto& f : futures) {
    Built built = f.get();
    if (!built.layer.ok()) return built.layer.status();
    layers.push_back(*std::move(built.layer));
    facts->uncompressed += built.bytes;
    facts->files += built.files;
  }
  absl::StatusOr<OciImage> image = berth::testing::BuildImage(
      kRepo, kTag, berth::testing::ImageConfig{.cmd = {"sh"}}, std::move(layers));
  if (!image.ok()) return image.status();
  facts->compressed = static_cast<int64_t>(image->config.data.size());
  for (const Layer& l : image->layers) {
    facts->compressed += static_cast<int64_t>(l.blob.data.size());
  }
  return image;
}

// Flushes every dirty page before a timed pull, so no pull pays for another's
// writeback. Twice: should the loop device lack direct I/O, the first sync
// only moves the scratch filesystem's pages into the backing file's page cache.
void Quiesce() {
  sync();
  sync();
}

// ---- what each pull leaves behind ------------------------------------------------

// A fresh directory under `parent`, removed (with any mount below it) on destruction.
struct TempDir {
  TempDir(const std::string& parent, std::string_view prefix) {
    std::string tmpl = StrCat(parent, "/", prefix, "-XXXXXX");
    if (mkdtemp(tmpl.data()) != nullptr) path = tmpl;
  }
  ~TempDir() { berth::testing::RemoveTree(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
};

// Where every contender writes: by default a fresh ext4 (with a journal, as on a
// real node) in a sparse file under /tmp, on a loop device with direct I/O,
// mounted for this run only.
//
// Why not /tmp itself: this machine's root is ext4 *without* a journal, and
// there allocating an inode skips every inode freed in the last minutes (ext4's
// recently_deleted(), which is only consulted without a journal), scanning the
// inode table for each. Whatever deleted files last — another session's tests,
// this benchmark's previous round or run — made file creation, the bulk of an
// unpack, two to three times slower for whoever came next. A private journaled
// filesystem makes runs comparable; --scratch tmp measures /tmp as it is.
class ScratchFs {
 public:
  static absl::StatusOr<std::unique_ptr<ScratchFs>> Create(int64_t bytes) {
    std::unique_ptr<ScratchFs> fs(new ScratchFs());
    fs->dir_ = std::make_unique<TempDir>("/tmp", "berth-bench-fs");
    if (fs->dir_->path.empty()) return absl::InternalError("mkdtemp under /tmp failed");
    fs->image_ = fs->dir_->path + ".img";
    fs->mount_point_ = fs->dir_->path;
    if (CreateSparseFile(fs->image_, bytes) != 0) {
      return absl::InternalError(StrCat("create sparse file ", fs->image_, ": ", strerror(errno)));
    }
    // Inode tables and journal initialised now, so no ext4lazyinit thread
    // writes in the background while pulls are timed.
    RETURN_IF_ERROR(RunCommand({FindOnPath("mkfs.ext4").value_or("/usr/sbin/mkfs.ext4"), "-q", "-F",
                                "-E", "lazy_itable_init=0,lazy_journal_init=0", fs->image_}));
    RETURN_IF_ERROR(fs->Mount());
    return fs;
  }

  ~ScratchFs() {
    if (mounted_ && umount2(mount_point_.c_str(), 0) != 0) {
      umount2(mount_point_.c_str(), MNT_DETACH);
    }
    dir_.reset();
    unlink(image_.c_str());
  }

  const std::string& path() const { return mount_point_; }
  bool direct_io() const { return direct_io_; }

 private:
  ScratchFs() = default;
  // Attaches the image to a free loop device with direct I/O (so its pages are
  // not cached twice, once per filesystem, and sync() reaches the disk) and
  // autoclear (the device detaches itself at unmount), then mounts it.
  absl::Status Mount() {
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
      return absl::FailedPreconditionError(StrCat("open /dev/loop-control: ", strerror(errno)));
    }
    absl::Cleanup close_ctl = [ctl] { close(ctl); };
    int backing = open(image_.c_str(), O_RDWR | O_CLOEXEC);
    if (backing < 0) return absl::InternalError(StrCat("open ", image_, ": ", strerror(errno)));
    absl::Cleanup close_backing = [backing] { close(backing); };
    // Another process may take the device we were offered: try the next.
    for (int attempt = 0; attempt < 10; ++attempt) {
      int n = ioctl(ctl, LOOP_CTL_GET_FREE);
      if (n < 0) return absl::InternalError(StrCat("LOOP_CTL_GET_FREE: ", strerror(errno)));
      std::string device = StrCat("/dev/loop", n);
      int loop = open(device.c_str(), O_RDWR | O_CLOEXEC);
      if (loop < 0) return absl::InternalError(StrCat("open ", device, ": ", strerror(errno)));
      absl::Cleanup close_loop = [loop] { close(loop); };
      if (ioctl(loop, LOOP_SET_FD, backing) != 0) {
        if (errno == EBUSY) continue;
        return absl::InternalError(StrCat("LOOP_SET_FD ", device, ": ", strerror(errno)));
      }
      loop_info64 info{};
      info.lo_flags = LO_FLAGS_AUTOCLEAR;
      strncpy(reinterpret_cast<char*>(info.lo_file_name), image_.c_str(), LO_NAME_SIZE - 1);
      if (ioctl(loop, LOOP_SET_STATUS64, &info) != 0 ||
          mount(device.c_str(), mount_point_.c_str(), "ext4", 0, nullptr) != 0) {
        absl::Status error = absl::InternalError(
            StrCat("mount ", device, " (", image_, ") on ", mount_point_, ": ", strerror(errno)));
        ioctl(loop, LOOP_CLR_FD, 0);
        return error;
      }
      mounted_ = true;
      // Best effort: without it the scratch is only slower.
      direct_io_ = ioctl(loop, LOOP_SET_DIRECT_IO, 1UL) == 0;
      return absl::OkStatus();
    }
    return absl::UnavailableError("no free loop device");
  }

  static int CreateSparseFile(const std::string& path, int64_t bytes) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    int rc = ftruncate(fd, bytes);
    close(fd);
    return rc;
  }

  std::unique_ptr<TempDir> dir_;
  std::string image_, mount_point_;
  bool mounted_ = false;
  bool direct_io_ = false;
};

// Stopped daemons and the directories of finished pulls. Their files are removed
// only after the last round (unless --remove-each-pull), so no timed pull runs
// while the disk is busy deleting another's files.
struct Leftovers {
  std::string work_dir;  // where pulls write: the scratch filesystem or /tmp
  std::vector<std::unique_ptr<BerthdFixture>> berthds;           // stopped
  std::vector<std::unique_ptr<ContainerdInstance>> containerds;  // stopped
  std::vector<std::unique_ptr<TempDir>> dirs;

  // A new directory under work_dir, removed by Clear().
  const std::string& NewDir(std::string_view prefix) {
    dirs.push_back(std::make_unique<TempDir>(work_dir, prefix));
    return dirs.back()->path;
  }

  void Clear() {
    berthds.clear();
    containerds.clear();
    dirs.clear();
  }
};

// ---- berth -------------------------------------------------------------------

struct Measurement {
  double seconds = 0;
  int64_t disk_bytes = 0;  // under the daemon's root after the pull
  std::string version;
};

absl::StatusOr<Measurement> PullWithBerth(const Registry& registry, const OciImage& image,
                                          const std::string& ref, Leftovers& leftovers) {
  // The fixture keeps berthd's state, socket and log in its own /tmp dir; the
  // root (content store, snapshots) goes where every contender writes.
  const std::string& root_parent = leftovers.NewDir("berth");
  if (root_parent.empty()) return absl::InternalError("mkdtemp failed");
  const std::string root = root_parent + "/root";
  absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd =
      BerthdFixture::Start({.config_toml = StrCat("[registries.\"", registry.host(),
                                                  "\"]\nmirrors = [\"", registry.url(), "\"]\n"),
                            .extra_args = {"--root", root}});
  if (!berthd.ok()) return berthd.status();
  Measurement m;
  {
    grpc::ClientContext ctx;
    v1::VersionResponse version;
    if ((*berthd)->runtime().Version(&ctx, v1::VersionRequest(), &version).ok()) {
      m.version = version.runtime_version();
    }
  }
  Quiesce();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  v1::PullImageRequest request;
  request.mutable_image()->set_image(ref);
  v1::PullImageResponse response;
  auto start = std::chrono::steady_clock::now();
  grpc::Status s = (*berthd)->image().PullImage(&ctx, request, &response);
  m.seconds = SecondsSince(start);
  if (!s.ok() || response.image_ref() != image.config.digest) {
    return absl::InternalError(
        StrCat("berth PullImage ", ref, ": ",
               s.ok() ? "image_ref " + response.image_ref() : s.error_message(),
               "\nberthd log tail:\n", FileTail((*berthd)->dir() + "/berthd.log")));
  }
  m.disk_bytes = BytesUnder(root);
  (void)(*berthd)->Stop();  // by PID; its directory goes with the fixture
  leftovers.berthds.push_back(*std::move(berthd));
  return m;
}

// ---- containerd ----------------------------------------------------------------

absl::StatusOr<Measurement> PullWithContainerd(const std::string& binary, const Registry& registry,
                                               const OciImage& image, const std::string& ref,
                                               Leftovers& leftovers) {
  absl::StatusOr<std::unique_ptr<ContainerdInstance>> ctrd =
      ContainerdInstance::Start({.binary = binary,
                                 .plain_http_registries = {registry.host()},
                                 .parent_dir = leftovers.work_dir});
  if (!ctrd.ok()) return ctrd.status();
  Measurement m;
  m.version = (*ctrd)->version();
  Quiesce();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  v1::PullImageRequest request;
  request.mutable_image()->set_image(ref);
  v1::PullImageResponse response;
  auto start = std::chrono::steady_clock::now();
  grpc::Status s = (*ctrd)->image().PullImage(&ctx, request, &response);
  m.seconds = SecondsSince(start);
  if (!s.ok() || response.image_ref() != image.config.digest) {
    return absl::InternalError(
        StrCat("containerd PullImage ", ref, ": ",
               s.ok() ? "image_ref " + response.image_ref() : s.error_message(),
               "\ncontainerd log tail:\n", (*ctrd)->LogTail()));
  }
  m.disk_bytes = BytesUnder((*ctrd)->root());
  (*ctrd)->Stop();
  leftovers.containerds.push_back(*std::move(ctrd));
  return m;
}

// ---- baselines: libcurl + tar ----------------------------------------------------

using Sink = std::function<bool(const char* data, size_t size)>;

size_t CurlWrite(char* data, size_t size, size_t nmemb, void* user) {
  return (*static_cast<Sink*>(user))(data, size * nmemb) ? size * nmemb : 0;
}

// One keep-alive connection for a whole baseline run, as a real client would use.
class Fetcher {
 public:
  Fetcher() : curl_(curl_easy_init()) {}
  ~Fetcher() { curl_easy_cleanup(curl_); }

  absl::Status Get(const std::string& url, std::string_view accept, Sink sink) {
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_PROXY, "");
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl_, CURLOPT_BUFFERSIZE, 512L << 10);  // fewer, larger writes
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, CurlWrite);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &sink);
    curl_slist* headers = nullptr;
    if (!accept.empty()) headers = curl_slist_append(headers, StrCat("Accept: ", accept).c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(curl_);
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK)
      return absl::UnavailableError(StrCat("GET ", url, ": ", curl_easy_strerror(rc)));
    if (status != 200) return absl::UnavailableError(StrCat("GET ", url, ": HTTP ", status));
    return absl::OkStatus();
  }

 private:
  CURL* curl_;
};

Sink ToFile(FILE* f) {
  return [f](const char* data, size_t size) { return fwrite(data, 1, size, f) == size; };
}

struct BaselineTimes {
  double total = 0, download = 0, untar = 0;
};

absl::StatusOr<FILE*> OpenForWrite(const std::string& path) {
  FILE* f = fopen(path.c_str(), "we");
  if (f == nullptr) return absl::InternalError(StrCat("open ", path, ": ", strerror(errno)));
  return f;
}

absl::Status FetchToFile(Fetcher& fetcher, const std::string& url, std::string_view accept,
                         const std::string& path) {
  absl::StatusOr<FILE*> f = OpenForWrite(path);
  if (!f.ok()) return f.status();
  absl::Status s = fetcher.Get(url, accept, ToFile(*f));
  if (fclose(*f) != 0 && s.ok()) s = absl::InternalError(StrCat("write ", path));
  return s;
}

std::string Hex(const std::string& digest) { return digest.substr(digest.find(':') + 1); }

// curl → files (manifest, config, layers in order), then tar -xzf each layer.
absl::StatusOr<BaselineTimes> PullWithCurlThenTar(const Registry& registry, const OciImage& image,
                                                  Leftovers& leftovers) {
  const std::string& dir = leftovers.NewDir("base");
  if (dir.empty()) return absl::InternalError("mkdtemp failed");
  std::filesystem::create_directories(dir + "/blobs");
  const std::string base = StrCat(registry.url(), "/v2/", kRepo);
  Quiesce();
  BaselineTimes t;
  auto start = std::chrono::steady_clock::now();
  Fetcher fetcher;
  if (absl::Status s = FetchToFile(fetcher, StrCat(base, "/manifests/", kTag),
                                   berth::testing::kManifestMediaType, dir + "/manifest.json");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = FetchToFile(fetcher, StrCat(base, "/blobs/", image.config.digest), "",
                                   StrCat(dir, "/blobs/", Hex(image.config.digest)));
      !s.ok()) {
    return s;
  }
  for (const Layer& layer : image.layers) {
    if (absl::Status s = FetchToFile(fetcher, StrCat(base, "/blobs/", layer.blob.digest), "",
                                     StrCat(dir, "/blobs/", Hex(layer.blob.digest)));
        !s.ok()) {
      return s;
    }
  }
  t.download = SecondsSince(start);
  auto untar_start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < image.layers.size(); ++i) {
    std::string target = StrCat(dir, "/layers/", i);
    std::filesystem::create_directories(target);
    if (absl::Status s =
            RunCommand({"tar", "-xzf", StrCat(dir, "/blobs/", Hex(image.layers[i].blob.digest)),
                        "-C", target});
        !s.ok()) {
      return s;
    }
  }
  t.untar = SecondsSince(untar_start);
  t.total = SecondsSince(start);
  return t;
}

// Chunks handed from a download thread to the extracting thread, at most
// `capacity` bytes in flight.
class ChunkQueue {
 public:
  explicit ChunkQueue(size_t capacity) : capacity_(capacity) {}

  // Producer: false once the consumer gave up.
  bool Push(const char* data, size_t size) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return aborted_ || bytes_ == 0 || bytes_ + size <= capacity_; });
    if (aborted_) return false;
    chunks_.emplace_back(data, size);
    bytes_ += size;
    changed_.notify_all();
    return true;
  }
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    changed_.notify_all();
  }
  // Consumer: the next chunk, or false at the end of the stream.
  bool Pop(std::string* out) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return aborted_ || closed_ || !chunks_.empty(); });
    if (aborted_ || chunks_.empty()) return false;
    *out = std::move(chunks_.front());
    chunks_.pop_front();
    bytes_ -= out->size();
    changed_.notify_all();
    return true;
  }
  void Abort() {
    std::lock_guard lock(mu_);
    aborted_ = true;
    changed_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::string> chunks_;
  size_t bytes_ = 0;
  bool closed_ = false, aborted_ = false;
};

struct ArchiveReadDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct ArchiveWriteDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};

struct QueueReader {
  ChunkQueue* queue;
  std::string current;
};

la_ssize_t ReadFromQueue(archive*, void* user, const void** buffer) {
  auto* reader = static_cast<QueueReader*>(user);
  if (!reader->queue->Pop(&reader->current)) return 0;
  *buffer = reader->current.data();
  return static_cast<la_ssize_t>(reader->current.size());
}

// Decompresses and extracts a gzip'ed tar from `queue` into `target` with
// libarchive, as `tar -xzf` would as root (owners, modes, times), without any of
// the checks a runtime must make (digests, hostile paths).
absl::Status ExtractFromQueue(ChunkQueue& queue, const std::string& target) {
  QueueReader reader{.queue = &queue};
  std::unique_ptr<archive, ArchiveReadDeleter> in(archive_read_new());
  std::unique_ptr<archive, ArchiveWriteDeleter> out(archive_write_disk_new());
  archive_read_support_filter_gzip(in.get());
  archive_read_support_format_tar(in.get());
  archive_write_disk_set_options(
      out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER);
  if (archive_read_open(in.get(), &reader, nullptr, ReadFromQueue, nullptr) != ARCHIVE_OK) {
    return absl::InternalError(StrCat("libarchive: ", archive_error_string(in.get())));
  }
  auto fail = [](archive* a) {
    return absl::InternalError(StrCat("libarchive: ", archive_error_string(a)));
  };
  archive_entry* entry = nullptr;
  while (true) {
    int rc = archive_read_next_header(in.get(), &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK) return fail(in.get());
    archive_entry_set_pathname(entry, StrCat(target, "/", archive_entry_pathname(entry)).c_str());
    if (const char* link = archive_entry_hardlink(entry)) {
      archive_entry_set_hardlink(entry, StrCat(target, "/", link).c_str());
    }
    if (archive_write_header(out.get(), entry) != ARCHIVE_OK) return fail(out.get());
    const void* block;
    size_t size;
    la_int64_t offset;
    while ((rc = archive_read_data_block(in.get(), &block, &size, &offset)) == ARCHIVE_OK) {
      if (archive_write_data_block(out.get(), block, size, offset) != ARCHIVE_OK) {
        return fail(out.get());
      }
    }
    if (rc != ARCHIVE_EOF) return fail(in.get());
    if (archive_write_finish_entry(out.get()) != ARCHIVE_OK) return fail(out.get());
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) return fail(out.get());
  return absl::OkStatus();
}

// The floor for "unpack while downloading": one process, libcurl feeding
// libarchive through memory, layer after layer, nothing verified or kept but
// the unpacked files. (Not `curl | tar -xzf -`: pipes between processes are
// slow on this VM; tar from a pipe took twice as long as tar from a file.)
absl::StatusOr<double> PullStreamedInProcess(const Registry& registry, const OciImage& image,
                                             Leftovers& leftovers) {
  const std::string& dir = leftovers.NewDir("floor");
  if (dir.empty()) return absl::InternalError("mkdtemp failed");
  const std::string base = StrCat(registry.url(), "/v2/", kRepo);
  Quiesce();
  auto start = std::chrono::steady_clock::now();
  Fetcher fetcher;
  std::string small;
  Sink keep = [&small](const char* data, size_t size) {
    small.append(data, size);
    return true;
  };
  if (absl::Status s =
          fetcher.Get(StrCat(base, "/manifests/", kTag), berth::testing::kManifestMediaType, keep);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = fetcher.Get(StrCat(base, "/blobs/", image.config.digest), "", keep);
      !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < image.layers.size(); ++i) {
    std::string target = StrCat(dir, "/layers/", i);
    std::filesystem::create_directories(target);
    ChunkQueue queue(8 << 20);
    absl::Status downloaded;
    std::thread download([&] {
      downloaded =
          fetcher.Get(StrCat(base, "/blobs/", image.layers[i].blob.digest), "",
                      [&queue](const char* data, size_t size) { return queue.Push(data, size); });
      queue.Close();
    });
    absl::Status extracted = ExtractFromQueue(queue, target);
    if (extracted.ok()) {
      std::string rest;  // the tar's end blocks and gzip trailer
      while (queue.Pop(&rest)) {
      }
    } else {
      queue.Abort();  // lets a blocked download fail instead of waiting forever
    }
    download.join();
    if (!extracted.ok()) return extracted;
    if (!downloaded.ok()) return downloaded;
  }
  return SecondsSince(start);
}

// ---- the report --------------------------------------------------------------------

std::string Seconds(double s) { return fmt::format("{:7.3f} s", s); }

void PrintRow(const std::string& name, const std::vector<double>& samples, double mb,
              std::optional<double> berth_median, const std::string& note = "") {
  Summary s = Summarize(samples);
  std::string ratio = berth_median ? fmt::format("{:5.2f}×", *berth_median / s.median) : "";
  std::cout << fmt::format("{:<44} {}  {}  {:7.1f}  {:>7}  {}\n", name, Seconds(s.median),
                           Seconds(s.min), mb / s.median, ratio, note);
}

// berth ÷ other for each round: the two ran seconds apart, so these
// show how much of the spread is the machine (others share its 2 cores).
std::string PerRoundRatios(const std::vector<double>& berth, const std::vector<double>& other) {
  std::string out;
  for (size_t i = 0; i < berth.size() && i < other.size(); ++i) {
    out += fmt::format("{}{:.2f}", i == 0 ? "" : " ", berth[i] / other[i]);
  }
  return out;
}

int Run(const Flags& flags, const char* argv0) {
  if (geteuid() != 0) {
    std::cerr << "pull_bench needs root: layers are unpacked with their owners\n";
    return 1;
  }
  absl::StatusOr<std::string> berthd = FindBerthd(flags.berthd, argv0, "//bench:pull_bench");
  if (!berthd.ok()) {
    std::cerr << berthd.status() << "\n";
    return 1;
  }
  setenv("BERTHD_BINARY", berthd->c_str(), 1);  // what BerthdFixture runs
  // Pulls go to 127.0.0.1 only: never through a proxy from the environment.
  for (const char* v :
       {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
    unsetenv(v);
  }

  std::string containerd = flags.containerd;
  if (containerd.empty() && !flags.skip_containerd) {
    containerd = ContainerdInstance::FindBinary().value_or("");
  }

  auto t0 = std::chrono::steady_clock::now();
  ImageFacts facts;
  absl::StatusOr<OciImage> image = BuildBenchImage(flags, &facts);
  if (!image.ok()) {
    std::cerr << "building the image: " << image.status() << "\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Registry>> registry = Registry::Start();
  if (!registry.ok()) {
    std::cerr << "starting docker-registry: " << registry.status() << "\n";
    return 1;
  }
  if (absl::Status s = (*registry)->Push(*image, kRepo, kTag); !s.ok()) {
    std::cerr << "push: " << s << "\n";
    return 1;
  }
  const std::string ref = StrCat((*registry)->host(), "/", kRepo, ":", kTag);
  const double mb = static_cast<double>(facts.compressed) / 1e6;
  std::cout << fmt::format(
      "pull_bench: {} — {} layers, {:.1f} MB compressed, {:.1f} MB in {} files unpacked\n"
      "  registry {} (docker-registry on loopback); image built and pushed in {:.1f} s\n"
      "  berthd {}\n  containerd {}\n  {} timed round(s) after {} warm-up round(s); fresh root "
      "each pull; daemon start-up not timed\n",
      ref, image->layers.size(), mb, static_cast<double>(facts.uncompressed) / 1e6, facts.files,
      (*registry)->host(), SecondsSince(t0), *berthd,
      containerd.empty() ? (flags.skip_containerd ? "skipped (--skip-containerd)" : "not installed")
                         : containerd,
      flags.rounds, flags.warmup);
  std::cout.flush();

  std::map<std::string, std::vector<double>> samples;
  std::string berth_version, containerd_version;
  int64_t berth_disk = 0, containerd_disk = 0;
  std::string containerd_failure;
  // Declared before the leftovers, so it is unmounted after they are removed.
  std::unique_ptr<ScratchFs> scratch;
  Leftovers leftovers{.work_dir = "/tmp"};
  if (flags.scratch == "ext4") {
    // Room for every pull of the run (nothing is removed before the end): per
    // round berth, containerd and the baseline keep the blobs and the files, the
    // floor the files; twice that for ext4's overhead and slack.
    const int64_t per_round = 3 * facts.compressed + 4 * facts.uncompressed;
    const int64_t bytes = 2 * per_round * (flags.rounds + flags.warmup) + (int64_t{1} << 30);
    absl::StatusOr<std::unique_ptr<ScratchFs>> fs = ScratchFs::Create(bytes);
    if (!fs.ok()) {
      std::cerr << "scratch filesystem: " << fs.status() << " (--scratch tmp avoids it)\n";
      return 1;
    }
    scratch = *std::move(fs);
    leftovers.work_dir = scratch->path();
  }
  std::cout << "  pulls write to " << leftovers.work_dir
            << (scratch ? StrCat(" (a fresh ext4 with a journal on a loop device",
                                 scratch->direct_io() ? " with direct I/O" : "",
                                 ", for this run only)\n\n")
                        : std::string(" (this machine's /tmp)\n\n"))
            << std::flush;
  // Every contender must leave at least the image's file contents on disk.
  auto check_unpacked = [&](const std::string& who, int64_t bytes) -> absl::Status {
    if (bytes >= facts.uncompressed) return absl::OkStatus();
    return absl::DataLossError(
        StrCat(who, " left ", bytes, " bytes of files, the image holds ", facts.uncompressed));
  };

  using Step = std::function<absl::Status(bool timed)>;
  std::vector<std::pair<std::string, Step>> steps;
  steps.emplace_back("berth", [&](bool timed) -> absl::Status {
    absl::StatusOr<Measurement> m = PullWithBerth(**registry, *image, ref, leftovers);
    if (!m.ok()) return m.status();
    berth_version = m->version;
    berth_disk = m->disk_bytes;
    RETURN_IF_ERROR(check_unpacked("berth", m->disk_bytes));
    if (timed) samples["berth"].push_back(m->seconds);
    return absl::OkStatus();
  });
  if (!containerd.empty()) {
    steps.emplace_back("containerd", [&](bool timed) -> absl::Status {
      if (!containerd_failure.empty()) return absl::OkStatus();
      absl::StatusOr<Measurement> m =
          PullWithContainerd(containerd, **registry, *image, ref, leftovers);
      if (!m.ok()) {
        // containerd is the reference, not the subject: report and go on without it.
        containerd_failure = m.status().ToString();
        return absl::OkStatus();
      }
      containerd_version = m->version;
      containerd_disk = m->disk_bytes;
      RETURN_IF_ERROR(check_unpacked("containerd", m->disk_bytes));
      if (timed) samples["containerd"].push_back(m->seconds);
      return absl::OkStatus();
    });
  }
  steps.emplace_back("baseline", [&](bool timed) -> absl::Status {
    absl::StatusOr<BaselineTimes> t = PullWithCurlThenTar(**registry, *image, leftovers);
    if (!t.ok()) return t.status();
    RETURN_IF_ERROR(
        check_unpacked("curl + tar", BytesUnder(leftovers.dirs.back()->path + "/layers")));
    if (timed) {
      samples["baseline"].push_back(t->total);
      samples["baseline.download"].push_back(t->download);
      samples["baseline.untar"].push_back(t->untar);
    }
    return absl::OkStatus();
  });
  steps.emplace_back("floor", [&](bool timed) -> absl::Status {
    absl::StatusOr<double> t = PullStreamedInProcess(**registry, *image, leftovers);
    if (!t.ok()) return t.status();
    RETURN_IF_ERROR(check_unpacked("libcurl + libarchive",
                                   BytesUnder(leftovers.dirs.back()->path + "/layers")));
    if (timed) samples["floor"].push_back(*t);
    return absl::OkStatus();
  });

  for (int round = 0; round < flags.warmup + flags.rounds; ++round) {
    const bool timed = round >= flags.warmup;
    // Rotate the order so no contender always runs right after the same other one.
    std::vector<size_t> order(steps.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = (i + round) % steps.size();
    std::string line = timed ? StrCat("round ", round - flags.warmup + 1, "/", flags.rounds)
                             : StrCat("warm-up ", round + 1, "/", flags.warmup);
    std::cout << line << ":" << std::flush;
    for (size_t i : order) {
      absl::Status s = steps[i].second(timed);
      if (flags.remove_each_pull) leftovers.Clear();
      if (Interrupted()) return 1;  // leftovers, scratch and registry clean up
      if (!s.ok()) {
        std::cout << "\n";
        std::cerr << steps[i].first << " failed: " << s << "\n";
        return 1;
      }
      auto it = samples.find(steps[i].first);
      if (steps[i].first == "containerd" && !containerd_failure.empty()) {
        std::cout << " containerd failed" << std::flush;
      } else if (timed && it != samples.end() && !it->second.empty()) {
        std::cout << fmt::format(" {} {:.3f} s", steps[i].first, it->second.back()) << std::flush;
      } else {
        std::cout << " " << steps[i].first << " ok" << std::flush;
      }
    }
    std::cout << "\n";
  }
  std::cout << "removing what the pulls left ..." << std::flush;
  leftovers.Clear();
  std::cout << " done\n";

  const double berth = Summarize(samples["berth"]).median;
  std::cout << "\n"
            << fmt::format("{:<44} {:>9}  {:>9}  {:>7}  {:>7}\n", "pull + unpack", "median", "min",
                           "MB/s", "berth ÷");
  PrintRow(StrCat("berth ", berth_version, " (CRI PullImage)"), samples["berth"], mb, berth);
  std::string verdict;
  if (!samples["containerd"].empty()) {
    double ratio = berth / Summarize(samples["containerd"]).median;
    verdict = fmt::format("target ≤ 0.60×: {}", ratio <= 0.6 ? "met" : "NOT met");
    PrintRow(StrCat("containerd ", containerd_version, " (CRI PullImage)"), samples["containerd"],
             mb, berth, verdict);
  }
  PrintRow("baseline: curl → files, then tar -xzf", samples["baseline"], mb, berth);
  PrintRow("  of which download (curl → files)", samples["baseline.download"], mb, std::nullopt);
  PrintRow("  of which unpack (tar -xzf, in order)", samples["baseline.untar"], mb, std::nullopt);
  PrintRow("floor: libcurl → libarchive, streamed", samples["floor"], mb, berth);
  std::cout << "\n";
  if (containerd.empty()) {
    std::cout << (flags.skip_containerd ? "containerd: skipped (--skip-containerd)\n"
                                        : "containerd: not installed, skipped\n");
  } else if (!containerd_failure.empty()) {
    std::cout << "containerd: failed, skipped: " << containerd_failure << "\n";
  } else {
    std::cout << fmt::format("berth ÷ containerd = {:.2f}× (medians; {}); per round: {}\n",
                             berth / Summarize(samples["containerd"]).median, verdict,
                             PerRoundRatios(samples["berth"], samples["containerd"]));
  }
  std::cout << fmt::format("berth ÷ baseline   = {:.2f}× (medians); per round: {}\n",
                           berth / Summarize(samples["baseline"]).median,
                           PerRoundRatios(samples["berth"], samples["baseline"]));
  std::cout << fmt::format("on disk after one pull: berth {:.1f} MB", berth_disk / 1e6);
  if (containerd_disk > 0) {
    std::cout << fmt::format(", containerd {:.1f} MB", containerd_disk / 1e6);
  }
  std::cout << " (compressed blobs + unpacked layers)\n";
  return 0;
}

}  // namespace
}  // namespace berth::bench

int main(int argc, char** argv) {
  berth::bench::Flags flags;
  CLI::App app{"pull + unpack of a generated multi-layer image: berth vs containerd vs curl+tar"};
  app.add_option("--rounds", flags.rounds, "timed rounds")->check(CLI::Range(1, 1000));
  app.add_option("--warmup", flags.warmup, "untimed rounds first")->check(CLI::Range(0, 100));
  app.add_option("--layers", flags.layers, "layers in the image")->check(CLI::Range(1, 64));
  app.add_option("--layer-mb", flags.layer_mb, "uncompressed MiB per layer")
      ->check(CLI::Range(1, 1024));
  app.add_option("--berthd", flags.berthd, "berthd binary (default: runfiles, $BERTHD_BINARY)");
  app.add_option("--containerd", flags.containerd, "containerd binary (default: from PATH)");
  app.add_flag("--skip-containerd", flags.skip_containerd, "do not run containerd");
  app.add_option("--scratch", flags.scratch,
                 "where pulls write: ext4 (a fresh loop-mounted ext4 for this run) or tmp (/tmp)")
      ->check(CLI::IsMember({"ext4", "tmp"}));
  app.add_flag("--remove-each-pull", flags.remove_each_pull,
               "remove each pull's files right after it, not after the last round");
  CLI11_PARSE(app, argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  signal(SIGPIPE, SIG_IGN);  // a tar that dies must be an error, not our death
  berth::bench::HandleStopSignals("stopping after the current pull and cleaning up");
  int rc = berth::bench::Run(flags, argv[0]);
  curl_global_cleanup();
  return rc;
}
