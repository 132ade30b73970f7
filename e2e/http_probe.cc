#include "e2e/http_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "runtime/base/unique_fd.h"

namespace berth::testing {

std::string HttpGet(const std::string& ip, int port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, ip.c_str(), &address.sin_addr) != 1) return "";
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return "";
  const std::string request = "GET /index.html HTTP/1.0\r\n\r\n";
  if (send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) return "";
  std::string response;
  char buffer[4096];
  while (true) {
    pollfd pfd{fd.get(), POLLIN, 0};
    if (poll(&pfd, 1, 5000) <= 0) break;
    ssize_t n = recv(fd.get(), buffer, sizeof buffer, 0);
    if (n <= 0) break;
    response.append(buffer, n);
  }
  return response;
}

std::string HttpGetEventually(const std::string& ip, int port, const std::string& expect) {
  std::string body;
  for (int i = 0; i < 50 && body.find(expect) == std::string::npos; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    body = HttpGet(ip, port);
  }
  return body;
}

}  // namespace berth::testing
