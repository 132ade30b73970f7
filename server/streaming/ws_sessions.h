// Kubernetes' remotecommand (exec, attach) and portforward protocols over WebSocket
// (ws_channel.h has the message layouts), on Boost.Beast. The session owns the connection's
// io_context: output from the process thread is posted into it, so only that thread ever
// touches the WebSocket stream.
#ifndef BERTH_SERVER_STREAMING_WS_SESSIONS_H_
#define BERTH_SERVER_STREAMING_WS_SESSIONS_H_

#include <functional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>

#include "server/streaming/backend.h"
#include "server/streaming/spdy_sessions.h"
#include "server/streaming/ws_channel.h"

namespace berth::streaming {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

// Accepts the WebSocket upgrade in `request` (answering with `protocol`) and runs the
// session until the command is over and the close handshake is done, or the client left.
// `session.protocol` is ignored: `protocol` decides.
void ServeRemoteCommandWebSocket(boost::asio::io_context& io, boost::asio::ip::tcp::socket& socket,
                                 const HttpRequest& request, const ws::Protocol& protocol,
                                 const RemoteCommandSession& session);

// Forwards one connection per port in `ports` until they all end or the client leaves.
void ServePortForwardWebSocket(boost::asio::io_context& io, boost::asio::ip::tcp::socket& socket,
                               const HttpRequest& request, const ws::Protocol& protocol,
                               Backend& backend, const std::string& pod_id,
                               const std::vector<uint16_t>& ports,
                               const std::function<void()>& on_activity);

}  // namespace berth::streaming

#endif  // BERTH_SERVER_STREAMING_WS_SESSIONS_H_
