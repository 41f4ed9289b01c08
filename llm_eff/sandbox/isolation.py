"""Which isolation this machine allows, detected once per process, and the jail's view of it.

- `bwrap` (preferred): bubblewrap builds the jail. The program sees read-only only the system
  directories (`/usr` and a few `/etc` entries), the Python interpreter with its installed
  packages (the project's own packages hidden) and the paths a benchmark names (a JDK's
  libraries); it writes only to private, size-limited tmpfs mounts (`/tmp` with its work dir,
  `/dev/shm`, `/run`). New user, mount, network, pid, IPC, UTS and cgroup namespaces; all
  capabilities dropped, `no_new_privs` set, user namespaces disabled inside. As root the
  jail runs under an unprivileged uid of its own.
- `namespaces-root` / `namespaces-user`: the fallback where bubblewrap is missing or cannot
  start: `unshare` plus `jail.py`'s own mounts (home dirs hidden, scratch dirs on tmpfs). The
  repository and the system's sockets are NOT hidden in this mode.
- `rlimits-only`: neither is possible (e.g. inside a locked-down container): rlimits, a new
  session and a scrubbed environment still apply, but the network is NOT isolated and files
  outside the work dir are protected only by their permissions.

Every mode but `bwrap` warns once per process, and each attempt records the mode it ran in, so
reports say when a verdict came from a weaker jail. `LLM_EFF_SANDBOX_ISOLATION` forces a mode.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import shutil
import site
import subprocess
import sys
import warnings
from pathlib import Path

MODES = ("bwrap", "namespaces-root", "namespaces-user", "rlimits-only")
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
# where the supervisor's own helpers (jail.py, harness.py) appear inside a bwrap jail
HELPERS_DIR = "/.llm-eff"
PROJECT_PACKAGES = ("llm_eff", "evals", "routers", "agents")
ETC_ENTRIES = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "ssl",
    "ca-certificates",
    "mime.types",
    "fonts",
    "nsswitch.conf",
    "host.conf",
    "hosts",
    "os-release",
    "java-*",
)
TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@functools.lru_cache(maxsize=1)
def isolation_mode() -> str:
    """The strongest isolation available here (see module docstring)."""
    forced = os.environ.get("LLM_EFF_SANDBOX_ISOLATION")
    if forced:
        if forced not in MODES:
            raise ValueError(f"LLM_EFF_SANDBOX_ISOLATION must be one of {', '.join(MODES)}")
        return forced
    if not sys.platform.startswith("linux"):
        return _weak("rlimits-only", "not Linux")
    if _bwrap_works():
        return "bwrap"
    unshare = shutil.which("unshare")
    if unshare:
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
                return _weak(mode, "bubblewrap unavailable (apt-get install bubblewrap)")
    return _weak("rlimits-only", "no namespaces: network NOT isolated")


def _weak(mode: str, why: str) -> str:
    warnings.warn(
        f"llm-eff sandbox: running untrusted code in the weaker '{mode}' jail ({why}); "
        "see the README's sandbox threat model",
        RuntimeWarning,
        stacklevel=3,
    )
    return mode


def _bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    command = [bwrap, *bwrap_flags([], {}), "/usr/bin/true"]
    if os.geteuid() == 0:  # the outer jail as root, then the inner one as nobody
        command[-1:] = ["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534"]
        command += ["--clear-groups", *inner_bwrap(), "/usr/bin/true"]
    try:
        probe = subprocess.run(command, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def unshare_prefix(mode: str) -> list[str]:
    """The `unshare` command line that starts a jail in `mode` (empty for other modes)."""
    if mode == "namespaces-root":
        return [shutil.which("unshare") or "unshare", *BASE_FLAGS]
    if mode == "namespaces-user":
        return [shutil.which("unshare") or "unshare", "--user", "--map-root-user", *BASE_FLAGS]
    return []


def interpreter_paths() -> list[str]:
    """The directories the jail's Python needs: its prefixes and site-packages."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    paths |= {os.path.realpath(p) for p in paths}
    return sorted(p for p in paths if os.path.isdir(p))


def project_package_dirs() -> list[str]:
    """Installed copies of this project's own packages (hidden inside the jail)."""
    found = set()
    for name in PROJECT_PACKAGES:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            found.add(os.path.realpath(location))
    for sitedir in site.getsitepackages():
        for name in PROJECT_PACKAGES:
            if os.path.isdir(os.path.join(sitedir, name)):
                found.add(os.path.realpath(os.path.join(sitedir, name)))
    return sorted(found)


def bwrap_flags(
    reveal: list[str], sizes: dict[str, int], helpers: dict[str, str] | None = None
) -> list[str]:
    """bubblewrap arguments for the jail's namespaces and minimal filesystem view.

    `reveal`: extra host paths shown read-only; `sizes`: tmpfs byte caps by mount point
    (`/tmp`, `/dev/shm`); `helpers`: host files bound read-only under HELPERS_DIR by name.
    As root this is the outer jail: it keeps only the capabilities the init needs to hand the
    program its own uid (`inner_bwrap` then drops the rest and disables user namespaces); as
    any other user it is the whole jail.
    """
    if os.geteuid() == 0:
        args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
        args += [
            arg for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN") for arg in ("--cap-add", cap)
        ]
    else:
        args = ["--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    args += ["--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for name in TOP_LEVEL:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--perms", "0755", "--dir", "/etc"]
    for pattern in ETC_ENTRIES:
        for entry in sorted(glob.glob(f"/etc/{pattern}")):
            args += ["--ro-bind", entry, entry]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for point, default in (("/tmp", 256 << 20), ("/dev/shm", 64 << 20)):
        args += ["--perms", "1777", "--size", str(sizes.get(point, default)), "--tmpfs", point]
    args += ["--size", str(1 << 20), "--tmpfs", "/run", "--dir", "/var"]
    args += ["--symlink", "../tmp", "/var/tmp"]
    shown = interpreter_paths() + [os.path.realpath(p) for p in reveal if os.path.exists(p)]
    binds = sorted({p for p in shown if p != "/usr" and not p.startswith("/usr/")})
    targets = binds + [f"{HELPERS_DIR}/{name}" for name in helpers or {}]
    parents = {str(parent) for t in targets for parent in Path(t).parents} - {"/"}
    for parent in sorted(parents, key=len):  # bwrap would copy 0700 from /root, say
        if not any(parent == b or parent.startswith(b + "/") for b in binds):
            args += ["--perms", "0755", "--dir", parent]
    for path in sorted(binds, key=len):
        args += ["--ro-bind", path, path]
    for hidden in project_package_dirs():
        if any(hidden == p or hidden.startswith(p + "/") for p in shown + ["/usr"]):
            args += ["--size", "4096", "--tmpfs", hidden]
    for name, host_path in (helpers or {}).items():
        args += ["--ro-bind", host_path, f"{HELPERS_DIR}/{name}"]
    return args


def inner_bwrap() -> list[str]:
    """As root, the jail's init `exec`s the program through this, after dropping to the run's
    uid: a user namespace of its own with no capabilities and no further user namespaces."""
    bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
    flags = ["--unshare-user", "--disable-userns", "--cap-drop", "ALL", "--dev-bind", "/", "/"]
    return [bwrap, *flags, "--die-with-parent", "--"]
