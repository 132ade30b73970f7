#!/usr/bin/env bash
# Installs what is missing, builds berthd and berthctl, and runs berthd in the
# foreground with its embedded defaults (root /var/lib/berth, state
# /run/berth, socket /run/berth/berth.sock; /etc/berth/berth.toml if present).
# Arguments go to berthd, e.g. bazel/run-berthd.sh --log-level debug
set -euo pipefail
cd "$(dirname "$0")/.."

bazel/install-deps.sh
bazel build //server:berthd //cli:berthctl
exec .bazel/bin/server/berthd "$@"
