#include "server/streaming/token_cache.h"

#include <set>

#include "gtest/gtest.h"

namespace berth::streaming {
namespace {

TEST(TokenCacheTest, TokenWorksOnceAndIsUnguessable) {
  TokenCache cache({});
  std::set<std::string> tokens;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<std::string> token =
        cache.Insert(ExecRequest{.container_id = "c" + std::to_string(i)});
    ASSERT_TRUE(token.ok()) << token.status();
    EXPECT_EQ(token->size(), 64u);
    tokens.insert(*token);
  }
  EXPECT_EQ(tokens.size(), 100u);
  const std::string first = *tokens.begin();
  std::optional<StreamRequest> request = cache.Consume(first);
  ASSERT_TRUE(request.has_value());
  EXPECT_TRUE(std::holds_alternative<ExecRequest>(*request));
  EXPECT_FALSE(cache.Consume(first).has_value()) << "a token must work once";
  EXPECT_FALSE(cache.Consume("not-a-token").has_value());
  EXPECT_EQ(cache.size(), 99u);
}

TEST(TokenCacheTest, ExpiredTokensAreRefusedAndDropped) {
  absl::Time now = absl::FromUnixSeconds(1000);
  TokenCache cache({.ttl = absl::Seconds(60), .now = [&] { return now; }});
  std::string early = *cache.Insert(PortForwardRequest{.pod_id = "p"});
  now += absl::Seconds(30);
  std::string late = *cache.Insert(AttachRequest{.container_id = "c"});
  now += absl::Seconds(31);
  EXPECT_FALSE(cache.Consume(early).has_value()) << "expired after the ttl";
  EXPECT_EQ(cache.size(), 1u);
  std::optional<StreamRequest> request = cache.Consume(late);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(std::get<AttachRequest>(*request).container_id, "c");
}

TEST(TokenCacheTest, BoundedNumberOfWaitingTokens) {
  TokenCache cache({.max_entries = 2});
  ASSERT_TRUE(cache.Insert(PortForwardRequest{}).ok());
  std::string second = *cache.Insert(PortForwardRequest{});
  absl::StatusOr<std::string> third = cache.Insert(PortForwardRequest{});
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(cache.Consume(second).has_value());
  EXPECT_TRUE(cache.Insert(PortForwardRequest{}).ok()) << "room again once one is used";
}

}  // namespace
}  // namespace berth::streaming
