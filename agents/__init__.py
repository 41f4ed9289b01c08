"""Cost-aware agents on langgraph (after the Efficient Agents study): every module is a switch,
so the cheapest configuration that still solves a task set can be found by a sweep.

    config.py   AgentConfig: backbone model per role, planning (none / once / every:K), tools,
                memory (none / simple / summary), max steps, test-time scaling (vote:N, judge:N)
    graph.py    the langgraph state graph built from a configuration
    tools.py    python (sandboxed), read_file, calculator, sql (read-only SQLite), search (plugin)
    gaia.py     GAIA-format task loader and GAIA's answer scoring
    runner.py   run configurations over tasks into a run log (one Attempt per task and config)
Shipped task set: `agents/data/gaia-mini` (see its README). CLI: `llm-eff agent run|sweep`.
"""

from pathlib import Path

MINI_TASKS = Path(__file__).parent / "data" / "gaia-mini"
