#include "runtime/registry/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "runtime/base/strings.h"

namespace berth::registry {
namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;

struct Transfer {
  const HttpRequest* request;
  HttpResponse* response;
  absl::Status body_error;
  bool oversized = false;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  // A new status line starts the headers of a redirect target or of the
  // answer after "100 Continue": keep only the final answer's.
  if (line.rfind("HTTP/", 0) == 0) {
    t->response->headers.clear();
    // "HTTP/1.1 200 OK": the body callback needs the status before curl returns.
    size_t space = line.find(' ');
    t->response->status =
        space == std::string_view::npos
            ? 0
            : std::strtol(std::string(line.substr(space + 1, 3)).c_str(), nullptr, 10);
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    t->response->headers[Lower(Trim(line.substr(0, colon)))] =
        std::string(Trim(line.substr(colon + 1)));
  }
  return size * count;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  std::string_view chunk(data, n);
  long status = t->response->status;
  if (status >= 200 && status < 300 && t->request->on_body) {
    if (t->request->max_body >= 0 &&
        t->response->body_bytes + static_cast<int64_t>(n) > t->request->max_body) {
      t->oversized = true;
      return 0;
    }
    t->response->body_bytes += static_cast<int64_t>(n);
    absl::Status s = t->request->on_body(chunk);
    if (!s.ok()) {
      t->body_error = s;
      return 0;  // aborts the transfer
    }
    return n;
  }
  if (t->response->body.size() < kMaxErrorBody) {
    t->response->body.append(chunk.substr(0, kMaxErrorBody - t->response->body.size()));
  }
  return n;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

absl::StatusOr<HttpResponse> Perform(const HttpRequest& request) {
  GlobalInit();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return absl::InternalError("curl_easy_init failed");
  HttpResponse response;
  Transfer transfer{&request, &response, absl::OkStatus()};

  curl_slist* headers = nullptr;
  for (const std::string& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers,
                                                                           curl_slist_free_all);
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  // Registries redirect blob downloads to storage on other hosts; curl drops
  // credentials when the host changes, which is what we want.
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // No progress: fewer than 1 byte/s for the whole window aborts.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(request.progress_timeout_seconds));
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "berth/0.1");
  // Registry clients must not be steered by the node's proxy variables
  // towards loopback mirrors; operators configure mirrors instead.
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  if (request.method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (!request.basic_auth.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERPWD, request.basic_auth.c_str());
  }
  if (request.insecure) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);

  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  char* effective = nullptr;
  curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective);
  if (effective) response.effective_url = effective;

  if (!transfer.body_error.ok()) return transfer.body_error;
  if (transfer.oversized) {
    return absl::OutOfRangeError(
        StrCat(request.method, " ", request.url, ": body exceeds ", request.max_body, " bytes"));
  }
  if (rc != CURLE_OK) {
    std::string what = error[0] ? error : curl_easy_strerror(rc);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      return absl::DeadlineExceededError(
          StrCat(request.method, " ", request.url, ": no progress for ",
                 request.progress_timeout_seconds, "s (", what, ")"));
    }
    return absl::UnavailableError(StrCat(request.method, " ", request.url, ": ", what));
  }
  return response;
}

std::vector<Challenge> ParseChallenges(std::string_view header) {
  std::vector<Challenge> out;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < header.size() && (header[i] == ' ' || header[i] == '\t' || header[i] == ',')) ++i;
  };
  while (true) {
    skip_space();
    if (i >= header.size()) break;
    size_t start = i;
    while (i < header.size() && header[i] != ' ' && header[i] != ',') ++i;
    std::string token(header.substr(start, i - start));
    // A token followed by '=' is a parameter of the current challenge.
    if (token.find('=') == std::string::npos && !(i < header.size() && header[i] == '=')) {
      out.push_back({Lower(token), {}});
      continue;
    }
    if (out.empty()) break;
    i = start;
    size_t eq = header.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key = Lower(Trim(header.substr(i, eq - i)));
    i = eq + 1;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i++];
      }
      ++i;  // closing quote
    } else {
      size_t end = header.find(',', i);
      if (end == std::string_view::npos) end = header.size();
      value = std::string(Trim(header.substr(i, end - i)));
      i = end;
    }
    out.back().params[key] = value;
  }
  return out;
}

std::string UrlEncode(std::string_view text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace berth::registry
