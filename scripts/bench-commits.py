"""Runs petrel-bench cases against several petrel builds, alternating, and prints a table of medians.

Called by scripts/bench-commits.sh: BUILDS_DIR BENCH_BINARY NAMES CASES ROUNDS DURATION, where NAMES is a
comma-separated list of folders of BUILDS_DIR holding a `petrel` binary and CASES a comma-separated list of
LABEL:ARGUMENTS for petrel-bench.
"""

import json
import socket
import statistics
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"broker did not listen on {port}")


def run(petrel: str, bench: str, arguments: list[str], duration: str) -> float:
    port = free_port()
    broker = subprocess.Popen(
        ["taskset", "-c", "0", petrel, "serve", "--host", "127.0.0.1", "--port", str(port), "--threads", "1",
         "--storage", "memory", "--max-inflight", "100", "--max-queued-messages", "100000",
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        result = subprocess.run(
            ["taskset", "-c", "1", bench, *arguments, "--threads", "1", "--port", str(port),
             "--duration", duration, "--broker-pid", str(broker.pid), "--json"],
            capture_output=True, text=True, timeout=float(duration) + 60)
        return float(json.loads(result.stdout)["delivered_per_second"])
    except (ValueError, KeyError, subprocess.TimeoutExpired) as error:
        print(f"  failed: {error}", file=sys.stderr)
        return float("nan")
    finally:
        broker.terminate()
        broker.wait()


def main() -> None:
    builds, bench, names, cases, rounds, duration = sys.argv[1:7]
    names = names.split(",")
    cases = [case.split(":", 1) for case in cases.split(",")]
    figures: dict[tuple[str, str], list[float]] = {}
    for round_number in range(int(rounds)):
        for label, arguments in cases:
            for name in names:
                value = run(f"{builds}/{name}/petrel", bench, arguments.split(), duration)
                figures.setdefault((label, name), []).append(value)
                print(f"round {round_number + 1} {label} {name}: {value:,.0f} msg/s", file=sys.stderr, flush=True)
    print("| case | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for label, _ in cases:
        medians = [statistics.median(figures[(label, name)]) for name in names]
        print(f"| {label} | " + " | ".join(f"{value:,.0f}" for value in medians) + " |")


if __name__ == "__main__":
    main()
