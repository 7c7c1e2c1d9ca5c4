#!/usr/bin/env bash
# Set up everything the program and its tests need: a virtualenv with the pinned packages,
# and the toolchain (Pulumi engine and plugins, Kubernetes API servers, istiod, actionlint)
# linked into it. Each piece is taken from the machine or its official download where that
# works, else built from Go modules (tens of minutes the first time); one `toolchain:` line per
# piece says which. After the first run this takes seconds.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .  # the `mesh` command
# The lab's network and its pods' traffic capture (istio-init's rules) are iptables rules in
# network namespaces the lab makes: Debian's iptables package (the lab runs as root).
if ! command -v iptables-restore >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
    echo "toolchain: iptables: installed with apt-get" >&2
  else
    echo "setup.sh: the lab needs iptables (as root: apt-get install iptables)" >&2
  fi
fi
bash toolchain/install.sh .venv
