#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite. Used by .ci/run and the README.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium drives the page tests (Playwright's own browser download is never used).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

python -m pip install -q -r requirements.txt

# Types first: engine/, cli/, app/ and api/ (pyproject.toml); any error fails this script (set -e).
python -m mypy

# pytest exits 5 when it collects no test: that fails this script too (set -e).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False ANONYMIZED_TELEMETRY=False
python -m pytest "$@"
