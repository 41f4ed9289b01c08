#!/usr/bin/env bash
# The main job on the embedded default: install, evaluate SmolLM2-135M (greedy vs best-of-4)
# on a slice of NaturalCodeBench Python, then write the cost report. About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
RUN=runs/quickstart.jsonl
.venv/bin/llm-eff eval --bench ncb-python --limit "${LIMIT:-8}" \
  --system smollm2-135m:max_tokens=256 \
  --system smollm2-135m:best-of-4,max_tokens=256 \
  --run "$RUN"
.venv/bin/llm-eff report "$RUN" --out runs/quickstart-report
