"""Cost-aware agents on langgraph (after the Efficient Agents study): every module is a switch,
so the cheapest configuration that still solves a task set can be found by a sweep.

    config.py   AgentConfig: backbone model per role, planning (none / once / every:K), tools,
                memory (none / simple / summary), max steps, test-time scaling (vote:N, judge:N)
    graph.py    the langgraph state graph built from a configuration
    tools.py    python (sandboxed), read_file, calculator, sql (read-only SQLite), search (plugin)
    system.py   the `agent:CONFIG.yaml` system kind: a configuration answers GAIA-format tasks
                (the benchmark `gaia-mini` / `gaia:DIR` in evals/benchmarks/gaia.py) through the
                evals runner, one Attempt per task and configuration
    cli.py      `llm-eff agent run|sweep`
"""
