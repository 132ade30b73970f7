// Object ids and timestamps shared by pods and containers.
//
//   std::string id = NewObjectId();   // 64 lowercase hex digits, like containerd's
//   int64_t created_at = NowNanos();  // the CRI's timestamps: ns since the epoch
#ifndef BERTH_RUNTIME_BASE_IDS_H_
#define BERTH_RUNTIME_BASE_IDS_H_

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

namespace berth {

// 256 random bits from the kernel, as 64 hex digits.
inline std::string NewObjectId() {
  static const char kHex[] = "0123456789abcdef";
  std::random_device random;
  std::string id;
  for (int i = 0; i < 32; ++i) {
    unsigned byte = random() & 0xff;
    id += kHex[byte >> 4];
    id += kHex[byte & 15];
  }
  return id;
}

inline int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace berth

#endif  // BERTH_RUNTIME_BASE_IDS_H_
