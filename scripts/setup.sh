#!/usr/bin/env bash
# Create .venv in the checkout and install pcbm with everything it needs. Idempotent: re-runs only
# when pyproject.toml changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.pcbm-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing pcbm and its dependencies into .venv (first time: ~4 min, ~6 GB)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[all]"
  echo "$want" > "$stamp"
fi
if [ "${PCBM_BROWSER:-1}" = 1 ] && (! command -v chromium >/dev/null || ! command -v chromedriver) >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "[setup] installing Debian's chromium for the report rendering test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "[setup] chromium not installed; browser tests will be skipped"
fi
