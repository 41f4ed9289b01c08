"""In-jail init of the sandbox (stdlib only, run as `python -I -S jail.py CONFIG_FD STATUS_FD`).

It reads its configuration from CONFIG_FD (a memfd the supervisor wrote) and closes it, then:

1. in the `namespaces-*` fallback modes only (bubblewrap does this itself in `bwrap` mode):
   makes mounts private, lays fresh tmpfs over the scratch dirs, hides home directories,
   binds back read-only what the interpreter needs and binds the work dir at /tmp/work;
2. writes the program's files into the work dir;
3. makes itself non-dumpable (so the program, running under the same uid, cannot ptrace it)
   and forks the command; the child sets rlimits (CPU, address space, file size, processes,
   open files), drops to the run's uid where the jail started as real root, and `exec`s;
4. waits for the command, then reads back the files the supervisor asked for (no links,
   size-capped) and writes one JSON report (exit status, files) to STATUS_FD, which the
   command never holds.

When this process exits, the jail ends: bubblewrap's pid 1 (or this process as pid 1 under
`unshare`) takes every process left in the pid namespace with it.
"""

from __future__ import annotations

import base64
import ctypes
import glob
import json
import os
import resource
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_DUMPABLE = 4
COLLECT_CAP = 4 * 1024 * 1024

EXEC_FAILED = 212  # exit status of a child that could not exec the command
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None):
    rc = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} -> {target}: {os.strerror(err)}")


def _bind(fd: int, target: str, readonly: bool) -> None:
    os.makedirs(target, exist_ok=True)
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC, None)
    if readonly:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None)


def _setup_unshare_filesystem(cfg: dict) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    keep = [(os.open(p, os.O_PATH), p) for p in cfg["reveal"] if os.path.exists(p)]
    work_fd = os.open(cfg["work"], os.O_PATH)
    for hidden in cfg["hide"]:
        if os.path.isdir(hidden):
            _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for scratch in cfg["scratch"]:
        if os.path.isdir(scratch):
            size = cfg["limits"]["disk_mb"]
            _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}m,mode=1777")
    for fd, path in keep:
        _bind(fd, path, readonly=True)
    _bind(work_fd, "/tmp/work", readonly=False)
    for fd, _ in keep:
        os.close(fd)
    os.close(work_fd)


def _write_files(files: dict[str, str], uid: int | None) -> None:
    for name, encoded in files.items():
        path = os.path.normpath(os.path.join(os.getcwd(), name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(encoded))
        if uid is not None:
            os.chown(path, uid, uid)


def _set_limits(limits: dict) -> None:
    mb = 1024 * 1024
    pairs = [
        (resource.RLIMIT_CPU, limits["cpu_s"]),
        (resource.RLIMIT_AS, limits["memory_mb"] * mb),
        (resource.RLIMIT_FSIZE, limits["file_mb"] * mb),
        (resource.RLIMIT_NPROC, limits["nproc"]),
        (resource.RLIMIT_NOFILE, limits["nofile"]),
        (resource.RLIMIT_CORE, 0),
    ]
    for kind, value in pairs:
        if value is not None:  # nproc is None where the run has no uid of its own
            resource.setrlimit(kind, (value, value))


def _run_child(cfg: dict, command: list[str]) -> None:
    """In the forked child: limits, drop privileges, exec. Never returns."""
    try:
        _set_limits(cfg["limits"])
        if cfg.get("uid") is not None:
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
        if not os.access(command[0], os.X_OK):
            raise FileNotFoundError(f"{command[0]}: no such executable")
        command = [*cfg.get("inner", []), *command]
        os.execve(command[0], command, cfg["env"])
    except BaseException as exc:  # noqa: BLE001 - report and leave without running host code
        os.write(2, f"sandbox: cannot start {command[0]}: {exc}\n".encode())
    os._exit(EXEC_FAILED)


def _collect(patterns: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    budget = COLLECT_CAP
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if budget <= 0 or os.path.islink(path) or not os.path.isfile(path):
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read(budget)
            budget -= len(data)
            found[path] = base64.b64encode(data).decode()
    return found


def _read_config(fd: int) -> dict:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return json.loads(b"".join(chunks))


def main() -> None:
    """Set up the jail described on argv[1], run the command, report on argv[2]."""
    cfg = _read_config(int(sys.argv[1]))
    status_fd = int(sys.argv[2])
    uid = cfg.get("uid")
    if cfg["mode"].startswith("namespaces"):
        _setup_unshare_filesystem(cfg)
        os.chdir("/tmp/work")
    elif cfg["mode"] == "bwrap":
        os.makedirs("/tmp/work", exist_ok=True)
        os.chdir("/tmp/work")
    else:
        os.chdir(cfg["work"])
    _write_files(cfg["files"], uid)
    if uid is not None:
        os.chown(".", uid, uid)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    secret_r, secret_w = os.pipe()
    os.set_inheritable(secret_r, True)
    command = [str(secret_r) if arg == "{secret_fd}" else arg for arg in cfg["command"]]
    child = os.fork()
    if child == 0:
        os.close(status_fd)
        os.close(secret_w)
        _run_child(cfg, command)
    os.close(secret_r)
    # the secret goes down a pipe, not a file: once the helper has read it, no copy is left
    # for the program to reopen (as it could a file through /proc/PID/fd)
    data = base64.b64decode(cfg.get("secret") or "")
    try:
        while data:
            data = data[os.write(secret_w, data[: 1 << 16]) :]
    except OSError:
        pass
    os.close(secret_w)
    while True:
        try:
            pid, status = os.waitpid(child, 0)
        except ChildProcessError:
            status = 0
            break
        if pid == child:
            break
    code = os.waitstatus_to_exitcode(status)
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if cfg.get("inner") and sig is None and code > 128:
        sig = code - 128  # the inner bubblewrap exits 128 + N for a command killed by signal N
    report = {
        "exit": code,
        "signal": sig,
        "exec_failed": code == EXEC_FAILED,
        "files": _collect(cfg["collect"]),
    }
    data = json.dumps(report).encode()
    while data:
        data = data[os.write(status_fd, data) :]
    os.close(status_fd)
    if cfg["mode"] == "rlimits-only":
        os.killpg(0, 9)
    os._exit(0)


if __name__ == "__main__":
    main()
