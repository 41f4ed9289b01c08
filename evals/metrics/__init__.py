"""Metric functions: accuracy, pass@k, cost-of-pass (+ CI, frontier), TEP, run summaries."""

from evals.metrics.cost_of_pass import (
    CostOfPass,
    cost_of_pass,
    cost_of_pass_ci,
    frontier_cost_of_pass,
)
from evals.metrics.passk import accuracy, mean_pass_at_k, pass_at_k
from evals.metrics.summary import SystemSummary, percentile, summarize, summarize_system
from evals.metrics.tep import TEP, mean_tokens, tep

__all__ = [
    "TEP",
    "CostOfPass",
    "SystemSummary",
    "accuracy",
    "cost_of_pass",
    "cost_of_pass_ci",
    "frontier_cost_of_pass",
    "mean_pass_at_k",
    "mean_tokens",
    "pass_at_k",
    "percentile",
    "summarize",
    "summarize_system",
    "tep",
]
