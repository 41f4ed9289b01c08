"""One router over every technique: per query, the eval system (a model tier, an adapter, a
`drllm:` model, a cascade, an agent configuration, ...) with the lowest expected cost per pass.

Trained from run logs in which every target answered the same tasks. For a query, the router
predicts each target's pass probability and dollars from the query's nearest training tasks
(MiniLM cosine, `k` neighbours weighted by similarity; the pass rate smoothed towards the
target's overall rate), then picks

    argmin over targets of   cost - value * P(pass)

`value` is the price of a pass in dollars. For the aggregate cost per pass
(sum of costs / sum of passes), this rule with `value` set to the optimum's own cost per pass
is the optimal per-query choice (Dinkelbach's ratio argument), so `fit` calibrates `value` on
the training tasks, with leave-one-out predictions: the value whose choices give the lowest
cost per pass whose pass rate is at least `accuracy_floor` x the best single target's (no floor:
the lowest cost per pass outright). The choices only change where two targets' scores cross,
so the value is taken from the middle of the best interval between crossings, never on an edge.
Saved as `router.json` plus `vectors.npz`; a loaded router
decides exactly as the one that was saved.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evals.systems import SystemKind, kind_of, parse_system, system_solver
from llm_eff.core.errors import UserError

FORMAT = "llm-eff any-router 1"


@dataclass
class Choice:
    """One decision: the target, every target's predicted pass probability and cost, and the
    targets' indices from best to worst by the router's rule (the first is `index`)."""

    target: str
    index: int
    pass_probability: list[float]
    cost: list[float]
    ranking: list[int] = field(default_factory=list)


@dataclass
class AnyRouter:
    """k-nearest-neighbour pass and cost predictions per target, and the cost-per-pass rule."""

    k: int = 10
    smoothing: float = 1.0  # pseudo-count of the target's overall pass rate
    accuracy_floor: float | None = None  # share of the best single target's pass rate
    name: str = "any"
    targets: list[str] = field(default_factory=list)
    value: float = 0.0  # $ a pass is worth (calibrated by `fit`)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    passed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    cost: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    report: dict[str, Any] = field(default_factory=dict)

    # -- training ----------------------------------------------------------------------
    def fit(
        self, texts: list[str], passed: dict[str, list[float]], cost: dict[str, list[float]]
    ) -> AnyRouter:
        """Train on task prompts with each target's pass share and dollars per task."""
        from routers.embedding import embed

        return self.fit_vectors(embed(texts), passed, cost)

    def fit_vectors(
        self, vectors: np.ndarray, passed: dict[str, list[float]], cost: dict[str, list[float]]
    ) -> AnyRouter:
        """Train on unit-norm embeddings already computed (same layout as `fit`)."""
        if not passed:
            raise UserError("the any-technique router needs at least one target")
        missing = [t for t in passed if t not in cost]
        if missing:
            raise UserError(f"no costs for target(s) {', '.join(missing)}")
        n = len(vectors)
        for target in passed:
            if len(passed[target]) != n or len(cost[target]) != n:
                raise UserError(f"target '{target}' has outcomes for some tasks only")
        if n < 2:
            raise UserError("the any-technique router needs at least two training tasks")
        if self.accuracy_floor is not None and not 0 < self.accuracy_floor <= 1:
            raise UserError("accuracy_floor must be in (0, 1]")
        self.targets = list(passed)
        self.vectors = np.asarray(vectors, np.float32)
        self.passed = np.array([passed[t] for t in self.targets], np.float32).T
        self.cost = np.array([cost[t] for t in self.targets], np.float32).T
        self.value, self.report = self._calibrate()
        return self

    def _calibrate(self) -> tuple[float, dict[str, Any]]:
        """The value of a pass whose leave-one-out choices on the training tasks give the
        lowest cost per pass within the accuracy floor; the training report."""
        p, c = self._predict(self.vectors, leave_one_out=True)
        rates = self.passed.mean(axis=0)
        spend = self.cost.mean(axis=0)
        best = int(np.argmax(rates))
        floor = (self.accuracy_floor or 0.0) * float(rates[best])
        # every value where the choice of some task can change, and the two extremes
        ratios = (c[:, :, None] - c[:, None, :]) / np.maximum(p[:, :, None] - p[:, None, :], 1e-9)
        edges = np.unique(np.concatenate([[0.0], ratios[ratios > 0].ravel(), [1e9]]))
        if len(edges) > 400:
            edges = np.unique(np.quantile(edges, np.linspace(0, 1, 400)))
        # the choices are constant between consecutive edges: score each interval at its
        # (geometric) middle, then take the middle of the best run of intervals, so that a
        # new query is not decided on the edge of a tie
        lows, highs = edges[:-1], edges[1:]
        middles = np.where(lows > 0, np.sqrt(lows * highs), highs / 2)
        rows = np.arange(len(p))
        scored = []
        for value in middles:
            picks = np.argmin(c - value * p, axis=1)
            passes = float(self.passed[rows, picks].sum())
            per_pass = float(self.cost[rows, picks].sum()) / passes if passes else math.inf
            scored.append((per_pass, passes / len(p)))
        allowed = [i for i, (_, rate) in enumerate(scored) if rate + 1e-12 >= floor]
        if not allowed:  # no value reaches the floor: the most accurate choices
            allowed = [max(range(len(scored)), key=lambda i: (scored[i][1], i))]
        best = min(allowed, key=lambda i: (scored[i][0], i))
        last = best
        while last + 1 in allowed and scored[last + 1][0] <= scored[best][0] + 1e-15:
            last += 1
        low, high = lows[best], min(highs[last], 4 * highs[best])
        chosen_value = float(np.sqrt(low * high) if low > 0 else high / 2)
        chosen = scored[best]
        return chosen_value, {
            "tasks": int(len(p)),
            "pass_rate": {t: float(r) for t, r in zip(self.targets, rates, strict=True)},
            "cost_per_task": {t: float(s) for t, s in zip(self.targets, spend, strict=True)},
            "leave_one_out_pass_rate": chosen[1],
            "leave_one_out_cost_per_pass": chosen[0],
        }

    # -- predictions -------------------------------------------------------------------
    def _predict(
        self, vectors: np.ndarray, leave_one_out: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(pass probability, cost), each (queries, targets), from the nearest tasks."""
        similarity = np.asarray(vectors, np.float32) @ self.vectors.T
        if leave_one_out:
            np.fill_diagonal(similarity, -np.inf)
        k = min(self.k, len(self.vectors) - (1 if leave_one_out else 0))
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        weights = np.clip(np.take_along_axis(similarity, nearest, axis=1), 0.0, None) + 1e-6
        total = weights.sum(axis=1, keepdims=True)
        prior = self.passed.mean(axis=0)
        passed = np.einsum("qk,qkt->qt", weights, self.passed[nearest])
        p = (passed + self.smoothing * prior) / (total + self.smoothing)
        c = np.einsum("qk,qkt->qt", weights, self.cost[nearest]) / total
        return p, c

    def choose_vectors(self, vectors: np.ndarray) -> list[Choice]:
        """A decision per query embedding."""
        if not self.targets:
            raise UserError("the any-technique router is not trained")
        p, c = self._predict(vectors)
        # stable: ties go to the earlier target, as argmin would
        rankings = np.argsort(c - self.value * p, axis=1, kind="stable")
        return [
            Choice(self.targets[r[0]], int(r[0]), p[q].tolist(), c[q].tolist(), r.tolist())
            for q, r in enumerate(rankings)
        ]

    def choose(self, texts: list[str]) -> list[Choice]:
        """A decision per query text."""
        from routers.embedding import embed

        return self.choose_vectors(embed(texts))

    # -- persistence -------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write `router.json` and `vectors.npz` into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "vectors.npz", vectors=self.vectors, passed=self.passed, cost=self.cost)
        meta = {
            "format": FORMAT,
            "kind": "any",
            "targets": self.targets,
            "k": self.k,
            "smoothing": self.smoothing,
            "accuracy_floor": self.accuracy_floor,
            "value": self.value,
            "report": self.report,
        }
        (folder / "router.json").write_text(json.dumps(meta, indent=1) + "\n")
        return folder


def load_any_router(folder: str | Path) -> AnyRouter:
    """A router saved by `AnyRouter.save`; UserError if `folder` holds none."""
    folder = Path(folder)
    meta_path = folder / "router.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise UserError(f"no any-technique router in {folder} (no router.json)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {meta_path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{meta_path} is not an any-technique router (train one: route train-any)")
    try:
        arrays = np.load(folder / "vectors.npz")
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {folder / 'vectors.npz'}: {exc}") from None
    return AnyRouter(
        k=int(meta["k"]),
        smoothing=float(meta["smoothing"]),
        accuracy_floor=meta["accuracy_floor"],
        targets=list(meta["targets"]),
        value=float(meta["value"]),
        vectors=arrays["vectors"],
        passed=arrays["passed"],
        cost=arrays["cost"],
        report=meta.get("report", {}),
    )


def outcomes_by_target(
    attempts: list[Any], tasks: list[tuple[str, str]], targets: dict[str, set[str]]
) -> tuple[list[tuple[str, str]], dict[str, list[float]], dict[str, list[float]]]:
    """(tasks every target answered, pass share per target, $ per task per target) from run-log
    attempts; `tasks` are (benchmark, task id) pairs, `targets` maps each target to the system
    hashes and names its attempts carry. UserError naming a target with no attempt at all."""
    found: dict[str, dict[tuple[str, str], list[tuple[bool, float]]]] = {t: {} for t in targets}
    for a in attempts:
        for target, marks in targets.items():
            if a.system_hash in marks or a.system in marks:
                found[target].setdefault((a.benchmark, a.task_id), []).append(
                    (a.passed, a.cost.dollars)
                )
    empty = [t for t, rows in found.items() if not rows]
    if empty:
        raise UserError(
            f"no outcomes for target(s) {', '.join(map(repr, empty))} in the run logs "
            "(run `llm-eff eval` with them first)"
        )
    shared = [t for t in tasks if all(t in found[target] for target in targets)]
    if not shared:
        raise UserError("no task was answered by every target")
    passed = {
        target: [float(np.mean([ok for ok, _ in found[target][t]])) for t in shared]
        for target in targets
    }
    cost = {
        target: [float(np.mean([d for _, d in found[target][t]])) for t in shared]
        for target in targets
    }
    return shared, passed, cost


# -- `routed-any:DIR` as an eval system ----------------------------------------------------------
def _router_of(system: Any) -> AnyRouter:
    return load_any_router(system.model.removeprefix("routed-any:"))


def _target_specs(system: Any) -> list[Any]:
    return [parse_system(t) for t in _router_of(system).targets]


def _models(system: Any) -> list[str]:
    return sorted({m for spec in _target_specs(system) for m in spec.models()})


def _fits(system: Any, benchmark: Any) -> None:
    for spec in _target_specs(system):
        kind = kind_of(spec)
        if kind is not None and kind.replay is not None:
            raise UserError(
                f"routed-any target '{spec.name}' replays attempts: it cannot be called"
            )
        if kind is not None and kind.fits is not None:
            kind.fits(spec, benchmark)


def _solver(system: Any, benchmark: Any, backend_for: Any) -> Any:
    """Per batch: one decision per task, then each target answers the tasks sent to it, with
    its own decoding settings; each completion records where it was routed."""
    from dataclasses import replace

    router = _router_of(system)
    specs = _target_specs(system)
    solvers: dict[int, Any] = {}

    def solve(tasks: list[Any], config: Any) -> list[list[Any]]:
        choices = router.choose([t.prompt for t in tasks])
        out: list[list[Any]] = [[] for _ in tasks]
        for i, spec in enumerate(specs):
            sent = [q for q, choice in enumerate(choices) if choice.index == i]
            if not sent:
                continue
            if i not in solvers:
                solvers[i] = system_solver(spec, benchmark, backend_for)
            own = replace(
                config,
                max_new_tokens=spec.max_tokens,
                temperature=spec.temperature,
                top_p=spec.top_p,
                n=spec.best_of,
            )
            for q, group in zip(sent, solvers[i]([tasks[q] for q in sent], own), strict=True):
                for completion in group:
                    completion.details = {**completion.details, "routed_to": router.targets[i]}
                out[q] = group
        return out

    return solve


def _check(system: Any) -> Any:
    _router_of(system)  # a missing or foreign folder is a one-line error before any work
    return system


SYSTEM_KIND = SystemKind(
    "routed-any",
    "routed-any:DIR sends each task to the eval system that a router trained with "
    "`llm-eff route train-any` expects to pass at the lowest cost per pass",
    check=_check,
    fits=_fits,
    models=_models,
    solver=_solver,
)
