#include "runtime/registry/registry_config.h"

#include "gtest/gtest.h"
#include "runtime/registry/http.h"

namespace berth::registry {
namespace {

TEST(ResolveEndpointsTest, UpstreamByDefault) {
  absl::StatusOr<std::vector<Endpoint>> endpoints = ResolveEndpoints({}, "registry.k8s.io");
  ASSERT_TRUE(endpoints.ok());
  ASSERT_EQ(endpoints->size(), 1u);
  EXPECT_EQ((*endpoints)[0].base_url, "https://registry.k8s.io");
  EXPECT_FALSE((*endpoints)[0].mirror);

  endpoints = ResolveEndpoints({}, "docker.io");
  EXPECT_EQ((*endpoints)[0].base_url, "https://registry-1.docker.io");
}

TEST(ResolveEndpointsTest, MirrorsReplaceTheUpstreamInOrder) {
  RegistryConfig config;
  config.hosts["registry.k8s.io"].mirrors = {"http://127.0.0.1:5000/", "mirror.example:443"};
  absl::StatusOr<std::vector<Endpoint>> endpoints = ResolveEndpoints(config, "registry.k8s.io");
  ASSERT_TRUE(endpoints.ok()) << endpoints.status();
  ASSERT_EQ(endpoints->size(), 2u);
  EXPECT_EQ((*endpoints)[0].base_url, "http://127.0.0.1:5000");
  EXPECT_EQ((*endpoints)[1].base_url, "https://mirror.example:443");
  EXPECT_TRUE((*endpoints)[0].mirror);
}

TEST(ResolveEndpointsTest, StarAppliesToHostsNotNamed) {
  RegistryConfig config;
  config.hosts["*"].mirrors = {"http://127.0.0.1:5000"};
  config.hosts["quay.io"] = {};
  EXPECT_EQ((*ResolveEndpoints(config, "gcr.io"))[0].base_url, "http://127.0.0.1:5000");
  // A named host without mirrors goes upstream, "*" notwithstanding.
  EXPECT_EQ((*ResolveEndpoints(config, "quay.io"))[0].base_url, "https://quay.io");
}

TEST(ResolveEndpointsTest, InsecureAddsPlainHttpAndMirrorCredentialsComeFromTheirHost) {
  RegistryConfig config;
  config.hosts["local:5000"].insecure = true;
  config.hosts["local:5000"].credentials.username = "u";
  std::vector<Endpoint> endpoints = *ResolveEndpoints(config, "local:5000");
  ASSERT_EQ(endpoints.size(), 2u);
  EXPECT_EQ(endpoints[0].base_url, "https://local:5000");
  EXPECT_TRUE(endpoints[0].insecure);
  EXPECT_EQ(endpoints[1].base_url, "http://local:5000");
  EXPECT_EQ(endpoints[1].credentials.username, "u");

  config.hosts["*"].mirrors = {"https://local:5000"};
  endpoints = *ResolveEndpoints(config, "docker.io");
  ASSERT_EQ(endpoints.size(), 1u);
  EXPECT_EQ(endpoints[0].credentials.username, "u");
  EXPECT_TRUE(endpoints[0].insecure);
}

TEST(ResolveEndpointsTest, BadMirrorUrlsAreRejected) {
  RegistryConfig config;
  for (const char* bad : {"ftp://x", "http://h/path", "http://user@h", "http://"}) {
    config.hosts["*"].mirrors = {bad};
    EXPECT_EQ(ResolveEndpoints(config, "docker.io").status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(ChallengeTest, ParsesBearerAndBasic) {
  std::vector<Challenge> c = ParseChallenges(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(c[0].params["service"], "registry.docker.io");
  EXPECT_EQ(c[0].params["scope"], "repository:library/busybox:pull");

  c = ParseChallenges(R"(Basic realm="Registry Realm")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params["realm"], "Registry Realm");
}

TEST(UrlEncodeTest, EscapesReserved) {
  EXPECT_EQ(UrlEncode("repository:library/busybox:pull"), "repository%3Alibrary%2Fbusybox%3Apull");
}

}  // namespace
}  // namespace berth::registry
