#!/usr/bin/env bash
# Petrel against Mosquitto in one run.
#
# Builds Petrel and petrel-bench in release mode, starts each broker afresh for every case on a free loopback
# port, and runs the same load against both, alternating Petrel and Mosquitto. The brokers run on core 0
# (taskset -c 0, Petrel with --threads 1) and the load generator on core 1; then Petrel runs again without the
# core limit (--threads 2) to show how it scales. Prints a table of both figures and their ratio and keeps the
# JSON of every run.
#
#   scripts/bench-compare.sh
#
# Environment:
#   BENCH_DURATION        seconds of publishing per case (default 8)
#   BENCH_ROUNDS          rounds of the pinned cases; the tables show the median (default 3)
#   BENCH_IDLE            idle connections for the memory-per-connection case (default 10000)
#   BENCH_MAX_IDLE        1 to also open as many idle connections as the file limit allows (default 1)
#   BENCH_IDLE_WAIT       seconds the idle connections stay idle before the broker's memory is read a second
#                         time (default 15: Petrel hibernates connections idle for 10 s, its default)
#   BENCH_SCALING         1 to run Petrel unpinned with --threads 2 (default 1)
#   BENCH_RESULTS         directory for the JSON files (default bench-results/<UTC time>)
#   BENCH_CASES           space-separated subset of case names (default all)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

duration=${BENCH_DURATION:-8}
rounds=${BENCH_ROUNDS:-3}
idle_connections=${BENCH_IDLE:-10000}
max_idle=${BENCH_MAX_IDLE:-1}
idle_wait=${BENCH_IDLE_WAIT:-15}
scaling=${BENCH_SCALING:-1}
results=${BENCH_RESULTS:-$root/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
# Limits both brokers get: QoS 1/2 messages in flight to one client, and messages queued behind them.
inflight=100
queued=100000

mkdir -p "$results"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if ! command -v mosquitto >/dev/null 2>&1; then
    log "installing mosquitto"
    apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
fi
command -v taskset >/dev/null 2>&1 || { echo "bench-compare: taskset (util-linux) is required" >&2; exit 1; }
if [[ $(nproc) -lt 2 ]]; then
    echo "bench-compare: needs at least 2 cores (broker on core 0, load on core 1)" >&2
    exit 1
fi

log "building release binaries"
swift build -c release --product petrel >&2
swift build -c release --product petrel-bench >&2
bin=$(swift build -c release --show-bin-path)

# Petrel keeps its state in memory, as Mosquitto does with persistence off.
petrel_storage=()
# (The help text is read whole first: grep -q stopping early would fail the pipeline under pipefail.)
if [[ $("$bin/petrel" serve --help 2>&1) == *--storage* ]]; then
    petrel_storage=(--storage memory)
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
log "open file limit $nofile"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "mosquitto: $(mosquitto -h 2>&1 | head -1)"
    echo "open file limit: $nofile"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$results/environment.txt"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() {
    python3 - "$1" <<'PY'
import socket, sys, time
deadline = time.time() + 15
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

broker_pid=
broker_port=

# start_broker petrel|mosquitto CPUSET|"" THREADS LOGFILE
start_broker() {
    local name=$1 cpuset=$2 threads=$3 logfile=$4
    local pin=()
    [[ -n $cpuset ]] && pin=(taskset -c "$cpuset")
    broker_port=$(free_port)
    case $name in
    petrel)
        "${pin[@]}" "$bin/petrel" serve --host 127.0.0.1 --port "$broker_port" --threads "$threads" \
            "${petrel_storage[@]}" --max-inflight "$inflight" --max-queued-messages "$queued" \
            --log-level warning >"$logfile" 2>&1 &
        ;;
    mosquitto)
        local conf="$results/mosquitto-$broker_port.conf"
        cat >"$conf" <<CONF
listener $broker_port 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages $inflight
max_queued_messages $queued
max_connections -1
log_dest stderr
log_type error
log_type warning
CONF
        "${pin[@]}" mosquitto -c "$conf" >"$logfile" 2>&1 &
        ;;
    esac
    broker_pid=$!
    if ! wait_for_port "$broker_port"; then
        echo "bench-compare: $name did not start listening" >&2
        cat "$logfile" >&2
        exit 1
    fi
}

stop_broker() {
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    rm -f "$results"/mosquitto-*.conf
}

# run_case NAME BROKER PHASE ROUND -- petrel-bench arguments
run_case() {
    local name=$1 broker=$2 phase=$3 round=$4
    shift 5
    local cpuset=0 threads=1 bench_pin=(taskset -c 1) bench_threads=1
    if [[ $phase == scaling ]]; then
        cpuset= threads=2 bench_pin=() bench_threads=2
    fi
    local stem="$results/$phase-$name-$broker-$round"
    start_broker "$broker" "$cpuset" "$threads" "$stem.log"
    log "$phase $name $broker (round $round)"
    "${bench_pin[@]}" "$bin/petrel-bench" "$@" --port "$broker_port" --threads "$bench_threads" \
        --broker-pid "$broker_pid" --json >"$stem.json" 2>"$stem.err" || true
    if ! kill -0 "$broker_pid" 2>/dev/null; then
        log "$broker exited during $name"
        echo "$broker exited during $phase $name" >>"$results/notes.txt"
    fi
    stop_broker
    [[ -s $stem.json ]] || echo '{"status":"failed","message":"no output"}' >"$stem.json"
}

selected() {
    [[ -z ${BENCH_CASES:-} ]] && return 0
    [[ " $BENCH_CASES " == *" $1 "* ]]
}

# name | petrel-bench arguments
cases=(
    "fan-in-q0|fan-in --qos 0 --publishers 100"
    "fan-in-q1|fan-in --qos 1 --publishers 100"
    "fan-out-q0|fan-out --qos 0 --subscribers 100"
    "fan-out-q1|fan-out --qos 1 --subscribers 100"
    "pairs-q0|pairs --qos 0 --publishers 100"
    "pairs-q1|pairs --qos 1 --publishers 100"
    "fan-out-1000-q0|fan-out --qos 0 --subscribers 1000"
    "pairs-1000-q1|pairs --qos 1 --publishers 1000"
    "shared-q1|shared --qos 1 --protocol 5 --publishers 10 --subscribers 10"
    "latency-20k-q1|pairs --qos 1 --publishers 100 --rate 20000"
)

for round in $(seq "$rounds"); do
    for entry in "${cases[@]}"; do
        name=${entry%%|*}
        selected "$name" || continue
        read -r -a arguments <<<"${entry#*|}"
        for broker in petrel mosquitto; do
            run_case "$name" "$broker" pinned "$round" -- "${arguments[@]}" --duration "$duration"
        done
    done
done

if selected idle; then
    for broker in petrel mosquitto; do
        run_case idle "$broker" pinned 1 -- idle --connections "$idle_connections" --idle-wait "$idle_wait"
    done
fi
if [[ $max_idle == 1 ]] && selected max-idle; then
    # Leave room for the brokers' and the generator's other descriptors.
    for broker in petrel mosquitto; do
        run_case max-idle "$broker" pinned 1 -- idle --connections $((nofile - 500)) --connect-timeout 5 \
            --idle-wait "$idle_wait"
    done
fi

if [[ $scaling == 1 ]]; then
    for entry in "${cases[@]}"; do
        name=${entry%%|*}
        selected "$name" || continue
        read -r -a arguments <<<"${entry#*|}"
        run_case "$name" petrel scaling 1 -- "${arguments[@]}" --duration "$duration"
    done
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$results/environment.txt"
python3 "$root/scripts/bench-summary.py" "$results" | tee "$results/summary.md"
log "results in $results"
