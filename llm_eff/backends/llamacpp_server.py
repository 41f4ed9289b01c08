"""llama.cpp's server in a child process of its own, reached over loopback HTTP.

Why a process and not the in-process server xllamacpp also offers: llama.cpp's CPU threads
synchronise through OpenMP, and in a process where PyTorch has run its own OpenMP team the
runtime counts more threads than cores and stops spinning at barriers, so every decoded token
waits on the kernel. Measured on a 2-core VM: 200 tokens of SmolLM2 took 2.6 s alone and 6.5 s
after one PyTorch matmul in the same process, and with a transformers model decoding beside it
a stream sometimes stalled past 60 s. In its own process llama.cpp keeps its speed whatever the
parent runs; a crash inside ggml ends the child, not the proxy or the eval that started it.

The parent writes one JSON line of settings to the child's stdin and reads back one JSON line
(`{"address": ...}` or `{"error": ...}`); the child then serves until its stdin closes, which
also happens when the parent dies, so no server outlives the process that started it.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError

LOAD_TIMEOUT_S = 600.0  # loading a GGUF of a few GB from a cold disk


class LlamaCppProcess:
    """One llama.cpp server (a GGUF model, `parallel` slots) in a child process."""

    def __init__(
        self,
        gguf: Path,
        alias: str,
        parallel: int,
        context: int,
        threads: int,
        max_tokens: int | None = None,
    ) -> None:
        self.api_key = secrets.token_hex(16)  # the loopback port it opens is not public
        settings = {
            "path": str(gguf),
            "alias": alias,
            "parallel": parallel,
            "context": context,
            "threads": threads,
            "max_tokens": max_tokens,
            "api_key": self.api_key,
        }
        # llama.cpp's own messages, shown if it fails; closed with this object
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "llm_eff.backends.llamacpp_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._finalizer = weakref.finalize(self, _stop, self.process)
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(settings) + "\n").encode())
        self.process.stdin.flush()
        reply = self._first_line(gguf)
        if "error" in reply:
            self.close()
            raise UserError(f"llama.cpp could not load {gguf}: {reply['error']}")
        address = str(reply["address"])  # "http://127.0.0.1:PORT"
        self.base_url = (address if "://" in address else f"http://{address}") + "/v1"
        import httpx

        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=httpx.Timeout(None, connect=10.0),
            limits=httpx.Limits(max_connections=max(parallel, 1) * 2),
        )

    def _first_line(self, gguf: Path) -> dict[str, Any]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                line = self.process.stdout.readline()
                try:
                    reply = json.loads(line) if line else None
                except ValueError:  # something else wrote to its stdout: not our answer
                    reply = None
                if isinstance(reply, dict):
                    return reply
            if self.process.poll() is not None:
                break
        self.close()
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace").strip().splitlines()[-3:]
        why = " / ".join(tail) or "it exited or did not answer in time"
        raise UserError(f"llama.cpp could not load {gguf}: {why}")

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """One chat completion (not streamed): the server's JSON reply, or {"error": ...}."""
        import httpx

        try:
            reply = self._client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.HTTPError as exc:
            return {"error": {"message": f"{type(exc).__name__}: {exc}"}}
        try:
            data = reply.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return {"error": {"message": f"HTTP {reply.status_code}: {reply.text[:200]}"}}
        if reply.status_code != 200 and "error" not in data:
            data = {"error": {"message": f"HTTP {reply.status_code}"}}
        return data

    def busy(self) -> bool:
        """Whether any of the server's slots is decoding (its `/slots` endpoint)."""
        reply = self._client.get(self.base_url.removesuffix("/v1") + "/slots", timeout=5)
        reply.raise_for_status()
        return any(slot.get("is_processing") for slot in reply.json())

    def peak_rss_bytes(self) -> int:
        """The server process's peak resident memory so far (0 where /proc cannot tell)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def close(self) -> None:
        """Stop the server: close its stdin, then kill it if it has not exited in 5 s."""
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
        self._finalizer()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()


def _serve() -> None:
    """The child: start the server from the settings line, answer its address, wait for EOF."""
    settings = json.loads(sys.stdin.buffer.readline())
    out = sys.stdout
    try:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = settings["path"]
        params.n_parallel = settings["parallel"]
        params.n_ctx = settings["context"] * settings["parallel"]
        params.cpuparams.n_threads = settings["threads"]
        params.cpuparams_batch.n_threads = settings["threads"]
        if settings["max_tokens"]:  # the server's own cap on every request's output
            params.n_predict = settings["max_tokens"]
        params.api_keys = [settings["api_key"]]
        params.model_alias = {settings["alias"]}  # answers name the model, not the file's path
        params.ui = False
        params.verbosity = -1
        server = xllamacpp.Server(params)
    except Exception as exc:  # noqa: BLE001 - llama.cpp reports a bad file this way
        out.write(json.dumps({"error": str(exc) or type(exc).__name__}) + "\n")
        out.flush()
        os._exit(1)
    out.write(json.dumps({"address": str(server.listening_address)}) + "\n")
    out.flush()
    sys.stdin.buffer.read()  # until the parent closes stdin or dies
    os._exit(0)  # llama.cpp's threads are not joined: the process just ends


if __name__ == "__main__":
    _serve()
