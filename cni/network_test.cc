// Network against fake plugins: small shell scripts that record their environment and
// stdin and answer from canned files, so every byte exchanged with a plugin can be checked
// without root.
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/time/clock.h"
#include "cni/cni.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/base/base64.h"
#include "runtime/base/strings.h"

namespace berth::cni {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// Writes <bin>/<type> for each fake plugin. Each call appends "<type> <command> <container>
// <ifname>" to <log>/calls and leaves its stdin and CNI_* environment (as exec'd, before
// the shell folds duplicates) in
// <log>/<type>.<command>.{stdin,env}. It sources <log>/<type>.<command>.hook if present,
// prints <log>/<type>.<command>.out if present (else a VERSION answer up to 1.1.0, or for
// ADD a result with one interface, "<type>0"), and exits with <log>/<type>.<command>.rc.
constexpr char kFakePlugin[] = R"sh(#!/bin/sh
d='@LOG@'
t=${0##*/}
c=$CNI_COMMAND
in=$(cat)
echo "$t $c $CNI_CONTAINERID $CNI_IFNAME" >> "$d/calls"
printf '%s' "$in" > "$d/$t.$c.stdin"
tr '\0' '\n' < /proc/$$/environ | grep '^CNI_' | sort > "$d/$t.$c.env"
if [ -f "$d/$t.$c.hook" ]; then . "$d/$t.$c.hook"; fi
if [ -f "$d/$t.$c.out" ]; then
  cat "$d/$t.$c.out"
elif [ "$c" = VERSION ]; then
  printf '%s' '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}'
elif [ "$c" = ADD ]; then
  printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s0","sandbox":"%s"}],"ips":[{"address":"10.0.0.2/24","interface":0}]}' "$t" "$CNI_NETNS"
fi
if [ -f "$d/$t.$c.rc" ]; then exit "$(cat "$d/$t.$c.rc")"; fi
exit 0
)sh";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class NetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::filesystem::temp_directory_path() / "berth-cni-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(bin());
    std::filesystem::create_directories(log());
    std::filesystem::create_directories(dir_ + "/netns");
    // A namespace file: any nsfs path will do for fake plugins.
    std::filesystem::create_symlink("/proc/self/ns/net", netns());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string bin() const { return dir_ + "/bin"; }
  std::string log() const { return dir_ + "/log"; }
  std::string cache() const { return dir_ + "/cache"; }
  std::string netns() const { return dir_ + "/netns/pod1"; }

  void Plugin(const std::string& type) {
    std::string script = kFakePlugin;
    script.replace(script.find("@LOG@"), 5, log());
    std::string path = bin() + "/" + type;
    std::ofstream(path) << script;
    chmod(path.c_str(), 0755);
  }
  // <log>/<type>.<command>.<what>
  void Set(const std::string& type, const std::string& command, const std::string& what,
           const std::string& text) {
    std::ofstream(log() + "/" + type + "." + command + "." + what) << text;
  }
  json Stdin(const std::string& type, const std::string& command) {
    return json::parse(ReadFile(log() + "/" + type + "." + command + ".stdin"), nullptr, false);
  }
  std::map<std::string, std::string> Env(const std::string& type, const std::string& command) {
    std::map<std::string, std::string> env;
    std::istringstream lines(ReadFile(log() + "/" + type + "." + command + ".env"));
    for (std::string line; std::getline(lines, line);) {
      size_t eq = line.find('=');
      env[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return env;
  }
  // "<type> <command>" of every call but VERSION, in order.
  std::vector<std::string> Calls() {
    std::vector<std::string> calls;
    std::istringstream lines(ReadFile(log() + "/calls"));
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string type, command;
      words >> type >> command;
      if (command != "VERSION") calls.push_back(type + " " + command);
    }
    return calls;
  }
  void ClearCalls() { std::filesystem::remove(log() + "/calls"); }

  CniOptions Options() {
    return {.bin_dirs = {dir_ + "/nowhere", bin()},
            .cache_dir = cache(),
            .plugin_timeout = absl::Seconds(20)};
  }
  Network MakeNetwork(const std::string& conflist) {
    absl::StatusOr<NetworkConfig> config = ParseNetworkConfig(conflist, "test.conflist");
    EXPECT_TRUE(config.ok()) << config.status();
    return Network(*config, Options());
  }
  // Two plugins, "first" and "second": the usual chain.
  Network TwoPlugins(const std::string& version = "1.0.0") {
    Plugin("first");
    Plugin("second");
    return MakeNetwork(R"({"cniVersion": ")" + version + R"(", "name": "net1", "plugins": [
        {"type": "first", "capabilities": {"portMappings": true}, "setting": 7},
        {"type": "second"}]})");
  }
  Attachment Pod(const std::string& id = "pod1", const std::string& ifname = "eth0") {
    return {.container_id = id,
            .netns = netns(),
            .ifname = ifname,
            .args = {{"K8S_POD_NAME", "web"}, {"K8S_POD_NAMESPACE", "default"}},
            .runtime_config = {.port_mappings = {{.host_port = 8080, .container_port = 80}}}};
  }
  std::string CacheFile(const std::string& id = "pod1", const std::string& ifname = "eth0") {
    return cache() + "/results/net1-" + id + "-" + ifname;
  }

  std::string dir_;
};

constexpr char kFirstResult[] =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"br0"},{"name":"eth0","sandbox":"/ns"}],)"
    R"("ips":[{"address":"10.9.0.4/24","gateway":"10.9.0.1","interface":1}]})";
constexpr char kSecondResult[] =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"br0"},{"name":"eth0","sandbox":"/ns"}],)"
    R"("ips":[{"address":"10.9.0.4/24","gateway":"10.9.0.1","interface":1}],)"
    R"("routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.9.0.1"]}})";

TEST_F(NetworkTest, AddChainsPrevResultAndReturnsTheLastResult) {
  Network net = TwoPlugins();
  Set("first", "ADD", "out", kFirstResult);
  Set("second", "ADD", "out", kSecondResult);
  absl::StatusOr<Result> result = net.Add(Pod());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->raw, json::parse(kSecondResult));
  EXPECT_EQ(result->ips[0].address, "10.9.0.4/24");
  EXPECT_THAT(result->dns.nameservers, ElementsAre("10.9.0.1"));
  EXPECT_THAT(Calls(), ElementsAre("first ADD", "second ADD"));

  json first = Stdin("first", "ADD");
  EXPECT_EQ(first["name"], "net1");
  EXPECT_EQ(first["cniVersion"], "1.0.0");
  EXPECT_EQ(first["setting"], 7);
  EXPECT_FALSE(first.contains("prevResult"));
  EXPECT_FALSE(first.contains("capabilities"));  // the spec: "must not be set"
  json second = Stdin("second", "ADD");
  EXPECT_EQ(second["prevResult"], json::parse(kFirstResult));
  EXPECT_EQ(second["name"], "net1");
}

TEST_F(NetworkTest, PluginsGetTheCniEnvironment) {
  Network net = TwoPlugins();
  ASSERT_TRUE(net.Add(Pod()).ok());
  std::map<std::string, std::string> env = Env("second", "ADD");
  EXPECT_EQ(env["CNI_COMMAND"], "ADD");
  EXPECT_EQ(env["CNI_CONTAINERID"], "pod1");
  EXPECT_EQ(env["CNI_NETNS"], netns());
  EXPECT_EQ(env["CNI_IFNAME"], "eth0");
  EXPECT_EQ(env["CNI_ARGS"], "IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=default");
  EXPECT_EQ(env["CNI_PATH"], dir_ + "/nowhere:" + bin());
  // VERSION gets only what the spec gives it.
  std::map<std::string, std::string> version = Env("second", "VERSION");
  EXPECT_EQ(version["CNI_COMMAND"], "VERSION");
  EXPECT_FALSE(version.contains("CNI_CONTAINERID"));
}

TEST_F(NetworkTest, CniVariablesOfTheDaemonsOwnEnvironmentDoNotLeak) {
  Network net = TwoPlugins();
  setenv("CNI_IFNAME", "bogus0", 1);
  setenv("CNI_ARGS", "EVIL=1", 1);
  absl::StatusOr<Result> result = net.Add(Pod());
  unsetenv("CNI_IFNAME");
  unsetenv("CNI_ARGS");
  ASSERT_TRUE(result.ok()) << result.status();
  // One of each, ours (a duplicate would be read first by a Go plugin).
  std::string raw = ReadFile(log() + "/first.ADD.env");
  EXPECT_THAT(raw, Not(HasSubstr("bogus0")));
  EXPECT_THAT(raw, Not(HasSubstr("EVIL")));
  std::map<std::string, std::string> env = Env("first", "ADD");
  EXPECT_EQ(env["CNI_IFNAME"], "eth0");
  EXPECT_EQ(env["CNI_ARGS"], "IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=default");
  EXPECT_EQ(env["CNI_COMMAND"], "ADD");
  EXPECT_EQ(env["CNI_NETNS"], netns());
}

TEST_F(NetworkTest, RuntimeConfigHoldsOnlyDeclaredCapabilities) {
  Plugin("ports");
  Plugin("shaper");
  Plugin("plain");
  Network net = MakeNetwork(R"({"cniVersion": "1.0.0", "name": "net1", "plugins": [
      {"type": "ports", "capabilities": {"portMappings": true, "dns": true, "mac": false}},
      {"type": "shaper", "capabilities": {"bandwidth": true, "ips": true, "mac": true,
                                          "cgroupPath": true, "aliases": true,
                                          "infinibandGUID": true}},
      {"type": "plain"}]})");
  Attachment a = Pod();
  a.runtime_config = {
      .port_mappings = {{.host_port = 8080, .container_port = 80, .protocol = "UDP"},
                        {.host_port = 0, .container_port = 9}},
      .dns = Dns{.nameservers = {"1.1.1.1"}, .search = {"svc"}, .options = {"ndots:5"}},
      .cgroup_path = "/pods/p1",
      .ips = {"10.0.0.9/24"},
      .mac = "c2:00:00:00:00:01",
      .bandwidth = Bandwidth{.ingress_rate = 100, .ingress_burst = 200},
      .extra = {{"aliases", json::array({"web"})}}};
  ASSERT_TRUE(net.Add(a).ok());
  EXPECT_EQ(Stdin("ports", "ADD")["runtimeConfig"], json::parse(R"({
      "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "udp"}],
      "dns": {"servers": ["1.1.1.1"], "searches": ["svc"], "options": ["ndots:5"]}})"));
  EXPECT_EQ(Stdin("shaper", "ADD")["runtimeConfig"], json::parse(R"({
      "bandwidth": {"ingressRate": 100, "ingressBurst": 200, "egressRate": 0, "egressBurst": 0},
      "ips": ["10.0.0.9/24"], "mac": "c2:00:00:00:00:01", "cgroupPath": "/pods/p1",
      "aliases": ["web"]})"));
  EXPECT_FALSE(Stdin("plain", "ADD").contains("runtimeConfig"));
  // DEL gets the same runtimeConfig.
  ASSERT_TRUE(net.Del(a).ok());
  EXPECT_EQ(Stdin("ports", "DEL")["runtimeConfig"], Stdin("ports", "ADD")["runtimeConfig"]);
}

TEST_F(NetworkTest, DelRunsInReverseWithTheCachedResult) {
  Network net = TwoPlugins();
  Set("second", "ADD", "out", kSecondResult);
  ASSERT_TRUE(net.Add(Pod()).ok());
  ASSERT_TRUE(std::filesystem::exists(CacheFile()));
  ClearCalls();
  ASSERT_TRUE(net.Del(Pod()).ok());
  EXPECT_THAT(Calls(), ElementsAre("second DEL", "first DEL"));
  EXPECT_EQ(Stdin("first", "DEL")["prevResult"], json::parse(kSecondResult));
  EXPECT_EQ(Stdin("second", "DEL")["prevResult"], json::parse(kSecondResult));
  EXPECT_EQ(Env("first", "DEL")["CNI_NETNS"], netns());
  EXPECT_FALSE(std::filesystem::exists(CacheFile()));
}

TEST_F(NetworkTest, DelIsIdempotent) {
  Network net = TwoPlugins();
  // Nothing cached: the plugins still run (a lost ADD may hold an IP), without prevResult.
  ASSERT_TRUE(net.Del(Pod()).ok());
  EXPECT_THAT(Calls(), ElementsAre("second DEL", "first DEL"));
  EXPECT_FALSE(Stdin("first", "DEL").contains("prevResult"));

  // The namespace is gone: CNI_NETNS is passed empty.
  ASSERT_TRUE(net.Add(Pod()).ok());
  std::filesystem::remove(netns());
  ASSERT_TRUE(net.Del(Pod()).ok());
  EXPECT_EQ(Env("first", "DEL")["CNI_NETNS"], "");
  EXPECT_TRUE(Stdin("first", "DEL").contains("prevResult"));

  // A pin whose bind mount is gone leaves a plain file: gone too.
  ASSERT_TRUE(net.Add(Pod()).ok());
  std::ofstream(netns()) << "";
  ASSERT_TRUE(net.Del(Pod()).ok());
  EXPECT_EQ(Env("first", "DEL")["CNI_NETNS"], "");
  std::filesystem::remove(netns());

  // "Container unknown" (CNI error 3) means there is nothing left to clean.
  Set("second", "DEL", "out", R"({"code": 3, "msg": "no such container"})");
  Set("second", "DEL", "rc", "1");
  ClearCalls();
  EXPECT_TRUE(net.Del(Pod()).ok());
  EXPECT_THAT(Calls(), ElementsAre("second DEL", "first DEL"));

  // Any other DEL error is an error, and the entry stays for the next try.
  ASSERT_TRUE(net.Add(Pod()).ok());
  Set("second", "DEL", "out", R"({"code": 5, "msg": "cannot write", "details": "disk full"})");
  absl::Status status = net.Del(Pod());
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_TRUE(std::filesystem::exists(CacheFile()));
}

struct ErrorCase {
  int cni_code;
  absl::StatusCode code;
};

class PluginErrorTest : public NetworkTest, public ::testing::WithParamInterface<ErrorCase> {};

TEST_P(PluginErrorTest, ErrorJsonBecomesAStatusWithMsgAndDetails) {
  Network net = TwoPlugins();
  Set("second", "ADD", "out",
      StrCat(R"({"cniVersion": "1.0.0", "code": )", GetParam().cni_code,
             R"(, "msg": "failed to allocate", "details": "range 10.9.0.0/24 is full"})"));
  Set("second", "ADD", "rc", "1");
  absl::StatusOr<Result> result = net.Add(Pod());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), GetParam().code) << result.status();
  EXPECT_THAT(result.status().message(),
              HasSubstr("network \"net1\": plugin second ADD (container pod1, eth0): failed to "
                        "allocate: range 10.9.0.0/24 is full (CNI error "));
}

INSTANTIATE_TEST_SUITE_P(Codes, PluginErrorTest,
                         ::testing::Values(ErrorCase{1, absl::StatusCode::kFailedPrecondition},
                                           ErrorCase{2, absl::StatusCode::kInvalidArgument},
                                           ErrorCase{3, absl::StatusCode::kNotFound},
                                           ErrorCase{4, absl::StatusCode::kInvalidArgument},
                                           ErrorCase{5, absl::StatusCode::kInternal},
                                           ErrorCase{6, absl::StatusCode::kInvalidArgument},
                                           ErrorCase{7, absl::StatusCode::kInvalidArgument},
                                           ErrorCase{11, absl::StatusCode::kUnavailable},
                                           ErrorCase{50, absl::StatusCode::kUnavailable},
                                           ErrorCase{123, absl::StatusCode::kInternal}));

TEST_F(NetworkTest, AFailedAddIsUndoneWithDel) {
  Network net = TwoPlugins();
  Set("second", "ADD", "out", R"({"code": 7, "msg": "bad config"})");
  Set("second", "ADD", "rc", "1");
  absl::StatusOr<Result> result = net.Add(Pod());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_THAT(Calls(), ElementsAre("first ADD", "second ADD", "second DEL", "first DEL"));
  EXPECT_FALSE(Stdin("first", "DEL").contains("prevResult"));
  EXPECT_FALSE(std::filesystem::exists(CacheFile()));

  // When the undoing DEL fails too, both are reported and the entry stays for a later Del.
  Set("first", "DEL", "out", R"({"code": 11, "msg": "busy"})");
  Set("first", "DEL", "rc", "1");
  result = net.Add(Pod());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("bad config"));
  EXPECT_THAT(result.status().message(), HasSubstr("the DEL undoing it failed too"));
  EXPECT_THAT(result.status().message(), HasSubstr("busy"));
  ASSERT_TRUE(std::filesystem::exists(CacheFile()));
  absl::StatusOr<std::vector<Attachment>> cached = net.CachedAttachments();
  ASSERT_TRUE(cached.ok());
  EXPECT_THAT(*cached, SizeIs(1));
}

TEST_F(NetworkTest, ErrorsWithoutJsonCarryTheOutput) {
  Network net = TwoPlugins();
  Set("first", "ADD", "hook", "echo 'panic: something broke' >&2; exit 2\n");
  absl::StatusOr<Result> result = net.Add(Pod());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status().message(), HasSubstr("exit status 2: panic: something broke"));

  Set("first", "ADD", "hook", "echo 'not json'; exit 0\n");
  result = net.Add(Pod());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status().message(), HasSubstr("printed no result: \"not json"));
}

TEST_F(NetworkTest, AHungPluginTimesOut) {
  Plugin("first");
  Plugin("second");
  absl::StatusOr<NetworkConfig> config = ParseNetworkConfig(
      R"({"cniVersion": "1.0.0", "name": "net1", "plugins": [{"type": "first"},
                                                               {"type": "second"}]})",
      "");
  CniOptions options = Options();
  options.plugin_timeout = absl::Milliseconds(500);
  Network net(*config, options);
  ASSERT_TRUE(net.NegotiatedVersion().ok());  // VERSION answered before the clock matters
  Set("second", "ADD", "hook", "exec sleep 30\n");
  absl::Time start = absl::Now();
  absl::StatusOr<Result> result = net.Add(Pod());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("plugin second ADD (container pod1, eth0): "
                                                   "timed out after 500ms"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_THAT(Calls(), ElementsAre("first ADD", "second ADD", "second DEL", "first DEL"));
}

TEST_F(NetworkTest, TheCacheSurvivesARestart) {
  Network net = TwoPlugins();
  Set("second", "ADD", "out", kSecondResult);
  Attachment a = Pod();
  a.runtime_config.cgroup_path = "/pods/p1";
  ASSERT_TRUE(net.Add(a).ok());

  // libcni's format: kind, ids, the config as base64, args, capability args, result.
  json file = json::parse(ReadFile(CacheFile()));
  EXPECT_EQ(file["kind"], "cniCacheV1");
  EXPECT_EQ(file["containerId"], "pod1");
  EXPECT_EQ(file["ifName"], "eth0");
  EXPECT_EQ(file["networkName"], "net1");
  EXPECT_EQ(file["netns"], netns());
  EXPECT_EQ(file["cniArgs"], json::parse(R"([["K8S_POD_NAME", "web"],
                                              ["K8S_POD_NAMESPACE", "default"]])"));
  EXPECT_EQ(file["capabilityArgs"]["cgroupPath"], "/pods/p1");
  EXPECT_EQ(file["result"], json::parse(kSecondResult));
  json config = json::parse(Base64Decode(file["config"].get<std::string>()).value());
  EXPECT_EQ(config["name"], "net1");
  EXPECT_EQ(config["cniVersion"], "1.0.0");
  EXPECT_EQ(config["plugins"][0]["type"], "first");
  struct stat st;
  ASSERT_EQ(stat(CacheFile().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(stat((cache() + "/results").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);

  // A new daemon: a new Network, and callers that know only the ids.
  Network after = TwoPlugins();
  absl::StatusOr<std::vector<Attachment>> cached = after.CachedAttachments();
  ASSERT_TRUE(cached.ok()) << cached.status();
  ASSERT_THAT(*cached, SizeIs(1));
  EXPECT_EQ((*cached)[0].container_id, "pod1");
  EXPECT_EQ((*cached)[0].ifname, "eth0");
  EXPECT_EQ((*cached)[0].netns, netns());
  EXPECT_EQ((*cached)[0].args, a.args);
  EXPECT_EQ(CapabilityArgs((*cached)[0].runtime_config), CapabilityArgs(a.runtime_config));

  ASSERT_TRUE(after.Del({.container_id = "pod1", .netns = netns(), .ifname = "eth0"}).ok());
  EXPECT_EQ(Env("first", "DEL")["CNI_ARGS"],
            "IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=default");
  EXPECT_EQ(Stdin("first", "DEL")["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
  EXPECT_EQ(Stdin("first", "DEL")["prevResult"], json::parse(kSecondResult));
  EXPECT_THAT(*after.CachedAttachments(), IsEmpty());
}

TEST_F(NetworkTest, DelUsesTheConfigTheAddRanWith) {
  Network net = TwoPlugins();
  ASSERT_TRUE(net.Add(Pod()).ok());
  // The file changed meanwhile: a third plugin. DEL undoes what ADD did.
  Plugin("third");
  Network changed = MakeNetwork(R"({"cniVersion": "1.0.0", "name": "net1", "plugins": [
      {"type": "first"}, {"type": "second"}, {"type": "third"}]})");
  ClearCalls();
  ASSERT_TRUE(changed.Del(Pod()).ok());
  EXPECT_THAT(Calls(), ElementsAre("second DEL", "first DEL"));
  EXPECT_EQ(Stdin("first", "DEL")["setting"], 7);

  // A network whose file is gone entirely: its config comes from the cache.
  ASSERT_TRUE(net.Add(Pod("pod2")).ok());
  absl::StatusOr<std::vector<NetworkConfig>> configs = CachedNetworkConfigs(cache());
  ASSERT_TRUE(configs.ok()) << configs.status();
  ASSERT_THAT(*configs, SizeIs(1));
  EXPECT_EQ((*configs)[0].name, "net1");
  EXPECT_THAT((*configs)[0].plugins, SizeIs(2));
  EXPECT_TRUE(Network((*configs)[0], Options()).Del(Pod("pod2")).ok());
  EXPECT_THAT(*CachedNetworkConfigs(cache()), IsEmpty());
}

TEST_F(NetworkTest, AddingTwiceAndAddingOverAnInterruptedAdd) {
  Network net = TwoPlugins();
  absl::StatusOr<Result> first = net.Add(Pod());
  ASSERT_TRUE(first.ok());
  ClearCalls();
  // Complete, same namespace: the cached result, no plugin runs.
  absl::StatusOr<Result> again = net.Add(Pod());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->raw, first->raw);
  EXPECT_THAT(Calls(), IsEmpty());
  // Another namespace: refused.
  Attachment elsewhere = Pod();
  elsewhere.netns = dir_ + "/netns/other";
  EXPECT_EQ(net.Add(elsewhere).status().code(), absl::StatusCode::kAlreadyExists);

  // An entry without result: berthd died in the middle of an ADD. It is DELeted first.
  json entry = json::parse(ReadFile(CacheFile()));
  entry.erase("result");
  std::ofstream(CacheFile()) << entry.dump();
  ASSERT_THAT(*net.CachedAttachments(), SizeIs(1));
  EXPECT_EQ(net.Check(Pod()).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(net.Add(Pod()).ok());
  EXPECT_THAT(Calls(), ElementsAre("second DEL", "first DEL", "first ADD", "second ADD"));
  EXPECT_TRUE(json::parse(ReadFile(CacheFile())).contains("result"));
}

TEST_F(NetworkTest, BadIdsAndNamesNeverReachAPluginOrAPath) {
  Network net = TwoPlugins();
  auto expect_refused = [&](Attachment a) {
    EXPECT_EQ(net.Add(a).status().code(), absl::StatusCode::kInvalidArgument) << a.container_id;
    EXPECT_EQ(net.Del(a).code(), absl::StatusCode::kInvalidArgument) << a.container_id;
    EXPECT_EQ(net.Check(a).code(), absl::StatusCode::kInvalidArgument) << a.container_id;
  };
  for (const std::string& id : std::vector<std::string>{
           "", "../../etc/passwd", "a/b", ".hidden", "-x", "a b", "a\nb", std::string(300, 'a')}) {
    Attachment a = Pod();
    a.container_id = id;
    expect_refused(a);
  }
  for (const std::string& ifname :
       std::vector<std::string>{"", ".", "..", "eth0/x", "eth:0", "eth 0", "a-very-long-ifname"}) {
    Attachment a = Pod();
    a.ifname = ifname;
    expect_refused(a);
  }
  Attachment a = Pod();
  a.args["EVIL"] = "x;CNI_NETNS=/";
  expect_refused(a);
  a = Pod();
  a.netns = "";
  EXPECT_EQ(net.Add(a).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Calls(), IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(cache() + "/results"));
}

TEST_F(NetworkTest, VersionNegotiation) {
  Plugin("old");
  Plugin("new");
  Set("old", "VERSION", "out", R"({"cniVersion": "1.0.0",
                                   "supportedVersions": ["0.3.1", "0.4.0", "1.0.0"]})");
  Network strict = MakeNetwork(R"({"cniVersion": "1.1.0", "name": "net1", "plugins": [
      {"type": "new"}, {"type": "old"}]})");
  absl::StatusOr<Result> result = strict.Add(Pod());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition) << result.status();
  EXPECT_THAT(result.status().message(),
              HasSubstr("network \"net1\": no CNI version both the configuration (1.1.0) and "
                        "every plugin support: old (" +
                        bin() + "/old) supports only 0.3.1, 0.4.0, 1.0.0"));
  EXPECT_THAT(Calls(), IsEmpty());
  EXPECT_EQ(strict.Status().code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<std::vector<std::string>> versions = strict.PluginVersions("old");
  ASSERT_TRUE(versions.ok());
  EXPECT_THAT(*versions, ElementsAre("0.3.1", "0.4.0", "1.0.0"));

  // With cniVersions, the highest version everyone speaks wins.
  Network flexible = MakeNetwork(R"({"cniVersion": "1.1.0", "cniVersions": ["0.4.0", "1.0.0"],
      "name": "net1", "plugins": [{"type": "new"}, {"type": "old"}]})");
  EXPECT_EQ(flexible.NegotiatedVersion().value_or("?"), "1.0.0");
  ASSERT_TRUE(flexible.Add(Pod()).ok());
  EXPECT_EQ(Stdin("new", "ADD")["cniVersion"], "1.0.0");
  EXPECT_EQ(Stdin("new", "VERSION")["cniVersion"], "1.1.0");

  // A plugin that is not installed.
  Network missing =
      MakeNetwork(R"({"cniVersion": "1.0.0", "name": "net2", "plugins": [{"type": "absent"}]})");
  absl::Status status = missing.Status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              HasSubstr("plugin \"absent\" not found in " + dir_ + "/nowhere, " + bin()));
}

TEST_F(NetworkTest, CheckRunsInOrderWithTheCachedResult) {
  Network net = TwoPlugins();
  EXPECT_EQ(net.Check(Pod()).code(), absl::StatusCode::kNotFound);
  Set("second", "ADD", "out", kSecondResult);
  ASSERT_TRUE(net.Add(Pod()).ok());
  ClearCalls();
  ASSERT_TRUE(net.Check(Pod()).ok());
  EXPECT_THAT(Calls(), ElementsAre("first CHECK", "second CHECK"));
  EXPECT_EQ(Stdin("first", "CHECK")["prevResult"], json::parse(kSecondResult));

  Set("second", "CHECK", "out", R"({"code": 100, "msg": "eth0 has lost its address"})");
  Set("second", "CHECK", "rc", "1");
  EXPECT_THAT(net.Check(Pod()).message(), HasSubstr("eth0 has lost its address"));

  // disableCheck, and versions before CHECK existed: nothing runs.
  Network disabled = MakeNetwork(R"({"cniVersion": "1.0.0", "name": "net1", "disableCheck": true,
      "plugins": [{"type": "first"}, {"type": "second"}]})");
  ClearCalls();
  EXPECT_TRUE(disabled.Check(Pod()).ok());
  EXPECT_THAT(Calls(), IsEmpty());
}

TEST_F(NetworkTest, StatusRunsFrom11On) {
  Network old = TwoPlugins("1.0.0");
  EXPECT_TRUE(old.Status().ok());
  EXPECT_THAT(Calls(), IsEmpty());

  Network current = TwoPlugins("1.1.0");
  EXPECT_TRUE(current.Status().ok());
  EXPECT_THAT(Calls(), ElementsAre("first STATUS", "second STATUS"));
  json request = Stdin("first", "STATUS");
  EXPECT_EQ(request["cniVersion"], "1.1.0");
  EXPECT_FALSE(request.contains("runtimeConfig"));
  EXPECT_FALSE(Env("first", "STATUS").contains("CNI_CONTAINERID"));

  Set("second", "STATUS", "out", R"({"code": 50, "msg": "daemon not running"})");
  Set("second", "STATUS", "rc", "1");
  absl::Status status = current.Status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("plugin second STATUS: daemon not running"));
}

TEST_F(NetworkTest, GarbageCollectDeletesStaleAttachmentsThenRunsGc) {
  Network net = TwoPlugins("1.1.0");
  ASSERT_TRUE(net.Add(Pod("keep")).ok());
  ASSERT_TRUE(net.Add(Pod("stale")).ok());
  ClearCalls();
  ASSERT_TRUE(net.GarbageCollect({Pod("keep")}).ok());
  EXPECT_THAT(Calls(), ElementsAre("second DEL", "first DEL", "first GC", "second GC"));
  EXPECT_EQ(Env("first", "DEL")["CNI_CONTAINERID"], "stale");
  EXPECT_EQ(Stdin("first", "GC")["cni.dev/valid-attachments"],
            json::parse(R"([{"containerID": "keep", "ifname": "eth0"}])"));
  EXPECT_FALSE(Env("first", "GC").contains("CNI_CONTAINERID"));
  absl::StatusOr<std::vector<Attachment>> cached = net.CachedAttachments();
  ASSERT_THAT(*cached, SizeIs(1));
  EXPECT_EQ((*cached)[0].container_id, "keep");

  // GC errors do not stop the other plugins; all are reported.
  Set("first", "GC", "out", R"({"code": 5, "msg": "cannot read store"})");
  Set("first", "GC", "rc", "1");
  ClearCalls();
  absl::Status status = net.GarbageCollect({Pod("keep")});
  EXPECT_THAT(status.message(), HasSubstr("cannot read store"));
  EXPECT_THAT(Calls(), ElementsAre("first GC", "second GC"));

  // Before 1.1 only the stale attachments are deleted.
  Network old = TwoPlugins("1.0.0");
  ClearCalls();
  ASSERT_TRUE(old.GarbageCollect({}).ok());
  EXPECT_THAT(Calls(), ElementsAre("second DEL", "first DEL"));
  EXPECT_THAT(*old.CachedAttachments(), IsEmpty());
}

TEST_F(NetworkTest, OneContainerAtATimeDifferentContainersInParallel) {
  Network net = TwoPlugins();
  // Same container: a plugin that finds another one busy on it records an overlap.
  Set("first", "ADD", "hook",
      "mkdir \"$d/busy-$CNI_CONTAINERID\" 2>/dev/null || echo overlap >> \"$d/overlaps\"\n"
      "sleep 0.3\n"
      "rmdir \"$d/busy-$CNI_CONTAINERID\"\n");
  Set("first", "DEL", "hook",
      "mkdir \"$d/busy-$CNI_CONTAINERID\" 2>/dev/null || "
      "echo overlap >> \"$d/overlaps\"\n"
      "sleep 0.3\n"
      "rmdir \"$d/busy-$CNI_CONTAINERID\"\n");
  {
    std::vector<std::thread> threads;
    for (const char* ifname : {"eth0", "eth1", "eth2"}) {
      threads.emplace_back([&, ifname] { EXPECT_TRUE(net.Add(Pod("pod1", ifname)).ok()); });
    }
    threads.emplace_back([&] { EXPECT_TRUE(net.Del(Pod("pod1", "eth3")).ok()); });
    for (std::thread& t : threads) t.join();
  }
  EXPECT_FALSE(std::filesystem::exists(log() + "/overlaps")) << ReadFile(log() + "/overlaps");

  // Different containers: each ADD waits until the other one has started.
  Set("second", "ADD", "hook",
      "touch \"$d/started-$CNI_CONTAINERID\"\n"
      "i=0\n"
      "while [ $i -lt 100 ] && ! { [ -e \"$d/started-a\" ] && [ -e \"$d/started-b\" ]; }; do\n"
      "  sleep 0.1; i=$((i+1))\n"
      "done\n"
      "[ $i -lt 100 ] || echo serialized >> \"$d/overlaps\"\n");
  {
    std::thread a([&] { EXPECT_TRUE(net.Add(Pod("a")).ok()); });
    std::thread b([&] { EXPECT_TRUE(net.Add(Pod("b")).ok()); });
    a.join();
    b.join();
  }
  EXPECT_FALSE(std::filesystem::exists(log() + "/overlaps")) << ReadFile(log() + "/overlaps");
}

}  // namespace
}  // namespace berth::cni
