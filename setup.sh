#!/usr/bin/env bash
# Set up everything the program and its tests need: a virtualenv with the pinned packages.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
