#!/usr/bin/env bash
# What metrics cost: Petrel without its HTTP listener, Petrel with --http and /metrics scraped every second
# (fifteen times as often as Prometheus' default), and Mosquitto, in one run, alternating, each broker pinned
# to core 0 (Petrel --threads 1) and the load generator to core 1. Prints a Markdown table of delivered msg/s
# (median of the rounds) and the ratio of metrics on to metrics off.
#
#   scripts/bench-metrics.sh
#
# Environment: BENCH_DURATION seconds per case (default 8), BENCH_ROUNDS (default 3), BENCH_RESULTS directory,
# BENCH_BASELINE a petrel binary built from an earlier commit, run as a fourth broker (e.g. one from before the
# traffic counters: `git worktree add ../before COMMIT && cd ../before && swift build -c release --product petrel`).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${BENCH_DURATION:-8}
rounds=${BENCH_ROUNDS:-3}
results=${BENCH_RESULTS:-$root/bench-results/metrics-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$results"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

command -v mosquitto >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; }
command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
log "building release binaries"
swift build -c release --product petrel >&2
swift build -c release --product petrel-bench >&2
bin=$(swift build -c release --show-bin-path)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 300); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), timeout=0.2)" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

broker_pid="" scraper_pid=""
start_broker() { # petrel | petrel-metrics | petrel-baseline | mosquitto
    port=$(free_port)
    case $1 in
    petrel-baseline)
        taskset -c 0 "$BENCH_BASELINE" serve --storage memory --threads 1 --host 127.0.0.1 --port "$port" \
            --max-inflight 100 --max-queued-messages 100000 --log-level warning >"$results/petrel-baseline.log" 2>&1 &
        ;;
    petrel)
        taskset -c 0 "$bin/petrel" serve --storage memory --threads 1 --host 127.0.0.1 --port "$port" \
            --max-inflight 100 --max-queued-messages 100000 --sys-interval 0 --log-level warning \
            >"$results/petrel.log" 2>&1 &
        ;;
    petrel-metrics)
        http=$(free_port)
        taskset -c 0 "$bin/petrel" serve --storage memory --threads 1 --host 127.0.0.1 --port "$port" \
            --max-inflight 100 --max-queued-messages 100000 --http "127.0.0.1:$http" --log-level warning \
            >"$results/petrel-metrics.log" 2>&1 &
        ;;
    mosquitto)
        printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 100\nmax_queued_messages 100000\nlog_dest stderr\nlog_type error\n' \
            "$port" >"$results/mosquitto.conf"
        taskset -c 0 mosquitto -c "$results/mosquitto.conf" >"$results/mosquitto.log" 2>&1 &
        ;;
    esac
    broker_pid=$!
    wait_port "$port" || { echo "bench-metrics: $1 did not start" >&2; exit 1; }
    if [[ $1 == petrel-metrics ]]; then
        # The scraper runs on the load generator's core: what is measured is the broker's cost of answering.
        (while sleep 1; do taskset -c 1 curl -s -o /dev/null "http://127.0.0.1:$http/metrics" || true; done) &
        scraper_pid=$!
    fi
}

stop_broker() {
    [[ -n $scraper_pid ]] && { kill "$scraper_pid" 2>/dev/null || true; wait "$scraper_pid" 2>/dev/null || true; }
    scraper_pid=""
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
}

cases=(
    "fan-in-q0|fan-in --qos 0 --publishers 100"
    "fan-in-q1|fan-in --qos 1 --publishers 100"
    "fan-out-q0|fan-out --qos 0 --subscribers 100"
    "pairs-q1|pairs --qos 1 --publishers 100"
)
for round in $(seq "$rounds"); do
    for entry in "${cases[@]}"; do
        name=${entry%%|*}
        read -r -a arguments <<<"${entry#*|}"
        for broker in ${BENCH_BASELINE:+petrel-baseline} petrel petrel-metrics mosquitto; do
            start_broker "$broker"
            log "$name $broker (round $round)"
            taskset -c 1 "$bin/petrel-bench" "${arguments[@]}" --duration "$duration" --port "$port" --threads 1 \
                --broker-pid "$broker_pid" --json >"$results/$name-$broker-$round.json" 2>/dev/null || true
            stop_broker
        done
    done
done

python3 - "$results" <<'PY'
import json, pathlib, statistics, sys
results = pathlib.Path(sys.argv[1])
rows = {}
for file in sorted(results.glob("*.json")):
    stem = file.stem
    for broker in ("petrel-metrics", "petrel-baseline", "petrel", "mosquitto"):
        marker = f"-{broker}-"
        if marker in stem:
            case = stem[: stem.index(marker)]
            break
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError:
        continue
    if data.get("status") == "ok":
        rows.setdefault((case, broker), []).append(data["delivered_per_second"])
print("| case | Petrel before the counters | Petrel, no --http | Petrel, --http scraped every 1 s | on / before | on / off | Mosquitto | Petrel (on) / Mosquitto |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for case in sorted({c for c, _ in rows}):
    base, off, on, mosq = (statistics.median(rows.get((case, b), [0]) or [0])
                           for b in ("petrel-baseline", "petrel", "petrel-metrics", "mosquitto"))
    show = lambda a, b: f"{a / b:.3f}" if a and b else "-"
    versus = f"{on / mosq:.1f}x" if mosq else "-"
    print(f"| {case} | {base:,.0f} | {off:,.0f} | {on:,.0f} | {show(on, base)} | {show(on, off)} | {mosq:,.0f} | {versus} |")
PY
log "results in $results"
