"""Which isolation this machine allows, detected once per process.

- `namespaces-root`: running as root; `unshare` gives new mount/net/pid/ipc/uts namespaces and
  the program runs under an unprivileged uid (process limit enforced, host files protected).
- `namespaces-user`: not root, but unprivileged user namespaces are allowed: the same
  namespaces inside a user namespace; the process limit counts all of the user's processes.
- `rlimits-only`: neither is possible (e.g. inside a locked-down container): rlimits, a new
  session and a scrubbed environment still apply, but the network is NOT isolated and files
  outside the work dir are protected only by their permissions. A warning says so.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import warnings

BASE_FLAGS = [
    "--mount",
    "--net",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "--ipc",
    "--uts",
]


@functools.lru_cache(maxsize=1)
def isolation_mode() -> str:
    """The strongest isolation available here (see module docstring)."""
    forced = os.environ.get("LLM_EFF_SANDBOX_ISOLATION")
    if forced:
        return forced
    unshare = shutil.which("unshare")
    if unshare and sys.platform.startswith("linux"):
        for mode, flags in (
            ("namespaces-root", []),
            ("namespaces-user", ["--map-root-user", "--user"]),
        ):
            if mode == "namespaces-root" and os.geteuid() != 0:
                continue
            probe = [unshare, *flags, *BASE_FLAGS, "true"]
            try:
                ok = subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                return mode
    warnings.warn(
        "llm-eff sandbox: namespaces unavailable; running untrusted code with rlimits only "
        "(network not isolated)",
        RuntimeWarning,
        stacklevel=2,
    )
    return "rlimits-only"


def unshare_prefix(mode: str) -> list[str]:
    """The `unshare` command line that starts a jail in `mode` (empty for rlimits-only)."""
    if mode == "namespaces-root":
        return [shutil.which("unshare") or "unshare", *BASE_FLAGS]
    if mode == "namespaces-user":
        return [shutil.which("unshare") or "unshare", "--user", "--map-root-user", *BASE_FLAGS]
    return []
