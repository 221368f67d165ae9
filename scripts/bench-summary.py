#!/usr/bin/env python3
"""Summarises a bench-compare.sh results directory as Markdown tables: Petrel, Mosquitto, and their ratio.

    scripts/bench-summary.py bench-results/<run>
"""
import json
import os
import sys
from collections import defaultdict
from statistics import median

THROUGHPUT_TARGET = 5.0


def load(directory):
    runs = defaultdict(list)  # (phase, case, broker) -> [result]
    for file in sorted(os.listdir(directory)):
        if not file.endswith(".json"):
            continue
        phase, rest = file[:-5].split("-", 1)
        case, broker, _round = rest.rsplit("-", 2)
        with open(os.path.join(directory, file)) as handle:
            try:
                runs[(phase, case, broker)].append(json.load(handle))
            except json.JSONDecodeError:
                runs[(phase, case, broker)].append({"status": "failed", "message": "unreadable output"})
    return runs


def ok(results):
    return [r for r in results if r.get("status") == "ok"]


def average(results, key):
    """The median over the rounds that succeeded: one disturbed round on a shared machine does not move it."""
    values = [key(r) for r in ok(results)]
    values = [v for v in values if v is not None]
    return median(values) if values else None


def status_of(results):
    if not results:
        return "not run"
    if ok(results):
        return "ok"
    first = results[0]
    return f"{first.get('status')}: {first.get('message', '')}".strip()


def rate(value):
    return "-" if value is None else f"{value:,.0f}"


def micros(value):
    return "-" if value is None else f"{value:,.0f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def show_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def main():
    directory = sys.argv[1]
    runs = load(directory)
    cases = sorted({case for (phase, case, _b) in runs if phase == "pinned"})
    throughput_cases = [c for c in cases if c not in ("idle", "max-idle") and not c.startswith("latency")]
    latency_cases = [c for c in cases if c.startswith("latency")]

    print("### Throughput at saturation (delivered msg/s; brokers on one core)\n")
    print("| case | Petrel | Mosquitto | Petrel/Mosquitto | target 5x | lost P / M | "
          "p99 µs P / M | broker CPU % P / M | generator CPU % P / M | "
          "Petrel --threads 2, 2 cores | vs Mosquitto |")
    print("|---|---:|---:|---:|---|---|---|---|---|---:|---:|")
    for case in throughput_cases:
        petrel = runs.get(("pinned", case, "petrel"), [])
        mosquitto = runs.get(("pinned", case, "mosquitto"), [])
        scaled = runs.get(("scaling", case, "petrel"), [])
        delivered = lambda r: r.get("delivered_per_second")
        p, m, s = average(petrel, delivered), average(mosquitto, delivered), average(scaled, delivered)
        if p is None or m is None:
            note = f"Petrel {status_of(petrel)}; Mosquitto {status_of(mosquitto)}"
            print(f"| {case} | {rate(p)} | {rate(m)} | - | {note} | | | | | {rate(s)} | - |")
            continue
        r = ratio(p, m)
        target = "met" if r >= THROUGHPUT_TARGET else f"missed by {THROUGHPUT_TARGET / r:.1f}x"
        lost = lambda r: r.get("lost")
        p99 = lambda r: (r.get("latency") or {}).get("p99_micros")
        broker_cpu = lambda r: (r.get("broker") or {}).get("cpu_percent")
        bench_cpu = lambda r: r.get("bench_cpu_percent")
        print(f"| {case} | {rate(p)} | {rate(m)} | {show_ratio(r)} | {target} | "
              f"{rate(average(petrel, lost))} / {rate(average(mosquitto, lost))} | "
              f"{micros(average(petrel, p99))} / {micros(average(mosquitto, p99))} | "
              f"{rate(average(petrel, broker_cpu))} / {rate(average(mosquitto, broker_cpu))} | "
              f"{rate(average(petrel, bench_cpu))} / {rate(average(mosquitto, bench_cpu))} | "
              f"{rate(s)} | {show_ratio(ratio(s, m))} |")

    if latency_cases:
        print("\n### Latency at a fixed rate (µs; brokers on one core)\n")
        print("| case | broker | delivered msg/s | p50 | p99 | p99.9 | max | lost |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for case in latency_cases:
            for broker in ("petrel", "mosquitto"):
                results = runs.get(("pinned", case, broker), [])
                latency = lambda key: average(results, lambda r: (r.get("latency") or {}).get(key))
                print(f"| {case} | {broker} | {rate(average(results, lambda r: r.get('delivered_per_second')))} | "
                      f"{micros(latency('p50_micros'))} | {micros(latency('p99_micros'))} | "
                      f"{micros(latency('p999_micros'))} | {micros(latency('max_micros'))} | "
                      f"{rate(average(results, lambda r: r.get('lost')))} |")
            p = average(runs.get(("pinned", case, "petrel"), []), lambda r: r["latency"]["p99_micros"])
            m = average(runs.get(("pinned", case, "mosquitto"), []), lambda r: r["latency"]["p99_micros"])
            r = ratio(p, m)
            if r is not None:
                verdict = "met" if r <= 1 else f"missed: Petrel's p99 is {r:.2f}x Mosquitto's"
                print(f"\np99 Petrel/Mosquitto for {case}: {show_ratio(r)} (target <= 1x: {verdict})")

    print("\n### Idle connections (brokers on one core)\n")
    print("| case | broker | connections held | connects/s | broker RSS per connection, 1 s after connecting "
          "| the same after the idle wait | target |")
    print("|---|---|---:|---:|---:|---:|---|")
    for case in ("idle", "max-idle"):
        for broker in ("petrel", "mosquitto"):
            results = runs.get(("pinned", case, broker), [])
            if not results:
                continue
            result = results[0]
            per = result.get("rss_per_connection_bytes")
            connected = result.get("rss_per_connection_connected_bytes", per)
            wait = result.get("idle_wait_seconds")
            per_text = "-" if per is None or wait is None else f"{per / 1024:.2f} KiB after {wait:.0f} s"
            connected_text = "-" if connected is None else f"{connected / 1024:.2f} KiB"
            target = ""
            if broker == "petrel" and case == "idle" and per is not None:
                target = "met (<= 2 KiB)" if per <= 2048 else f"missed by {per / 2048:.2f}x"
            held = f"{result.get('connected', 0):,} of {result.get('connections', 0):,}"
            print(f"| {case} | {broker} | {held} | {rate(result.get('connects_per_second'))} | "
                  f"{connected_text} | {per_text} | {target} |")

    environment = os.path.join(directory, "environment.txt")
    if os.path.exists(environment):
        print("\nEnvironment:\n")
        with open(environment) as handle:
            for line in handle:
                print(f"    {line.rstrip()}")

    notes = os.path.join(directory, "notes.txt")
    if os.path.exists(notes):
        print("\nNotes:\n")
        with open(notes) as handle:
            for line in handle:
                print(f"- {line.strip()}")


if __name__ == "__main__":
    main()
