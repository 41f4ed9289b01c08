"""The proxy's response cache: answers to repeated requests served without an upstream call.

A request's cache key is a SHA-256 of its normalised form: the requested model (a router
with its threshold, or an upstream), the `route` override and cost cap, the messages, and
every decoding setting, so a changed temperature, seed or `max_tokens` misses. Fields that do
not change the answer (`stream`, `stream_options`, `user`, `metadata`, `store`) are left out,
so a streamed request can be answered from a JSON one and the other way round. JSON key order
and a content list of plain text parts versus a string do not matter; the text itself does.

`mode: semantic` also answers a request whose everything-but-the-last-message is identical to
a cached one and whose last message means the same: the cosine of the two MiniLM embeddings
(`routers.embedding`) at or above `semantic_threshold`, with the same numbers in the same
order (an embedding barely tells "2 + 3" from "2 + 4"). Only temperature-0 requests take
semantic hits unless `semantic_any_temperature` is set, and only last messages short enough
for the encoder's window (`SEMANTIC_MAX_CHARS`), so a truncated embedding never matches.

Entries live in a table of the proxy's database (SQLite, or PostgreSQL shared by replicas,
which pick up each other's entries every few seconds), so they survive a restart; the
in-memory index holds only hashes, expiry times and vectors, so a miss costs one hash and a
dict lookup. `scope: key` keeps each caller's entries apart (a virtual key, the admin key, an
unregistered bearer token, or anonymous); `scope: shared` pools them. Only complete HTTP 200
answers of the first upstream tried are stored (never a fallback's). A hit is billed $0 and
logged with `cache` = exact|semantic and the dollars the original answer cost (`saved`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from routers.embedding import valid_unicode
from routers.proxy.config import CacheConfig
from routers.proxy.store import Database, hash_key

log = logging.getLogger("llm_eff.proxy")
HEADER = b"x-llm-eff-cache"
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store"})
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
SEMANTIC_MAX_CHARS = 1000  # MiniLM reads 256 word pieces; longer texts are cut, never compared
SCHEMA = """CREATE TABLE IF NOT EXISTS response_cache (
    scope TEXT NOT NULL, hash TEXT NOT NULL, rest TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL,
    upstream TEXT, cost DOUBLE PRECISION, embedding TEXT, payload TEXT NOT NULL,
    PRIMARY KEY (scope, hash))"""


@dataclass
class CacheKey:
    """A request's cache identity: the exact hash, the hash of everything but the last
    message's text (semantic candidates must share it; '' when no semantic match is tried)
    and that text (None: no semantic),
    with the text's embedding once a lookup has computed it (a store then reuses it)."""

    scope: str
    exact: str
    rest: str
    text: str | None
    vector: np.ndarray | None = None


@dataclass
class Hit:
    """A cached answer: the completion JSON, the upstream that wrote it and what it cost."""

    kind: str  # exact | semantic
    payload: bytes
    upstream: str
    cost: float
    similarity: float = 1.0


def _content(content: Any) -> Any:
    """A message's content with a list of plain text parts as the string they make."""
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and set(p) == {"type", "text"}
        for p in content
    ):
        return "".join(str(p["text"]) for p in content)
    return content


def _digest(value: Any) -> str:
    # ASCII escapes: a lone surrogate (valid JSON, not encodable as UTF-8) hashes like the rest
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_key(scope: str, body: dict[str, Any], semantic: bool, any_temperature: bool) -> CacheKey:
    """The cache identity of a validated chat request within `scope`."""
    fields = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    if fields.get("n") == 1:
        del fields["n"]
    messages = [
        {**m, "content": _content(m.get("content"))} if isinstance(m, dict) else m
        for m in body.get("messages") or []
    ]
    fields["messages"] = messages
    exact = _digest(fields)
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    text = last.get("content")
    usable = (
        semantic
        and isinstance(text, str)
        and 0 < len(text) <= SEMANTIC_MAX_CHARS
        and valid_unicode(text)  # a lone surrogate would be embedded as U+FFFD
        and (any_temperature or body.get("temperature") == 0)
    )
    if not usable:  # exact mode, or no text to compare: no semantic group (and no 2nd hash)
        return CacheKey(scope, exact, "", None)
    # semantic candidates share everything else, and the numbers of the text in order: an
    # embedding barely tells "2 + 3" from "2 + 4", so a changed number is never a paraphrase
    rest = _digest(
        {
            **fields,
            "messages": [*messages[:-1], {**last, "content": None}],
            "numbers": NUMBER.findall(text),
        }
    )
    return CacheKey(scope, exact, rest, text)


def scope_of(config: CacheConfig, key_id: str | None, token: str, admin: bool) -> str:
    """The cache scope of a caller: one pool when shared, else one per caller."""
    if config.scope == "shared":
        return "shared"
    if key_id is not None:
        return f"key:{key_id}"
    if admin:
        return "admin"
    return f"token:{hash_key(token)[:32]}" if token else "anonymous"


def _vector_text(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()


def _vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float32)


def _embed(text: str) -> np.ndarray:
    from routers.embedding import embed

    return embed([text])[0].astype(np.float32)


class _Vectors:
    """The embeddings of one (scope, rest) group in a growing matrix; a forgotten entry's row
    is zeroed (similarity 0, below any threshold) until the dead rows outnumber the live ones,
    when the live rows are packed, so evictions never grow the matrix without bound."""

    def __init__(self) -> None:
        self.digests: list[str | None] = []
        self.rows: dict[str, int] = {}
        self.matrix = np.zeros((0, 0), dtype=np.float32)

    def add(self, digest: str, vector: np.ndarray) -> None:
        row = self.rows.get(digest)
        if row is None:
            row = self.rows[digest] = len(self.digests)
            self.digests.append(digest)
            if row >= len(self.matrix):
                grown = np.zeros((max(8, 2 * len(self.matrix)), len(vector)), dtype=np.float32)
                if len(self.matrix):
                    grown[: len(self.matrix)] = self.matrix
                self.matrix = grown
        self.matrix[row] = vector

    def remove(self, digest: str) -> None:
        row = self.rows.pop(digest, None)
        if row is None:
            return
        self.matrix[row] = 0.0
        self.digests[row] = None
        if len(self.digests) > 2 * len(self.rows) + 8:
            live = [d for d in self.digests if d is not None]
            self.matrix = self.matrix[[self.rows[d] for d in live]]
            self.digests = list(live)
            self.rows = {d: i for i, d in enumerate(live)}

    def best(self, vector: np.ndarray) -> tuple[str | None, float]:
        if not self.rows:
            return None, 0.0
        similarity = self.matrix[: len(self.digests)] @ vector
        row = int(np.argmax(similarity))
        return self.digests[row], float(similarity[row])


class ResponseCache:
    """Cached answers in a database table, indexed in memory (see the module docstring)."""

    def __init__(self, config: CacheConfig, db: Database) -> None:
        self.config = config
        self.own_db = config.database_url is not None
        self.db = Database(config.database_url) if self.own_db else db
        self.db.execute(SCHEMA)
        self.index: OrderedDict[tuple[str, str], float] = OrderedDict()  # -> expires, by age
        self.vectors: dict[tuple[str, str], _Vectors] = {}  # (scope, rest) -> embeddings
        self.groups: dict[str, tuple[str, str]] = {}  # exact hash -> its vector group
        self.lock = threading.Lock()  # the index is changed by worker threads too
        self.held: dict[tuple[str, str], Hit] = {}  # answers served, not yet written
        self._seen = 0.0  # newest `created` loaded
        self.refresh()
        if self.semantic:
            _embed("warm-up")  # load the encoder now, not on the first request

    @property
    def semantic(self) -> bool:
        """Whether semantic hits are on."""
        return self.config.mode == "semantic"

    def key(self, scope: str, body: dict[str, Any]) -> CacheKey:
        """The cache identity of a request."""
        return cache_key(scope, body, self.semantic, self.config.semantic_any_temperature)

    # -- index -------------------------------------------------------------------------
    def refresh(self) -> int:
        """Load entries written since the last refresh (by this process or a replica) and
        drop expired ones; returns how many were loaded (blocking: run it off the loop)."""
        now = time.time()
        rows = self.db.execute(
            "SELECT scope, hash, rest, created, expires, embedding FROM response_cache "
            "WHERE created > ? AND expires > ? ORDER BY created",
            (self._seen - 1.0, now),  # a second's overlap: clocks of replicas differ a little
        )
        for scope, digest, rest, created, expires, embedding in rows:
            self._remember(scope, digest, rest, expires, embedding)
            self._seen = max(self._seen, created)
        self.purge(now)
        return len(rows)

    def _remember(self, scope: str, digest: str, rest: str, expires: float, embedding: Any) -> None:
        with self.lock:
            self.index[(scope, digest)] = expires
            self.index.move_to_end((scope, digest))
            if embedding and self.semantic:
                self.vectors.setdefault((scope, rest), _Vectors()).add(digest, _vector(embedding))
                self.groups[digest] = (scope, rest)

    def _forget(self, scope: str, digest: str) -> None:
        with self.lock:
            self.index.pop((scope, digest), None)
            group = self.groups.pop(digest, None)
            if group is not None and group in self.vectors:
                self.vectors[group].remove(digest)

    def purge(self, now: float | None = None, expired: bool = True) -> int:
        """Drop expired entries (a scan: `refresh` does it every few seconds) and the oldest
        past `max_entries` (the index is in insertion order); returns how many."""
        now = time.time() if now is None else now
        with self.lock:
            dropped = [k for k, until in self.index.items() if until <= now] if expired else []
            excess = len(self.index) - len(dropped) - self.config.max_entries
            if excess > 0:
                gone = set(dropped)
                oldest = (k for k in self.index if k not in gone)
                dropped += [next(oldest) for _ in range(excess)]
        for scope, digest in dropped:
            self._forget(scope, digest)
        if dropped:
            with self.db.transaction() as cur:
                cur.executemany(
                    self.db._sql("DELETE FROM response_cache WHERE scope = ? AND hash = ?"),
                    dropped,
                )
            self.db.execute("DELETE FROM response_cache WHERE expires <= ?", (now,))
        return len(dropped)

    # -- lookups -----------------------------------------------------------------------
    async def lookup(self, key: CacheKey) -> Hit | None:
        """The cached answer for `key`: exact, else (semantic mode) the most similar one."""
        now = time.time()
        held = self.held.get((key.scope, key.exact))
        if held is not None:
            return Hit("exact", held.payload, held.upstream, held.cost)
        expires = self.index.get((key.scope, key.exact))
        if expires is not None and expires > now:
            hit = await self._load(key.scope, key.exact, "exact")
            if hit is not None:
                return hit
        if key.text is None:
            return None
        group = self.vectors.get((key.scope, key.rest))
        if group is None or not group.rows:
            return None
        vector = key.vector = await asyncio.to_thread(_embed, key.text)
        with self.lock:
            digest, score = group.best(vector)
        if digest is None or score < self.config.semantic_threshold:
            return None
        if self.index.get((key.scope, digest), 0.0) <= now:
            return None
        hit = await self._load(key.scope, digest, "semantic")
        if hit is not None:
            hit.similarity = score
        return hit

    async def _load(self, scope: str, digest: str, kind: str) -> Hit | None:
        sql = "SELECT payload, upstream, cost FROM response_cache WHERE scope = ? AND hash = ?"
        if self.db.is_sqlite:  # a primary-key read on a local file: microseconds
            rows = self.db.execute(sql, (scope, digest))
        else:
            rows = await asyncio.to_thread(self.db.execute, sql, (scope, digest))
        if not rows:
            self._forget(scope, digest)  # purged by a replica
            return None
        payload, upstream, cost = rows[0]
        return Hit(kind, payload.encode(), upstream or "", float(cost or 0.0))

    # -- writes ------------------------------------------------------------------------
    def hold(self, key: CacheKey, payload: bytes, upstream: str) -> None:
        """Serve `payload` for exact repeats of `key` at once, before `store` has written it
        (its cost is not known yet: a hit on it saves what `store` is then told)."""
        self.held[(key.scope, key.exact)] = Hit("exact", payload, upstream, 0.0)

    async def store(self, key: CacheKey, payload: bytes, upstream: str, cost: float) -> None:
        """Keep an answer (skipped past `max_entry_bytes`), off the event loop."""
        held = self.held.get((key.scope, key.exact))
        if held is not None:
            held.cost = cost
        try:
            if len(payload) <= self.config.max_entry_bytes:
                await asyncio.to_thread(self._store, key, payload, upstream, cost)
        finally:
            self.held.pop((key.scope, key.exact), None)

    def _store(self, key: CacheKey, payload: bytes, upstream: str, cost: float) -> None:
        now = time.time()
        expires = now + self.config.ttl_s
        embedding = None
        if key.text is not None:
            embedding = _vector_text(key.vector if key.vector is not None else _embed(key.text))
        self.db.execute(
            "INSERT INTO response_cache (scope, hash, rest, created, expires, upstream, cost, "
            "embedding, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (scope, hash) DO UPDATE SET created = excluded.created, "
            "expires = excluded.expires, upstream = excluded.upstream, cost = excluded.cost, "
            "embedding = excluded.embedding, payload = excluded.payload",
            (
                key.scope,
                key.exact,
                key.rest,
                now,
                expires,
                upstream,
                cost,
                embedding,
                payload.decode(),
            ),
        )
        self._remember(key.scope, key.exact, key.rest, expires, embedding)
        if len(self.index) > self.config.max_entries:
            self.purge(now, expired=False)

    def close(self) -> None:
        """Close the cache's own database, if it has one."""
        if self.own_db:
            self.db.close()
