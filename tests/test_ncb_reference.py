"""Full NaturalCodeBench dev-set scoring of the reference solutions (slow, opt-in: -m slow).

The reference solutions must pass, except where the problem's tests need something this
checkout cannot have: NCB's per-problem input files (shipped outside its repository), nltk
corpora (no download offline). Those must fail for that reason and no other.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from evals.benchmarks import load_benchmark

from .conftest import JAVA_LIBS, NO_JDK

pytestmark = pytest.mark.slow


def _score_all(bench):
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(
            zip(
                [t.id for t in bench.tasks],
                pool.map(lambda t: bench.score(t, bench.reference_output(t)), bench.tasks),
                strict=True,
            )
        )


def test_ncb_python_reference_solutions():
    outcomes = _score_all(load_benchmark("ncb-python"))
    failed = {tid: o for tid, o in outcomes.items() if not o.passed}
    assert len(outcomes) - len(failed) >= 59
    for tid, o in failed.items():
        assert o.reason in ("missing_input", "failed_assertion", "runtime_error"), (tid, o.reason)


@pytest.mark.skipif(not shutil.which("javac"), reason=NO_JDK)
def test_ncb_java_reference_solutions():
    outcomes = _score_all(load_benchmark("ncb-java", java_libs=str(JAVA_LIBS)))
    failed = {tid: o.reason for tid, o in outcomes.items() if not o.passed}
    assert len(outcomes) - len(failed) >= 66, failed
    assert set(failed.values()) <= {"missing_input", "failed_assertion"}, failed
