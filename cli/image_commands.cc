// `berthctl pull | images | inspecti | rmi | imagefsinfo`: the ImageService;
// `berthctl image import` (alias `import`): berth's ImportImage.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "runtime/base/strings.h"

namespace berth::cli {
namespace {

namespace v1 = ::runtime::v1;

struct PullOptions {
  std::string image;
  std::string creds;  // "user:password"
};

struct ImportOptions {
  std::string file;  // "-" for stdin
  std::string name;
};

// How much of the archive each ImportImage message carries.
constexpr size_t kImportChunkBytes = 1 << 20;

// "docker.io/library/busybox:1.36" -> ("docker.io/library/busybox", "1.36")
std::pair<std::string, std::string> SplitTag(const std::string& name) {
  size_t colon = name.rfind(':');
  size_t slash = name.rfind('/');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
    return {name, "<none>"};
  }
  return {name.substr(0, colon), name.substr(colon + 1)};
}

CommandResult Pull(const GlobalOptions& global, const PullOptions& options) {
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  v1::PullImageRequest request;
  request.mutable_image()->set_image(options.image);
  if (!options.creds.empty()) {
    size_t colon = options.creds.find(':');
    request.mutable_auth()->set_username(options.creds.substr(0, colon));
    if (colon != std::string::npos) {
      request.mutable_auth()->set_password(options.creds.substr(colon + 1));
    }
  }
  grpc::ClientContext ctx;
  // Pulls take as long as they take; the daemon enforces progress timeouts.
  v1::PullImageResponse response;
  grpc::Status s = client->image().PullImage(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "PullImage", *client);
  std::cout << "Image is up to date for " << response.image_ref() << "\n";
  return absl::OkStatus();
}

CommandResult Images(const GlobalOptions& global, const std::string& filter, bool quiet) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  v1::ListImagesRequest request;
  if (!filter.empty()) request.mutable_filter()->mutable_image()->set_image(filter);
  v1::ListImagesResponse response;
  grpc::ClientContext ctx;
  client->Prepare(ctx);
  grpc::Status s = client->image().ListImages(&ctx, request, &response);
  if (!s.ok()) return RpcError(s, "ListImages", *client);
  if (*format != OutputFormat::kTable) {
    std::cout << Render(ToJson(response), *format);
    return absl::OkStatus();
  }
  if (quiet) {
    for (const v1::Image& image : response.images()) std::cout << image.id() << "\n";
    return absl::OkStatus();
  }
  Table table({"IMAGE", "TAG", "IMAGE ID", "SIZE"});
  for (const v1::Image& image : response.images()) {
    if (image.repo_tags().empty()) {
      std::string repo = "<none>";
      if (!image.repo_digests().empty()) {
        repo = image.repo_digests(0).substr(0, image.repo_digests(0).find('@'));
      }
      table.AddRow({repo, "<none>", ShortId(image.id()), HumanSize(image.size())});
    }
    for (const std::string& tag : image.repo_tags()) {
      auto [repo, version] = SplitTag(tag);
      table.AddRow({repo, version, ShortId(image.id()), HumanSize(image.size())});
    }
  }
  std::cout << table.Render();
  return absl::OkStatus();
}

CommandResult Inspect(const GlobalOptions& global, const std::vector<std::string>& refs) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  for (const std::string& ref : refs) {
    v1::ImageStatusRequest request;
    request.mutable_image()->set_image(ref);
    request.set_verbose(true);
    v1::ImageStatusResponse response;
    grpc::ClientContext ctx;
    client->Prepare(ctx);
    grpc::Status s = client->image().ImageStatus(&ctx, request, &response);
    if (!s.ok()) return RpcError(s, "ImageStatus", *client);
    if (!response.has_image()) return absl::NotFoundError(StrCat("no such image: ", ref));
    // inspect output is structured by nature: a table would lose it.
    std::cout << Render(InspectJson(response.image(), response.info()),
                        *format == OutputFormat::kYaml ? OutputFormat::kYaml : OutputFormat::kJson);
  }
  return absl::OkStatus();
}

CommandResult Remove(const GlobalOptions& global, const std::vector<std::string>& refs) {
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  for (const std::string& ref : refs) {
    // Resolve first so the operator sees what was deleted, and a typo is an error.
    v1::ImageStatusRequest status_request;
    status_request.mutable_image()->set_image(ref);
    v1::ImageStatusResponse status;
    grpc::ClientContext status_ctx;
    client->Prepare(status_ctx);
    grpc::Status s = client->image().ImageStatus(&status_ctx, status_request, &status);
    if (!s.ok()) return RpcError(s, "ImageStatus", *client);
    if (!status.has_image()) return absl::NotFoundError(StrCat("no such image: ", ref));

    v1::RemoveImageRequest request;
    request.mutable_image()->set_image(ref);
    v1::RemoveImageResponse response;
    grpc::ClientContext ctx;
    client->Prepare(ctx);
    s = client->image().RemoveImage(&ctx, request, &response);
    if (!s.ok()) return RpcError(s, "RemoveImage", *client);
    std::cout << "Deleted: " << ref << "\n";
  }
  return absl::OkStatus();
}

CommandResult FsInfo(const GlobalOptions& global) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();
  v1::ImageFsInfoResponse response;
  grpc::ClientContext ctx;
  client->Prepare(ctx);
  grpc::Status s = client->image().ImageFsInfo(&ctx, v1::ImageFsInfoRequest(), &response);
  if (!s.ok()) return RpcError(s, "ImageFsInfo", *client);
  if (*format != OutputFormat::kTable) {
    std::cout << Render(ToJson(response), *format);
    return absl::OkStatus();
  }
  Table table({"MOUNTPOINT", "USED", "INODES"});
  for (const v1::FilesystemUsage& fs : response.image_filesystems()) {
    table.AddRow({fs.fs_id().mountpoint(), HumanSize(fs.used_bytes().value()),
                  std::to_string(fs.inodes_used().value())});
  }
  std::cout << table.Render();
  return absl::OkStatus();
}

CommandResult Import(const GlobalOptions& global, const ImportOptions& options) {
  absl::StatusOr<OutputFormat> format = global.Format();
  if (!format.ok()) return format.status();
  const bool from_stdin = options.file == "-";
  int fd = from_stdin ? STDIN_FILENO : open(options.file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(StrCat("open ", options.file, ": ", std::strerror(errno)));
  }
  struct FdCloser {
    int fd;
    bool owned;
    ~FdCloser() {
      if (owned) close(fd);
    }
  } closer{fd, !from_stdin};
  absl::StatusOr<Client> client = global.Connect();
  if (!client.ok()) return client.status();

  // No deadline: a large archive takes as long as it takes to send and unpack.
  grpc::ClientContext ctx;
  berth::v1::ImportImageResponse response;
  std::unique_ptr<grpc::ClientWriter<berth::v1::ImportImageRequest>> writer =
      client->berth().ImportImage(&ctx, &response);
  std::string buffer(kImportChunkBytes, '\0');
  berth::v1::ImportImageRequest request;
  request.set_name(options.name);
  while (true) {
    ssize_t n = read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ctx.TryCancel();
      writer->Finish();
      return absl::InternalError(StrCat("read ", options.file, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    request.set_chunk(buffer.data(), static_cast<size_t>(n));
    // A failed write means the daemon ended the call; Finish() says why.
    if (!writer->Write(request)) break;
    request.clear_name();
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return RpcError(s, "ImportImage", *client);
  if (*format != OutputFormat::kTable) {
    std::cout << Render(ToJson(response), *format);
    return absl::OkStatus();
  }
  Table table({"IMAGE ID", "NAMES"});
  for (const berth::v1::ImportedImage& image : response.images()) {
    std::string names;
    for (const std::string& tag : image.repo_tags()) names += (names.empty() ? "" : ", ") + tag;
    table.AddRow({image.id(), names.empty() ? "<none>" : names});
  }
  std::cout << table.Render();
  return absl::OkStatus();
}

}  // namespace

void AddImageCommands(CLI::App& app, const GlobalOptions& global) {
  auto pull = std::make_shared<PullOptions>();
  CLI::App* pull_cmd = app.add_subcommand("pull", "pull an image from a registry");
  pull_cmd->add_option("image", pull->image, "image reference")->required();
  pull_cmd->add_option("--creds", pull->creds, "registry credentials, USER:PASSWORD");
  pull_cmd->callback([&global, pull] { RunCommand([&] { return Pull(global, *pull); }); });

  auto filter = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* images = app.add_subcommand("images", "list images");
  images->alias("img");
  images->add_option("image", *filter, "only this image");
  images->add_flag("-q,--quiet", *quiet, "print image ids only");
  images->callback(
      [&global, filter, quiet] { RunCommand([&] { return Images(global, *filter, *quiet); }); });

  auto refs = std::make_shared<std::vector<std::string>>();
  CLI::App* inspect = app.add_subcommand("inspecti", "show an image's status and config");
  inspect->add_option("image", *refs, "image id or reference")->required();
  inspect->callback([&global, refs] { RunCommand([&] { return Inspect(global, *refs); }); });

  auto remove_refs = std::make_shared<std::vector<std::string>>();
  CLI::App* rmi = app.add_subcommand("rmi", "remove images");
  rmi->add_option("image", *remove_refs, "image id or reference")->required();
  rmi->callback(
      [&global, remove_refs] { RunCommand([&] { return Remove(global, *remove_refs); }); });

  app.add_subcommand("imagefsinfo", "show the image filesystem's usage")->callback([&global] {
    RunCommand([&] { return FsInfo(global); });
  });

  // `image import` and its short form `import` (berth only: other runtimes
  // answer UNIMPLEMENTED).
  auto import = std::make_shared<ImportOptions>();
  auto add_import = [&global, import](CLI::App& parent) {
    CLI::App* cmd = parent.add_subcommand(
        "import", "load images from an OCI-layout or docker-save tar (gzip/zstd too)");
    cmd->add_option("file", import->file, "the archive, or - for stdin")->required();
    cmd->add_option("--name", import->name,
                    "reference for images the archive does not name; its repository also "
                    "takes images named only by a tag");
    cmd->callback([&global, import] { RunCommand([&] { return Import(global, *import); }); });
  };
  CLI::App* image = app.add_subcommand("image", "manage images (import)");
  image->require_subcommand(1);
  add_import(*image);
  add_import(app);
}

}  // namespace berth::cli
