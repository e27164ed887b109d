#!/usr/bin/env bash
# Who keeps the request path waiting for a CPU at c=1: figures that a noisy host's
# own latency does not blur (docs/performance.md, tenth round).
#
#   bench/sched_wait.sh
#   DURATION=8 PERF=1 NO_BUILD=1 bench/sched_wait.sh
#
# Environment:
#   DURATION  seconds of wrk -t1 -c1 through the daemon (default 8, 2..120)
#   PERF=1    also `perf sched record` 4 s of the run and attribute every wait of a
#             request-path thread (wrk, the mock, a daemon worker) longer than
#             0.3 ms to the thread that had that CPU just before (needs `perf`)
#   NO_BUILD=1  skip `cargo build --release --bins`
#
# Prints, per thread group, CPU time and runqueue wait (the second field of
# /proc/PID/task/TID/schedstat: time spent runnable but not running) per request.
# "request path" is the daemon's workers plus the mock upstream's threads.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/common.sh
source bench/common.sh

DURATION=${DURATION:-8}
int_in "$DURATION" 2 120 DURATION
PERF=${PERF:-0}
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "bench/sched_wait.sh needs $tool" >&2; exit 2; }
done
if [[ "$PERF" == 1 ]]; then
    command -v perf >/dev/null || { echo "PERF=1 needs perf (apt-get install linux-perf)" >&2; exit 2; }
fi
if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== cargo build --release --bins" >&2
    cargo build --release --bins >&2
fi
BIN="$ROOT/target/release"

make_workdir sched

start_mock_and_daemon 0

cat >"$WORK/json.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}'
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = "sk-ant-client-000000000000000"
EOF
# Warm-up: connections, the logger's first batches, the blocking pool's threads.
wrk -t1 -c1 -d2s -s "$WORK/json.lua" "http://127.0.0.1:$PORT/v1/messages" >/dev/null

# snapshot FILE: "group tid run_ns wait_ns" for every thread of the daemon and the mock
snapshot() {
    local pid task comm group
    for pid in "$DAEMON_PID" "$MOCK_PID"; do
        for task in /proc/"$pid"/task/*; do
            comm=$(cat "$task/comm" 2>/dev/null) || continue
            if [[ "$pid" == "$MOCK_PID" ]]; then
                group="upstream (mock)"
            elif [[ "$(basename "$task")" == "$DAEMON_PID" ]]; then
                group="engine (main thread)"
            elif [[ "$comm" == "actix-rt|system" ]]; then
                group="workers"
            else
                group=$comm
            fi
            read -r run wait _ <"$task/schedstat" 2>/dev/null || continue
            echo "${group// /_} $(basename "$task") $run $wait"
        done
    done >"$1"
}

snapshot "$WORK/before"
wrk -t1 -c1 -d"${DURATION}s" --latency -s "$WORK/json.lua" \
    "http://127.0.0.1:$PORT/v1/messages" >"$WORK/wrk.txt" &
WRK_PID=$!
if [[ "$PERF" == 1 ]]; then
    sleep 1
    perf sched record -o "$WORK/sched.data" -- sleep 4 >/dev/null 2>&1 || true
fi
wait "$WRK_PID"
snapshot "$WORK/after"

DONE=$(awk '/ requests in / {print $1}' "$WORK/wrk.txt")
echo
echo "Date: $(date -u +%Y-%m-%d) · $(nproc) cores · wrk -t1 -c1 ${DURATION} s through the daemon, mock upstream · $DONE requests · p50 $(awk '$1 == "50%" {print $2}' "$WORK/wrk.txt"), p99 $(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")"
echo
echo "| thread group | CPU µs / request | runqueue wait µs / request |"
echo "|---|---:|---:|"
awk -v n="$DONE" '
    FNR == NR { run0[$2] = $3; wait0[$2] = $4; next }
    {
        g = $1; gsub("_", " ", g)
        run[g] += $3 - run0[$2]; wait[g] += $4 - wait0[$2]
        if (g == "workers" || g == "upstream (mock)") path += $4 - wait0[$2]
    }
    END {
        for (g in run) if (run[g] > 0) printf "| %s | %.1f | %.2f |\n", g, run[g] / n / 1000, wait[g] / n / 1000
        printf "| **request path** (workers + upstream) | | **%.2f** |\n", path / n / 1000
    }' "$WORK/before" "$WORK/after"

if [[ "$PERF" == 1 && -s "$WORK/sched.data" ]]; then
    echo
    echo "Waits over 0.3 ms of request-path threads in 4 s, by the thread that had the CPU:"
    echo
    perf sched timehist -i "$WORK/sched.data" 2>/dev/null | awk '
        NR > 3 && $2 ~ /^\[/ {
            cpu = $2; task = $3; sub(/\[.*/, "", task); delay = $5 + 0
            if (task ~ /^(wrk|mock-upstream|actix-rt)/) {
                path++
                if (delay > 0.3) { long++; by[prev[cpu]]++ }
            }
            prev[cpu] = task
        }
        END {
            printf "%d of %d switch-ins waited over 0.3 ms:", long, path
            for (t in by) printf " %s %d;", t, by[t]
            print ""
        }'
fi
