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
# Every minute the daemon's RSS (VmRSS, and its anonymous and file-backed parts),
# open file descriptors and threads are printed and logged. File-backed RSS is mostly
# the binary's own code; growth in the anonymous part is the heap. At the end the daemon is stopped with SIGTERM (which flushes its request
# log) and the rows in the requests table are counted.
#
# Verdict: PASS when the daemon stayed up and its RSS after minute BASELINE_MIN never
# exceeded the minute-BASELINE_MIN value by more than 10%. A run shorter than
# BASELINE_MIN + 2 minutes takes minute 1 as the baseline.
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

int_in() { # value min max name
    if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < $2 || $1 > $3)); then
        echo "$4 must be a whole number in $2..$3 (got $1)" >&2
        exit 2
    fi
}
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

stop_pid() { # pid: TERM, bounded wait, then KILL
    local pid=$1
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
}
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

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_http() { # url: bounded wait until something answers
    for _ in $(seq 100); do
        if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
        sleep 0.1
    done
    say "nothing answers at $1"
    return 1
}
status_kb() { # pid field
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}
rss_kb() { status_kb "$1" VmRSS; }
threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds_of() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

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

declare -a RSS ANON FILE FDS THR
sample() { # minute: reads the daemon's numbers into the arrays
    RSS[$1]=$(rss_kb "$DAEMON_PID")
    ANON[$1]=$(status_kb "$DAEMON_PID" RssAnon)
    FILE[$1]=$(status_kb "$DAEMON_PID" RssFile)
    FDS[$1]=$(fds_of "$DAEMON_PID")
    THR[$1]=$(threads_of "$DAEMON_PID")
}
sample_line() { # minute
    echo "RSS $(mb "${RSS[$1]}") MB (anon $(mb "${ANON[$1]}"), file $(mb "${FILE[$1]}")), fds ${FDS[$1]}, threads ${THR[$1]}"
}
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
        sleep 1
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
REASON="RSS after minute $BASELINE_MIN at most +${GROWTH}% over it (limit +10%)"
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
echo "| minute | RSS MB | anon MB | file MB | fds | threads |"
echo "|---:|---:|---:|---:|---:|---:|"
for ((m = 0; m <= MINUTES; m++)); do
    [[ -n "${RSS[m]:-}" ]] || continue
    echo "| $m | $(mb "${RSS[m]}") | $(mb "${ANON[m]}") | $(mb "${FILE[m]}") | ${FDS[m]} | ${THR[m]} |"
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
echo "RSS: minute $BASELINE_MIN $(mb "$BASE") MB, highest after it $(mb "$MAX_AFTER") MB"
echo "VERDICT: $VERDICT — $REASON"
echo "log: $LOG"
[[ "$VERDICT" == PASS ]]
