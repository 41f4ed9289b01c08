"""Problems with efficiency headroom: a naive solution is correct but measurably slower.

Each problem has a HumanEval-style prompt (signature and docstring), a good reference
solution, a naive one (quadratic instead of linear, recomputation instead of memoisation,
list instead of set lookups, ...), pytest tests, and a workload that calls the function on a
sizeable input (what the execution reward times; inputs it builds at module level are not
timed). Where the naive version is exponential, a test's input is large enough that it runs
into the sandbox's time limit, so the tests time-box it. `tests/test_rl.py` checks that every
reference passes, every naive version passes or is cut off, and the naive version is slower
on the workload.

The problems are data, in `data/efficiency.toml` (one `[[problem]]` table each, the code as
TOML literal strings). Written for this project (Apache-2.0); sizes are set so a reference
workload call takes milliseconds on a laptop core.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Problem:
    """One problem: prompt, entry point, reference and naive solutions, tests and workload."""

    name: str
    prompt: str
    reference: str
    naive: str
    tests: str
    workload: str

    @property
    def entry_point(self) -> str:
        """The function the prompt asks for."""
        return self.prompt.split("def ", 1)[1].split("(", 1)[0]


def load_problems() -> list[Problem]:
    """The problems shipped with the package, in file order."""
    text = resources.files("evals.benchmarks").joinpath("data/efficiency.toml").read_text()
    return [Problem(**table) for table in tomllib.loads(text)["problem"]]


PROBLEMS: list[Problem] = load_problems()
