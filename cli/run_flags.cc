#include "cli/run_flags.h"

#include <charconv>
#include <string_view>

#include "runtime/base/strings.h"

namespace berth::cli {

namespace v1 = ::runtime::v1;

namespace {

bool ParsePort(std::string_view text, int32_t& port) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 1 || value > 65535) {
    return false;
  }
  port = value;
  return true;
}

bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

}  // namespace

absl::Status ApplyPublish(const std::vector<std::string>& publish, v1::PodSandboxConfig& pod) {
  for (const std::string& value : publish) {
    auto bad = [&](std::string_view why) {
      return absl::InvalidArgumentError(
          StrCat("-p ", value, ": ", why, " (want [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp|sctp])"));
    };
    std::string_view spec = value;
    v1::Protocol protocol = v1::TCP;
    if (size_t slash = spec.rfind('/'); slash != std::string_view::npos) {
      std::string_view name = spec.substr(slash + 1);
      if (name == "tcp") {
        protocol = v1::TCP;
      } else if (name == "udp") {
        protocol = v1::UDP;
      } else if (name == "sctp") {
        protocol = v1::SCTP;
      } else {
        return bad(StrCat("unknown protocol \"", name, "\""));
      }
      spec = spec.substr(0, slash);
    }
    size_t last = spec.rfind(':');
    if (last == std::string_view::npos) return bad("no host port");
    std::string_view container = spec.substr(last + 1);
    std::string_view rest = spec.substr(0, last);
    std::string_view host_ip;
    std::string_view host = rest;
    if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
      host_ip = rest.substr(0, colon);
      host = rest.substr(colon + 1);
      if (host_ip.size() >= 2 && host_ip.front() == '[' && host_ip.back() == ']') {
        host_ip = host_ip.substr(1, host_ip.size() - 2);
      }
      if (host_ip.empty()) return bad("empty host address");
    }
    int32_t host_port = 0, container_port = 0;
    if (!ParsePort(host, host_port)) return bad(StrCat("bad host port \"", host, "\""));
    if (!ParsePort(container, container_port)) {
      return bad(StrCat("bad container port \"", container, "\""));
    }
    v1::PortMapping* mapping = pod.add_port_mappings();
    mapping->set_host_port(host_port);
    mapping->set_container_port(container_port);
    mapping->set_protocol(protocol);
    mapping->set_host_ip(std::string(host_ip));
  }
  return absl::OkStatus();
}

absl::Status ApplyNetwork(const std::string& network, v1::PodSandboxConfig& pod) {
  if (network.empty()) return absl::OkStatus();
  if (network == "host") {
    pod.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
        v1::NODE);
    return absl::OkStatus();
  }
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= network.size()) {
    size_t comma = network.find(',', start);
    if (comma == std::string::npos) comma = network.size();
    std::string name = network.substr(start, comma - start);
    if (!ValidName(name)) {
      return absl::InvalidArgumentError(StrCat("--network ", network, ": bad network name \"",
                                               name, "\""));
    }
    names.push_back(name);
    start = comma + 1;
  }
  if (names.size() == 1) {
    (*pod.mutable_annotations())["berth.io/network"] = names[0];
  } else {
    for (const std::string& name : names) {
      if (name == "none" || name == "host") {
        return absl::InvalidArgumentError(
            StrCat("--network ", network, ": ", name, " cannot be combined with other networks"));
      }
    }
    (*pod.mutable_annotations())["berth.io/networks"] = network;
  }
  return absl::OkStatus();
}

}  // namespace berth::cli
