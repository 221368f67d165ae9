#!/usr/bin/env bash
# Runs petrel-bench for about a second (fan-in, QoS 1, 4 publishers) against the broker binary given as $1,
# started on a free loopback port, and fails if nothing was delivered (losses and duplicates are printed).
#
#   scripts/bench-smoke.sh .build/debug/petrel
#
# PETREL_BENCH may name a petrel-bench binary; otherwise the debug one is built.
set -euo pipefail

broker=${1:?usage: bench-smoke.sh PATH_TO_PETREL_BINARY}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [[ -n "${PETREL_BENCH:-}" ]]; then
    bench=$PETREL_BENCH
else
    swift build --product petrel-bench >/dev/null
    bench="$(swift build --show-bin-path)/petrel-bench"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t petrel-smoke.XXXXXX)
storage=()
if [[ $("$broker" serve --help 2>&1) == *--storage* ]]; then
    storage=(--storage memory)
fi
"$broker" serve --host 127.0.0.1 --port "$port" "${storage[@]}" >"$log" 2>&1 &
broker_pid=$!
cleanup() {
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT

for _ in $(seq 100); do
    if grep -q "Listening for MQTT" "$log"; then break; fi
    if ! kill -0 "$broker_pid" 2>/dev/null; then
        echo "bench-smoke: the broker exited:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
grep -q "Listening for MQTT" "$log" || { echo "bench-smoke: the broker did not start listening" >&2; exit 1; }

json=$(timeout 60 "$bench" fan-in --port "$port" --qos 1 --publishers 4 --duration 1 --threads 1 \
    --broker-pid "$broker_pid" --json)
echo "$json"
python3 - "$json" <<'PY'
import json, sys
result = json.loads(sys.argv[1])
problems = []
if result.get("status") != "ok":
    problems.append(f"status {result.get('status')}: {result.get('message')}")
if result.get("delivered", 0) <= 0:
    problems.append("nothing was delivered")
if result.get("lost", 0) != 0 or result.get("duplicates", 0) != 0:
    print(f"bench-smoke: note: lost {result.get('lost')}, duplicates {result.get('duplicates')}", file=sys.stderr)
if problems:
    print("bench-smoke: FAILED: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"bench-smoke: ok, {result['delivered']} messages delivered, {result['delivered_per_second']:.0f} msg/s")
PY
