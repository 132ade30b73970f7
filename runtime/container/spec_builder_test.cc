#include "runtime/container/spec_builder.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/container/capabilities.h"
#include "runtime/container/seccomp.h"

namespace berth::container {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

// Golden files live in testdata/; temp paths in them read "@TMP@". To
// regenerate after an intended change, build, then run the binary directly
// from the workspace root with BERTH_UPDATE_GOLDEN set to the testdata
// directory: BERTH_UPDATE_GOLDEN=$PWD/runtime/container/testdata
// .bazel/bin/runtime/container/spec_builder_test --gtest_filter='*Golden*'
constexpr char kTmpPlaceholder[] = "@TMP@";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Replaces every occurrence of `from` in every string of `j`.
json Scrub(const json& j, const std::string& from, const std::string& to) {
  if (j.is_string()) {
    std::string s = j;
    for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
      s.replace(pos, from.size(), to);
    }
    return s;
  }
  if (j.is_array()) {
    json out = json::array();
    for (const json& e : j) out.push_back(Scrub(e, from, to));
    return out;
  }
  if (j.is_object()) {
    json out = json::object();
    for (const auto& [key, value] : j.items()) out[key] = Scrub(value, from, to);
    return out;
  }
  return j;
}

std::vector<std::string> Destinations(const json& spec) {
  std::vector<std::string> out;
  for (const json& m : spec["mounts"]) out.push_back(m["destination"]);
  return out;
}

const json* FindMount(const json& spec, const std::string& destination) {
  for (const json& m : spec["mounts"]) {
    if (m["destination"] == destination) return &m;
  }
  return nullptr;
}

class SpecBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/spec_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    // Canonical, since the builder resolves symlinks in host paths.
    tmp_ = fs::canonical(pattern).string();

    rootfs_ = tmp_ + "/rootfs";
    fs::create_directories(rootfs_ + "/etc");
    Write(rootfs_ + "/etc/passwd",
          "root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:App:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/home:/bin/false\n");
    Write(rootfs_ + "/etc/group",
          "root:x:0:\n"
          "staff:x:50:app\n"
          "app:x:1000:\n"
          "audio:x:29:app\n"
          "nogroup:x:65534:\n");

    fs::create_directories(tmp_ + "/pod/shm");
    Write(tmp_ + "/pod/hosts", "127.0.0.1 localhost\n");
    Write(tmp_ + "/pod/resolv.conf", "nameserver 10.96.0.10\n");
    Write(tmp_ + "/pod/hostname", "busybox-pod\n");

    for (const char* dir : {"data", "data-sub", "logs", "cache-real", "private", "hosts-dir"}) {
      fs::create_directories(tmp_ + "/host/" + dir);
    }
    fs::create_directory_symlink(tmp_ + "/host/cache-real", tmp_ + "/host/cache");
    Write(tmp_ + "/host/hosts-dir/hosts", "10.0.0.1 db\n");

    // "/" is shared; host/private is a private mount on top of it.
    mountinfo_ = tmp_ + "/mountinfo";
    Write(mountinfo_,
          "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
          "40 22 0:50 / " +
              tmp_ + "/host/private rw,relatime - tmpfs tmpfs rw\n");
  }

  void TearDown() override { fs::remove_all(tmp_); }

  static void Write(const std::string& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
  }

  SpecContext Context() const {
    SpecContext ctx;
    ctx.container_id = "c0ffee";
    ctx.sandbox_id = "5a4db0c5";
    ctx.rootfs = rootfs_;
    ctx.network_ns_path = "/run/berth/netns/5a4db0c5";
    ctx.ipc_ns_path = "/run/berth/ipcns/5a4db0c5";
    ctx.uts_ns_path = "/run/berth/utsns/5a4db0c5";
    ctx.hosts_path = tmp_ + "/pod/hosts";
    ctx.resolv_conf_path = tmp_ + "/pod/resolv.conf";
    ctx.hostname_path = tmp_ + "/pod/hostname";
    ctx.shm_path = tmp_ + "/pod/shm";
    ctx.mountinfo_path = mountinfo_;
    // Like this host: everything but CAP_SYS_RESOURCE (BRIEF §4).
    for (const std::string& cap : AllCapabilities()) {
      if (cap != "CAP_SYS_RESOURCE") ctx.node_capabilities.push_back(cap);
    }
    return ctx;
  }

  static PodSpec Pod() {
    PodSpec pod;
    pod.name = "busybox-pod";
    pod.uid = "pod-uid-1";
    pod.namespace_name = "default";
    pod.hostname = "busybox-pod";
    pod.log_directory = "/var/log/pods/default_busybox-pod_pod-uid-1";
    pod.cgroup_parent = "/kubepods/besteffort/podpod-uid-1";
    return pod;
  }

  static ContainerSpec Container() {
    ContainerSpec container;
    container.name = "busybox";
    container.image = "docker.io/library/busybox:1.36";
    container.log_path = "busybox/0.log";
    // What the kubelet sends unless the pod shares its process namespace.
    container.security.namespace_options.pid = NamespaceMode::kContainer;
    return container;
  }

  static image::ImageConfig Busybox() {
    image::ImageConfig image;
    image.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    image.cmd = {"sh"};
    return image;
  }

  json Build(const PodSpec& pod, const ContainerSpec& container, const image::ImageConfig& image,
             const SpecContext& ctx) {
    absl::StatusOr<json> spec = BuildSpec(pod, container, image, ctx);
    EXPECT_TRUE(spec.ok()) << spec.status();
    return spec.ok() ? *spec : json();
  }

  void ExpectGolden(const json& raw, const std::string& name) {
    json actual = Scrub(raw, tmp_, kTmpPlaceholder);
    if (const char* update = getenv("BERTH_UPDATE_GOLDEN")) {
      std::ofstream(std::string(update) + "/" + name + ".json") << actual.dump(2) << "\n";
      return;
    }
    std::string path = std::string(getenv("TEST_SRCDIR")) + "/" + getenv("TEST_WORKSPACE") +
                       "/runtime/container/testdata/" + name + ".json";
    json expected = json::parse(ReadFile(path), nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(expected.is_discarded()) << "cannot parse " << path;
    if (expected == actual) return;
    std::string saved = "(set TEST_UNDECLARED_OUTPUTS_DIR to save it)";
    if (const char* out = getenv("TEST_UNDECLARED_OUTPUTS_DIR")) {
      saved = std::string(out) + "/" + name + ".json";
      std::ofstream(saved) << actual.dump(2) << "\n";
    }
    ADD_FAILURE() << "spec differs from testdata/" << name << ".json.\n"
                  << "JSON patch turning the golden file into the actual spec:\n"
                  << json::diff(expected, actual).dump(2) << "\nactual spec: " << saved;
  }

  std::string tmp_;
  std::string rootfs_;
  std::string mountinfo_;
};

// ---- golden specs ----------------------------------------------------------

TEST_F(SpecBuilderTest, GoldenMinimalBusybox) {
  ExpectGolden(Build(Pod(), Container(), Busybox(), Context()), "minimal_busybox");
}

TEST_F(SpecBuilderTest, GoldenFullResourcesMountsAndMerges) {
  PodSpec pod = Pod();
  pod.cgroup_parent = "/kubepods/burstable/podpod-uid-1";
  pod.sysctls = {{"net.ipv4.ip_unprivileged_port_start", "0"}, {"kernel.shm_rmid_forced", "1"}};

  image::ImageConfig image;
  image.env = {"PATH=/app/bin:/usr/bin:/bin", "LANG=C.UTF-8", "FOO=from-image"};
  image.entrypoint = {"/app/entry.sh"};
  image.cmd = {"serve"};
  image.working_dir = "/app";
  image.user = "nobody";

  ContainerSpec c = Container();
  c.name = "app";
  c.image = "registry.local/app:2.1";
  c.args = {"--port", "8080"};
  c.working_dir = "/srv";
  c.envs = {{"FOO", "from-cri"}, {"EXTRA", "1"}, {"PATH", "/cri/bin:/bin"}};
  c.tty = true;
  c.open_stdin = true;
  c.labels = {{"io.kubernetes.container.name", "app"}};
  c.annotations = {{"io.kubernetes.container.hash", "abc123"},
                   {"io.kubernetes.cri.container-type", "spoofed"}};
  // Deliberately out of order: children first, so sorting has work to do.
  c.mounts = {
      {.container_path = "/data/sub/", .host_path = tmp_ + "/host/data-sub"},
      {.container_path = "/data", .host_path = tmp_ + "/host/data"},
      {.container_path = "/var/log/app",
       .host_path = tmp_ + "/host/logs",
       .readonly = true,
       .propagation = MountPropagation::kHostToContainer},
      {.container_path = "/cache",
       .host_path = tmp_ + "/host/cache",
       .propagation = MountPropagation::kBidirectional},
      {.container_path = "/etc/hosts", .host_path = tmp_ + "/host/hosts-dir/hosts"},
  };
  c.resources = {.cpu_period = 100000,
                 .cpu_quota = 50000,
                 .cpu_shares = 512,
                 .memory_limit_in_bytes = 268435456,
                 .oom_score_adj = -997,
                 .cpuset_cpus = "0-1",
                 .cpuset_mems = "0",
                 .hugepage_limits = {{.page_size = "2MB", .limit = 4194304}},
                 .unified = {{"memory.high", "200000000"}}};
  c.security.run_as_user = 1000;
  c.security.supplemental_groups = {2000, 50};
  c.security.readonly_rootfs = true;
  c.security.no_new_privs = true;
  c.security.capabilities = {.add = {"NET_ADMIN"}, .drop = {"MKNOD", "NET_RAW"}};
  ExpectGolden(Build(pod, c, image, Context()), "full");
}

TEST_F(SpecBuilderTest, GoldenPrivileged) {
  PodSpec pod = Pod();
  pod.security.privileged = true;
  ContainerSpec c = Container();
  c.command = {"sleep", "3600"};
  c.security.privileged = true;
  // Ignored when privileged, as containerd does.
  c.security.capabilities.drop = {"ALL"};
  c.security.seccomp = SecurityProfile{};
  c.security.masked_paths = std::vector<std::string>{"/proc/kcore"};
  ExpectGolden(Build(pod, c, Busybox(), Context()), "privileged");
}

TEST_F(SpecBuilderTest, GoldenHostNamespaces) {
  PodSpec pod = Pod();
  pod.hostname = "";  // host-network pods have none: the node's name is used
  pod.security.namespace_options = {
      .network = NamespaceMode::kNode, .pid = NamespaceMode::kNode, .ipc = NamespaceMode::kNode};
  ContainerSpec c = Container();
  c.security.namespace_options = pod.security.namespace_options;
  SpecContext ctx = Context();
  ctx.network_ns_path = ctx.ipc_ns_path = ctx.uts_ns_path = std::string(kHostNamespace);
  ctx.node_hostname = "node-1";
  ExpectGolden(Build(pod, c, Busybox(), ctx), "host_namespaces");
}

TEST_F(SpecBuilderTest, GoldenPodPidNamespace) {
  ContainerSpec c = Container();
  c.security.namespace_options.pid = NamespaceMode::kPod;
  SpecContext ctx = Context();
  ctx.pod_pid_ns_path = "/proc/4242/ns/pid";
  ExpectGolden(Build(Pod(), c, Busybox(), ctx), "pod_pid");
}

TEST_F(SpecBuilderTest, GoldenImageUserNameAndGroup) {
  image::ImageConfig image = Busybox();
  image.user = "app:staff";
  ContainerSpec c = Container();
  c.security.supplemental_groups = {3000};
  ExpectGolden(Build(Pod(), c, image, Context()), "image_user_group");
}

TEST_F(SpecBuilderTest, GoldenRuntimeDefaultSeccomp) {
  ContainerSpec c = Container();
  c.security.seccomp = SecurityProfile{.type = SecurityProfile::Type::kRuntimeDefault};
  json spec = Build(Pod(), c, Busybox(), Context());
  std::vector<std::string> caps = spec["process"]["capabilities"]["bounding"];
  EXPECT_EQ(spec["linux"]["seccomp"], DefaultSeccompProfile(caps));
  ExpectGolden(spec, "runtime_default_seccomp");
}

// ---- golden specs: the CRI security context, one case each ----------------

// The capability list a golden spec grants; the three sets are always equal.
std::vector<std::string> GrantedCapabilities(const json& spec) {
  const json& caps = spec["process"]["capabilities"];
  EXPECT_EQ(caps["bounding"], caps["effective"]);
  EXPECT_EQ(caps["bounding"], caps["permitted"]);
  EXPECT_FALSE(caps.contains("inheritable"));
  EXPECT_FALSE(caps.contains("ambient"));
  return caps["bounding"];
}

TEST_F(SpecBuilderTest, GoldenCapabilitiesAddAndDrop) {
  ContainerSpec c = Container();
  // Every spelling the kubelet or a CRI client may use.
  c.security.capabilities = {.add = {"NET_ADMIN", "sys_time", "CAP_SYS_PTRACE"},
                             .drop = {"chown", "CAP_KILL", "NET_RAW"}};
  json spec = Build(Pod(), c, Busybox(), Context());
  EXPECT_THAT(GrantedCapabilities(spec),
              ElementsAre("CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_SETGID",
                          "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                          "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE", "CAP_NET_ADMIN", "CAP_SYS_TIME",
                          "CAP_SYS_PTRACE"));
  ExpectGolden(spec, "capabilities_add_drop");
}

TEST_F(SpecBuilderTest, GoldenCapabilitiesDropAllAddOne) {
  ContainerSpec c = Container();
  c.security.capabilities = {.add = {"NET_BIND_SERVICE"}, .drop = {"ALL"}};
  json spec = Build(Pod(), c, Busybox(), Context());
  EXPECT_THAT(GrantedCapabilities(spec), ElementsAre("CAP_NET_BIND_SERVICE"));
  ExpectGolden(spec, "capabilities_drop_all_add_one");
}

TEST_F(SpecBuilderTest, GoldenCapabilitiesAddAllDropOne) {
  ContainerSpec c = Container();
  c.security.capabilities = {.add = {"all"}, .drop = {"CHOWN"}};
  SpecContext ctx = Context();
  json spec = Build(Pod(), c, Busybox(), ctx);
  // ALL is what berth holds (no CAP_SYS_RESOURCE here), in kernel order.
  std::vector<std::string> want = ctx.node_capabilities;
  want.erase(std::find(want.begin(), want.end(), "CAP_CHOWN"));
  EXPECT_EQ(GrantedCapabilities(spec), want);
  ExpectGolden(spec, "capabilities_add_all_drop_one");
}

TEST_F(SpecBuilderTest, GoldenUnconfinedSeccomp) {
  ContainerSpec c = Container();
  c.security.seccomp = SecurityProfile{.type = SecurityProfile::Type::kUnconfined};
  json spec = Build(Pod(), c, Busybox(), Context());
  EXPECT_FALSE(spec["linux"].contains("seccomp"));
  // Exactly what no profile at all gives.
  EXPECT_EQ(spec, Build(Pod(), Container(), Busybox(), Context()));
  ExpectGolden(spec, "unconfined_seccomp");
}

TEST_F(SpecBuilderTest, GoldenLocalhostSeccomp) {
  // critest's profile: everything allowed but sethostname. The spec embeds
  // the file's content, so the golden holds no temp path.
  const std::string profile = tmp_ + "/profiles/block-hostname.json";
  fs::create_directories(tmp_ + "/profiles");
  Write(profile, R"({
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]
})");
  ContainerSpec c = Container();
  c.security.capabilities.add = {"SYS_ADMIN"};
  c.security.seccomp =
      SecurityProfile{.type = SecurityProfile::Type::kLocalhost, .localhost_ref = profile};
  json spec = Build(Pod(), c, Busybox(), Context());
  EXPECT_EQ(spec["linux"]["seccomp"], json::parse(ReadFile(profile)));
  ExpectGolden(spec, "localhost_seccomp");
}

TEST_F(SpecBuilderTest, GoldenReadonlyRootfsAndNoNewPrivs) {
  ContainerSpec c = Container();
  c.security.readonly_rootfs = true;
  c.security.no_new_privs = true;
  json spec = Build(Pod(), c, Busybox(), Context());
  EXPECT_EQ(spec["root"]["readonly"], true);
  EXPECT_EQ(spec["process"]["noNewPrivileges"], true);
  // The pod's files follow the rootfs; /dev/shm stays writable.
  for (const char* path : {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}) {
    EXPECT_EQ((*FindMount(spec, path))["options"].back(), "ro") << path;
  }
  EXPECT_EQ((*FindMount(spec, "/dev/shm"))["options"].back(), "rw");
  ExpectGolden(spec, "readonly_rootfs_no_new_privs");
}

TEST_F(SpecBuilderTest, GoldenMaskedAndReadonlyPathsOverridden) {
  ContainerSpec c = Container();
  // critest's own cases: a masked binary and a read-only directory.
  c.security.masked_paths = std::vector<std::string>{"/bin/ls", "/proc/kcore"};
  c.security.readonly_paths = std::vector<std::string>{"/tmp"};
  json spec = Build(Pod(), c, Busybox(), Context());
  EXPECT_EQ(spec["linux"]["maskedPaths"], json({"/bin/ls", "/proc/kcore"}));
  EXPECT_EQ(spec["linux"]["readonlyPaths"], json({"/tmp"}));
  ExpectGolden(spec, "masked_readonly_paths_overridden");
}

TEST_F(SpecBuilderTest, GoldenMaskedAndReadonlyPathsExplicitlyEmpty) {
  ContainerSpec c = Container();
  c.security.masked_paths = std::vector<std::string>{};
  c.security.readonly_paths = std::vector<std::string>{};
  json spec = Build(Pod(), c, Busybox(), Context());
  EXPECT_FALSE(spec["linux"].contains("maskedPaths"));
  EXPECT_FALSE(spec["linux"].contains("readonlyPaths"));
  ExpectGolden(spec, "masked_readonly_paths_empty");
}

TEST_F(SpecBuilderTest, GoldenRunAsUserGroupAndSupplementalGroups) {
  ContainerSpec c = Container();
  c.security.run_as_user = 1000;  // "app" in the image's passwd
  c.security.run_as_group = 3000;
  c.security.supplemental_groups = {4000, 50, 3000};
  json spec = Build(Pod(), c, Busybox(), Context());
  const json& user = spec["process"]["user"];
  EXPECT_EQ(user["uid"], 1000);
  EXPECT_EQ(user["gid"], 3000);
  // Primary gid, the CRI groups in their order, then the image's /etc/group
  // memberships of "app" (staff 50 already listed, audio 29); no repeats.
  EXPECT_EQ(user["additionalGids"], json({3000, 4000, 50, 29}));
  ExpectGolden(spec, "run_as_user_group");
}

TEST_F(SpecBuilderTest, GoldenRunAsUsername) {
  ContainerSpec c = Container();
  c.security.run_as_username = "app";
  c.security.run_as_user = 0;  // RunAsUsername wins
  json spec = Build(Pod(), c, Busybox(), Context());
  EXPECT_EQ(spec["process"]["user"],
            json({{"uid", 1000}, {"gid", 1000}, {"additionalGids", {1000, 50, 29}}}));
  EXPECT_EQ(spec["process"]["env"].back(), "HOME=/home/app");
  ExpectGolden(spec, "run_as_username");
}

TEST_F(SpecBuilderTest, GoldenHostNetwork) {
  // A host-network pod also keeps the node's UTS namespace, as with
  // containerd; its IPC namespace stays the pod's.
  PodSpec pod = Pod();
  pod.hostname = "";
  pod.security.namespace_options.network = NamespaceMode::kNode;
  ContainerSpec c = Container();
  c.security.namespace_options.network = NamespaceMode::kNode;
  SpecContext ctx = Context();
  ctx.network_ns_path = ctx.uts_ns_path = std::string(kHostNamespace);
  ctx.node_hostname = "node-1";
  json spec = Build(pod, c, Busybox(), ctx);
  EXPECT_FALSE(spec.contains("hostname"));
  EXPECT_THAT(spec["process"]["env"], ::testing::Contains("HOSTNAME=node-1"));
  ExpectGolden(spec, "host_network");
}

TEST_F(SpecBuilderTest, GoldenHostIpc) {
  PodSpec pod = Pod();
  pod.security.namespace_options.ipc = NamespaceMode::kNode;
  ContainerSpec c = Container();
  c.security.namespace_options.ipc = NamespaceMode::kNode;
  SpecContext ctx = Context();
  ctx.ipc_ns_path = std::string(kHostNamespace);
  json spec = Build(pod, c, Busybox(), ctx);
  for (const json& ns : spec["linux"]["namespaces"]) EXPECT_NE(ns["type"], "ipc");
  // The node's IPC namespace comes with the node's /dev/shm.
  EXPECT_EQ((*FindMount(spec, "/dev/shm"))["source"], fs::canonical("/dev/shm").string());
  ExpectGolden(spec, "host_ipc");
}

TEST_F(SpecBuilderTest, GoldenTargetPidNamespace) {
  ContainerSpec c = Container();
  c.security.namespace_options = {.pid = NamespaceMode::kTarget, .target_id = "c0ffee-target"};
  SpecContext ctx = Context();
  ctx.target_pid_ns_path = "/proc/4343/ns/pid";
  json spec = Build(Pod(), c, Busybox(), ctx);
  EXPECT_EQ(spec["linux"]["namespaces"][0], json({{"type", "pid"}, {"path", "/proc/4343/ns/pid"}}));
  ExpectGolden(spec, "target_pid");
}

TEST_F(SpecBuilderTest, GoldenNamespacedSysctls) {
  // Namespaced sysctls of the IPC and network namespaces, as the kubelet
  // passes them once it has checked them against its allow list; runc
  // refuses any that are not namespaced.
  PodSpec pod = Pod();
  pod.sysctls = {{"kernel.shm_rmid_forced", "1"},
                 {"kernel.msgmax", "65536"},
                 {"fs.mqueue.msg_max", "20"},
                 {"net.ipv4.ip_unprivileged_port_start", "0"},
                 {"net.ipv4.ping_group_range", "0 2147483647"}};
  json spec = Build(pod, Container(), Busybox(), Context());
  EXPECT_EQ(spec["linux"]["sysctl"], json(pod.sysctls));
  ExpectGolden(spec, "namespaced_sysctls");
}

// ---- refusals of the security context ------------------------------------

TEST_F(SpecBuilderTest, RunAsGroupWithoutAUserIsInvalidArgument) {
  ContainerSpec c = Container();
  c.security.run_as_group = 3000;
  absl::StatusOr<json> spec = BuildSpec(Pod(), c, Busybox(), Context());
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << spec.status();
  EXPECT_EQ(spec.status().message(),
            "container \"busybox\": run_as_group 3000 is set without run_as_user or "
            "run_as_username");
  // Either user makes it valid.
  c.security.run_as_user = 1000;
  EXPECT_TRUE(BuildSpec(Pod(), c, Busybox(), Context()).ok());
  c.security.run_as_user.reset();
  c.security.run_as_username = "app";
  EXPECT_TRUE(BuildSpec(Pod(), c, Busybox(), Context()).ok());
}

TEST_F(SpecBuilderTest, MissingLocalhostSeccompProfileFailsAtBuildTime) {
  ContainerSpec c = Container();
  const std::string missing = tmp_ + "/profiles/absent.json";
  c.security.seccomp =
      SecurityProfile{.type = SecurityProfile::Type::kLocalhost, .localhost_ref = missing};
  absl::StatusOr<json> spec = BuildSpec(Pod(), c, Busybox(), Context());
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kNotFound) << spec.status();
  EXPECT_EQ(spec.status().message(),
            "container \"busybox\": seccomp profile " + missing + " not found");

  // Not an absolute path, or not a JSON object: InvalidArgument.
  c.security.seccomp->localhost_ref = "profiles/absent.json";
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), Context()).status().code(),
            absl::StatusCode::kInvalidArgument);
  Write(tmp_ + "/garbage.json", "[1, 2");
  c.security.seccomp->localhost_ref = tmp_ + "/garbage.json";
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), Context()).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A path on another profile type is a mistake too.
  c.security.seccomp = SecurityProfile{.localhost_ref = missing};
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), Context()).status().code(),
            absl::StatusCode::kInvalidArgument);

  // A privileged container has no seccomp at all, so the file is never read
  // (critest: "should ignore a seccomp profile ... when privileged").
  PodSpec pod = Pod();
  pod.security.privileged = true;
  c.security.privileged = true;
  c.security.seccomp =
      SecurityProfile{.type = SecurityProfile::Type::kLocalhost, .localhost_ref = missing};
  json privileged = Build(pod, c, Busybox(), Context());
  EXPECT_FALSE(privileged["linux"].contains("seccomp"));
}

TEST_F(SpecBuilderTest, UnknownCapabilityNames) {
  ContainerSpec c = Container();
  c.security.capabilities.add = {"NET_ADMIN", "NOT_A_CAPABILITY"};
  absl::StatusOr<json> spec = BuildSpec(Pod(), c, Busybox(), Context());
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << spec.status();
  EXPECT_EQ(spec.status().message(),
            "container \"busybox\": add: unknown capability \"NOT_A_CAPABILITY\"");

  // Dropping a name Linux does not have drops nothing, as with runc.
  c.security.capabilities = {.drop = {"NOT_A_CAPABILITY", "CAP_"}};
  EXPECT_EQ(GrantedCapabilities(Build(Pod(), c, Busybox(), Context())), DefaultCapabilities());

  // A privileged container ignores add and drop altogether.
  PodSpec pod = Pod();
  pod.security.privileged = true;
  c.security.privileged = true;
  c.security.capabilities.add = {"NOT_A_CAPABILITY"};
  SpecContext ctx = Context();
  EXPECT_EQ(GrantedCapabilities(Build(pod, c, Busybox(), ctx)), ctx.node_capabilities);
}

// ---- process ---------------------------------------------------------------

TEST(MergeProcessArgsTest, KubeletRules) {
  image::ImageConfig image;
  image.entrypoint = {"/entry"};
  image.cmd = {"cmd", "arg"};
  // Nothing from the CRI: ENTRYPOINT + CMD.
  EXPECT_THAT(*MergeProcessArgs({}, {}, image), ElementsAre("/entry", "cmd", "arg"));
  // Args only: ENTRYPOINT + args.
  EXPECT_THAT(*MergeProcessArgs({}, {"x"}, image), ElementsAre("/entry", "x"));
  // Command only: CMD is dropped too.
  EXPECT_THAT(*MergeProcessArgs({"/bin/true"}, {}, image), ElementsAre("/bin/true"));
  // Both: the image contributes nothing.
  EXPECT_THAT(*MergeProcessArgs({"/bin/echo"}, {"hi"}, image), ElementsAre("/bin/echo", "hi"));

  image.entrypoint = {""};  // Docker's way of clearing ENTRYPOINT
  EXPECT_THAT(*MergeProcessArgs({}, {}, image), ElementsAre("cmd", "arg"));

  absl::StatusOr<std::vector<std::string>> none = MergeProcessArgs({}, {}, image::ImageConfig{});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(none.status().message(), "no command specified");
}

TEST(MergeEnvTest, ReplacesInPlaceAppendsAndUnsets) {
  std::vector<std::string> env = {"PATH=/bin", "A=1", "B=2"};
  MergeEnv(env, {"B=3", "C=4", "A=", "PATH"});
  EXPECT_THAT(env, ElementsAre("A=", "B=3", "C=4"));
  MergeEnv(env, {"D=x=y"});
  EXPECT_EQ(env.back(), "D=x=y");
}

TEST_F(SpecBuilderTest, EnvOrderIsPathHostnameImageCriThenHome) {
  image::ImageConfig image;
  image.cmd = {"sh"};
  image.env = {"LANG=C", "FOO=image"};
  ContainerSpec c = Container();
  c.envs = {{"FOO", "cri"}, {"HOSTNAME", "override"}, {"NEW", "1"}};
  json spec = Build(Pod(), c, image, Context());
  EXPECT_EQ(spec["process"]["env"], json({std::string(kDefaultPathEnv), "HOSTNAME=override",
                                          "LANG=C", "FOO=cri", "NEW=1", "HOME=/root"}));

  // An image or CRI HOME is left alone.
  c.envs.push_back({"HOME", "/tmp"});
  spec = Build(Pod(), c, image, Context());
  EXPECT_EQ(spec["process"]["env"].back(), "HOME=/tmp");
}

TEST_F(SpecBuilderTest, WorkingDirFallsBackToImageThenRoot) {
  image::ImageConfig image = Busybox();
  ContainerSpec c = Container();
  EXPECT_EQ(Build(Pod(), c, image, Context())["process"]["cwd"], "/");
  image.working_dir = "/work";
  EXPECT_EQ(Build(Pod(), c, image, Context())["process"]["cwd"], "/work");
  c.working_dir = "/cri";
  EXPECT_EQ(Build(Pod(), c, image, Context())["process"]["cwd"], "/cri");
  c.working_dir = "relative";
  EXPECT_EQ(BuildSpec(Pod(), c, image, Context()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SpecBuilderTest, NoCommandNamesTheContainer) {
  ContainerSpec c = Container();
  absl::StatusOr<json> spec = BuildSpec(Pod(), c, image::ImageConfig{}, Context());
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(spec.status().message(), "container \"busybox\": no command specified");
}

TEST_F(SpecBuilderTest, OomScoreAdjIsClamped) {
  struct Case {
    int64_t requested;
    int64_t min;
    int64_t want;
  };
  for (const Case& k : {Case{-997, 0, 0}, Case{-1000, 0, 0}, Case{500, 0, 500}, Case{2000, 0, 1000},
                        Case{5, 100, 100}, Case{-500, -999, -500}}) {
    ContainerSpec c = Container();
    c.resources.oom_score_adj = k.requested;
    SpecContext ctx = Context();
    ctx.min_oom_score_adj = k.min;
    EXPECT_EQ(Build(Pod(), c, Busybox(), ctx)["process"]["oomScoreAdj"], k.want)
        << k.requested << " with min " << k.min;
  }
}

TEST_F(SpecBuilderTest, UserGroupsFollowCritestOrder) {
  ContainerSpec c = Container();
  c.security.run_as_username = "app";
  c.security.supplemental_groups = {4000, 29};
  json user = Build(Pod(), c, Busybox(), Context())["process"]["user"];
  EXPECT_EQ(user["uid"], 1000);
  EXPECT_EQ(user["gid"], 1000);
  // primary, CRI groups, then the image's (staff; audio already there).
  EXPECT_EQ(user["additionalGids"], json({1000, 4000, 29, 50}));
}

TEST_F(SpecBuilderTest, UnknownImageUserIsInvalidArgument) {
  image::ImageConfig image = Busybox();
  image.user = "ghost";
  absl::StatusOr<json> spec = BuildSpec(Pod(), Container(), image, Context());
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("\"ghost\""));
}

// ---- mounts ----------------------------------------------------------------

TEST_F(SpecBuilderTest, MountsSortParentsFirstAfterTheStandardSet) {
  ContainerSpec c = Container();
  c.mounts = {
      {.container_path = "/a/b/c", .host_path = tmp_ + "/host/data"},
      {.container_path = "/a", .host_path = tmp_ + "/host/data"},
      {.container_path = "/a/b", .host_path = tmp_ + "/host/data"},
      {.container_path = "/z", .host_path = tmp_ + "/host/data"},
  };
  json spec = Build(Pod(), c, Busybox(), Context());
  EXPECT_THAT(
      Destinations(spec),
      ElementsAre("/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/a", "/z",
                  "/a/b", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm", "/a/b/c"));
}

TEST_F(SpecBuilderTest, CriMountsOverridePodAndStandardMounts) {
  ContainerSpec c = Container();
  c.mounts = {
      {.container_path = "/etc/hosts", .host_path = tmp_ + "/host/hosts-dir/hosts"},
      {.container_path = "/dev/shm/", .host_path = tmp_ + "/host/data"},
      {.container_path = "/sys/fs/cgroup", .host_path = tmp_ + "/host/data", .readonly = true},
  };
  json spec = Build(Pod(), c, Busybox(), Context());
  std::vector<std::string> destinations = Destinations(spec);
  EXPECT_EQ(std::count(destinations.begin(), destinations.end(), "/etc/hosts"), 1);
  EXPECT_EQ(std::count(destinations.begin(), destinations.end(), "/dev/shm"), 1);
  EXPECT_EQ(std::count(destinations.begin(), destinations.end(), "/sys/fs/cgroup"), 1);
  EXPECT_EQ((*FindMount(spec, "/etc/hosts"))["source"], tmp_ + "/host/hosts-dir/hosts");
  EXPECT_EQ((*FindMount(spec, "/dev/shm"))["source"], tmp_ + "/host/data");
  EXPECT_EQ((*FindMount(spec, "/sys/fs/cgroup"))["options"], json({"rbind", "rprivate", "ro"}));
}

TEST_F(SpecBuilderTest, CriDevMountDropsEverythingUnderDev) {
  ContainerSpec c = Container();
  c.mounts = {{.container_path = "/dev", .host_path = tmp_ + "/host/data"}};
  SpecContext ctx = Context();
  ctx.shm_path.clear();
  json spec = Build(Pod(), c, Busybox(), ctx);
  EXPECT_THAT(Destinations(spec), ElementsAre("/proc", "/sys", "/sys/fs/cgroup", "/dev",
                                              "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"));
}

TEST_F(SpecBuilderTest, WithoutPodShmDevShmIsATmpfsAndHostIpcUsesTheNodes) {
  SpecContext ctx = Context();
  ctx.shm_path.clear();
  json spec = Build(Pod(), Container(), Busybox(), ctx);
  EXPECT_EQ((*FindMount(spec, "/dev/shm"))["type"], "tmpfs");

  ctx.ipc_ns_path = std::string(kHostNamespace);
  spec = Build(Pod(), Container(), Busybox(), ctx);
  EXPECT_EQ((*FindMount(spec, "/dev/shm"))["source"], "/dev/shm");
  EXPECT_EQ((*FindMount(spec, "/dev/shm"))["type"], "bind");
}

TEST_F(SpecBuilderTest, MissingHostPathIsNotFoundNamingTheMount) {
  ContainerSpec c = Container();
  c.mounts = {{.container_path = "/data", .host_path = tmp_ + "/host/absent"}};
  absl::StatusOr<json> spec = BuildSpec(Pod(), c, Busybox(), Context());
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kNotFound) << spec.status();
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr("mount /data: host path " + tmp_ + "/host/absent does not exist"));
}

TEST_F(SpecBuilderTest, RelativePathsAreRefused) {
  ContainerSpec c = Container();
  c.mounts = {{.container_path = "data", .host_path = tmp_ + "/host/data"}};
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), Context()).status().code(),
            absl::StatusCode::kInvalidArgument);
  c.mounts = {{.container_path = "/data", .host_path = "host/data"}};
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), Context()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SpecBuilderTest, PropagationNeedsASharedSource) {
  ContainerSpec c = Container();
  c.mounts = {{.container_path = "/p",
               .host_path = tmp_ + "/host/private",
               .propagation = MountPropagation::kBidirectional}};
  absl::StatusOr<json> spec = BuildSpec(Pod(), c, Busybox(), Context());
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kFailedPrecondition) << spec.status();
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("not shared"));

  c.mounts[0].propagation = MountPropagation::kHostToContainer;
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), Context()).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Private mounts are never checked; neither is anything without mountinfo.
  c.mounts[0].propagation = MountPropagation::kPrivate;
  EXPECT_TRUE(BuildSpec(Pod(), c, Busybox(), Context()).ok());
  c.mounts[0].propagation = MountPropagation::kBidirectional;
  SpecContext ctx = Context();
  ctx.mountinfo_path.clear();
  json built = Build(Pod(), c, Busybox(), ctx);
  EXPECT_EQ(built["linux"]["rootfsPropagation"], "rshared");
}

// ---- linux -----------------------------------------------------------------

TEST_F(SpecBuilderTest, PidNamespaceModes) {
  ContainerSpec c = Container();
  SpecContext ctx = Context();
  auto pid_entry = [&]() -> json {
    json spec = Build(Pod(), c, Busybox(), ctx);
    for (const json& ns : spec["linux"]["namespaces"]) {
      if (ns["type"] == "pid") return ns;
    }
    return nullptr;
  };
  EXPECT_EQ(pid_entry(), json({{"type", "pid"}}));

  c.security.namespace_options.pid = NamespaceMode::kNode;
  EXPECT_EQ(pid_entry(), nullptr);

  c.security.namespace_options = {.pid = NamespaceMode::kTarget, .target_id = "other"};
  absl::StatusOr<json> spec = BuildSpec(Pod(), c, Busybox(), ctx);
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("\"other\""));
  ctx.target_pid_ns_path = "/proc/77/ns/pid";
  EXPECT_EQ(pid_entry(), json({{"type", "pid"}, {"path", "/proc/77/ns/pid"}}));

  c.security.namespace_options.pid = NamespaceMode::kPod;
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), ctx).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The infra process itself makes the pod's PID namespace.
  ctx.type = SpecContext::Type::kSandbox;
  EXPECT_EQ(pid_entry(), json({{"type", "pid"}}));
}

TEST_F(SpecBuilderTest, EmptyNamespacePathMeansANewOne) {
  SpecContext ctx = Context();
  ctx.network_ns_path.clear();
  ctx.cgroup_namespace = true;
  json namespaces = Build(Pod(), Container(), Busybox(), ctx)["linux"]["namespaces"];
  EXPECT_THAT(namespaces, ::testing::Contains(json({{"type", "network"}})));
  EXPECT_THAT(namespaces, ::testing::Contains(json({{"type", "cgroup"}})));
}

TEST_F(SpecBuilderTest, MaskedAndReadonlyPaths) {
  ContainerSpec c = Container();
  json linux = Build(Pod(), c, Busybox(), Context())["linux"];
  EXPECT_EQ(linux["maskedPaths"].size(), kDefaultMaskedPaths.size());
  EXPECT_EQ(linux["readonlyPaths"].size(), kDefaultReadonlyPaths.size());

  c.security.masked_paths = std::vector<std::string>{"/proc/secret"};
  c.security.readonly_paths = std::vector<std::string>{};
  linux = Build(Pod(), c, Busybox(), Context())["linux"];
  EXPECT_EQ(linux["maskedPaths"], json({"/proc/secret"}));
  EXPECT_FALSE(linux.contains("readonlyPaths"));
}

TEST_F(SpecBuilderTest, PrivilegedContainerNeedsAPrivilegedPod) {
  ContainerSpec c = Container();
  c.security.privileged = true;
  absl::StatusOr<json> spec = BuildSpec(Pod(), c, Busybox(), Context());
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("non-privileged pod"));
}

TEST_F(SpecBuilderTest, CapabilitiesStayWithinWhatBerthHolds) {
  PodSpec pod = Pod();
  pod.security.privileged = true;
  ContainerSpec c = Container();
  c.security.privileged = true;
  SpecContext ctx = Context();
  json caps = Build(pod, c, Busybox(), ctx)["process"]["capabilities"];
  EXPECT_EQ(caps["bounding"], json(ctx.node_capabilities));
  EXPECT_FALSE(caps.contains("inheritable"));
  EXPECT_FALSE(caps.contains("ambient"));

  c.security.privileged = false;
  c.security.capabilities.add = {"SYS_RESOURCE"};
  absl::StatusOr<json> spec = BuildSpec(pod, c, Busybox(), ctx);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kFailedPrecondition) << spec.status();

  // Without a list, the builder asks the kernel what this process holds.
  c.security.capabilities.add = {"ALL"};
  ctx.node_capabilities.clear();
  EXPECT_EQ(Build(pod, c, Busybox(), ctx)["process"]["capabilities"]["bounding"],
            json(*CurrentCapabilities()));
}

TEST_F(SpecBuilderTest, DevicesBecomeNodesAndCgroupRules) {
  ContainerSpec c = Container();
  c.devices = {{.container_path = "/dev/xnull", .host_path = "/dev/null", .permissions = "rw"}};
  json linux = Build(Pod(), c, Busybox(), Context())["linux"];
  ASSERT_EQ(linux["devices"].size(), 1u);
  EXPECT_EQ(linux["devices"][0]["path"], "/dev/xnull");
  EXPECT_EQ(linux["devices"][0]["type"], "c");
  EXPECT_EQ(linux["devices"][0]["major"], 1);
  EXPECT_EQ(linux["devices"][0]["minor"], 3);
  EXPECT_EQ(linux["resources"]["devices"].back(),
            json({{"allow", true}, {"type", "c"}, {"major", 1}, {"minor", 3}, {"access", "rw"}}));

  c.devices[0].permissions = "rwx";
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), Context()).status().code(),
            absl::StatusCode::kInvalidArgument);
  c.devices = {{.container_path = "/dev/nope", .host_path = tmp_ + "/no-device"}};
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), Context()).status().code(), absl::StatusCode::kNotFound);
  c.devices = {{.container_path = "/dev/file", .host_path = tmp_ + "/pod/hosts"}};
  EXPECT_EQ(BuildSpec(Pod(), c, Busybox(), Context()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SpecBuilderTest, CgroupsPath) {
  SpecContext ctx = Context();
  EXPECT_EQ(Build(Pod(), Container(), Busybox(), ctx)["linux"]["cgroupsPath"],
            "/kubepods/besteffort/podpod-uid-1/c0ffee");
  PodSpec pod = Pod();
  pod.cgroup_parent.clear();
  EXPECT_EQ(Build(pod, Container(), Busybox(), ctx)["linux"]["cgroupsPath"], "/berth/c0ffee");
  ctx.cgroups_path = "/custom/x";
  EXPECT_EQ(Build(pod, Container(), Busybox(), ctx)["linux"]["cgroupsPath"], "/custom/x");
}

TEST_F(SpecBuilderTest, SandboxAnnotations) {
  SpecContext ctx = Context();
  ctx.type = SpecContext::Type::kSandbox;
  json annotations = Build(Pod(), Container(), Busybox(), ctx)["annotations"];
  EXPECT_EQ(annotations[std::string(kAnnotationContainerType)], "sandbox");
  EXPECT_EQ(annotations[std::string(kAnnotationSandboxLogDirectory)], Pod().log_directory);
  EXPECT_FALSE(annotations.contains(std::string(kAnnotationContainerName)));
  EXPECT_FALSE(annotations.contains(std::string(kAnnotationImageName)));
}

}  // namespace
}  // namespace berth::container
