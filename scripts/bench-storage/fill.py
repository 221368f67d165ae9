#!/usr/bin/env python3
"""Fills a Petrel data directory directly (no broker running) for start-up measurements.

    scripts/bench-storage/fill.py DIR --retained 1000000 --sessions 100000

The database is created and migrated by `petrel storage import` (header only), then rows are inserted with
sqlite3 in large transactions. Each session gets one subscription and `--queued` queued QoS 1 messages.
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--retained", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--queued", type=int, default=1)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--petrel", default=os.environ.get("PETREL_BIN", str(ROOT / ".build" / "release" / "petrel")))
    args = parser.parse_args()

    data = Path(args.data_dir)
    if (data / "petrel.sqlite").exists():
        print(f"{data} already holds a database", file=sys.stderr)
        return 1
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as header:
        header.write('{"petrel_export": 1, "schema": "v2"}\n')
    subprocess.run([args.petrel, "storage", "import", "--data-dir", str(data), "--input", header.name], check=True,
                   stdout=subprocess.DEVNULL)
    os.unlink(header.name)

    started = time.monotonic()
    db = sqlite3.connect(data / "petrel.sqlite")
    db.execute("PRAGMA synchronous = OFF")
    payload = b"x" * args.payload
    batch = 100_000
    for start in range(0, args.retained, batch):
        rows = ((f"bench/retained/{i // 1000}/{i}", payload, 1) for i in range(start, min(start + batch, args.retained)))
        db.executemany("INSERT INTO retained (topic, payload, qos) VALUES (?, ?, ?)", rows)
        db.commit()
    message_id = 1
    for start in range(0, args.sessions, batch):
        end = min(start + batch, args.sessions)
        db.executemany("INSERT INTO session (client_id, protocol_version, expiry_interval) VALUES (?, 4, 4294967295)",
                       ((f"bench-client-{i}",) for i in range(start, end)))
        db.executemany("INSERT INTO subscription (client_id, filter, qos, no_local, retain_as_published, "
                       "retain_handling) VALUES (?, ?, 1, 0, 0, 0)",
                       ((f"bench-client-{i}", f"bench/session/{i}/#") for i in range(start, end)))
        messages, deliveries = [], []
        for i in range(start, end):
            for q in range(args.queued):
                messages.append((message_id, f"bench/session/{i}/q", payload, 1))
                deliveries.append((f"bench-client-{i}", q + 1, message_id))
                message_id += 1
        db.executemany("INSERT INTO message (id, topic, payload, qos, retain) VALUES (?, ?, ?, ?, 0)", messages)
        db.executemany("INSERT INTO delivery (client_id, sequence, message_id, qos, retain, subscription_identifiers, "
                       "state) VALUES (?, ?, ?, 1, 0, '', 0)", deliveries)
        db.commit()
    db.close()
    size = (data / "petrel.sqlite").stat().st_size
    print(f"filled {data}: {args.retained} retained, {args.sessions} sessions, {message_id - 1} queued messages, "
          f"{size / 1e6:.1f} MB in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
