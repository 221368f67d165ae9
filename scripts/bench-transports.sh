#!/usr/bin/env bash
# Throughput over each transport (mqtt, mqtts, ws, wss), Petrel against Mosquitto in one run.
#
# Makes a test CA and server certificate with openssl, starts each broker afresh per case on free loopback
# ports (pinned to core 0, Petrel with --threads 1; the load generator on core 1), and runs fan-in and fan-out
# at QoS 0 and 1 over every transport, then 2,000 connections over mqtts for the TLS handshake rate. Prints a
# Markdown table: msg/s, and the ratio to the same broker over plain mqtt.
#
#   scripts/bench-transports.sh
#
# Environment: BENCH_DURATION seconds per case (default 5), BENCH_RESULTS directory for the JSON files.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${BENCH_DURATION:-5}
results=${BENCH_RESULTS:-$root/bench-results/transports-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$results"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

command -v mosquitto >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; }
log "building release binaries"
swift build -c release --product petrel >&2
swift build -c release --product petrel-bench >&2
bin=$(swift build -c release --show-bin-path)

pki=$results/pki
python3 - "$pki" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "interop")
from tls_certs import make_pki
make_pki(Path(sys.argv[1]))
PY
# Mosquitto started as root reads its files as the mosquitto user.
chmod a+r "$pki"/*.key

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), timeout=0.2)" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

broker_pid=""
declare -A port
start_broker() { # BROKER TRANSPORT
    local transport
    for transport in mqtt mqtts ws wss; do port[$transport]=$(free_port); done
    if [[ $1 == petrel ]]; then
        taskset -c 0 "$bin/petrel" serve --storage memory --threads 1 --max-inflight 100 \
            --max-queued-messages 100000 --host 127.0.0.1 --port "${port[mqtt]}" \
            --listen "mqtts://127.0.0.1:${port[mqtts]}" --listen "ws://127.0.0.1:${port[ws]}/mqtt" \
            --listen "wss://127.0.0.1:${port[wss]}/mqtt" --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" \
            --log-level warning >"$results/petrel.log" 2>&1 &
    else
        conf=$results/mosquitto.conf
        cat >"$conf" <<CONF
per_listener_settings false
allow_anonymous true
max_inflight_messages 100
max_queued_messages 100000
# Petrel and libwebsockets send small packets at once; Mosquitto's own listeners do so only when told.
set_tcp_nodelay true
listener ${port[mqtt]} 127.0.0.1
listener ${port[mqtts]} 127.0.0.1
certfile $pki/server.pem
keyfile $pki/server.key
CONF
        # Mosquitto's WebSocket listeners go through libwebsockets, which binds an interface by name (lo),
        # starts only next to a plain listener, and slows every other listener down (its service loop runs
        # between socket events): they are opened only for the WebSocket cases.
        if [[ $2 == ws* ]]; then
            cat >>"$conf" <<CONF
listener ${port[ws]} lo
protocol websockets
listener ${port[wss]} lo
protocol websockets
certfile $pki/server.pem
keyfile $pki/server.key
CONF
        fi
        taskset -c 0 mosquitto -c "$conf" >"$results/mosquitto.log" 2>&1 &
    fi
    broker_pid=$!
    wait_port "${port[$2]}"
}
stop_broker() { kill -TERM "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; }

# name | arguments
cases=(
    "fan-in-q0|fan-in --qos 0 --publishers 8 --payload 64"
    "fan-in-q1|fan-in --qos 1 --publishers 8 --payload 64"
    "fan-out-q0|fan-out --qos 0 --subscribers 64 --payload 64"
    "fan-out-q1|fan-out --qos 1 --subscribers 64 --payload 64"
)
table=$results/table.tsv
: >"$table"
measure() { # NAME BROKER TRANSPORT ARGS...
    local name=$1 broker=$2 transport=$3
    shift 3
    local json=$results/$name-$broker-$transport.json
    taskset -c 1 "$bin/petrel-bench" "$@" --port "${port[$transport]}" --transport "$transport" \
        --tls-ca "$pki/test-ca.pem" --threads 1 --broker-pid "$broker_pid" --json >"$json" 2>/dev/null || true
    python3 - "$json" "$name" "$broker" "$transport" >>"$table" <<'PY'
import json, sys
path, name, broker, transport = sys.argv[1:]
try:
    result = json.load(open(path))
    value = result.get("connects_per_second") if name.startswith("tls-handshakes") else result.get("delivered_per_second")
    ok = result.get("status") != "failed"
except Exception:
    value, ok = None, False
print(f"{name}\t{broker}\t{transport}\t{value if ok and value else 'failed'}")
PY
}

for entry in "${cases[@]}"; do
    name=${entry%%|*}
    read -r -a arguments <<<"${entry#*|}"
    for broker in petrel mosquitto; do
        for transport in mqtt mqtts ws wss; do
            log "$name $broker $transport"
            start_broker "$broker" "$transport"
            measure "$name" "$broker" "$transport" "${arguments[@]}" --duration "$duration"
            stop_broker
        done
    done
done
for broker in petrel mosquitto; do
    log "tls handshakes $broker"
    start_broker "$broker" mqtts
    measure tls-handshakes "$broker" mqtts idle --connections 2000 --connect-concurrency 100
    measure tls-handshakes-plain "$broker" mqtt idle --connections 2000 --connect-concurrency 100
    stop_broker
done

python3 - "$table" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
values = {(n, b, t): v for n, b, t, v in rows}
def number(v):
    try: return float(v)
    except (TypeError, ValueError): return None
print("| case | broker | mqtt | mqtts | ws | wss |")
print("|---|---|---|---|---|---|")
for name in dict.fromkeys(n for n, _, _, _ in rows):
    if name.startswith("tls-handshakes"): continue
    for broker in ("petrel", "mosquitto"):
        base = number(values.get((name, broker, "mqtt")))
        cells = []
        for transport in ("mqtt", "mqtts", "ws", "wss"):
            v = values.get((name, broker, transport), "")
            n = number(v)
            if n is None: cells.append(v); continue
            cells.append(f"{n:,.0f}" + ("" if transport == "mqtt" or not base else f" ({n / base:.0%})"))
        print(f"| {name} | {broker} | " + " | ".join(cells) + " |")
print()
print("| connections/s (2,000, CONNECT to CONNACK) | broker | mqtt | mqtts |")
print("|---|---|---|---|")
for broker in ("petrel", "mosquitto"):
    plain = number(values.get(("tls-handshakes-plain", broker, "mqtt")))
    tls = number(values.get(("tls-handshakes", broker, "mqtts")))
    show = lambda x: f"{x:,.0f}" if x else "failed"
    print(f"| idle | {broker} | {show(plain)} | {show(tls)} |")
PY
echo "results in $results" >&2
