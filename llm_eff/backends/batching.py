"""`BatchingBackend`: merge concurrent `generate` calls from several threads into batches.

Multi-call pipelines (text-to-SQL, agents) are easiest to write one question at a time, with
each step depending on the last. Run such a pipeline for many questions on a thread pool over
one `BatchingBackend`, and the calls that are waiting at the same moment with the same decoding
settings go to the wrapped backend as one batch, as a serving engine's continuous batching would,
so a local model generates for all questions at once while each question's logic stays linear.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from llm_eff.backends.base import Backend, Chat, Completion, GenerationConfig

T = TypeVar("T")
R = TypeVar("R")


class BatchingBackend:
    """A `Backend` that batches concurrent calls to `backend` (up to `max_prompts` chats)."""

    def __init__(self, backend: Backend, max_prompts: int = 8, wait_s: float = 0.005) -> None:
        self.backend, self.max_prompts, self.wait_s = backend, max_prompts, wait_s
        self.name = getattr(backend, "name", "batched")
        self._queue: list[tuple[list[Chat], GenerationConfig, Future]] = []
        self._ready = threading.Condition()
        self._busy = False

    def generate(self, chats: list[Chat], config: GenerationConfig) -> list[list[Completion]]:
        """Queue the call; the first idle caller drains the queue in batches for everyone."""
        future: Future = Future()
        with self._ready:
            self._queue.append((chats, config, future))
            self._ready.notify_all()
        while not future.done():
            with self._ready:
                if self._busy or not self._queue:
                    self._ready.wait(timeout=0.05)
                    continue
                self._busy = True
            try:
                self._drain()
            finally:
                with self._ready:
                    self._busy = False
                    self._ready.notify_all()
        return future.result()

    def _drain(self) -> None:
        time.sleep(self.wait_s)  # let the other threads' calls arrive
        while True:
            with self._ready:
                if not self._queue:
                    return
                config = self._queue[0][1]
                batch, rest, size = [], [], 0
                for item in self._queue:
                    if item[1] == config and size + len(item[0]) <= max(self.max_prompts, 1):
                        batch.append(item)
                        size += len(item[0])
                    else:
                        rest.append(item)
                if not batch:  # one call larger than max_prompts: run it alone
                    batch, rest = [self._queue[0]], self._queue[1:]
                self._queue = rest
            chats = [c for item in batch for c in item[0]]
            try:
                results = self.backend.generate(chats, config)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, _, future in batch:
                    future.set_exception(exc)
                continue
            start = 0
            for item_chats, _, future in batch:
                future.set_result(results[start : start + len(item_chats)])
                start += len(item_chats)


def map_batched(
    work: Callable[[T, dict[str, Backend]], R],
    items: list[T],
    backends: dict[str, Backend],
    calls_per_item: int = 1,
) -> list[R]:
    """`work(item, backends)` for every item, each on its own thread over `BatchingBackend`s
    of `backends` (one per distinct backend, shared by the roles that use it), so the items'
    steps stay sequential while their concurrent calls are generated together; one item runs
    on the plain backends."""
    if len(items) <= 1:
        return [work(item, backends) for item in items]
    wrapped = {
        id(b): BatchingBackend(b, max_prompts=len(items) * calls_per_item)
        for b in backends.values()
    }
    shared = {role: wrapped[id(b)] for role, b in backends.items()}
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(lambda item: work(item, shared), items))
