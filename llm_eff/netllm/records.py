"""NetLLM results as run-log attempts, so `llm-eff report` puts them beside everything else.

ABR: one attempt per (method, test trace); `score` is the session's mean QoE and `passed`
means "at least as good as robust MPC on that trace" (MPC's own attempts pass by definition).
VP: one attempt per method over all test windows; `score` is the mean absolute error in degrees
and `passed` means "no worse than repeating the last viewport". The adapter's decision latency
is in `usage.latency_s` (per decision / per window) and `details`.
"""

from __future__ import annotations

from typing import Any

from llm_eff.core.types import Attempt, Usage, config_hash


def _system(method: str, adapter: str) -> tuple[str, str]:
    name = f"netllm ({adapter})" if method == "netllm" else method
    return name, config_hash({"method": method, "adapter": adapter if method == "netllm" else ""})


def abr_attempts(result: dict[str, Any], adapter: str) -> list[Attempt]:
    """Attempts of an `evaluate_abr` result."""
    out = []
    mpc = result["per_trace"]["mpc"]
    for method, values in result["per_trace"].items():
        name, digest = _system(method, adapter)
        for trace, qoe, reference in zip(result["traces"], values, mpc, strict=True):
            latency = result["latency_ms"] / 1000 if method == "netllm" else 0.0
            out.append(
                Attempt(
                    task_id=trace,
                    system=name,
                    system_hash=digest,
                    output=f"{qoe:.4f}",
                    passed=bool(qoe >= reference),
                    score=float(qoe),
                    usage=Usage(latency_s=latency),
                    benchmark="netllm-abr",
                    details={"qoe": float(qoe), "mpc_qoe": float(reference), "reason": "qoe"},
                )
            )
    return out


def vp_attempts(result: dict[str, Any], adapter: str) -> list[Attempt]:
    """Attempts of an `evaluate_vp` result."""
    out = []
    reference = result["mae"]["last value"]
    for method, mae in result["mae"].items():
        name, digest = _system(method, adapter)
        latency = result["latency_ms_per_window"] / 1000 if method == "netllm" else 0.0
        out.append(
            Attempt(
                task_id="test-windows",
                system=name,
                system_hash=digest,
                output=f"{mae:.3f}",
                passed=bool(mae <= reference),
                score=float(mae),
                usage=Usage(latency_s=latency),
                benchmark="netllm-vp",
                details={
                    "mae_by_step": result["mae_by_step"][method],
                    "windows": result["windows"],
                    "reason": "mae",
                },
            )
        )
    return out
