"""Durable budgets for the proxy's keys: reservations before an upstream call and settlements
after, each one committed transaction (see `BudgetLedger`), written by one thread
(`LedgerWriter`) so request handlers never block on the database."""

from __future__ import annotations

import asyncio
import math
import queue
import secrets
import threading
import time
from typing import Any

from routers.proxy.store import NANO, SPEND_COLUMNS, Database, insert_spend_rows, spend_row


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
            insert_spend_rows(cur, self.db, [_correction(row, key_id, amount)])
        else:
            cur.execute(
                self.db._sql(
                    "UPDATE key_budgets SET reserved = reserved - ?, spent = spent + ? "
                    "WHERE key_id = ?"
                ),
                (amount, actual, key_id),
            )
        insert_spend_rows(cur, self.db, [tuple(row.get(c) for c in SPEND_COLUMNS)])

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
                    spend_row(
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
            insert_spend_rows(cur, self.db, rows)
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


def _correction(row: dict[str, Any], key_id: str, amount: int) -> tuple:
    return spend_row(
        ts=row.get("ts"),
        key_id=key_id,
        cost=-amount / NANO,
        status=0,
        usage_source="reservation",
        request_id=row.get("request_id"),
        error="reverses the worst-case charge of a reservation that was settled late",
    )
