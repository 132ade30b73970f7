// BytePipe: a bounded in-memory pipe from a download thread to an unpacker.
//
//   BytePipe pipe(8 << 20);
//   std::thread producer([&] {
//     absl::Status s = client.FetchBlob(..., [&](std::string_view c) { return pipe.Write(c); });
//     pipe.Close(s);                      // EOF, or the download's error
//   });
//   snapshotter.ApplyLayer(key, parent, pipe, diff_id);  // reads until EOF
//   pipe.Abort(status);                   // if the reader gave up: Write() fails
//
// It lets a layer be extracted while it downloads, without the compressed
// tar ever being read back from disk. Write() blocks while the pipe holds
// `capacity` bytes, so a slow unpacker slows the download instead of
// filling memory.
#ifndef BERTH_RUNTIME_IMAGES_BYTE_PIPE_H_
#define BERTH_RUNTIME_IMAGES_BYTE_PIPE_H_

#include <deque>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "runtime/snapshot/layer_unpacker.h"

namespace berth::images {

class BytePipe : public snapshot::ByteSource {
 public:
  explicit BytePipe(size_t capacity) : capacity_(capacity) {}

  // Producer side. Fails with the reader's status once the reader aborted.
  absl::Status Write(std::string_view data);
  // Ends the stream: OK means EOF; an error is what the reader's next Read returns.
  void Close(absl::Status status);

  // Consumer side (ByteSource): the next chunk, or an empty view at EOF.
  absl::StatusOr<std::string_view> Read() override;
  // The reader gives up: pending and future Writes fail with `status`.
  void Abort(absl::Status status);

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<std::string> chunks_ ABSL_GUARDED_BY(mu_);
  size_t buffered_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status close_status_ ABSL_GUARDED_BY(mu_);
  absl::Status abort_status_ ABSL_GUARDED_BY(mu_);
  // The chunk handed out by the last Read, kept alive until the next one.
  std::string current_;
};

}  // namespace berth::images

#endif  // BERTH_RUNTIME_IMAGES_BYTE_PIPE_H_
