#!/usr/bin/env bash
# The main job on the embedded default: install, evaluate SmolLM2-135M-Instruct greedy against
# best-of-4 on a slice of NaturalCodeBench Python (dev set), then write the cost report.
# Measured on a 2-core VM with no GPU: about 3 minutes installing into a new .venv, under 2
# minutes evaluating on the llama.cpp engine (4 min 46 s with --engine transformers), seconds
# for the report.
#
# The slice: six problems on which the model's greedy answer passed at least one test in a
# full 70-problem run at 256 tokens. At the 512 tokens used here greedy passes at least one
# test on five of them and all tests on one (159). Best-of-4 samples four programs at
# temperature 0.2 and passes a problem if any of the four passes all its tests; it pays for
# all four. TASKS=all runs every problem (measured on transformers: about 15 minutes of
# generation per system).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
RUN="${RUN:-runs/quickstart.jsonl}"
TASKS="${TASKS:-134,136,150,159,172,192}"
SLICE=(--tasks "$TASKS")
[ "$TASKS" = "all" ] && SLICE=()
.venv/bin/llm-eff eval --bench ncb-python "${SLICE[@]}" \
  --system "smollm2-135m:max_tokens=512,name=smollm2-135m greedy" \
  --system "smollm2-135m:best-of-4,temperature=0.2,max_tokens=512,name=smollm2-135m best-of-4 (T=0.2)" \
  --run "$RUN"
.venv/bin/llm-eff report "$RUN" --out "${RUN%.jsonl}-report"
