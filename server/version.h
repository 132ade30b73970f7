// berth's release version, reported by Version, DaemonInfo and --version.
#ifndef BERTH_SERVER_VERSION_H_
#define BERTH_SERVER_VERSION_H_

namespace berth {

inline constexpr char kBerthVersion[] = "0.1.0";
// The CRI generation berth serves.
inline constexpr char kCriApiVersion[] = "v1";

}  // namespace berth

#endif  // BERTH_SERVER_VERSION_H_
