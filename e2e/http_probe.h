// A plain HTTP/1.0 GET from the test process, for checking that a pod's server is reachable
// (through a hostPort, a port-forward, a pod address) without a client binary.
#ifndef BERTH_E2E_HTTP_PROBE_H_
#define BERTH_E2E_HTTP_PROBE_H_

#include <string>

namespace berth::testing {

// GET /index.html from ip:port; the whole response, or "" when nothing answers.
std::string HttpGet(const std::string& ip, int port);

// HttpGet until the response contains `expect` (up to ~10 s); the last response.
std::string HttpGetEventually(const std::string& ip, int port, const std::string& expect);

}  // namespace berth::testing

#endif  // BERTH_E2E_HTTP_PROBE_H_
