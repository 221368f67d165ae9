#!/usr/bin/env bash
# The test command: builds Petrel, runs the Swift tests, then the
# interoperability suite in interop/ against the freshly built binary.
# Extra arguments are passed to pytest, e.g. `scripts/test.sh -k retain -x`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

if ! command -v mosquitto_pub >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    echo "==> installing mosquitto-clients, mosquitto and curl"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto-clients mosquitto curl
fi

missing=()
python3 -c 'import paho.mqtt' 2>/dev/null || missing+=("paho-mqtt>=2.0")
python3 -c 'import pytest' 2>/dev/null || missing+=("pytest")
python3 -c 'import pytest_timeout' 2>/dev/null || missing+=("pytest-timeout")
python3 -c 'import jwt' 2>/dev/null || missing+=("PyJWT>=2")
python3 -c 'import cryptography' 2>/dev/null || missing+=("cryptography")
python3 -c 'import prometheus_client' 2>/dev/null || missing+=("prometheus-client")
# The admin API's interop test runs schemathesis' 4.x command line (its flags differ from 3.x).
python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("schemathesis").split(".")[0] != "4")' 2>/dev/null \
    || missing+=("schemathesis>=4,<5")
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing python modules: ${missing[*]}"
    python3 -m pip install --quiet "${missing[@]}"
fi

# Each stage's time, printed at the end, to keep the whole run short.
stage_name=""
stage_start=$SECONDS
timings=()
stage() {
    [ -n "$stage_name" ] && timings+=("$(printf '%5d s  %s' $((SECONDS - stage_start)) "$stage_name")")
    stage_name=$1
    stage_start=$SECONDS
    [ -z "$1" ] || echo "==> $1"
}
report_timings() {
    stage ""
    echo "==> time per stage"
    printf '%s\n' "${timings[@]}"
}
trap report_timings EXIT

stage "swift build"
swift build

stage "swift test"
swift test

bin_path="$(swift build --show-bin-path)"
stage "load generator smoke run (about a second)"
PETREL_BENCH="${bin_path}/petrel-bench" scripts/bench-smoke.sh "${bin_path}/petrel"

# libFuzzer over the packet decoder and the connection state machine, briefly (longer: scripts/fuzz.sh).
stage "fuzzing (${FUZZ_SECONDS:-20} s per target)"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" scripts/fuzz.sh

# PETREL_TEST_RELEASE=1 also builds the optimised binary that users run and sends it the hostile input of
# interop/test_17_hostile_input.py (a release build of every dependency takes several minutes more).
release_env=()
if [ "${PETREL_TEST_RELEASE:-0}" = 1 ]; then
    stage "swift build -c release --product petrel"
    swift build -c release --product petrel
    release_env=(PETREL_RELEASE_BIN="$(swift build -c release --show-bin-path)/petrel")
fi

stage "interop suite against ${bin_path}/petrel"
env PETREL_BIN="${bin_path}/petrel" "${release_env[@]}" python3 -m pytest interop -q "$@"
