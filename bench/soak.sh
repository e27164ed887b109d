#!/usr/bin/env bash
# Soak test: the release daemon under mixed traffic with faults for a long time,
# watching its memory. Loopback only; not part of `cargo test`.
#
#   bench/soak.sh                          # one hour (the default)
#   DURATION=180 bench/soak.sh             # a 3-minute check of the script
#   nohup bench/soak.sh >/tmp/soak.out 2>&1 &
#
# What runs: the mock upstream (bench/mock_upstream.rs) with FAULT_PERCENT of its
# answers faults (529, 500, connection closed before the headers, body cut half-way,
# in equal parts, chosen pseudo-randomly per upstream attempt), the daemon on a fresh
# data directory with three API-key accounts in front of it, and a paced load
# generator (bench/soak_load.py: half JSON, half SSE, ABORT_SHARE of the streams hung
# up by the client after the first bytes).
#
# The daemon's RSS (VmRSS) and its anonymous part are read every 2 seconds. Every
# minute the median and the range of that minute's ~30 readings are printed and
# logged, with the file-backed part, open file descriptors and threads at the end of
# the minute. File-backed RSS is mostly the binary's own code; growth in the
# anonymous part is the heap. At the end the daemon is stopped with SIGTERM (which
# flushes its request log) and the rows in the requests table are counted.
#
# Why medians: between two heap trims (src/memory.rs) glibc's arenas hold freed
# pages, so single readings jump up and down by 2-3 MB under steady load (a sawtooth
# with a period of seconds; heaptrack shows the live heap itself within ~0.6 MB).
# A leak raises every reading, so it raises the medians; one reading taken at the
# top or the bottom of a tooth does not decide the verdict.
#
# Verdict: PASS when the daemon stayed up and no minute's median RSS after minute
# BASELINE_MIN exceeded minute BASELINE_MIN's median by more than 10%. The highest
# single reading is reported too. A run shorter than BASELINE_MIN + 2 minutes takes
# minute 1 as the baseline.
#
# Environment:
#   DURATION        seconds of load (default 3600, bounded to 60..14400)
#   RATE            requests per second, all load threads together (default 100, 1..500)
#   THREADS         load generator threads (default 16)
#   FAULT_PERCENT   share of upstream answers that are faults (default 5)
#   ABORT_SHARE     share of streams aborted by the client (default 0.10)
#   EVENT_GAP_MS    gap between the mock's SSE events (default 10; a stream lasts ~150 ms)
#   BASELINE_MIN    minute whose RSS is the baseline (default 5)
#   LOG             log file (default /tmp/claudeflare-soak-<time>.log)
#   NO_BUILD=1      skip `cargo build --release --bins`
#   KEEP=1          keep the work directory (data dir, daemon and mock logs)
#
# The defaults are modest on purpose: a few hundred requests a second at most, so that
# a 2-core machine shared with other work is not starved.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/common.sh
source bench/common.sh

DURATION=${DURATION:-3600}
RATE=${RATE:-100}
THREADS=${THREADS:-16}
FAULT_PERCENT=${FAULT_PERCENT:-5}
ABORT_SHARE=${ABORT_SHARE:-0.10}
EVENT_GAP_MS=${EVENT_GAP_MS:-10}
BASELINE_MIN=${BASELINE_MIN:-5}
int_in "$DURATION" 60 14400 DURATION
int_in "$RATE" 1 500 RATE
int_in "$THREADS" 1 64 THREADS
int_in "$FAULT_PERCENT" 0 100 FAULT_PERCENT
int_in "$EVENT_GAP_MS" 0 1000 EVENT_GAP_MS
int_in "$BASELINE_MIN" 1 60 BASELINE_MIN
MINUTES=$(((DURATION + 59) / 60))
if ((MINUTES < BASELINE_MIN + 2)); then
    BASELINE_MIN=1
fi
LOG=${LOG:-/tmp/claudeflare-soak-$(date -u +%Y%m%dT%H%M%SZ).log}

for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "bench/soak.sh needs $tool" >&2; exit 2; }
done

# Everything printed also goes to the log.
exec > >(tee -a "$LOG") 2>&1
say() { echo "[$(date -u +%H:%M:%S)] $*"; }

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    say "cargo build --release --bins"
    cargo build --release --bins
fi
BIN="$ROOT/target/release"

WORK=$(mktemp -d /tmp/claudeflare-soak.XXXXXX)
DATA="$WORK/data"
mkdir -p "$DATA"
MOCK_PID=""
DAEMON_PID=""
LOAD_PID=""

cleanup() {
    stop_pid "$LOAD_PID"
    stop_pid "$DAEMON_PID"
    stop_pid "$MOCK_PID"
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status_kb() { # pid field
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}
threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds_of() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

MOCK_PORT=$(free_port)
PORT=$(free_port)

"$BIN/mock-upstream" "$MOCK_PORT" "$EVENT_GAP_MS" "$FAULT_PERCENT" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
wait_http "http://127.0.0.1:$MOCK_PORT/__mock/stats"

# Short cooldowns and retry delays: with 5% faults at this rate the default 10 s 529
# cooldown would keep every account benched and the soak would test only 503s.
CLAUDEFLARE_OVERLOAD_COOLDOWN_MS=500 CLAUDEFLARE_RETRY_DELAY_MS=50 \
    CLAUDEFLARE_RETRY_MAX_DELAY_MS=500 \
    "$BIN/claudeflare" serve --port "$PORT" --host 127.0.0.1 --data-dir "$DATA" \
    --upstream-url "http://127.0.0.1:$MOCK_PORT" --log-level warn \
    --stream-idle-timeout-ms 10000 --upstream-header-timeout-ms 10000 \
    >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
wait_http "http://127.0.0.1:$PORT/"

for name in alpha beta gamma; do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/accounts" \
        -H 'content-type: application/json' \
        -d "{\"name\":\"$name\",\"apiKey\":\"sk-ant-$name-000000000000000\"}"
done

say "soak: ${DURATION} s at ${RATE} req/s (${THREADS} threads), ${FAULT_PERCENT}% upstream faults," \
    "${ABORT_SHARE} of streams aborted, SSE gap ${EVENT_GAP_MS} ms; $(nproc) cores; log $LOG"
say "daemon pid $DAEMON_PID on 127.0.0.1:$PORT, mock on 127.0.0.1:$MOCK_PORT, data $DATA"

declare -a RSS ANON LOW HIGH FILE FDS THR
# The current minute's readings, one "rss anon" pair per line.
READINGS="$WORK/readings"
: >"$READINGS"
HIGHEST=0
HIGHEST_MIN=0
read_now() {
    local rss
    rss=$(rss_kb "$DAEMON_PID")
    echo "$rss $(status_kb "$DAEMON_PID" RssAnon)" >>"$READINGS"
    if ((rss > HIGHEST && m > BASELINE_MIN)); then HIGHEST=$rss HIGHEST_MIN=$m; fi
}
median_of() { # column of $READINGS
    sort -n -k"$1" "$READINGS" | awk -v c="$1" '{v[NR] = $c} END {print (NR ? v[int((NR + 1) / 2)] : 0)}'
}
sample() { # minute: the minute's medians and range, and the rest now, into the arrays
    [[ -s "$READINGS" ]] || read_now
    RSS[$1]=$(median_of 1)
    ANON[$1]=$(median_of 2)
    LOW[$1]=$(sort -n -k1 "$READINGS" | awk 'NR == 1 {print $1}')
    HIGH[$1]=$(sort -n -k1 "$READINGS" | awk 'END {print $1}')
    : >"$READINGS"
    FILE[$1]=$(status_kb "$DAEMON_PID" RssFile)
    FDS[$1]=$(fds_of "$DAEMON_PID")
    THR[$1]=$(threads_of "$DAEMON_PID")
}
sample_line() { # minute
    echo "RSS $(mb "${RSS[$1]}") MB (range $(mb "${LOW[$1]}")-$(mb "${HIGH[$1]}"); anon $(mb "${ANON[$1]}"), file $(mb "${FILE[$1]}")), fds ${FDS[$1]}, threads ${THR[$1]}"
}
m=0
sample 0
say "minute 0: $(sample_line 0) (idle, before load)"

python3 "$ROOT/bench/soak_load.py" --port "$PORT" --duration "$DURATION" --rate "$RATE" \
    --threads "$THREADS" --abort-share "$ABORT_SHARE" --out "$WORK/load.json" \
    >"$WORK/load.out" 2>&1 &
LOAD_PID=$!
START=$(date +%s)

DIED=0
for ((m = 1; m <= MINUTES; m++)); do
    target=$((START + m * 60))
    if ((target > START + DURATION)); then target=$((START + DURATION)); fi
    while (($(date +%s) < target)); do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then DIED=1; break 2; fi
        read_now
        sleep 2
    done
    sample "$m"
    say "minute $m: $(sample_line "$m")"
done

# The load generator stops by itself at DURATION; bounded wait for its last answers.
for _ in $(seq 600); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
stop_pid "$LOAD_PID"
wait "$LOAD_PID" 2>/dev/null || true
LOAD_PID=""
LOAD_JSON=$(cat "$WORK/load.json" 2>/dev/null || echo '{}')
MOCK_JSON=$(curl -s --max-time 5 "http://127.0.0.1:$MOCK_PORT/__mock/stats" || echo '{}')

STOP_RC=died
if ((DIED == 0)); then
    kill -TERM "$DAEMON_PID"
    STOP_RC=timeout
    for _ in $(seq 600); do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            set +e; wait "$DAEMON_PID"; STOP_RC=$?; set -e
            break
        fi
        sleep 0.1
    done
fi
DAEMON_PID=""

ROWS=$(python3 - "$DATA/claudeflare.db" <<'EOF'
import sqlite3, sys
try:
    db = sqlite3.connect(sys.argv[1])
    print(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
except sqlite3.Error as e:
    print(f"unreadable ({e})")
EOF
)
DB_MB=$(du -sm "$DATA" | awk '{print $1}')

# Verdict over the samples after the baseline minute.
BASE=${RSS[BASELINE_MIN]:-0}
MAX_AFTER=$BASE
for ((m = BASELINE_MIN + 1; m <= MINUTES; m++)); do
    v=${RSS[m]:-0}
    if ((v > MAX_AFTER)); then MAX_AFTER=$v; fi
done
GROWTH=$(awk -v b="$BASE" -v x="$MAX_AFTER" 'BEGIN { if (b > 0) printf "%.1f", (x - b) * 100 / b; else print "-" }')
VERDICT=PASS
REASON="median RSS after minute $BASELINE_MIN at most +${GROWTH}% over its median (limit +10%)"
if ((DIED == 1)); then
    VERDICT=FAIL
    REASON="the daemon exited during the run (see $WORK/daemon.log; KEEP=1 keeps it)"
elif ((BASE == 0)) || ((MAX_AFTER * 100 > BASE * 110)); then
    VERDICT=FAIL
fi

field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(d.get(sys.argv[2], "-"))' "$1" "$2"; }

echo
echo "Date: $(date -u +%Y-%m-%d) · $(nproc) cores · ${DURATION} s · ${RATE} req/s target · ${FAULT_PERCENT}% upstream faults · ${ABORT_SHARE} of streams aborted"
echo
echo "| minute | RSS MB (median) | lowest-highest reading | anon MB (median) | file MB | fds | threads |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for ((m = 0; m <= MINUTES; m++)); do
    [[ -n "${RSS[m]:-}" ]] || continue
    echo "| $m | $(mb "${RSS[m]}") | $(mb "${LOW[m]}")-$(mb "${HIGH[m]}") | $(mb "${ANON[m]}") | $(mb "${FILE[m]}") | ${FDS[m]} | ${THR[m]} |"
done
echo
echo "| count | value |"
echo "|---|---:|"
echo "| requests sent | $(field "$LOAD_JSON" sent) |"
echo "| answered 2xx and complete | $(field "$LOAD_JSON" ok) |"
echo "| errors seen by the client | $(field "$LOAD_JSON" errors) |"
echo "| streams aborted by the client | $(field "$LOAD_JSON" aborted) |"
echo "| client statuses | $(field "$LOAD_JSON" statuses) |"
echo "| client error kinds | $(field "$LOAD_JSON" error_kinds) |"
echo "| upstream answers (mock) | $(field "$MOCK_JSON" answers) |"
echo "| upstream faults: 529 / 500 / closed / cut | $(field "$MOCK_JSON" overloaded) / $(field "$MOCK_JSON" server_error) / $(field "$MOCK_JSON" close) / $(field "$MOCK_JSON" cut) |"
echo "| rows recorded | $ROWS |"
echo "| data directory size | ${DB_MB} MB |"
echo "| daemon exit code after SIGTERM | $STOP_RC |"
echo
echo "RSS medians: minute $BASELINE_MIN $(mb "$BASE") MB, highest after it $(mb "$MAX_AFTER") MB;" \
    "highest single reading after it $(mb "$HIGHEST") MB (minute $HIGHEST_MIN)"
echo "VERDICT: $VERDICT — $REASON"
echo "log: $LOG"
[[ "$VERDICT" == PASS ]]
