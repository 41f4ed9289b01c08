"""The proxy's database: virtual keys, budgets and the spend log, in SQLite (WAL) or PostgreSQL.

Keys are stored as SHA-256 hashes (the plaintext is shown once, at creation) and compared with
`hmac.compare_digest`. Rows of keys without a budget are queued by the request handlers and
written by a background thread every `flush_interval_s`, each batch in one transaction, so a
crash loses at most the rows of the last interval and never leaves a partial row. Keys with a
budget go through `routers.proxy.ledger.BudgetLedger` instead: every reservation and its
settlement (with the spend row) is its own committed transaction, so a budget holds across
crashes and replicas.
"""

from __future__ import annotations

import hashlib
import hmac
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError

KEY_PREFIX = "sk-llmeff-"
NANO = 1_000_000_000  # the ledger counts integer nano-dollars, so sums never drift
SPEND_COLUMNS = (
    "ts",
    "key_id",
    "requested_model",
    "upstream",
    "router",
    "score",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_ms",
    "overhead_ms",
    "status",
    "error",
    "usage_source",
    "fallback_from",
    "request_id",
    "cache",
    "saved",
)
# columns added after the first release: (name, SQL type), added to older databases at start
ADDED_SPEND_COLUMNS = (
    ("usage_source", "TEXT"),
    ("fallback_from", "TEXT"),
    ("request_id", "TEXT"),
    ("cache", "TEXT"),  # exact | semantic: answered from the response cache
    ("saved", "DOUBLE PRECISION"),  # a cache hit: what the original answer cost
)
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
        budget_usd DOUBLE PRECISION, rpm INTEGER, tpm INTEGER,
        created REAL NOT NULL, revoked REAL)""",
    """CREATE TABLE IF NOT EXISTS spend_log (
        ts DOUBLE PRECISION NOT NULL, key_id TEXT, requested_model TEXT, upstream TEXT,
        router TEXT, score DOUBLE PRECISION, prompt_tokens INTEGER, completion_tokens INTEGER,
        cost DOUBLE PRECISION, latency_ms DOUBLE PRECISION, overhead_ms DOUBLE PRECISION,
        status INTEGER, error TEXT)""",
    "CREATE INDEX IF NOT EXISTS spend_key_time ON spend_log (key_id, ts)",
    """CREATE TABLE IF NOT EXISTS key_budgets (
        key_id TEXT PRIMARY KEY, spent BIGINT NOT NULL,
        reserved BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS reservations (
        id TEXT PRIMARY KEY, key_id TEXT NOT NULL, amount BIGINT NOT NULL,
        expires DOUBLE PRECISION NOT NULL, swept INTEGER NOT NULL DEFAULT 0)""",
]


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key (what the database stores)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class KeyRecord:
    """A virtual key as stored (no plaintext)."""

    id: str
    name: str
    key_hash: str
    budget_usd: float | None
    rpm: int | None
    tpm: int | None
    created: float
    revoked: float | None


class Database:
    """A thin DB-API wrapper for SQLite or PostgreSQL with '?' placeholders."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg
            except ImportError:
                raise UserError(
                    "PostgreSQL needs the extra: pip install 'llm-eff[postgres]'"
                ) from None
            try:
                self.conn = psycopg.connect(url, autocommit=False)
            except psycopg.Error as exc:
                raise UserError(f"cannot connect to {url.split('@')[-1]}: {exc}") from None
            self.placeholder = "%s"
        else:
            path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a committed transaction survives the process being killed (only
            # an OS crash or power loss can lose the last ones)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.placeholder = "?"
        self.lock = threading.RLock()
        for statement in SCHEMA:
            self.execute(statement)
        self._add_columns()

    @property
    def is_sqlite(self) -> bool:
        """Whether this is SQLite (else PostgreSQL)."""
        return self.placeholder == "?"

    def _add_columns(self) -> None:
        if self.is_sqlite:
            have = {row[1] for row in self.execute("PRAGMA table_info(spend_log)")}
            for name, kind in ADDED_SPEND_COLUMNS:
                if name not in have:
                    self.execute(f"ALTER TABLE spend_log ADD COLUMN {name} {kind}")
        else:
            for name, kind in ADDED_SPEND_COLUMNS:
                self.execute(f"ALTER TABLE spend_log ADD COLUMN IF NOT EXISTS {name} {kind}")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one write transaction: committed on exit, rolled back on error.
        SQLite takes its write lock at the start (`BEGIN IMMEDIATE`), so concurrent
        processes on one file queue instead of failing on a lock upgrade."""
        with self.lock:
            cur = self.conn.cursor()
            if self.is_sqlite:
                cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                self.conn.rollback() if not self.is_sqlite else cur.execute("ROLLBACK")
                raise
            self.conn.commit() if not self.is_sqlite else cur.execute("COMMIT")

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder) if self.placeholder != "?" else sql

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement in its own transaction; rows for queries."""
        with self.transaction() as cur:
            cur.execute(self._sql(sql), params)
            return cur.fetchall() if cur.description else []

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        """Insert many rows in one transaction (all or none)."""
        with self.transaction() as cur:
            cur.executemany(self._sql(sql), rows)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()


class KeyStore:
    """Create, list, revoke and verify virtual keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        name: str,
        budget_usd: float | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key: (plaintext shown once, stored record)."""
        plaintext = KEY_PREFIX + secrets.token_urlsafe(24)
        record = KeyRecord(
            secrets.token_hex(6), name, hash_key(plaintext), budget_usd, rpm, tpm, time.time(), None
        )
        with self.db.transaction() as cur:
            cur.execute(
                self.db._sql(
                    "INSERT INTO api_keys (id, name, key_hash, budget_usd, rpm, tpm, created, "
                    "revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (record.id, name, record.key_hash, budget_usd, rpm, tpm, record.created, None),
            )
            if budget_usd is not None:
                cur.execute(
                    self.db._sql(
                        "INSERT INTO key_budgets (key_id, spent, reserved) VALUES (?, 0, 0)"
                    ),
                    (record.id,),
                )
        return plaintext, record

    def all(self) -> list[KeyRecord]:
        """Every key, revoked ones included."""
        rows = self.db.execute(
            "SELECT id, name, key_hash, budget_usd, rpm, tpm, created, revoked FROM api_keys "
            "ORDER BY created"
        )
        return [KeyRecord(*row) for row in rows]

    def spent_usd(self, key_id: str) -> float | None:
        """The durable spend of a budgeted key (its ledger), None for a key without one."""
        rows = self.db.execute("SELECT spent FROM key_budgets WHERE key_id = ?", (key_id,))
        return rows[0][0] / NANO if rows else None

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False if there is no such active key."""
        found = self.db.execute(
            "SELECT id FROM api_keys WHERE id = ? AND revoked IS NULL", (key_id,)
        )
        if not found:
            return False
        self.db.execute("UPDATE api_keys SET revoked = ? WHERE id = ?", (time.time(), key_id))
        return True

    def spent(self) -> dict[str, float]:
        """Dollars spent per key id, from the spend log."""
        rows = self.db.execute(
            "SELECT key_id, SUM(cost) FROM spend_log WHERE key_id IS NOT NULL GROUP BY key_id"
        )
        return {k: float(v or 0.0) for k, v in rows if k}


def find_key(records: dict[str, KeyRecord], presented: str) -> KeyRecord | None:
    """The active record matching a presented key (hash lookup, constant-time compare)."""
    digest = hash_key(presented)
    record = records.get(digest)
    if record is None or not hmac.compare_digest(record.key_hash, digest):
        return None
    return None if record.revoked else record


def spend_row(**fields: Any) -> tuple:
    """A spend row tuple (SPEND_COLUMNS order) from named fields; the rest are NULL."""
    return tuple(fields.get(c) for c in SPEND_COLUMNS)


def insert_spend_rows(cur: Any, db: Database, rows: list[tuple]) -> None:
    """Insert spend rows (tuples in SPEND_COLUMNS order) with the open cursor."""
    if rows:
        cols = ", ".join(SPEND_COLUMNS)
        marks = ", ".join([db.placeholder] * len(SPEND_COLUMNS))
        cur.executemany(f"INSERT INTO spend_log ({cols}) VALUES ({marks})", rows)


class SpendLog:
    """Batched, crash-safe spend rows: `add` queues, a thread flushes every interval."""

    def __init__(self, db: Database, flush_interval_s: float = 0.5) -> None:
        self.db = db
        self.interval = flush_interval_s
        self.queue: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spend-log", daemon=True)
        self._thread.start()

    def add(self, row: dict[str, Any]) -> None:
        """Queue one request's row (never blocks on the database)."""
        self.queue.put(tuple(row.get(c) for c in SPEND_COLUMNS))

    def flush(self) -> int:
        """Write everything queued in one transaction; returns rows written."""
        rows = []
        while True:
            try:
                rows.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if rows:
            with self.db.transaction() as cur:
                insert_spend_rows(cur, self.db, rows)
        return len(rows)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        """Stop the thread and flush what is left (graceful shutdown)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()


def spend_attempts(url: str) -> list[Any]:
    """The spend log as `Attempt`s (benchmark 'proxy', system = upstream, passed = HTTP 200),
    so `llm-eff report` can build the same cost report for a proxy period as for an eval."""
    from llm_eff.core.types import Attempt, Cost, Usage

    db = Database(url)
    try:
        rows = db.execute(
            "SELECT ts, key_id, upstream, router, prompt_tokens, completion_tokens, cost, "
            "latency_ms, status, error FROM spend_log ORDER BY ts"
        )
    finally:
        db.close()
    attempts = []
    for i, (ts, key_id, upstream, router, p, c, cost, latency_ms, status, error) in enumerate(rows):
        system = f"{router}->{upstream}" if router else (upstream or "none")
        attempts.append(
            Attempt(
                task_id=f"request-{i}",
                system=system,
                system_hash=system,
                benchmark="proxy",
                passed=status == 200,
                score=1.0 if status == 200 else 0.0,
                usage=Usage(
                    prompt_tokens=p or 0,
                    completion_tokens=c or 0,
                    latency_s=(latency_ms or 0) / 1000,
                    model=upstream or "",
                ),
                cost=Cost(float(cost or 0.0), "proxy-spend-log"),
                error=error,
                details={
                    "reason": "served" if status == 200 else f"http_{status}",
                    "category": key_id or "anonymous",
                    "ts": ts,
                },
            )
        )
    return attempts
