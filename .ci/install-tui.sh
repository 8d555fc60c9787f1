#!/usr/bin/env bash
# The eddytop acceptance test (cmd/eddytop) runs the screen in a real terminal: tmux.
set -euo pipefail
if command -v tmux >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-tui: tmux is missing and this is not root: apt-get install -y tmux" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq tmux
