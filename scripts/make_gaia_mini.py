"""Build the offline GAIA-format task set in evals/benchmarks/data/gaia-mini (deterministic).

    .venv/bin/python scripts/make_gaia_mini.py

Writes the attachments (a CSV of sales, a SQLite shop database, a notes file and a staff
directory), computes every reference answer from them with plain Python/SQL, and writes
metadata.jsonl. The data are invented for this set; the answers were checked by hand.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "evals" / "benchmarks" / "data" / "gaia-mini"

SALES = [
    ("1001", "north", "2024-01-15", "120.50"),
    ("1002", "south", "2024-01-20", "80.00"),
    ("1003", "east", "2024-02-03", "210.25"),
    ("1004", "north", "2024-02-11", "95.00"),
    ("1005", "west", "2024-02-19", "150.75"),
    ("1006", "south", "2024-03-02", "60.00"),
    ("1007", "north", "2024-03-14", "175.00"),
    ("1008", "east", "2024-03-22", "90.50"),
    ("1009", "north", "2024-04-05", "130.25"),
    ("1010", "west", "2024-04-18", "220.00"),
    ("1011", "south", "2024-04-27", "45.00"),
    ("1012", "east", "2024-05-09", "300.00"),
]
NOTES = """Team notes, spring 2024

- The 2023 planning meeting took place in Lyon.
- The 2024 planning meeting will be held in Porto, from 12 to 14 June.
- Budget reviews happen every quarter; the next one is in Oslo.
"""
DIRECTORY = """# Staff directory

## Projects
| project | lead |
|---|---|
| Project Falcon | Maria Chen |
| Project Heron | Tom Weber |

## People
| name | office | extension | manager |
|---|---|---|---|
| Maria Chen | Room 214 | 4410 | Amir Haddad |
| Tom Weber | Room 108 | 4321 | Amir Haddad |
| Amir Haddad | Room 301 | 4007 | Lena Park |
| Lena Park | Room 401 | 4001 | - |
"""
CUSTOMERS = [
    (1, "Anna Schulz", "Germany"),
    (2, "Jean Dupont", "France"),
    (3, "Luis Garcia", "Spain"),
    (4, "Eva Braun", "Germany"),
    (5, "Claire Martin", "France"),
    (6, "Max Keller", "Germany"),
    (7, "Sofia Rossi", "Italy"),
]
ORDERS = [  # order id, customer id, quantity, unit price
    (1, 2, 3, 9.99),
    (2, 1, 1, 24.50),
    (3, 5, 2, 15.00),
    (4, 2, 1, 120.00),
    (5, 3, 4, 5.25),
    (6, 6, 2, 40.00),
    (7, 5, 5, 3.50),
]


def main() -> None:
    """Write attachments and metadata.jsonl."""
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "sales.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["order_id", "region", "date", "amount"])
        writer.writerows(SALES)
    (OUT / "notes.txt").write_text(NOTES)
    (OUT / "directory.md").write_text(DIRECTORY)
    db = OUT / "shop.sqlite"
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, country TEXT)")
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES "
            "customers(id), quantity INTEGER, unit_price REAL)"
        )
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?)", CUSTOMERS)
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", ORDERS)
        germans = conn.execute(
            "SELECT COUNT(*) FROM customers WHERE country = 'Germany'"
        ).fetchone()[0]
        france = conn.execute(
            "SELECT SUM(o.quantity * o.unit_price) FROM orders o JOIN customers c "
            "ON c.id = o.customer_id WHERE c.country = 'France'"
        ).fetchone()[0]
    amounts = [float(a) for *_, a in SALES]
    by_region: dict[str, list[float]] = defaultdict(list)
    for _, region, _, amount in SALES:
        by_region[region].append(float(amount))
    top_total = max(by_region, key=lambda r: sum(by_region[r]))
    most_orders = max(by_region, key=lambda r: len(by_region[r]))
    tasks = [
        (
            "mini-l1-calc",
            1,
            "A bakery sells 23 boxes of 12 muffins every day. How many muffins "
            "does it sell in a 7-day week?",
            str(23 * 12 * 7),
            "",
        ),
        (
            "mini-l1-csv",
            1,
            "What is the total of the amount column in the attached file? Give the number only.",
            f"{sum(amounts):.2f}",
            "sales.csv",
        ),
        (
            "mini-l1-notes",
            1,
            "According to the attached notes, in which city will the 2024 "
            "planning meeting be held?",
            "Porto",
            "notes.txt",
        ),
        (
            "mini-l2-csv",
            2,
            "In the attached sales file, which region has the highest total amount?",
            top_total,
            "sales.csv",
        ),
        (
            "mini-l2-sql",
            2,
            "How many customers in the attached shop database live in Germany?",
            str(germans),
            "shop.sqlite",
        ),
        (
            "mini-l2-directory",
            2,
            "Using the attached staff directory, in which room is the "
            "office of the person who leads Project Falcon?",
            "Room 214",
            "directory.md",
        ),
        (
            "mini-l3-csv",
            3,
            "In the attached sales file, what is the average amount of the "
            "orders from the region with the most orders? Round to two decimals.",
            f"{sum(by_region[most_orders]) / len(by_region[most_orders]):.2f}",
            "sales.csv",
        ),
        (
            "mini-l3-sql",
            3,
            "In the attached shop database, what is the total revenue "
            "(quantity times unit price) of the orders placed by customers from France? Round to "
            "two decimals.",
            f"{france:.2f}",
            "shop.sqlite",
        ),
        (
            "mini-l3-directory",
            3,
            "Using the attached staff directory, what is the phone "
            "extension of the manager of the person who leads Project Falcon?",
            "4007",
            "directory.md",
        ),
    ]
    rows = [
        {"task_id": tid, "Question": q, "Level": level, "Final answer": a, "file_name": f}
        for tid, level, q, a, f in tasks
    ]
    (OUT / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for r in rows:
        print(r["task_id"], "->", r["Final answer"])


if __name__ == "__main__":
    main()
