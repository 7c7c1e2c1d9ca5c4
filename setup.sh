#!/usr/bin/env bash
# Set up everything the program and its tests need: a virtualenv with the pinned packages,
# and the toolchain (Pulumi engine and plugins, Kubernetes API servers, istiod, actionlint)
# linked into it. Each piece is taken from the machine or its official download where that
# works, else built from Go modules (tens of minutes the first time); one `toolchain:` line per
# piece says which. After the first run this takes seconds.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .  # the `mesh` command
bash toolchain/install.sh .venv
