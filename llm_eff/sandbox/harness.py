"""Trusted test driver inside the jail: `python -I harness.py SECRET_FD CHANNEL_FD`.

The supervisor sends the test source, the run's nonce and the options down SECRET_FD (a pipe
the harness reads to its end and closes before any untrusted code runs), so the tests never
touch the disk: the work dir holds only the program (`solution.py`) and an empty placeholder
for pytest to collect. pytest (fixtures, `tmp_path`, `capsys`, `pytest.raises`: what NCB's
tests use) runs with no conftest, no ini file from the work dir and no plugin autoload; the
placeholder's module is built from the in-memory source. Per-test results leave through
CHANNEL_FD as one message framed by the nonce, written once at the end, so a program that
exits early, rewrites files or prints look-alike lines produces a missing or malformed
message, never a pass. The harness also

- wraps every test body and records that it returned: pytest saying "passed" for a test
  whose body never returned (a patched `runtest`, say) is reported as tampering;
- fingerprints the pytest internals that decide an outcome before the program is imported and
  checks them again at the end;
- where asked (`typed`, function-style benchmarks), wraps the entry point so that every value
  it returns must be plain data (exact built-in types, recursively, as EvalPlus checks), so
  objects with a forged `__eq__` fail even where a test catches the error.

This cannot stop a program that deliberately digs through this process's own frames or heap
(`sys._getframe`, `gc`) for the nonce and writes a forged message itself: the program and the
tests share one interpreter. The README's threat model says so.
"""

from __future__ import annotations

import os
import sys
import types

_write, _exit, _read, _close = os.write, os._exit, os.read, os.close
_HARNESS_PID = os.getpid()
_getpid = os.getpid
_type, _all, _str_repr, _len = type, all, str.__repr__, len
_FunctionType = types.FunctionType
_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None)})
_SEQUENCES = frozenset({list, tuple, set, frozenset})
_dict_items = dict.items


def _is_plain(value: object, depth: int = 0) -> bool:
    kind = _type(value)
    if kind in _PLAIN:
        return True
    if depth > 50:
        return False
    if kind in _SEQUENCES:
        return _all(_is_plain(v, depth + 1) for v in value)  # type: ignore[attr-defined]
    if kind is dict:
        return _all(
            _is_plain(k, depth + 1) and _is_plain(v, depth + 1) for k, v in _dict_items(value)
        )
    return False


class UntypedAnswer(AssertionError):
    """The candidate returned something other than plain data."""


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := _read(fd, 1 << 16):
        chunks.append(chunk)
    _close(fd)
    return b"".join(chunks)


def _compile(source: str, filename: str):
    import ast

    tree = ast.parse(source, filename)
    try:
        from _pytest.assertion.rewrite import rewrite_asserts

        rewrite_asserts(tree, source.encode())
    except Exception:  # noqa: BLE001 - plain asserts still decide pass/fail
        tree = ast.parse(source, filename)
    return compile(tree, filename, "exec", dont_inherit=True)


def _test_key(nodeid: str) -> str:
    """'test_solution.py::TestX::test_a[1-2]' -> 'TestX::test_a'."""
    key = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    return key.split("[", 1)[0]


def _guarded(modules: dict) -> list[tuple[object, str, object]]:
    """(owner, attribute, value) of the pytest internals that turn a test into a verdict."""
    python, runner, reports, main = (modules[k] for k in ("python", "runner", "reports", "main"))
    names = [
        (python.Function, "runtest"),
        (python, "pytest_pyfunc_call"),
        (runner, "runtestprotocol"),
        (runner, "call_and_report"),
        (runner, "call_runtest_hook"),
        (runner, "check_interactive_exception"),
        (runner.CallInfo, "from_call"),
        (reports.TestReport, "from_item_and_call"),
        (main, "pytest_runtestloop"),
        (sys.modules[__name__], "_finish"),
    ]
    return [(owner, name, vars(owner).get(name)) for owner, name in names]


def main() -> None:
    """Run the tests described on SECRET_FD and report on CHANNEL_FD."""
    import json

    spec = json.loads(_read_all(int(sys.argv[1])))
    channel = int(sys.argv[2])
    import _pytest.main
    import _pytest.python
    import _pytest.reports
    import _pytest.runner
    import pytest

    modules = {
        "python": _pytest.python,
        "runner": _pytest.runner,
        "reports": _pytest.reports,
        "main": _pytest.main,
    }
    fingerprint = _guarded(modules)
    state: dict = {"results": [], "returned": {}, "untyped": [], "errors": [], "tampered": []}
    state["interrupted"] = False
    source, entry = spec["source"], spec.get("entry_point")

    def typed(fn):
        def checked(*args, **kwargs):
            answer = fn(*args, **kwargs)
            if not _is_plain(answer):
                name = _type(answer).__name__
                state["untyped"].append(name)
                raise UntypedAnswer(f"llm-eff: untyped answer: {entry} returned a {name}")
            return answer

        return checked

    class InMemoryModule(pytest.Module):
        def _getobj(self):
            module = types.ModuleType("test_solution")
            module.__file__ = str(self.path)
            sys.modules["test_solution"] = module
            exec(_compile(source, str(self.path)), module.__dict__)
            if spec.get("typed") and _type(module.__dict__.get(entry)) is _FunctionType:
                module.__dict__[entry] = typed(module.__dict__[entry])
            return module

    def recording(key: str, body):
        def run(*args, **kwargs):
            result = body(*args, **kwargs)
            state["returned"][key] = state["returned"].get(key, 0) + 1
            return result

        return run

    class Plugin:
        @pytest.hookimpl(tryfirst=True)
        def pytest_pycollect_makemodule(self, module_path, parent):
            if module_path.name == "test_solution.py":
                return InMemoryModule.from_parent(parent, path=module_path)
            return None

        def pytest_collectreport(self, report):
            if report.failed:
                state["errors"].append(str(report.longreprtext)[-3000:])

        def pytest_collection_modifyitems(self, items):
            for item in items:
                key = _test_key(item.nodeid)
                if item.__class__.__name__ == "TestCaseFunction":
                    cls = item.parent.obj
                    setattr(cls, item.name, recording(key, getattr(cls, item.name)))
                else:
                    item.obj = recording(key, item.obj)

        def pytest_keyboard_interrupt(self, excinfo):
            state["interrupted"] = True

        def pytest_runtest_logreport(self, report):
            message = str(report.longreprtext)[-2000:] if report.failed else ""
            state["results"].append((report.nodeid, report.when, report.outcome, message))

    sys.path.append(os.getcwd())  # for `solution`; after the stdlib and packages, so a file
    # the program writes cannot stand in for a module the harness or pytest imports later
    args = ["-q", "-p", "no:cacheprovider", "--noconftest", "-c", "/dev/null"]
    args += ["--rootdir=.", "-o", "python_files=test_solution.py", "test_solution.py"]
    try:
        code = pytest.main(args, plugins=[Plugin()])
    except BaseException as exc:  # noqa: BLE001 - whatever the program raised ends the run
        state["errors"].append(f"{_type(exc).__name__}: {exc}")
        code = -1
    _finish(channel, spec["nonce"], state, fingerprint, modules, int(code))


def _finish(channel: int, nonce: str, state: dict, fingerprint, modules, code: int) -> None:
    """Write the one result message: nonce, results, flags, nonce again."""
    if _getpid() != _HARNESS_PID:
        _exit(0)  # a child the program forked ran on through pytest: only the harness reports
    changed = [
        f"{name}" for owner, name, value in fingerprint if vars(owner).get(name) is not value
    ]
    lines = [nonce]
    for nodeid, when, outcome, message in state["results"]:
        fields = (_test_key(str(nodeid)), str(when), str(outcome), str(message))
        lines.append("R " + _str_repr("\t".join(fields)))
    for key, count in state["returned"].items():
        lines.append("B " + _str_repr(f"{key}\t{int(count)}"))
    for name in state["untyped"]:
        lines.append("U " + _str_repr(str(name)))
    for error in state["errors"]:
        lines.append("E " + _str_repr(str(error)))
    for name in changed:
        lines.append("T " + _str_repr(name))
    lines.append(f"I {int(bool(state['interrupted']))}")
    lines.append(f"X {int(code)}")
    lines.append(nonce)
    data = ("\n".join(lines) + "\n").encode()
    while data:
        data = data[_write(channel, data) :]
    _exit(0)


if __name__ == "__main__":
    main()
