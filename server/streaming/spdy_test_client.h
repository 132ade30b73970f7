// A small SPDY/3.1 client for tests: what client-go does to a streaming URL (upgrade,
// open streams by streamType, send and read DATA), on spdy_client.h, gathering what the
// server sends per stream.
//
//   ASSIGN_OR_RETURN(auto client, SpdyClient::Connect(url, {"v4.channel.k8s.io"}));
//   uint32_t error = client->Open({{"streamtype", "error"}});
//   uint32_t out = client->Open({{"streamtype", "stdout"}});
//   RETURN_IF_ERROR(client->ReadUntilFinished({error, out}, absl::Seconds(30)));
//   client->data[out];   // everything the server sent on stdout
#ifndef BERTH_SERVER_STREAMING_SPDY_TEST_CLIENT_H_
#define BERTH_SERVER_STREAMING_SPDY_TEST_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/streaming/spdy_client.h"

namespace berth::testing {

// The status code of an HTTP request to `url` asking for an upgrade to SPDY (404 for a
// bad token, 101 when upgraded). The connection is closed right after.
absl::StatusOr<int> SpdyUpgradeStatus(const std::string& url,
                                      const std::vector<std::string>& protocols);

class SpdyClient {
 public:
  // Fails (naming the HTTP status) unless the server answers 101.
  static absl::StatusOr<std::unique_ptr<SpdyClient>> Connect(
      const std::string& url, const std::vector<std::string>& protocols);

  // Sends SYN_STREAM; returns the new stream's id.
  absl::StatusOr<uint32_t> Open(
      std::initializer_list<std::pair<std::string_view, std::string_view>> headers);
  absl::Status Send(uint32_t stream_id, std::string_view data, bool fin = false);
  // Reads frames until `done()` holds, the server closes, or the timeout passes
  // (DeadlineExceeded).
  absl::Status ReadUntil(const std::function<bool()>& done, absl::Duration timeout);
  absl::Status ReadUntilFinished(const std::set<uint32_t>& streams, absl::Duration timeout);
  // Drops the TCP connection without a goodbye.
  void Close() { connection_.reset(); }

  std::string negotiated;                // X-Stream-Protocol-Version of the 101
  std::map<uint32_t, std::string> data;  // DATA received, per stream
  std::set<uint32_t> finished;           // streams the server ended (FIN or RST)
  std::set<uint32_t> replied;            // streams the server accepted
  bool closed = false;                   // the server closed the connection

 private:
  SpdyClient() = default;

  std::unique_ptr<streaming::SpdyClientConnection> connection_;
};

}  // namespace berth::testing

#endif  // BERTH_SERVER_STREAMING_SPDY_TEST_CLIENT_H_
