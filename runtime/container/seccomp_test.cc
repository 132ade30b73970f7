#include "runtime/container/seccomp.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::container {
namespace {

using ::testing::HasSubstr;
using Type = SecurityProfile::Type;

// The ERRNO rules naming `syscall` that carry no argument filter.
bool Refuses(const nlohmann::json& profile, const std::string& syscall) {
  for (const nlohmann::json& rule : profile["syscalls"]) {
    if (rule.contains("args")) continue;
    for (const nlohmann::json& name : rule["names"]) {
      if (name == syscall) return rule["action"] == "SCMP_ACT_ERRNO";
    }
  }
  return false;
}

TEST(SeccompTest, DefaultProfileRefusesTheDangerousSyscalls) {
  nlohmann::json profile = DefaultSeccompProfile({"CAP_CHOWN", "CAP_KILL"});
  EXPECT_EQ(profile["defaultAction"], "SCMP_ACT_ALLOW");
  for (const char* syscall :
       {"unshare",     "keyctl",       "add_key",         "request_key", "mount",
        "umount2",     "pivot_root",   "reboot",          "swapon",      "swapoff",
        "init_module", "finit_module", "delete_module",   "sethostname", "setdomainname",
        "kexec_load",  "bpf",          "perf_event_open", "kcmp",        "setns",
        "clone3",      "pidfd_getfd",  "move_pages",      "migrate_pages", "settimeofday"}) {
    EXPECT_TRUE(Refuses(profile, syscall)) << syscall;
  }
  EXPECT_FALSE(Refuses(profile, "read"));
  // As containerd's profile: debuggers work, and the kernel guards clock changes itself.
  EXPECT_FALSE(Refuses(profile, "ptrace"));
  EXPECT_FALSE(Refuses(profile, "process_vm_readv"));
  EXPECT_FALSE(Refuses(profile, "clock_adjtime"));
  // clone is refused only with namespace flags: one masked rule per flag.
  int clone_rules = 0;
  for (const nlohmann::json& rule : profile["syscalls"]) {
    if (rule["names"] == nlohmann::json{"clone"}) {
      ++clone_rules;
      EXPECT_EQ(rule["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
      EXPECT_EQ(rule["args"][0]["value"], rule["args"][0]["valueTwo"]);
    }
  }
  EXPECT_EQ(clone_rules, 7);
}

TEST(SeccompTest, CapabilitiesReopenTheirSyscalls) {
  nlohmann::json profile = DefaultSeccompProfile({"CAP_SYS_ADMIN", "CAP_SYS_PTRACE"});
  EXPECT_FALSE(Refuses(profile, "sethostname"));
  EXPECT_FALSE(Refuses(profile, "mount"));
  EXPECT_FALSE(Refuses(profile, "unshare"));
  EXPECT_FALSE(Refuses(profile, "clone3"));
  EXPECT_FALSE(Refuses(profile, "kcmp"));
  EXPECT_TRUE(Refuses(profile, "reboot"));
  EXPECT_TRUE(Refuses(profile, "keyctl"));  // never namespaced
  for (const nlohmann::json& rule : profile["syscalls"]) {
    EXPECT_NE(rule["names"], nlohmann::json{"clone"});
  }
}

TEST(SeccompTest, SectionFollowsTheProfileType) {
  const std::vector<std::string> caps = {"CAP_CHOWN"};
  EXPECT_FALSE(SeccompSection(std::nullopt, false, caps)->has_value());
  EXPECT_FALSE(
      SeccompSection(SecurityProfile{.type = Type::kUnconfined}, false, caps)->has_value());
  EXPECT_EQ(SeccompSection(SecurityProfile{}, false, caps)->value(), DefaultSeccompProfile(caps));
  // Privileged containers never get a filter.
  EXPECT_FALSE(SeccompSection(SecurityProfile{}, true, caps)->has_value());
  EXPECT_EQ(SeccompSection(SecurityProfile{.type = Type::kRuntimeDefault, .localhost_ref = "/x"},
                           false, caps)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SeccompTest, LocalhostProfileIsReadAtCreateTime) {
  const char* base = getenv("TEST_TMPDIR");
  std::string path = std::string(base != nullptr ? base : "/tmp") + "/profile.json";
  std::ofstream(path) << R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []})";
  absl::StatusOr<std::optional<nlohmann::json>> section =
      SeccompSection(SecurityProfile{.type = Type::kLocalhost, .localhost_ref = path}, false, {});
  ASSERT_TRUE(section.ok()) << section.status();
  EXPECT_EQ((**section)["defaultAction"], "SCMP_ACT_ERRNO");

  section = SeccompSection(
      SecurityProfile{.type = Type::kLocalhost, .localhost_ref = path + ".missing"}, false, {});
  EXPECT_EQ(section.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(section.status().message()), HasSubstr(path + ".missing"));

  std::ofstream(path) << "not json";
  section =
      SeccompSection(SecurityProfile{.type = Type::kLocalhost, .localhost_ref = path}, false, {});
  EXPECT_EQ(section.status().code(), absl::StatusCode::kInvalidArgument);
  unlink(path.c_str());
}

TEST(SeccompTest, LegacyNames) {
  EXPECT_FALSE(ProfileFromLegacyName("")->has_value());
  EXPECT_EQ(ProfileFromLegacyName("runtime/default")->value().type, Type::kRuntimeDefault);
  EXPECT_EQ(ProfileFromLegacyName("docker/default")->value().type, Type::kRuntimeDefault);
  EXPECT_EQ(ProfileFromLegacyName("unconfined")->value().type, Type::kUnconfined);
  std::optional<SecurityProfile> local = *ProfileFromLegacyName("localhost//etc/p.json");
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->type, Type::kLocalhost);
  EXPECT_EQ(local->localhost_ref, "/etc/p.json");
  EXPECT_EQ(ProfileFromLegacyName("bogus").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth::container
