#!/usr/bin/env bash
# The main job on the embedded default: install, evaluate SmolLM2-135M-Instruct greedy against
# best-of-4 on a slice of NaturalCodeBench Python (dev set), then write the cost report.
# About 10 minutes on 2 CPU cores, most of it installing.
#
# The slice: the six problems on which the model's greedy answer passes at least one test in a
# full 70-problem run (it fully solves one of the 70), so the report has something to compare.
# TASKS=all runs every problem (about 15 minutes of generation per system on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
RUN="${RUN:-runs/quickstart.jsonl}"
TASKS="${TASKS:-134,136,150,159,172,192}"
SLICE=(--tasks "$TASKS")
[ "$TASKS" = "all" ] && SLICE=()
.venv/bin/llm-eff eval --bench ncb-python "${SLICE[@]}" \
  --system smollm2-135m:max_tokens=256 \
  --system smollm2-135m:best-of-4,max_tokens=256 \
  --run "$RUN"
.venv/bin/llm-eff report "$RUN" --out "${RUN%.jsonl}-report"
