#!/usr/bin/env python3
"""Storage measurements for docs/STORAGE.md.

    scripts/bench-storage/bench.py throughput [--count 20000] [--window 100]
    scripts/bench-storage/bench.py startup DIR

throughput: one persistent QoS 1 subscriber (online, clean session off) and one publisher sending COUNT QoS 1
messages with at most WINDOW unacknowledged; timed from the first PUBLISH to the last PUBACK, and to the last
message at the subscriber. Run against Petrel in each durability mode, Petrel --storage memory and Mosquitto
with `persistence true`, one after the other on the same machine.

startup: time from exec to the "Listening" log line, and the resident memory then, for a filled DIR.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "interop"))
from durability_support import RawClient, free_port  # noqa: E402

PETREL = os.environ.get("PETREL_BIN", str(ROOT / ".build" / "release" / "petrel"))


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("broker exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("broker did not listen")


def run_once(port: int, count: int, window: int) -> tuple[float, float]:
    sub = RawClient("bench-sub").connect(port, clean=False)
    sub.subscribe("bench/#", 1)
    acked = threading.Semaphore(0)
    slots = threading.Semaphore(window)

    def on_ack(kind, pid):
        slots.release()
        acked.release()

    pub = RawClient("bench-pub", on_ack=on_ack).connect(port, clean=True)
    payload = b"p" * 64
    start = time.monotonic()
    for i in range(count):
        slots.acquire()
        pub.publish("bench/t", payload, 1, i % 65535 + 1)
    for _ in range(count):
        acked.acquire()
    acked_at = time.monotonic() - start
    deadline = time.monotonic() + 60
    while len(sub.deliveries) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    delivered_at = time.monotonic() - start
    pub.disconnect()
    sub.disconnect()
    return acked_at, delivered_at


def throughput(args) -> None:
    setups = [
        ("petrel sqlite sync", [PETREL, "serve", "--durability", "sync"]),
        *[(f"petrel sqlite batched, {ms} ms", [PETREL, "serve", "--durability", "batched", "--commit-interval-ms", str(ms)])
          for ms in args.intervals],
        ("petrel sqlite none", [PETREL, "serve", "--durability", "none"]),
        ("petrel memory", [PETREL, "serve", "--storage", "memory"]),
    ]
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if os.path.exists(mosquitto):
        setups.append(("mosquitto persistence true", None))
    print(f"| setup | {args.count} QoS 1 msgs, window {args.window}: acked msg/s | delivered msg/s |")
    print("| --- | --- | --- |")
    for name, command in setups:
        if args.only and args.only not in name:
            continue
        work = Path(tempfile.mkdtemp(prefix="petrel-bench-"))
        port = free_port()
        if command is None:
            conf = work / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                            f"persistence_location {work}/\nmax_queued_messages 1000000\n"
                            f"max_inflight_messages 100\n")
            command = [mosquitto, "-c", str(conf)]
        else:
            command = [*command, "--port", str(port), "--data-dir", str(work / "data"), "--log-level", "warning",
                       "--max-queued-messages", "1000000", "--max-queued-bytes", "1000000000",
                       "--receive-maximum", "65535"]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
        try:
            wait_port(port, proc)
            acked_at, delivered_at = run_once(port, args.count, args.window)
            print(f"| {name} | {args.count / acked_at:,.0f} | {args.count / delivered_at:,.0f} |", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            shutil.rmtree(work, ignore_errors=True)


def startup(args) -> None:
    port = free_port()
    begin = time.monotonic()
    proc = subprocess.Popen([PETREL, "serve", "--port", str(port), "--data-dir", args.data_dir,
                             "--log-level", "notice"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stderr:
            if "Loaded state" in line or "Storage opened" in line:
                print(line.strip())
            if "Listening" in line:
                elapsed = time.monotonic() - begin
                status = Path(f"/proc/{proc.pid}/status").read_text()
                rss = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:"))
                print(f"listening after {elapsed:.2f} s, resident memory {rss / 1024:.0f} MiB")
                break
    finally:
        stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        print(f"graceful stop took {time.monotonic() - stop:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--count", type=int, default=20000)
    t.add_argument("--window", type=int, default=100)
    t.add_argument("--intervals", type=int, nargs="*", default=[10, 2])
    t.add_argument("--only", default="")
    s = sub.add_parser("startup")
    s.add_argument("data_dir")
    args = parser.parse_args()
    throughput(args) if args.what == "throughput" else startup(args)


if __name__ == "__main__":
    main()
