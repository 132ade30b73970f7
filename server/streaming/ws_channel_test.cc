#include "server/streaming/ws_channel.h"

#include "gtest/gtest.h"

namespace berth::streaming::ws {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

Protocol Negotiated(std::string_view offered, Purpose purpose = Purpose::kRemoteCommand) {
  std::optional<Protocol> protocol = NegotiateProtocol(offered, purpose);
  EXPECT_TRUE(protocol.has_value()) << offered;
  return protocol.value_or(Protocol{});
}

TEST(NegotiateProtocolTest, KubectlGetsV5) {
  // What client-go's WebSocket executor offers, best first.
  Protocol protocol = Negotiated(
      "v5.channel.k8s.io, v4.channel.k8s.io, v3.channel.k8s.io, v2.channel.k8s.io, channel.k8s.io");
  EXPECT_EQ(protocol.name, "v5.channel.k8s.io");
  EXPECT_FALSE(protocol.base64);
  EXPECT_TRUE(protocol.close_signal);
  EXPECT_TRUE(protocol.json_status);
}

TEST(NegotiateProtocolTest, TheClientsOrderWins) {
  EXPECT_EQ(Negotiated("v4.channel.k8s.io,v5.channel.k8s.io").name, "v4.channel.k8s.io");
  EXPECT_EQ(Negotiated("  v4.base64.channel.k8s.io ,v5.channel.k8s.io").name,
            "v4.base64.channel.k8s.io");
  // Unknown ones are skipped, whatever their position.
  EXPECT_EQ(Negotiated("v6.channel.k8s.io, , base64.channel.k8s.io").name, "base64.channel.k8s.io");
}

TEST(NegotiateProtocolTest, WhatEachProtocolImplies) {
  Protocol v4 = Negotiated("v4.channel.k8s.io");
  EXPECT_EQ(v4, (Protocol{"v4.channel.k8s.io", false, false, true}));
  Protocol v4_base64 = Negotiated("v4.base64.channel.k8s.io");
  EXPECT_EQ(v4_base64, (Protocol{"v4.base64.channel.k8s.io", true, false, true}));
  Protocol pre_v4 = Negotiated("channel.k8s.io");
  EXPECT_EQ(pre_v4, (Protocol{"channel.k8s.io", false, false, false}));
  Protocol pre_v4_base64 = Negotiated("base64.channel.k8s.io");
  EXPECT_EQ(pre_v4_base64, (Protocol{"base64.channel.k8s.io", true, false, false}));
}

TEST(NegotiateProtocolTest, NoOfferGetsTheUnnamedBinaryProtocol) {
  EXPECT_EQ(Negotiated(""), (Protocol{"", false, false, false}));
  EXPECT_EQ(Negotiated(" , "), (Protocol{"", false, false, false}));
  EXPECT_EQ(Negotiated("", Purpose::kPortForward), (Protocol{"", false, false, false}));
}

TEST(NegotiateProtocolTest, NothingSpokenIsRefused) {
  EXPECT_EQ(NegotiateProtocol("v6.channel.k8s.io", Purpose::kRemoteCommand), std::nullopt);
  // Names are case-sensitive, as in the kubelet.
  EXPECT_EQ(NegotiateProtocol("V5.channel.K8S.io", Purpose::kRemoteCommand), std::nullopt);
  // SPDY tunnelled over WebSocket is not a channel protocol.
  EXPECT_EQ(NegotiateProtocol("SPDY/3.1+portforward.k8s.io", Purpose::kPortForward), std::nullopt);
}

TEST(NegotiateProtocolTest, PortForwardSpeaksTheV4Pair) {
  EXPECT_EQ(Negotiated("v5.channel.k8s.io, v4.channel.k8s.io", Purpose::kPortForward).name,
            "v4.channel.k8s.io");
  EXPECT_EQ(Negotiated("v4.base64.channel.k8s.io", Purpose::kPortForward).name,
            "v4.base64.channel.k8s.io");
  EXPECT_EQ(NegotiateProtocol("channel.k8s.io", Purpose::kPortForward), std::nullopt);
}

TEST(ChannelMessageTest, BinaryMessagesArePrefixedWithTheChannelByte) {
  Protocol v5 = Negotiated("v5.channel.k8s.io");
  // wsstream's own example: "foo\n" on stdin, "\n" on stdout.
  EXPECT_EQ(EncodeMessage(v5, kStdinChannel, "foo\n"), Bytes({0, 102, 111, 111, 10}));
  EXPECT_EQ(EncodeMessage(v5, kStdoutChannel, "\n"), Bytes({1, 10}));
  EXPECT_EQ(EncodeMessage(v5, kErrorChannel, ""), Bytes({3}));

  absl::StatusOr<std::optional<Message>> message = DecodeMessage(v5, Bytes({0, 102, 111, 111, 10}));
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(**message, (Message{Message::Kind::kData, kStdinChannel, "foo\n"}));

  // Binary data passes through untouched.
  std::string binary = Bytes({4, 0, 255, 0x80});
  message = DecodeMessage(v5, binary);
  ASSERT_TRUE(message.ok());
  EXPECT_EQ(**message, (Message{Message::Kind::kData, kResizeChannel, Bytes({0, 255, 0x80})}));
}

TEST(ChannelMessageTest, Base64MessagesUseADigitAndBase64) {
  Protocol base64 = Negotiated("v4.base64.channel.k8s.io");
  // wsstream's own example: "foo\n" on stdin is "0Zm9vCg==", "\n" on stdout "1Cg==".
  EXPECT_EQ(EncodeMessage(base64, kStdinChannel, "foo\n"), "0Zm9vCg==");
  EXPECT_EQ(EncodeMessage(base64, kStdoutChannel, "\n"), "1Cg==");
  EXPECT_EQ(EncodeMessage(base64, kErrorChannel, ""), "3");

  absl::StatusOr<std::optional<Message>> message = DecodeMessage(base64, "0Zm9vCg==");
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(**message, (Message{Message::Kind::kData, kStdinChannel, "foo\n"}));
  message = DecodeMessage(base64, "4");
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(**message, (Message{Message::Kind::kData, kResizeChannel, ""}));

  EXPECT_EQ(DecodeMessage(base64, "0Zm9vCg=").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeMessage(base64, "0!!!!").status().code(), absl::StatusCode::kInvalidArgument);
  // A non-digit channel wraps like the kubelet's byte arithmetic; the caller drops it.
  message = DecodeMessage(base64, "/Cg==");
  ASSERT_TRUE(message.ok());
  EXPECT_EQ((*message)->channel, 255);
}

TEST(ChannelMessageTest, EmptyMessagesAreIgnored) {
  for (std::string_view name : {"v5.channel.k8s.io", "v4.base64.channel.k8s.io"}) {
    absl::StatusOr<std::optional<Message>> message = DecodeMessage(Negotiated(name), "");
    ASSERT_TRUE(message.ok());
    EXPECT_EQ(*message, std::nullopt);
  }
}

TEST(ChannelMessageTest, V5CloseSignal) {
  Protocol v5 = Negotiated("v5.channel.k8s.io");
  absl::StatusOr<std::string> close = EncodeCloseSignal(v5, kStdinChannel);
  ASSERT_TRUE(close.ok());
  EXPECT_EQ(*close, Bytes({255, 0}));

  absl::StatusOr<std::optional<Message>> message = DecodeMessage(v5, Bytes({255, 0}));
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(**message, (Message{Message::Kind::kClose, kStdinChannel, ""}));

  EXPECT_EQ(DecodeMessage(v5, Bytes({255})).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeMessage(v5, Bytes({255, 0, 0})).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Before v5, 255 is just a channel number (that no session has), and there is no way
  // to send the signal.
  Protocol v4 = Negotiated("v4.channel.k8s.io");
  message = DecodeMessage(v4, Bytes({255, 0}));
  ASSERT_TRUE(message.ok());
  EXPECT_EQ(**message, (Message{Message::Kind::kData, 255, Bytes({0})}));
  EXPECT_EQ(EncodeCloseSignal(v4, kStdinChannel).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PortForwardTest, ChannelsComeInPairs) {
  EXPECT_EQ(PortForwardDataChannel(0), 0);
  EXPECT_EQ(PortForwardErrorChannel(0), 1);
  EXPECT_EQ(PortForwardDataChannel(3), 6);
  EXPECT_EQ(PortForwardErrorChannel(3), 7);
  EXPECT_EQ(PortForwardChannelOf(6), (PortChannel{3, false}));
  EXPECT_EQ(PortForwardChannelOf(7), (PortChannel{3, true}));
  EXPECT_EQ(PortForwardErrorChannel(kMaxForwardedPorts - 1), 253);
}

TEST(PortForwardTest, ThePortPrefixIsLittleEndian) {
  EXPECT_EQ(EncodePortPrefix(8080), Bytes({0x90, 0x1f}));
  EXPECT_EQ(EncodePortPrefix(80), Bytes({80, 0}));
  Protocol v4 = Negotiated("v4.channel.k8s.io", Purpose::kPortForward);
  EXPECT_EQ(EncodeMessage(v4, PortForwardErrorChannel(1), EncodePortPrefix(443)),
            Bytes({3, 0xbb, 0x01}));

  const std::string first = Bytes({0x90, 0x1f}) + "GET /";
  absl::StatusOr<std::pair<uint16_t, std::string_view>> split = SplitPortPrefix(first);
  ASSERT_TRUE(split.ok());
  EXPECT_EQ(split->first, 8080);
  EXPECT_EQ(split->second, "GET /");
  EXPECT_EQ(SplitPortPrefix(Bytes({0x90})).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PortForwardTest, PortsFromTheQuery) {
  absl::StatusOr<std::vector<uint16_t>> ports = ParsePortForwardPorts({"80", "8080,443", "0080"});
  ASSERT_TRUE(ports.ok()) << ports.status();
  EXPECT_EQ(*ports, (std::vector<uint16_t>{80, 8080, 443, 80}));

  for (const std::vector<std::string_view>& bad :
       std::vector<std::vector<std::string_view>>{{},
                                                  {""},
                                                  {"0"},
                                                  {"65536"},
                                                  {"-1"},
                                                  {"80,"},
                                                  {"http"},
                                                  {"99999999999999999999"},
                                                  {" 80"}}) {
    EXPECT_EQ(ParsePortForwardPorts(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << (bad.empty() ? "(none)" : bad.front());
  }
  EXPECT_TRUE(ParsePortForwardPorts({"65535"}).ok());

  std::string many;
  for (size_t i = 0; i < kMaxForwardedPorts; ++i) many += (i ? ",1" : "1");
  EXPECT_TRUE(ParsePortForwardPorts({many}).ok());
  many += ",1";
  EXPECT_EQ(ParsePortForwardPorts({many}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth::streaming::ws
