#include "runtime/images/byte_pipe.h"

namespace berth::images {

absl::Status BytePipe::Write(std::string_view data) {
  absl::MutexLock lock(&mu_);
  // A chunk larger than the capacity still goes through, alone.
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !abort_status_.ok() || buffered_ < capacity_;
  };
  mu_.Await(absl::Condition(&room));
  if (!abort_status_.ok()) return abort_status_;
  chunks_.emplace_back(data);
  buffered_ += data.size();
  return absl::OkStatus();
}

void BytePipe::Close(absl::Status status) {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  close_status_ = std::move(status);
}

absl::StatusOr<std::string_view> BytePipe::Read() {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !chunks_.empty() || closed_; };
  mu_.Await(absl::Condition(&ready));
  if (!chunks_.empty()) {
    current_ = std::move(chunks_.front());
    chunks_.pop_front();
    buffered_ -= current_.size();
    return std::string_view(current_);
  }
  if (!close_status_.ok()) return close_status_;
  return std::string_view();
}

void BytePipe::Abort(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (abort_status_.ok()) {
    abort_status_ = status.ok() ? absl::CancelledError("reader stopped") : std::move(status);
  }
  chunks_.clear();
  buffered_ = 0;
}

}  // namespace berth::images
