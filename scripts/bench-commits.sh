#!/usr/bin/env bash
# Petrel at several commits, side by side: the before/after figures of an optimisation.
#
# Builds `petrel` in release mode at each commit (in a detached worktree, with one build folder kept between
# runs so that later builds are incremental), builds `petrel-bench` once from the current checkout, then runs
# every case against every build, one after the other, round after round: broker `taskset -c 0 --threads 1
# --storage memory`, generator `taskset -c 1 --threads 1`. Prints a table of medians (delivered msg/s).
#
#   scripts/bench-commits.sh 6306df7 HEAD
#   BENCH_ROUNDS=3 BENCH_DURATION=8 scripts/bench-commits.sh main~3 main~1 main
#
# Environment:
#   BENCH_ROUNDS      rounds (default 2)
#   BENCH_DURATION    seconds of publishing per run (default 4)
#   BENCH_CASES       comma-separated LABEL:ARGUMENTS (default fan-in QoS 0, pairs QoS 0 and 1, fan-out QoS 1)
#   BENCH_SCRATCH     the build folder for the commits (default .build-commits, ignored by git)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[[ $# -ge 1 ]] || { echo "usage: scripts/bench-commits.sh COMMIT [COMMIT ...]" >&2; exit 2; }
command -v taskset >/dev/null 2>&1 || { echo "bench-commits: taskset (util-linux) is required" >&2; exit 1; }

scratch=${BENCH_SCRATCH:-$root/.build-commits}
work=$(mktemp -d)
out="$work/builds"
mkdir -p "$out"
git worktree add --detach --quiet "$work/tree" HEAD
trap 'git worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

names=()
for commit in "$@"; do
    name=$(git rev-parse --short "$commit")
    git -C "$work/tree" checkout --quiet --detach "$commit"
    # Sources get new times on every checkout, so the build never mistakes one commit's objects for another's.
    find "$work/tree/Sources" -name '*.swift' -exec touch {} +
    echo "building $commit ($name)" >&2
    (cd "$work/tree" && swift build -c release --product petrel --scratch-path "$scratch" >&2)
    mkdir -p "$out/$name"
    cp "$scratch/release/petrel" "$out/$name/petrel"
    names+=("$name")
done
swift build -c release --product petrel-bench >&2
bench=$(swift build -c release --show-bin-path)/petrel-bench

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cases=${BENCH_CASES:-"fan-in-q0:fan-in --qos 0 --publishers 100,pairs-q0:pairs --qos 0 --publishers 100,pairs-q1:pairs --qos 1 --publishers 100,fan-out-q1:fan-out --qos 1 --subscribers 100"}
python3 "$root/scripts/bench-commits.py" "$out" "$bench" "$(IFS=,; echo "${names[*]}")" "$cases" \
    "${BENCH_ROUNDS:-2}" "${BENCH_DURATION:-4}"
