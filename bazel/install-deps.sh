#!/usr/bin/env bash
# Installs every Debian 12 package that berth's build, tests and daemon need.
# Idempotent: packages already present are left alone, and apt is only
# consulted when something is missing.
set -euo pipefail

packages=(
  # build
  bazel-bootstrap pkg-config g++ git ca-certificates
  # RPC
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev
  # libraries named in the brief
  libspdlog-dev libfmt-dev libsqlite3-dev nlohmann-json3-dev libtomlplusplus-dev
  libcli11-dev libssl-dev libarchive-dev libcurl4-openssl-dev libboost-dev zlib1g-dev
  # netlink for berth's CNI plugins (cni/plugins)
  libmnl-dev
  # tests
  libgtest-dev libgmock-dev
  # real peers used by the tests and the daemon
  runc busybox-static docker-registry apache2-utils iproute2 procps util-linux
  # pod networking: the standard CNI plugins, and iptables for their NAT rules
  containernetworking-plugins iptables
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# docker-registry's postinst starts a service on :5000 where systemd runs;
# policy-rc.d keeps package scripts from starting daemons during install.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
trap '[[ $made_policy == 1 ]] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}"
