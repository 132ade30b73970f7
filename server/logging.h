// Daemon logging: one line per event on stderr, with key=value context.
//
//   InitLogging("debug");
//   spdlog::info("event=pod_started pod={} duration_ms={:.1f}", id, ms);
//
// Messages start with event=<name> and carry their context as key=value so
// that they can be grepped and parsed without a schema.
#ifndef BERTH_SERVER_LOGGING_H_
#define BERTH_SERVER_LOGGING_H_

#include <string>

namespace berth::server {

// level is one of trace, debug, info, warn, error, critical, off.
void InitLogging(const std::string& level);

}  // namespace berth::server

#endif  // BERTH_SERVER_LOGGING_H_
