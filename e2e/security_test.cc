// The CRI security context, seen from inside the container: a pod, an image
// pulled from a real registry, a container per case, and ExecSync to look at
// what its processes may do. The effective capabilities come from
// /proc/self/status; seccomp, masked paths, file ownership and a read-only
// rootfs are proven by a syscall or a write that fails, next to the same
// command succeeding where the restriction is lifted; oom_score_adj by the
// score the container's process got. docs/security.md states these rules.
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "e2e/berthd_fixture.h"
#include "e2e/fixtures/image_kit.h"
#include "e2e/fixtures/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/container/capabilities.h"

namespace berth::testing {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::HasSubstr;

constexpr char kImage[] = "berth-test/security:1";

// Docker's and containerd's default set as a CapEff mask.
constexpr char kDefaultCapMask[] = "00000000a80425fb";

// critest's profile: everything allowed but sethostname.
constexpr char kBlockSethostnameProfile[] = R"({
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]
})";

// The busybox image plus a layer with files for these tests: a root-owned
// file, a secret, and an executable that a test masks (a regular file: a
// masked symlink would mask its target, /bin/busybox).
absl::StatusOr<OciImage> BuildSecurityImage() {
  absl::StatusOr<OciImage> busybox = BuildBusyboxImage();
  if (!busybox.ok()) return busybox.status();
  absl::StatusOr<Layer> extra = BuildLayer({
      TarEntry::Dir("etc"),
      TarEntry::File("etc/root-owned.conf", "root only\n", 0644),
      TarEntry::File("etc/secret.txt", "top secret\n", 0644),
      TarEntry::Dir("usr"),
      TarEntry::Dir("usr/local"),
      TarEntry::Dir("usr/local/bin"),
      TarEntry::File("usr/local/bin/secret-tool", "#!/bin/sh\necho secret\n", 0755),
  });
  if (!extra.ok()) return extra.status();
  return BuildImage("berth-test/security", "1", ImageConfig{.cmd = {"sh"}},
                    {busybox->layers[0], *std::move(extra)});
}

// The value of one "Name:\tvalue" line of a /proc/<pid>/status text.
std::string StatusField(const std::string& status, const std::string& name) {
  std::istringstream lines(status);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + ":", 0) != 0) continue;
    std::string value = line.substr(name.size() + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
  }
  return "<no " + name + " line>";
}

std::string CapMask(const std::vector<std::string>& names) {
  const std::vector<std::string>& all = container::AllCapabilities();
  uint64_t mask = 0;
  for (const std::string& name : names) {
    auto it = std::find(all.begin(), all.end(), name);
    if (it != all.end()) mask |= uint64_t{1} << (it - all.begin());
  }
  char hex[17];
  snprintf(hex, sizeof(hex), "%016" PRIx64, mask);
  return hex;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: containers run through runc";
    absl::StatusOr<OciImage> image = BuildSecurityImage();
    ASSERT_TRUE(image.ok()) << image.status();
    absl::StatusOr<std::unique_ptr<Registry>> registry = Registry::Start();
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ASSERT_TRUE(registry_->Push(*image).ok());
    absl::StatusOr<std::unique_ptr<BerthdFixture>> berthd = BerthdFixture::Start(
        {.config_toml = "[registries.\"*\"]\nmirrors = [\"" + registry_->url() + "\"]\n"});
    ASSERT_TRUE(berthd.ok()) << berthd.status();
    berthd_ = *std::move(berthd);

    grpc::ClientContext pull_ctx;
    v1::PullImageRequest pull;
    pull.mutable_image()->set_image(kImage);
    v1::PullImageResponse pulled;
    grpc::Status s = berthd_->image().PullImage(&pull_ctx, pull, &pulled);
    ASSERT_TRUE(s.ok()) << s.error_message();

    pod_config_.mutable_metadata()->set_name("security-pod");
    pod_config_.mutable_metadata()->set_uid("security-uid");
    pod_config_.mutable_metadata()->set_namespace_("default");
    pod_config_.set_hostname("security-pod");
    pod_config_.set_log_directory(berthd_->dir() + "/logs");
    // A parent of our own, so the test can check that it leaves no cgroup.
    cgroup_parent_ = "/berth-e2e-security-" + std::to_string(getpid());
    pod_config_.mutable_linux()->set_cgroup_parent(cgroup_parent_);
    pod_config_.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        v1::CONTAINER);
    pod_ = RunPod(pod_config_);
    ASSERT_FALSE(pod_.empty());
  }

  void TearDown() override {
    if (berthd_ == nullptr) return;
    // Removing a pod removes its containers; nothing berth made stays.
    for (const std::string& pod : pods_) {
      grpc::ClientContext ctx;
      v1::RemovePodSandboxRequest request;
      request.set_pod_sandbox_id(pod);
      v1::RemovePodSandboxResponse response;
      grpc::Status s = berthd_->runtime().RemovePodSandbox(&ctx, request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    grpc::ClientContext ctx;
    v1::ListContainersResponse listed;
    ASSERT_TRUE(berthd_->runtime().ListContainers(&ctx, v1::ListContainersRequest(), &listed).ok());
    EXPECT_EQ(listed.containers_size(), 0);
    EXPECT_EQ(LeakCensus(berthd_->dir()), std::vector<std::string>{});
    // runc removed each container's cgroup; only our empty parent may remain.
    for (const auto& hierarchy : std::filesystem::directory_iterator("/sys/fs/cgroup")) {
      std::string parent = hierarchy.path().string() + cgroup_parent_;
      std::error_code ec;
      for (const auto& child : std::filesystem::directory_iterator(parent, ec)) {
        if (child.is_directory()) ADD_FAILURE() << "cgroup left behind: " << child.path();
      }
      rmdir(parent.c_str());
    }
  }

  std::string RunPod(const v1::PodSandboxConfig& config) {
    grpc::ClientContext ctx;
    v1::RunPodSandboxRequest run;
    *run.mutable_config() = config;
    v1::RunPodSandboxResponse ran;
    grpc::Status s = berthd_->runtime().RunPodSandbox(&ctx, run, &ran);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (s.ok()) {
      pods_.push_back(ran.pod_sandbox_id());
      pod_configs_[ran.pod_sandbox_id()] = config;
    }
    return ran.pod_sandbox_id();
  }

  // A second pod, privileged, for privileged containers.
  std::string RunPrivilegedPod() {
    v1::PodSandboxConfig config = pod_config_;
    config.mutable_metadata()->set_name("privileged-pod");
    config.mutable_metadata()->set_uid("privileged-uid");
    config.mutable_linux()->mutable_security_context()->set_privileged(true);
    return RunPod(config);
  }

  using Security = std::function<void(v1::LinuxContainerSecurityContext&)>;
  using Config = std::function<void(v1::ContainerConfig&)>;

  grpc::Status TryCreate(const std::string& name, const Security& security, std::string* id,
                         const std::string& pod = "", const Config& more = nullptr) {
    grpc::ClientContext ctx;
    v1::CreateContainerRequest request;
    const std::string& pod_id = pod.empty() ? pod_ : pod;
    request.set_pod_sandbox_id(pod_id);
    *request.mutable_sandbox_config() = pod_configs_[pod_id];
    v1::ContainerConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(name);
    config->mutable_image()->set_image(kImage);
    config->add_command("sleep");
    config->add_command("1000");
    config->set_log_path(name + ".log");
    v1::LinuxContainerSecurityContext* sc = config->mutable_linux()->mutable_security_context();
    sc->mutable_namespace_options()->set_pid(v1::CONTAINER);
    if (security) security(*sc);
    if (more) more(*config);
    v1::CreateContainerResponse response;
    grpc::Status s = berthd_->runtime().CreateContainer(&ctx, request, &response);
    *id = response.container_id();
    return s;
  }

  // A running `sleep 1000` container with this security context.
  std::string Run(const std::string& name, const Security& security = nullptr,
                  const std::string& pod = "", const Config& more = nullptr) {
    std::string id;
    grpc::Status s = TryCreate(name, security, &id, pod, more);
    EXPECT_TRUE(s.ok()) << name << ": " << s.error_message();
    if (!s.ok()) return "";
    grpc::ClientContext ctx;
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    s = berthd_->runtime().StartContainer(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << name << ": " << s.error_message();
    return id;
  }

  v1::ExecSyncResponse Exec(const std::string& id, const std::vector<std::string>& cmd) {
    grpc::ClientContext ctx;
    v1::ExecSyncRequest request;
    request.set_container_id(id);
    for (const std::string& c : cmd) request.add_cmd(c);
    request.set_timeout(10);
    v1::ExecSyncResponse response;
    grpc::Status s = berthd_->runtime().ExecSync(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  // The container's own view of a process it starts: /proc/self/status of `cat`.
  std::string ProcStatus(const std::string& id) {
    v1::ExecSyncResponse r = Exec(id, {"cat", "/proc/self/status"});
    EXPECT_EQ(r.exit_code(), 0) << r.stderr();
    return r.stdout();
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<BerthdFixture> berthd_;
  v1::PodSandboxConfig pod_config_;
  std::string pod_, cgroup_parent_;
  std::vector<std::string> pods_;
  std::map<std::string, v1::PodSandboxConfig> pod_configs_;
};

// ---- capabilities ----------------------------------------------------------

TEST_F(SecurityTest, DefaultCapabilitiesAreContainerdsSet) {
  std::string id = Run("default-caps");
  ASSERT_FALSE(id.empty());
  std::string status = ProcStatus(id);
  const std::string want = CapMask(container::DefaultCapabilities());
  EXPECT_EQ(want, kDefaultCapMask);
  EXPECT_EQ(StatusField(status, "CapEff"), want) << status;
  EXPECT_EQ(StatusField(status, "CapPrm"), want);
  EXPECT_EQ(StatusField(status, "CapBnd"), want);
  EXPECT_EQ(StatusField(status, "CapInh"), "0000000000000000");
  EXPECT_EQ(StatusField(status, "CapAmb"), "0000000000000000");
  // Nothing else is switched on unless asked: no seccomp filter, no_new_privs off.
  EXPECT_EQ(StatusField(status, "Seccomp"), "0");
  EXPECT_EQ(StatusField(status, "NoNewPrivs"), "0");
}

TEST_F(SecurityTest, DropAllThenAddNetBindServiceLeavesExactlyThatBit) {
  std::string id = Run("one-cap", [](v1::LinuxContainerSecurityContext& sc) {
    sc.mutable_capabilities()->add_drop_capabilities("ALL");
    sc.mutable_capabilities()->add_add_capabilities("NET_BIND_SERVICE");
  });
  ASSERT_FALSE(id.empty());
  std::string status = ProcStatus(id);
  EXPECT_EQ(StatusField(status, "CapEff"), "0000000000000400") << status;
  EXPECT_EQ(StatusField(status, "CapBnd"), "0000000000000400");
  // Without CAP_CHOWN even root cannot give a file away.
  v1::ExecSyncResponse r = Exec(id, {"chown", "1000", "/etc/root-owned.conf"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_THAT(r.stderr(), HasSubstr("Operation not permitted"));
}

TEST_F(SecurityTest, PrivilegedContainerHoldsEveryCapabilityBerthdHolds) {
  std::string pod = RunPrivilegedPod();
  ASSERT_FALSE(pod.empty());
  std::string id = Run(
      "privileged", [](v1::LinuxContainerSecurityContext& sc) { sc.set_privileged(true); }, pod);
  ASSERT_FALSE(id.empty());
  std::ifstream in("/proc/" + std::to_string(berthd_->pid()) + "/status");
  std::string berthd_status((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string status = ProcStatus(id);
  EXPECT_EQ(StatusField(status, "CapEff"), StatusField(berthd_status, "CapEff")) << status;
  EXPECT_EQ(StatusField(status, "CapBnd"), StatusField(berthd_status, "CapBnd"));
  EXPECT_EQ(StatusField(status, "Seccomp"), "0");
  // ... and may use them: /sys is writable.
  v1::ExecSyncResponse r = Exec(id, {"grep", " /sys ", "/proc/mounts"});
  EXPECT_THAT(r.stdout(), HasSubstr("sysfs /sys sysfs rw,")) << r.stdout();

  // The same request in the unprivileged pod is refused.
  std::string refused;
  grpc::Status s = TryCreate(
      "privileged-in-plain-pod",
      [](v1::LinuxContainerSecurityContext& sc) { sc.set_privileged(true); }, &refused);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("non-privileged pod"));
}

// ---- seccomp ---------------------------------------------------------------

TEST_F(SecurityTest, RuntimeDefaultSeccompRefusesUnshareThatUnconfinedAllows) {
  // A new user namespace needs no capability, so only seccomp stands in the way.
  std::string confined = Run("runtime-default", [](v1::LinuxContainerSecurityContext& sc) {
    sc.mutable_seccomp()->set_profile_type(v1::SecurityProfile::RuntimeDefault);
  });
  std::string unconfined = Run("unconfined", [](v1::LinuxContainerSecurityContext& sc) {
    sc.mutable_seccomp()->set_profile_type(v1::SecurityProfile::Unconfined);
  });
  ASSERT_FALSE(confined.empty());
  ASSERT_FALSE(unconfined.empty());

  EXPECT_EQ(StatusField(ProcStatus(confined), "Seccomp"), "2");
  v1::ExecSyncResponse r = Exec(confined, {"unshare", "-U", "true"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_THAT(r.stderr(), HasSubstr("Operation not permitted"));

  EXPECT_EQ(StatusField(ProcStatus(unconfined), "Seccomp"), "0");
  r = Exec(unconfined, {"unshare", "-U", "true"});
  EXPECT_EQ(r.exit_code(), 0) << r.stderr();
}

TEST_F(SecurityTest, LocalhostProfileBlocksSethostnameEvenWithSysAdmin) {
  const std::string profile = berthd_->dir() + "/block-sethostname.json";
  std::ofstream(profile) << kBlockSethostnameProfile;
  std::string blocked = Run("localhost-profile", [&](v1::LinuxContainerSecurityContext& sc) {
    sc.mutable_capabilities()->add_add_capabilities("SYS_ADMIN");
    sc.mutable_seccomp()->set_profile_type(v1::SecurityProfile::Localhost);
    sc.mutable_seccomp()->set_localhost_ref(profile);
  });
  std::string allowed = Run("sys-admin-unconfined", [](v1::LinuxContainerSecurityContext& sc) {
    sc.mutable_capabilities()->add_add_capabilities("SYS_ADMIN");
    sc.mutable_seccomp()->set_profile_type(v1::SecurityProfile::Unconfined);
  });
  ASSERT_FALSE(blocked.empty());
  ASSERT_FALSE(allowed.empty());

  v1::ExecSyncResponse r = Exec(blocked, {"hostname", "blocked-name"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_THAT(r.stderr(), HasSubstr("Operation not permitted"));

  r = Exec(allowed, {"sh", "-c", "hostname allowed-name && hostname"});
  EXPECT_EQ(r.exit_code(), 0) << r.stderr();
  EXPECT_EQ(r.stdout(), "allowed-name\n");

  // A profile that is not there fails CreateContainer, not the start.
  std::string id;
  grpc::Status s = TryCreate(
      "missing-profile",
      [&](v1::LinuxContainerSecurityContext& sc) {
        sc.mutable_seccomp()->set_profile_type(v1::SecurityProfile::Localhost);
        sc.mutable_seccomp()->set_localhost_ref(berthd_->dir() + "/absent.json");
      },
      &id);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("absent.json"));
}

// ---- masked and read-only paths --------------------------------------------

TEST_F(SecurityTest, MaskedPathsAreUnreadable) {
  // The host's /proc/timer_list has content; berth's default list masks it
  // with /dev/null.
  std::string plain = Run("default-masks");
  ASSERT_FALSE(plain.empty());
  v1::ExecSyncResponse r = Exec(plain, {"cat", "/proc/timer_list"});
  EXPECT_EQ(r.exit_code(), 0) << r.stderr();
  EXPECT_EQ(r.stdout(), "");
  r = Exec(plain, {"stat", "-c", "%t:%T", "/proc/timer_list"});
  EXPECT_EQ(r.stdout(), "1:3\n");  // the /dev/null device

  // A CRI list replaces the defaults: what it names is hidden, an executable
  // cannot be run (critest's "/bin/sh: ls: Permission denied"), and
  // /proc/timer_list is readable again.
  std::string custom = Run("custom-masks", [](v1::LinuxContainerSecurityContext& sc) {
    sc.add_masked_paths("/usr/local/bin/secret-tool");
    sc.add_masked_paths("/etc/secret.txt");
  });
  ASSERT_FALSE(custom.empty());
  r = Exec(custom, {"/bin/sh", "-c", "secret-tool"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_EQ(r.stderr(), "/bin/sh: secret-tool: Permission denied\n");
  r = Exec(custom, {"cat", "/etc/secret.txt"});
  EXPECT_EQ(r.stdout(), "");
  r = Exec(custom, {"head", "-n", "1", "/proc/timer_list"});
  EXPECT_THAT(r.stdout(), HasSubstr("Timer List")) << r.stderr();
  r = Exec(plain, {"cat", "/etc/secret.txt"});
  EXPECT_EQ(r.stdout(), "top secret\n");
}

TEST_F(SecurityTest, ReadonlyPathsRefuseWrites) {
  std::string plain = Run("default-readonly");
  ASSERT_FALSE(plain.empty());
  // Root with the default capabilities, yet /proc/sys is read-only.
  v1::ExecSyncResponse r = Exec(plain, {"sh", "-c", "echo 1 > /proc/sys/kernel/shm_rmid_forced"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_THAT(r.stderr(), HasSubstr("Read-only file system"));

  std::string custom = Run("custom-readonly", [](v1::LinuxContainerSecurityContext& sc) {
    sc.add_readonly_paths("/tmp");
  });
  ASSERT_FALSE(custom.empty());
  r = Exec(custom, {"touch", "/tmp/test"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_EQ(r.stderr(), "touch: /tmp/test: Read-only file system\n");
  r = Exec(plain, {"touch", "/tmp/test"});
  EXPECT_EQ(r.exit_code(), 0) << r.stderr();
}

// ---- users and the root file system -----------------------------------------

TEST_F(SecurityTest, NonRootUserCannotWriteARootOwnedFile) {
  std::string user = Run("uid-1000", [](v1::LinuxContainerSecurityContext& sc) {
    sc.mutable_run_as_user()->set_value(1000);
  });
  std::string root = Run("uid-0");
  ASSERT_FALSE(user.empty());
  ASSERT_FALSE(root.empty());

  v1::ExecSyncResponse r = Exec(user, {"id", "-u"});
  EXPECT_EQ(r.stdout(), "1000\n");
  // The default capabilities are root's: a non-root process keeps none, so
  // CAP_DAC_OVERRIDE cannot get it past the file mode.
  EXPECT_EQ(StatusField(ProcStatus(user), "CapEff"), "0000000000000000");
  r = Exec(user, {"sh", "-c", "echo x >> /etc/root-owned.conf"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_THAT(r.stderr(), HasSubstr("Permission denied"));
  r = Exec(user, {"touch", "/etc/new-file"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_THAT(r.stderr(), HasSubstr("Permission denied"));

  r = Exec(root, {"sh", "-c", "echo x >> /etc/root-owned.conf && cat /etc/root-owned.conf"});
  EXPECT_EQ(r.exit_code(), 0) << r.stderr();
  EXPECT_EQ(r.stdout(), "root only\nx\n");
}

TEST_F(SecurityTest, ReadonlyRootfsRefusesWritesAndNoNewPrivsIsSet) {
  std::string id = Run("readonly-rootfs", [](v1::LinuxContainerSecurityContext& sc) {
    sc.set_readonly_rootfs(true);
    sc.set_no_new_privs(true);
  });
  ASSERT_FALSE(id.empty());
  v1::ExecSyncResponse r = Exec(id, {"touch", "/newfile"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_EQ(r.stderr(), "touch: /newfile: Read-only file system\n");
  // The pod's files follow the rootfs; /dev/shm stays writable.
  r = Exec(id, {"sh", "-c", "echo x > /etc/hosts"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_THAT(r.stderr(), HasSubstr("Read-only file system"));
  r = Exec(id, {"touch", "/dev/shm/ok"});
  EXPECT_EQ(r.exit_code(), 0) << r.stderr();
  EXPECT_EQ(StatusField(ProcStatus(id), "NoNewPrivs"), "1");
}

// ---- oom_score_adj ---------------------------------------------------------

TEST_F(SecurityTest, OomScoreAdjIsClampedAtZero) {
  // No CAP_SYS_RESOURCE on this node: a negative score (the kubelet's -997 for
  // Guaranteed pods) becomes 0 rather than failing in runc.
  auto with_score = [](int64_t score) {
    return [score](v1::ContainerConfig& c) {
      c.mutable_linux()->mutable_resources()->set_oom_score_adj(score);
    };
  };
  std::string guaranteed = Run("oom-guaranteed", nullptr, "", with_score(-997));
  std::string burstable = Run("oom-burstable", nullptr, "", with_score(500));
  ASSERT_FALSE(guaranteed.empty());
  ASSERT_FALSE(burstable.empty());
  // PID 1 is the container's own process (PID namespace CONTAINER).
  EXPECT_EQ(Exec(guaranteed, {"cat", "/proc/1/oom_score_adj"}).stdout(), "0\n");
  EXPECT_EQ(Exec(burstable, {"cat", "/proc/1/oom_score_adj"}).stdout(), "500\n");
}

}  // namespace
}  // namespace berth::testing
