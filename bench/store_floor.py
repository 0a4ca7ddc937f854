#!/usr/bin/env python3
"""The store's floor: what SQLite alone needs for the rows a replay commits.

    python3 bench/store_floor.py STORE.db [RUNS] [BATCH]

STORE.db is a store that `mailroom replay` filled (bench/floor.sh makes one
from the reference workload). Its ingest rows (contacts created by the
replay, tickets, participants, messages, their content and the outbox) are
inserted again into an empty copy of the same schema, BATCH mails' worth of
every table per transaction (200, mailroom's batch), in WAL mode with
synchronous=FULL as mailroom commits, through SQLite's C API (executemany on
prepared statements). Nothing is parsed, decided or rendered, and foreign
keys are not checked: this is a lower bound of the store path, not a model
of mailroom. It prints the median seconds and messages/s over RUNS, for
synchronous=FULL and, to show what the fsyncs cost, synchronous=OFF.
"""
import os
import sqlite3
import statistics
import sys
import tempfile
import time

TABLES = ["contacts", "tickets", "ticket_participants", "messages", "message_content", "outbox"]
DIRECTORY = [("accounts", ""), ("account_domains", ""), ("contacts", " WHERE created_by <> 'auto'"), ("subscriptions", "")]


def main():
    src_path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True)
    schema = [r[0] for r in src.execute(
        "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
    rows = {t: src.execute(f"SELECT * FROM {t}" + (" WHERE created_by = 'auto'" if t == "contacts" else "")).fetchall()
            for t in TABLES}
    directory = [(t, src.execute(f"SELECT * FROM {t}{w}").fetchall()) for t, w in DIRECTORY]
    mails = len(rows["messages"])
    batches = max(1, (mails + batch - 1) // batch)
    for sync in ["FULL", "OFF"]:
        times = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(src_path))) as tmp:
                times.append(run(os.path.join(tmp, "floor.db"), schema, directory, rows, batches, sync))
        med = statistics.median(times)
        print(f"synchronous={sync}: {mails} mails in {batches} transactions: median {med:.3f} s "
              f"({mails / med:,.0f} messages/s) over {runs} runs; all: {', '.join(f'{t:.3f}' for t in times)}")


def run(path, schema, directory, rows, batches, sync):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {sync}")
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("PRAGMA cache_size = -16384")
    db.execute("PRAGMA wal_autocheckpoint = 16384")
    db.execute("BEGIN")
    for stmt in schema:
        db.execute(stmt)
    for table, data in directory:
        if data:
            db.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(data[0]))})", data)
    db.execute("COMMIT")
    inserts = {t: f"INSERT INTO {t} VALUES ({','.join('?' * len(r[0]))})" for t, r in rows.items() if r}
    started = time.perf_counter()
    for i in range(batches):
        db.execute("BEGIN IMMEDIATE")
        for table, sql in inserts.items():
            data = rows[table]
            part = data[len(data) * i // batches:len(data) * (i + 1) // batches]
            if part:
                db.executemany(sql, part)
        db.execute("COMMIT")
    took = time.perf_counter() - started
    db.close()
    return took


if __name__ == "__main__":
    main()
