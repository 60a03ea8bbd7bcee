#!/usr/bin/env bash
# Create .venv (if missing) with torch and reiqa installed in editable mode, dev tools included.
# Idempotent: a second run only re-checks the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1; then
    .venv/bin/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"
