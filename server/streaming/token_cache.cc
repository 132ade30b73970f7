#include "server/streaming/token_cache.h"

#include "runtime/base/ids.h"
#include "runtime/base/strings.h"

namespace berth::streaming {

absl::StatusOr<std::string> TokenCache::Insert(StreamRequest request) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.now();
  DropExpiredLocked(now);
  if (entries_.size() >= options_.max_entries) {
    return absl::ResourceExhaustedError(StrCat("streaming: ", entries_.size(),
                                               " streaming URLs are waiting to be used; "
                                               "try again later"));
  }
  std::string token = NewObjectId();
  entries_[token] = Entry{std::move(request), now + options_.ttl};
  return token;
}

std::optional<StreamRequest> TokenCache::Consume(const std::string& token) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(token);
  if (it == entries_.end()) return std::nullopt;
  Entry entry = std::move(it->second);
  entries_.erase(it);
  if (options_.now() >= entry.expires) return std::nullopt;
  return std::move(entry.request);
}

size_t TokenCache::size() {
  absl::MutexLock lock(&mu_);
  DropExpiredLocked(options_.now());
  return entries_.size();
}

void TokenCache::DropExpiredLocked(absl::Time now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = now >= it->second.expires ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace berth::streaming
