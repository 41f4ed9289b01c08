"""The import graph follows DESIGN.md's layers: nothing imports upward, and the packages of one
layer import each other without cycles. Function-level imports count the same as top-level ones.

Layers, lowest first: llm_eff.core < llm_eff.models < llm_eff.backends < the techniques (peft,
depth, mor, rl, netllm, sandbox) < evals < routers, agents < the CLI.

`KNOWN_UPWARD` lists the upward imports that are still there, each to be removed by the
registries of issue 20; the test fails on any import not in it (a new upward import) and on any
entry that is gone (so the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "llm_eff.core": 0,
    "llm_eff.models": 1,
    "llm_eff.backends": 2,
    **{f"llm_eff.{t}": 3 for t in ("peft", "depth", "mor", "rl", "netllm", "sandbox")},
    "evals": 4,
    "routers": 5,
    "agents": 5,
    "llm_eff.cli": 6,
}
KNOWN_UPWARD: set[tuple[str, str]] = set()


def unit(module: str) -> str | None:
    """The layer unit (longest matching prefix in LAYERS) a module belongs to."""
    best = None
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best or ""):
            best = prefix
    return best


def imports(root: Path) -> set[tuple[str, str]]:
    """(importing module, imported first-party module) for every import in the tree."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] not in {u.split(".")[0] for u in LAYERS}:
            continue
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            else:
                continue
            found.update((module, t) for t in targets if unit(t))
    return found


def upward(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Edges from a lower layer to a higher one."""
    return {(a, b) for a, b in edges if unit(a) and LAYERS[unit(b)] > LAYERS[unit(a)]}


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Cycles between layer units (a unit importing itself is fine)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        ua, ub = unit(a), unit(b)
        if ua and ub and ua != ub:
            graph.setdefault(ua, set()).add(ub)
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_nothing_new_imports_upward_and_no_layer_cycles():
    edges = imports(ROOT)
    found = upward(edges)
    assert found - KNOWN_UPWARD == set(), "upward imports (see DESIGN.md's layers)"
    assert KNOWN_UPWARD - found == set(), "gone: remove them from KNOWN_UPWARD"
    assert cycles(edges - KNOWN_UPWARD) == []


def test_the_checker_catches_an_upward_import_and_a_cycle(tmp_path: Path):
    for name, text in {
        "llm_eff/core/money.py": "from evals.metrics import x\n",
        "llm_eff/peft/a.py": "def f():\n    from llm_eff.rl import b\n",
        "llm_eff/rl/b.py": "import llm_eff.peft.a\n",
        "evals/metrics.py": "from llm_eff.core import money\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = imports(tmp_path)
    assert upward(edges) == {("llm_eff.core.money", "evals.metrics")}
    assert ["llm_eff.peft", "llm_eff.rl", "llm_eff.peft"] in cycles(edges)
