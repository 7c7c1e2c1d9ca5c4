#!/usr/bin/env bash
# Set up everything the program and its tests need: a virtualenv with the pinned packages,
# and the toolchain (Pulumi engine and plugins, Kubernetes API servers, actionlint) linked into
# it. The toolchain's first build takes tens of minutes; after that this takes seconds.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .  # the `mesh` command
bash toolchain/install.sh .venv
