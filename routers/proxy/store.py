"""The proxy's database: virtual keys, budgets and the spend log, in SQLite (WAL) or PostgreSQL.

Keys are stored as SHA-256 hashes (the plaintext is shown once, at creation) and compared with
`hmac.compare_digest`. Rows of keys without a budget are queued by the request handlers and
written by a background thread every `flush_interval_s`, each batch in one transaction, so a
crash loses at most the rows of the last interval and never leaves a partial row. Keys with a
budget go through `BudgetLedger` instead: every reservation and its settlement (with the spend
row) is its own committed transaction, so a budget holds across crashes and replicas.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
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
)
# columns added after the first release: (name, SQL type), added to older databases at start
ADDED_SPEND_COLUMNS = (("usage_source", "TEXT"), ("fallback_from", "TEXT"), ("request_id", "TEXT"))
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


NANO = 1_000_000_000  # the ledger counts integer nano-dollars, so sums never drift


def to_nano(dollars: float, up: bool = False) -> int:
    """Dollars as integer nano-dollars (rounded up for reservations, to nearest otherwise)."""
    scaled = dollars * NANO
    return int(math.ceil(scaled)) if up else int(round(scaled))


class BudgetLedger:
    """Durable budgets: a reservation is written with an atomic conditional update before the
    upstream call and settled (with its spend row) after, each in one committed transaction.

    `key_budgets` holds each budgeted key's settled spend and open reservations, in
    nano-dollars. A reservation is granted only if `spent + reserved + amount <= budget` holds
    in the same UPDATE that adds it, which SQLite (one writer at a time) and PostgreSQL (the
    row lock, then the condition re-checked on the row's latest version) both make atomic, so
    replicas sharing one database enforce one budget. A reservation not settled by its lease
    (its proxy died mid-request) is charged at its full amount by `sweep`, since the upstream
    may have spent it; a settlement that still arrives later corrects that charge.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._opened: set[str] = set()

    def _open(self, cur: Any, key_id: str) -> None:
        """Create the key's budget row if missing (older databases: from its spend log)."""
        if key_id in self._opened:
            return
        cur.execute(
            self.db._sql(
                "INSERT INTO key_budgets (key_id, spent, reserved) "
                "SELECT ?, CAST(ROUND(COALESCE(SUM(cost), 0) * ?) AS BIGINT), 0 FROM spend_log "
                "WHERE key_id = ? ON CONFLICT (key_id) DO NOTHING"
            ),
            (key_id, NANO, key_id),
        )
        self._opened.add(key_id)

    def _reserve(
        self, cur: Any, key_id: str, budget_usd: float, dollars: float, lease_s: float
    ) -> str | None:
        """Inside `cur`'s transaction: reserve `dollars` of the key's budget; the reservation
        id, or None if it does not fit."""
        amount, budget = to_nano(dollars, up=True), to_nano(budget_usd)
        rid = secrets.token_hex(8)
        self._open(cur, key_id)
        cur.execute(
            self.db._sql(
                "UPDATE key_budgets SET reserved = reserved + ? "
                "WHERE key_id = ? AND spent + reserved + ? <= ?"
            ),
            (amount, key_id, amount, budget),
        )
        if cur.rowcount != 1:
            return None
        cur.execute(
            self.db._sql(
                "INSERT INTO reservations (id, key_id, amount, expires, swept) "
                "VALUES (?, ?, ?, ?, 0)"
            ),
            (rid, key_id, amount, time.time() + lease_s),
        )
        return rid

    def _settle(self, cur: Any, rid: str, row: dict[str, Any]) -> None:
        """Inside `cur`'s transaction: replace reservation `rid` by the row's real cost and
        write the row."""
        actual = to_nano(float(row["cost"]))
        cur.execute(
            self.db._sql("DELETE FROM reservations WHERE id = ? RETURNING key_id, amount, swept"),
            (rid,),
        )
        found = cur.fetchone()
        if found is None:
            return  # settled already
        key_id, amount, swept = found
        if swept:  # charged in full by a sweep: correct that charge
            cur.execute(
                self.db._sql("UPDATE key_budgets SET spent = spent - ? + ? WHERE key_id = ?"),
                (amount, actual, key_id),
            )
            _insert_rows(cur, self.db, [_correction(row, key_id, amount)])
        else:
            cur.execute(
                self.db._sql(
                    "UPDATE key_budgets SET reserved = reserved - ?, spent = spent + ? "
                    "WHERE key_id = ?"
                ),
                (amount, actual, key_id),
            )
        _insert_rows(cur, self.db, [tuple(row.get(c) for c in SPEND_COLUMNS)])

    def sweep(self, now: float | None = None) -> int:
        """Charge every reservation past its lease at its full amount; returns how many."""
        now = time.time() if now is None else now
        with self.db.transaction() as cur:
            cur.execute(
                self.db._sql(
                    "SELECT id, key_id, amount FROM reservations WHERE swept = 0 AND expires < ?"
                ),
                (now,),
            )
            expired = cur.fetchall()
            rows = []
            for rid, key_id, amount in expired:
                cur.execute(
                    self.db._sql(
                        "UPDATE key_budgets SET reserved = reserved - ?, spent = spent + ? "
                        "WHERE key_id = ?"
                    ),
                    (amount, amount, key_id),
                )
                cur.execute(self.db._sql("UPDATE reservations SET swept = 1 WHERE id = ?"), (rid,))
                rows.append(
                    _row_tuple(
                        ts=now,
                        key_id=key_id,
                        cost=amount / NANO,
                        status=0,
                        usage_source="reservation",
                        request_id=rid,
                        error="reservation not settled within its lease (proxy stopped "
                        "mid-request?): charged at its worst case",
                    )
                )
            _insert_rows(cur, self.db, rows)
        return len(expired)


BATCH_AFTER_S = 0.0005  # a ledger commit this soon after the last one waits to share a batch


class LedgerWriter:
    """Group commit for the ledger: reservations and settlements queued by the request
    handlers are applied, as many as are waiting, in one transaction, and each caller's future
    resolves after that transaction commits. A reservation is therefore durable before its
    upstream call starts, at one commit per batch instead of one per request.

    SQLite (`on_loop=True`): on the event loop, at once when the last commit is more than
    `BATCH_AFTER_S` old, else at the loop's next turn with whatever else arrived; its local
    commits take tens of microseconds, and a thread would wait for the interpreter lock each
    time SQLite hands it back. PostgreSQL: one writer thread, so network round trips never
    block the event loop.
    """

    MAX_BATCH = 512

    def __init__(self, ledger: BudgetLedger, on_loop: bool = False) -> None:
        self.ledger = ledger
        self.on_loop = on_loop
        self.pending: list[tuple] = []
        self._last_flush = 0.0
        self.queue: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if not on_loop:
            self._thread = threading.Thread(target=self._run, name="budget-ledger", daemon=True)
            self._thread.start()

    def reserve(
        self, key_id: str, budget_usd: float, dollars: float, lease_s: float
    ) -> asyncio.Future:
        """A future of the reservation id (None: it does not fit), resolved once committed."""
        return self._submit("reserve", (key_id, budget_usd, dollars, lease_s))

    def settle(self, rid: str, row: dict[str, Any]) -> asyncio.Future:
        """A future resolved once the settlement and its spend row are committed."""
        return self._submit("settle", (rid, row))

    def _submit(self, op: str, args: tuple) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self.on_loop:
            self.pending.append((op, args, future, loop))
            if len(self.pending) == 1:
                if time.perf_counter() - self._last_flush > BATCH_AFTER_S:
                    self._flush_on_loop()  # quiet: commit now, no wait for the loop's turn
                else:
                    loop.call_soon(self._flush_on_loop)  # busy: gather this turn's operations
        else:
            self.queue.put((op, args, future, loop))
        return future

    def _flush_on_loop(self) -> None:
        batch, self.pending = self.pending, []
        self._last_flush = time.perf_counter()
        for (_, _, future, _), value, error in self._apply_batch(batch):
            _resolve(future, value, error)

    def _apply(self, cur: Any, op: str, args: tuple) -> Any:
        return (self.ledger._reserve if op == "reserve" else self.ledger._settle)(cur, *args)

    def _apply_batch(self, batch: list[tuple]) -> list[tuple]:
        try:
            with self.ledger.db.transaction() as cur:
                return [(item, self._apply(cur, item[0], item[1]), None) for item in batch]
        except Exception:  # noqa: BLE001 - one bad operation: apply them one by one
            results = []
            for item in batch:
                try:
                    with self.ledger.db.transaction() as cur:
                        results.append((item, self._apply(cur, item[0], item[1]), None))
                except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                    results.append((item, None, exc))
            return results

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            for (_, _, future, loop), value, error in self._apply_batch(batch):
                loop.call_soon_threadsafe(_resolve, future, value, error)

    def close(self) -> None:
        """Apply what is queued, then stop the thread."""
        if self.pending:
            self._flush_on_loop()
        if self._thread is not None:
            self.queue.put(None)
            self._thread.join(timeout=10)


def _resolve(future: asyncio.Future, value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _row_tuple(**fields: Any) -> tuple:
    return tuple(fields.get(c) for c in SPEND_COLUMNS)


def _correction(row: dict[str, Any], key_id: str, amount: int) -> tuple:
    return _row_tuple(
        ts=row.get("ts"),
        key_id=key_id,
        cost=-amount / NANO,
        status=0,
        usage_source="reservation",
        request_id=row.get("request_id"),
        error="reverses the worst-case charge of a reservation that was settled late",
    )


def _insert_rows(cur: Any, db: Database, rows: list[tuple]) -> None:
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
                _insert_rows(cur, self.db, rows)
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
