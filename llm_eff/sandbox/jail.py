"""In-namespace entry point of the sandbox (stdlib only, run as `python -I jail.py CONFIG`).

It runs as pid 1 of fresh mount, network, pid, IPC and UTS namespaces made by `unshare`, does
what needs privilege, then drops it and `exec`s the untrusted command:

1. mounts are made private; fresh tmpfs are laid over /tmp, /var/tmp and /dev/shm, so nothing
   the program writes outside its work dir reaches the host;
2. home directories (e.g. /root) are hidden under an empty tmpfs; the paths under any of these
   that the program needs to run (the Python prefix, the installed packages, a JDK) are bound
   back, read-only;
3. the work dir is bound at /tmp/work;
4. it forks the command; the child sets rlimits (CPU, address space, file size, processes,
   open files) and, where the jail started as real root, switches to an unprivileged uid/gid
   with no groups, so the process limit holds and host files are protected by permissions;
5. it waits for the command, writes its exit status to a pipe the host holds, and exits.

When pid 1 exits, the kernel kills every process left in its pid namespace.
"""

from __future__ import annotations

import ctypes
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
    src = f"/proc/self/fd/{fd}"
    _mount(src, target, None, MS_BIND | MS_REC, None)
    if readonly:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None)


def _setup_filesystem(cfg: dict) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    keep = [(os.open(p, os.O_PATH), p) for p in cfg["reveal"] if os.path.exists(p)]
    work_fd = os.open(cfg["work"], os.O_PATH)
    for hidden in cfg["hide"]:
        if os.path.isdir(hidden):
            _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for scratch in cfg["scratch"]:
        if os.path.isdir(scratch):
            size = cfg["limits"]["file_mb"] * 4
            _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}m,mode=1777")
    for fd, path in keep:
        _bind(fd, path, readonly=True)
    _bind(work_fd, "/tmp/work", readonly=False)
    for fd, _ in keep:
        os.close(fd)
    os.close(work_fd)


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
        resource.setrlimit(kind, (value, value))


def _run_child(cfg: dict, command: list[str]) -> None:
    """In the forked child: limits, drop privileges, exec. Never returns."""
    try:
        _set_limits(cfg["limits"])
        if cfg.get("uid") is not None:
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
        os.execve(command[0], command, cfg["env"])
    except BaseException as exc:  # noqa: BLE001 - report and leave without running host code
        os.write(2, f"sandbox: cannot start {command[0]}: {exc}\n".encode())
    os._exit(EXEC_FAILED)


def main() -> None:
    """Set up the jail described by argv[1], run argv[3:] as a child, report its status.

    argv[2] is the file descriptor on which the status is written as JSON. When the command
    exits, this process exits too; as pid 1 of the namespace that kills whatever it left.
    """
    cfg = json.loads(sys.argv[1])
    status_fd = int(sys.argv[2])
    command = sys.argv[3:]
    if cfg["namespaces"]:
        _setup_filesystem(cfg)
        os.chdir("/tmp/work")
    else:
        os.chdir(cfg["work"])
    child = os.fork()
    if child == 0:
        os.close(status_fd)
        _run_child(cfg, command)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            status = 0
            break
        if pid == child:
            break
    code = os.waitstatus_to_exitcode(status)
    report = {
        "exit": code,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "exec_failed": code == EXEC_FAILED,
    }
    os.write(status_fd, json.dumps(report).encode())
    os.close(status_fd)
    if not cfg["namespaces"]:
        os.killpg(0, 9)
    os._exit(0)


if __name__ == "__main__":
    main()
