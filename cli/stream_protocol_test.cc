#include "cli/stream_protocol.h"

#include <gtest/gtest.h>

#include "server/streaming/remotecommand.h"

namespace berth::cli {
namespace {

namespace remotecommand = ::berth::streaming::remotecommand;
using Kind = RemoteCommandEvent::Kind;

ws::Protocol V5() {
  return *ws::NegotiateProtocol("v5.channel.k8s.io", ws::Purpose::kRemoteCommand);
}
ws::Protocol V4() {
  return *ws::NegotiateProtocol("v4.channel.k8s.io", ws::Purpose::kRemoteCommand);
}

std::string Msg(uint8_t channel, std::string_view data) {
  return ws::EncodeMessage(V4(), channel, data);
}

TEST(ParseStreamUrlTest, WhatTheRuntimeReturns) {
  absl::StatusOr<StreamUrl> url = ParseStreamUrl("http://127.0.0.1:10010/exec/AbC-12_x");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(*url, (StreamUrl{"127.0.0.1", 10010, "/exec/AbC-12_x"}));
  EXPECT_EQ(url->HostHeader(), "127.0.0.1:10010");
}

TEST(ParseStreamUrlTest, DefaultsAndQuery) {
  EXPECT_EQ(*ParseStreamUrl("http://node"), (StreamUrl{"node", 80, "/"}));
  EXPECT_EQ(*ParseStreamUrl("http://node?port=80"), (StreamUrl{"node", 80, "/?port=80"}));
  EXPECT_EQ(*ParseStreamUrl("http://node:8/portforward/t?port=80#frag"),
            (StreamUrl{"node", 8, "/portforward/t?port=80"}));
}

TEST(ParseStreamUrlTest, Ipv6) {
  absl::StatusOr<StreamUrl> url = ParseStreamUrl("http://[::1]:4000/attach/t");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(*url, (StreamUrl{"::1", 4000, "/attach/t"}));
  EXPECT_EQ(url->HostHeader(), "[::1]:4000");
  EXPECT_EQ(*ParseStreamUrl("http://[fe80::1]/x"), (StreamUrl{"fe80::1", 80, "/x"}));
}

TEST(ParseStreamUrlTest, Refusals) {
  EXPECT_TRUE(absl::IsUnimplemented(ParseStreamUrl("https://127.0.0.1:1/exec/t").status()));
  for (const char* bad : {"", "/exec/t", "ftp://h/x", "http://", "http://:80/x", "http://h:/x",
                          "http://h:0/x", "http://h:65536/x", "http://h:8a/x", "http://[::1/x",
                          "http://[::1]x/y", "http://user@h/x"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseStreamUrl(bad).status())) << bad;
  }
}

TEST(AddQueryParameterTest, Separators) {
  EXPECT_EQ(AddQueryParameter("/portforward/t", "port", "80"), "/portforward/t?port=80");
  EXPECT_EQ(AddQueryParameter("/pf/t?a=b", "port", "80"), "/pf/t?a=b&port=80");
  EXPECT_EQ(AddQueryParameter("/pf/t?", "port", "80"), "/pf/t?port=80");
  EXPECT_EQ(AddQueryParameter("/pf/t?a=b&", "port", "80"), "/pf/t?a=b&port=80");
}

TEST(AcceptProtocolTest, OneOfTheOffered) {
  absl::StatusOr<ws::Protocol> v5 =
      AcceptProtocol("v5.channel.k8s.io", kRemoteCommandOffer, ws::Purpose::kRemoteCommand);
  ASSERT_TRUE(v5.ok()) << v5.status();
  EXPECT_TRUE(v5->close_signal);
  EXPECT_TRUE(v5->json_status);
  absl::StatusOr<ws::Protocol> v4 =
      AcceptProtocol(" v4.channel.k8s.io ", kRemoteCommandOffer, ws::Purpose::kRemoteCommand);
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_FALSE(v4->close_signal);
  EXPECT_TRUE(
      AcceptProtocol("v4.channel.k8s.io", kPortForwardOffer, ws::Purpose::kPortForward).ok());
}

TEST(AcceptProtocolTest, NoneOrUnoffered) {
  EXPECT_TRUE(absl::IsFailedPrecondition(
      AcceptProtocol("", kRemoteCommandOffer, ws::Purpose::kRemoteCommand).status()));
  // A protocol berth speaks, but berthctl did not ask for it.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      AcceptProtocol("channel.k8s.io", kRemoteCommandOffer, ws::Purpose::kRemoteCommand).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      AcceptProtocol("v5.channel.k8s.io", kPortForwardOffer, ws::Purpose::kPortForward).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      AcceptProtocol("v4.channel", kRemoteCommandOffer, ws::Purpose::kRemoteCommand).status()));
}

TEST(UpgradeRefusedErrorTest, CodeAndMessage) {
  absl::Status used = UpgradeRefusedError("http://h:1/exec/t", 404, "Not Found",
                                          "streaming: unknown, expired or already used token\n");
  EXPECT_TRUE(absl::IsNotFound(used));
  EXPECT_EQ(used.message(),
            "streaming server refused http://h:1/exec/t: 404 Not Found: streaming: unknown, "
            "expired or already used token");
  EXPECT_TRUE(absl::IsInvalidArgument(UpgradeRefusedError("u", 400, "Bad Request", "")));
  absl::Status busy = UpgradeRefusedError("u", 503, "Service Unavailable", "");
  EXPECT_TRUE(absl::IsUnavailable(busy));
  EXPECT_EQ(busy.message(), "streaming server refused u: 503 Service Unavailable");
  EXPECT_EQ(UpgradeRefusedError("u", 403, "Forbidden", std::string(1000, 'x')).message().size(),
            std::string("streaming server refused u: 403 Forbidden: ").size() + 300);
}

TEST(AcceptSpdyProtocolTest, TheOfferedOneOnly) {
  EXPECT_TRUE(AcceptSpdyProtocol("v4.channel.k8s.io", kSpdyRemoteCommandProtocol).ok());
  EXPECT_TRUE(AcceptSpdyProtocol("portforward.k8s.io", kSpdyPortForwardProtocol).ok());
  EXPECT_TRUE(
      absl::IsFailedPrecondition(AcceptSpdyProtocol(std::nullopt, kSpdyRemoteCommandProtocol)));
  EXPECT_TRUE(absl::IsFailedPrecondition(AcceptSpdyProtocol("", kSpdyRemoteCommandProtocol)));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      AcceptSpdyProtocol("v3.channel.k8s.io", kSpdyRemoteCommandProtocol)));
}

TEST(SpdyRemoteCommandOutcomeTest, FromTheErrorStream) {
  EXPECT_EQ(*SpdyRemoteCommandOutcome(remotecommand::SuccessStatusJson(), true), 0);
  EXPECT_EQ(*SpdyRemoteCommandOutcome(remotecommand::NonZeroExitStatusJson(7, {"x"}), true), 7);
  // A whole status counts even if the stream's FIN never came.
  EXPECT_EQ(*SpdyRemoteCommandOutcome(remotecommand::NonZeroExitStatusJson(7, {"x"}), false), 7);
  // An ended, empty error stream is client-go's success.
  EXPECT_EQ(*SpdyRemoteCommandOutcome("", true), 0);
  absl::StatusOr<int> failed =
      SpdyRemoteCommandOutcome(remotecommand::InternalErrorStatusJson("boom"), true);
  EXPECT_TRUE(absl::IsUnknown(failed.status()));
  EXPECT_EQ(failed.status().message(), "Internal error occurred: boom");
  EXPECT_TRUE(absl::IsUnavailable(SpdyRemoteCommandOutcome("", false).status()));
  EXPECT_TRUE(absl::IsUnavailable(SpdyRemoteCommandOutcome(R"({"status":"Fai)", false).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(SpdyRemoteCommandOutcome("oops", true).status()));
}

TEST(RemoteCommandReceiverTest, OutputThenExitCode) {
  RemoteCommandReceiver receiver(V5());
  EXPECT_EQ(*receiver.Receive(""), RemoteCommandEvent{});  // "streams ready"
  EXPECT_EQ(*receiver.Receive(Msg(1, "out")), (RemoteCommandEvent{Kind::kStdout, "out"}));
  EXPECT_EQ(*receiver.Receive(Msg(2, "err")), (RemoteCommandEvent{Kind::kStderr, "err"}));
  EXPECT_EQ(*receiver.Receive(Msg(1, "")), (RemoteCommandEvent{Kind::kStdout, ""}));
  EXPECT_FALSE(receiver.has_exit());
  EXPECT_EQ(*receiver.Receive(Msg(3, remotecommand::NonZeroExitStatusJson(7, {"false"}))),
            (RemoteCommandEvent{Kind::kExit, ""}));
  EXPECT_TRUE(receiver.has_exit());
  EXPECT_EQ(*receiver.Finish(), 7);
}

TEST(RemoteCommandReceiverTest, Success) {
  RemoteCommandReceiver receiver(V4());
  EXPECT_EQ(receiver.Receive(Msg(3, remotecommand::SuccessStatusJson()))->kind, Kind::kExit);
  EXPECT_EQ(*receiver.Finish(), 0);
}

TEST(RemoteCommandReceiverTest, StatusSplitAcrossMessages) {
  RemoteCommandReceiver receiver(V5());
  std::string status = remotecommand::NonZeroExitStatusJson(3, {"sh", "-c", "exit 3"});
  EXPECT_EQ(receiver.Receive(Msg(3, status.substr(0, 10)))->kind, Kind::kNone);
  EXPECT_FALSE(receiver.has_exit());
  EXPECT_EQ(receiver.Receive(Msg(3, status.substr(10)))->kind, Kind::kExit);
  EXPECT_EQ(*receiver.Finish(), 3);
}

TEST(RemoteCommandReceiverTest, InternalErrorIsTheServersMessage) {
  RemoteCommandReceiver receiver(V5());
  receiver
      .Receive(Msg(3, remotecommand::InternalErrorStatusJson(
                          "error executing command in container: no such file")))
      .IgnoreError();
  absl::StatusOr<int> code = receiver.Finish();
  EXPECT_TRUE(absl::IsUnknown(code.status()));
  EXPECT_EQ(code.status().message(),
            "Internal error occurred: error executing command in container: no such file");
}

TEST(RemoteCommandReceiverTest, ClosedWithoutStatus) {
  RemoteCommandReceiver receiver(V5());
  receiver.Receive(Msg(1, "partial")).IgnoreError();
  EXPECT_TRUE(absl::IsUnavailable(receiver.Finish().status()));
}

TEST(RemoteCommandReceiverTest, IgnoresWhatIsNotForTheClient) {
  RemoteCommandReceiver receiver(V5());
  EXPECT_EQ(receiver.Receive(Msg(0, "stdin?"))->kind, Kind::kNone);
  EXPECT_EQ(receiver.Receive(Msg(4, "{}"))->kind, Kind::kNone);
  EXPECT_EQ(receiver.Receive(Msg(9, "x"))->kind, Kind::kNone);
  EXPECT_EQ(receiver.Receive(*ws::EncodeCloseSignal(V5(), 1))->kind, Kind::kNone);
  // A truncated close signal is malformed.
  EXPECT_TRUE(absl::IsInvalidArgument(receiver.Receive("\xff").status()));
}

TEST(RemoteCommandReceiverTest, OnlyTheFirstStatusCounts) {
  RemoteCommandReceiver receiver(V5());
  receiver.Receive(Msg(3, remotecommand::SuccessStatusJson())).IgnoreError();
  EXPECT_EQ(receiver.Receive(Msg(3, remotecommand::NonZeroExitStatusJson(2, {"x"})))->kind,
            Kind::kNone);
  EXPECT_EQ(*receiver.Finish(), 0);
}

ws::Protocol PortForwardV4() {
  return *ws::NegotiateProtocol("v4.channel.k8s.io", ws::Purpose::kPortForward);
}

TEST(PortForwardReceiverTest, PrefixesThenData) {
  using PfKind = PortForwardEvent::Kind;
  PortForwardReceiver receiver(PortForwardV4(), 8080);
  const std::string prefix = ws::EncodePortPrefix(8080);
  EXPECT_EQ(*receiver.Receive(Msg(0, prefix)), PortForwardEvent{});
  EXPECT_EQ(*receiver.Receive(Msg(1, prefix)), PortForwardEvent{});
  EXPECT_EQ(*receiver.Receive(Msg(0, "HTTP/1.0 200")),
            (PortForwardEvent{PfKind::kData, "HTTP/1.0 200"}));
  // Data after the prefix is data, whatever its first bytes.
  EXPECT_EQ(*receiver.Receive(Msg(0, prefix)), (PortForwardEvent{PfKind::kData, prefix}));
  EXPECT_EQ(*receiver.Receive(Msg(1, "connection refused")),
            (PortForwardEvent{PfKind::kError, "connection refused"}));
}

TEST(PortForwardReceiverTest, DataInThePrefixMessage) {
  PortForwardReceiver receiver(PortForwardV4(), 80);
  EXPECT_EQ(*receiver.Receive(Msg(0, ws::EncodePortPrefix(80) + "hi")),
            (PortForwardEvent{PortForwardEvent::Kind::kData, "hi"}));
}

TEST(PortForwardReceiverTest, BadPrefixes) {
  PortForwardReceiver receiver(PortForwardV4(), 80);
  EXPECT_TRUE(absl::IsInvalidArgument(receiver.Receive(Msg(0, "x")).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(receiver.Receive(Msg(1, ws::EncodePortPrefix(81))).status()));
  // Another port's channels are not this connection's.
  EXPECT_EQ(receiver.Receive(Msg(2, "whatever"))->kind, PortForwardEvent::Kind::kNone);
}

TEST(ParsePortMappingTest, Forms) {
  EXPECT_EQ(*ParsePortMapping("8080:80"), (PortMapping{8080, 80}));
  EXPECT_EQ(*ParsePortMapping("5432"), (PortMapping{5432, 5432}));
  EXPECT_EQ(*ParsePortMapping(":80"), (PortMapping{0, 80}));
  for (const char* bad :
       {"", ":", "80:", "0", "0:80", "80:0", "a:80", "80:b", "1:2:3", "70000:80", "-1:80", " 80"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParsePortMapping(bad).status())) << bad;
  }
}

}  // namespace
}  // namespace berth::cli
