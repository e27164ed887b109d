#!/usr/bin/env bash
# Stream benchmark: first-event latency, RSS after client-aborted streams, RSS with
# many streams open at once. Loopback only, bounded in time (about a minute).
#
#   bench/streams.sh
#   ABORTS=2000 OPEN=200 NO_BUILD=1 bench/streams.sh
#
# Environment:
#   FIRST     sequential streams per side for the first-event latency (default 2000;
#             with 500 a p99 rests on 5 samples)
#   ABORTS    client-aborted streams (default 10000), 64 at a time
#   ABORT_WARMUP  aborted streams before the baseline is read (default 2000)
#   OPEN      streams held open at once (default 1000)
#   GAP_MS    the mock's gap between SSE events (default 1000: a stream lasts ~14 s)
#   NO_BUILD=1  skip `cargo build --release --bins`
#
# The mock sends the first event at once and the other 14 after GAP_MS each. The
# daemon (fresh data directory, three API-key accounts, default settings) trims its
# heap every 10 s, so RSS is read 12 s after each phase. Prints one markdown table.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/common.sh
source bench/common.sh

FIRST=${FIRST:-2000}
ABORTS=${ABORTS:-10000}
ABORT_WARMUP=${ABORT_WARMUP:-2000}
OPEN=${OPEN:-1000}
GAP_MS=${GAP_MS:-1000}
int_in "$FIRST" 10 10000 FIRST
int_in "$ABORTS" 0 100000 ABORTS
int_in "$ABORT_WARMUP" 0 100000 ABORT_WARMUP
int_in "$OPEN" 1 5000 OPEN
int_in "$GAP_MS" 1 5000 GAP_MS

for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "bench/streams.sh needs $tool" >&2; exit 2; }
done
# Every open stream is two sockets in the daemon and one in the client.
ulimit -n "$(( OPEN * 3 + 1024 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== cargo build --release --bins" >&2
    cargo build --release --bins >&2
fi
BIN="$ROOT/target/release"

make_workdir streams

start_mock_and_daemon "$GAP_MS"
sleep 1
RSS_IDLE=$(rss_kb "$DAEMON_PID")

OUT="$WORK/streams.txt"
python3 bench/streams_load.py --direct "$MOCK_PORT" --proxy "$PORT" --pid "$DAEMON_PID" \
    --first "$FIRST" --aborts "$ABORTS" --abort-warmup "$ABORT_WARMUP" --open "$OPEN" >"$OUT"
v() { awk -v k="$1" '$1 == k {print $2}' "$OUT"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%+.1f%%", (a / b - 1) * 100; else print "-" }'; }

echo
echo "Date: $(date -u +%Y-%m-%d) · $(nproc) cores · mock SSE gap ${GAP_MS} ms"
echo
echo "| measure | direct | proxy | added |"
echo "|---|---:|---:|---:|"
for g in 0 1; do
    label=$([[ $g == 0 ]] && echo "stream in one write" || echo "events 1 ms apart")
    for q in p50 p99; do
        d=$(v "first${g}_direct_$q") p=$(v "first${g}_proxy_$q")
        echo "| first event $q, $label ($FIRST sequential streams each) | $d ms | $p ms | $(sub "$p" "$d") ms |"
    done
done
echo "| daemon RSS idle | | $(mb "$RSS_IDLE") MB | |"
echo "| RSS after the first-event runs, settled | | $(mb "$(v abort_cold_kb)") MB | |"
echo "| RSS after $ABORT_WARMUP warm-up aborted streams, settled: the baseline | | $(mb "$(v abort_baseline_kb)") MB | |"
echo "| RSS right after $ABORTS more aborted streams / 12 s later | | $(mb "$(v abort_peak_kb)") / $(mb "$(v abort_after_kb)") MB | $(pct "$(v abort_after_kb)" "$(v abort_baseline_kb)") |"
echo "| aborted streams that failed before their first event | | $(v abort_failed) | |"
echo "| streams open at once / of $OPEN | | $(v open_streams) | |"
echo "| peak RSS with them open | | $(mb "$(v open_peak_kb)") MB | |"
echo "| of them ended with message_stop | | $(v open_completed) | |"
