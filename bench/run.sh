#!/usr/bin/env bash
# Overhead benchmark: the mock upstream alone ("direct") against the same mock behind
# the daemon ("proxy"), with wrk, everything on loopback on this machine.
#
#   bench/run.sh                 # 10 s per run
#   DURATION=5 bench/run.sh      # shorter runs (1..120 s)
#
# Environment:
#   DURATION      seconds per wrk run (default 10, bounded to 1..120)
#   EVENT_GAP_MS  the mock's gap between SSE events (default 0: the stream in one write)
#   DAEMON_ARGS   extra flags for `claudeflare serve` (e.g. "--workers 1")
#   UPSTREAM      "mock" (default: bench/mock_upstream.rs) or "nginx": nginx serving the
#                 mock's exact JSON and SSE bodies, as in the performance issue's
#                 reference figures. nginx answers with less CPU than the mock, which
#                 leaves more of the cores to the daemon. Needs `nginx` on PATH
#                 (`apt-get install nginx-light`) and EVENT_GAP_MS=0.
#   NGINX_WORKERS nginx worker processes (default 1)
#   BARE=1        also measure bench/bare_proxy.rs (actix-web + awc forwarding, nothing
#                 else): the fixed stack's ceiling, as a third column
#   NO_BUILD=1    skip `cargo build --release --bins`
#   KEEP=1        keep the data directory and the raw wrk outputs (path printed)
#
# Prints one markdown table. Runs: c=1 (-t1 -c1), c=64 (-t2 -c64), SSE c=16 (-t2 -c16,
# "stream":true body), and c=1 once more through bench/paired_probe.rs, which reports
# every request once (wrk's c=1 p99 is corrected for coordinated omission). Rows
# recorded are counted after a graceful stop (SIGTERM, which flushes the request log)
# and compared with the requests wrk and the probes completed through the proxy. A few
# more rows than completed requests is expected: wrk stops with requests in flight (up
# to one per connection per run); the daemon still answers and records them.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/common.sh
source bench/common.sh

DURATION=${DURATION:-10}
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 120)); then
    echo "DURATION must be a whole number of seconds in 1..120 (got $DURATION)" >&2
    exit 2
fi
EVENT_GAP_MS=${EVENT_GAP_MS:-0}
DAEMON_ARGS=${DAEMON_ARGS:-}
UPSTREAM=${UPSTREAM:-mock}
NGINX_WORKERS=${NGINX_WORKERS:-1}
case $UPSTREAM in
    mock) ;;
    nginx)
        command -v nginx >/dev/null || { echo "UPSTREAM=nginx needs nginx (apt-get install nginx-light)" >&2; exit 2; }
        int_in "$NGINX_WORKERS" 1 16 NGINX_WORKERS
        [[ "$EVENT_GAP_MS" == 0 ]] || { echo "UPSTREAM=nginx sends the stream in one write: EVENT_GAP_MS must be 0" >&2; exit 2; }
        ;;
    *) echo "UPSTREAM must be mock or nginx (got $UPSTREAM)" >&2; exit 2 ;;
esac

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool" >&2; exit 2; }
done

BARE=${BARE:-0}
[[ "$BARE" == 0 || "$BARE" == 1 ]] || { echo "BARE must be 0 or 1 (got $BARE)" >&2; exit 2; }
if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== cargo build --release --bins" >&2
    cargo build --release --bins --example paired-probe >&2
    if [[ "$BARE" == 1 ]]; then
        cargo build --release --example bare-proxy >&2
    fi
fi
BIN="$ROOT/target/release"

WORK=$(mktemp -d /tmp/claudeflare-bench.XXXXXX)
DATA="$WORK/data"
mkdir -p "$DATA"
MOCK_PID=""
NGINX_PID=""
DAEMON_PID=""
BARE_PID=""

cleanup() {
    local pid
    for pid in "$DAEMON_PID" "$BARE_PID" "$MOCK_PID" "$NGINX_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            # Bounded wait, then force.
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HALT_POLL=/sys/module/haltpoll/parameters/guest_halt_poll_ns
if [[ -r "$HALT_POLL" && "$(cat "$HALT_POLL")" == 0 ]]; then
    echo "note: this guest halts an idle vCPU at once (haltpoll guest_halt_poll_ns=0): every" \
        "wake-up of one goes through the host, which dominates the c=1 figures" \
        "(docs/performance.md, eleventh round)" >&2
fi

MOCK_PORT=$(free_port)
PORT=$(free_port)

"$BIN/mock-upstream" "$MOCK_PORT" "$EVENT_GAP_MS" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
wait_http "http://127.0.0.1:$MOCK_PORT/"

BODY='{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}'
STREAM_BODY='{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]}'

UPSTREAM_PORT=$MOCK_PORT
UPSTREAM_LABEL="mock upstream"
if [[ "$UPSTREAM" == nginx ]]; then
    # nginx serves the mock's own answers, taken from the mock. It cannot look into
    # the request body, so the SSE runs also send `x-bench-stream: 1` (the daemon
    # forwards it like any end-to-end header).
    JSON_TEXT=$(curl -sf "http://127.0.0.1:$MOCK_PORT/v1/messages" -d "$BODY")
    SSE_TEXT=$(curl -sf "http://127.0.0.1:$MOCK_PORT/v1/messages" -d "$STREAM_BODY"; echo x)
    SSE_TEXT=${SSE_TEXT%x} # $( ) would drop the stream's closing blank line
    stop_pid "$MOCK_PID"
    MOCK_PID=""
    case "$JSON_TEXT$SSE_TEXT" in
        *"'"* | *'\'* | *'$'*) echo "a mock answer has a character nginx would interpret" >&2; exit 2 ;;
    esac
    UPSTREAM_PORT=$(free_port)
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location = /v1/messages {
            if (\$http_x_bench_stream) { rewrite ^ /__sse last; }
            default_type application/json;
            return 200 '$JSON_TEXT';
        }
        location = /__sse {
            internal;
            default_type text/event-stream;
            return 200 '$SSE_TEXT';
        }
        location / { return 200 'ok'; }
    }
}
EOF
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/out.log" 2>&1 &
    NGINX_PID=$!
    wait_http "http://127.0.0.1:$UPSTREAM_PORT/"
    UPSTREAM_LABEL="nginx, $NGINX_WORKERS worker process(es)"
fi

# shellcheck disable=SC2086 # DAEMON_ARGS is split on purpose
"$BIN/claudeflare" serve --port "$PORT" --host 127.0.0.1 --data-dir "$DATA" \
    --upstream-url "http://127.0.0.1:$UPSTREAM_PORT" --log-level warn $DAEMON_ARGS \
    >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
wait_http "http://127.0.0.1:$PORT/"

add_accounts "$PORT"

if [[ "$BARE" == 1 ]]; then
    [[ -x "$BIN/examples/bare-proxy" ]] || {
        echo "BARE=1 needs target/release/examples/bare-proxy (cargo build --release --example bare-proxy)" >&2
        exit 2
    }
    BARE_PORT=$(free_port)
    "$BIN/examples/bare-proxy" "$BARE_PORT" "http://127.0.0.1:$UPSTREAM_PORT" >"$WORK/bare.log" 2>&1 &
    BARE_PID=$!
    wait_http "http://127.0.0.1:$BARE_PORT/"
fi

lua() { # file body [extra lua line]
    cat >"$1" <<EOF
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = "sk-ant-client-000000000000000"
${3:-}
EOF
}
lua "$WORK/json.lua" "$BODY"
lua "$WORK/sse.lua" "$STREAM_BODY" 'wrk.headers["x-bench-stream"] = "1"'

sleep 1
RSS_IDLE=$(rss_kb "$DAEMON_PID")

# wrk's durations to milliseconds ("123.45us", "1.20ms", "2.00s").
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n = n * 60000; else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n }'
}

# run NAME THREADS CONNS SCRIPT URL: one wrk run; sets P50 P99 RPS DONE ERRS
run() {
    local out="$WORK/wrk-$1.txt"
    wrk -t"$2" -c"$3" -d"${DURATION}s" --latency -s "$4" "$5/v1/messages" >"$out" 2>&1
    P50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    P99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    DONE=$(awk '/ requests in / {print $1}' "$out")
    ERRS=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$out")
    echo "$1: p50 ${P50} ms, p99 ${P99} ms, ${RPS} req/s, ${DONE} done, ${ERRS} errors" >&2
}

DIRECT="http://127.0.0.1:$UPSTREAM_PORT"
PROXY="http://127.0.0.1:$PORT"
COMPLETED=0
declare -A R

measure() { # label threads conns script
    run "direct-$1" "$2" "$3" "$4" "$DIRECT"
    R[$1,dp50]=$P50 R[$1,dp99]=$P99 R[$1,drps]=$RPS R[$1,derr]=$ERRS
    if [[ "$BARE" == 1 ]]; then
        run "bare-$1" "$2" "$3" "$4" "http://127.0.0.1:$BARE_PORT"
        R[$1,bp50]=$P50 R[$1,bp99]=$P99 R[$1,brps]=$RPS R[$1,berr]=$ERRS
    fi
    run "proxy-$1" "$2" "$3" "$4" "$PROXY"
    R[$1,pp50]=$P50 R[$1,pp99]=$P99 R[$1,prps]=$RPS R[$1,perr]=$ERRS
    COMPLETED=$((COMPLETED + DONE))
}

measure c1 1 1 "$WORK/json.lua"

# The same c=1 load per request, without wrk's correction: wrk adds, for every
# response slower than the run's mean interval, samples for the requests that a
# fixed-rate client would have sent meanwhile (its stats_correct), so a single
# stall of S ms counts S / interval times and its c=1 p99 follows the box's stall
# time more than any one request. bench/paired_probe.rs asks the targets in turn
# on one connection each and reports each request once (docs/performance.md,
# eleventh round).
[[ -x "$BIN/examples/paired-probe" ]] || {
    echo "needs target/release/examples/paired-probe (cargo build --release --example paired-probe)" >&2
    exit 2
}
PROBE_ROUNDS=$((DURATION * 4000))
PROBE_TARGETS=("direct=127.0.0.1:$UPSTREAM_PORT")
[[ "$BARE" == 1 ]] && PROBE_TARGETS+=("bare=127.0.0.1:$BARE_PORT")
PROBE_TARGETS+=("proxy=127.0.0.1:$PORT")
"$BIN/examples/paired-probe" -n "$PROBE_ROUNDS" "${PROBE_TARGETS[@]}" >"$WORK/probe.txt"
cat "$WORK/probe.txt" >&2
# | label | p50 | p90 | p99 | ...
probe() { awk -F'|' -v t="$1" -v c="$2" '{gsub(/ /, "", $2)} $2 == t {gsub(/ /, "", $c); print $c}' "$WORK/probe.txt"; }
COMPLETED=$((COMPLETED + PROBE_ROUNDS + 1000))

# The daemon's own figure: x-claudeflare-overhead-ms over sequential keep-alive requests.
OVERHEAD=$(python3 - "$PORT" "$BODY" <<'EOF'
import http.client, statistics, sys
port, body = int(sys.argv[1]), sys.argv[2].encode()
c = http.client.HTTPConnection("127.0.0.1", port)
values = []
n = 2000
for _ in range(n):
    c.request("POST", "/v1/messages", body, {"content-type": "application/json", "x-api-key": "sk-ant-client-000000000000000"})
    r = c.getresponse()
    r.read()
    v = r.getheader("x-claudeflare-overhead-ms")
    if v is not None:
        values.append(float(v))
if values:
    values.sort()
    print(f"{statistics.median(values):.3f} {values[int(len(values) * 0.99) - 1]:.3f} {n}")
else:
    print(f"- - {n}")
EOF
)
read -r OH_P50 OH_P99 OH_N <<<"$OVERHEAD"
COMPLETED=$((COMPLETED + OH_N))

measure c64 2 64 "$WORK/json.lua"
# Read at the run's end, the RSS includes the records still queued for the log and
# swings with them (58-74 MB within one c=64 run on the twelfth round's box); a
# second later they are written and the figure settles.
RSS_LOADED=$(rss_kb "$DAEMON_PID")
sleep 1
RSS_SETTLED=$(rss_kb "$DAEMON_PID")
measure sse16 2 16 "$WORK/sse.lua"

# Graceful stop: the daemon flushes its request log and exits 0.
kill -TERM "$DAEMON_PID"
STOP_RC=timeout
for _ in $(seq 600); do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        set +e; wait "$DAEMON_PID"; STOP_RC=$?; set -e
        break
    fi
    sleep 0.1
done
DAEMON_PID=""

read -r ROWS PAYLOADS <<<"$(python3 - "$DATA/claudeflare.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
payloads = db.execute("SELECT COUNT(*) FROM request_payloads").fetchone()[0]
print(rows, payloads)
EOF
)"

ratio() { awk -v p="$1" -v d="$2" 'BEGIN { if (d > 0) printf "%.2f", p / d; else print "-" }'; }

echo
BOX_NOTE=""
# A guest that halts its idle vCPUs at once pays the host for every wake-up of one.
[[ -r "$HALT_POLL" ]] && BOX_NOTE=" · guest halt polling $(cat "$HALT_POLL") ns"
echo "Date: $(date -u +%Y-%m-%d) · $(nproc) cores · ${DURATION} s per run · upstream: ${UPSTREAM_LABEL} · SSE event gap ${EVENT_GAP_MS} ms${DAEMON_ARGS:+ · daemon flags: $DAEMON_ARGS}${BOX_NOTE}"
echo
# With BARE=1 a column for the bare proxy (the stack's ceiling) before the daemon's.
row() { # label direct bare proxy ratio
    if [[ "$BARE" == 1 ]]; then
        echo "| $1 | $2 | $3 | $4 | $5 |"
    else
        echo "| $1 | $2 | $4 | $5 |"
    fi
}
added() { awk -v p="$1" -v d="$2" 'BEGIN {printf "%.3f ms", p - d}'; }
row measure direct "bare actix-web + awc" proxy proxy/direct
row "---" "---:" "---:" "---:" "---:"
for k in c1 c64 sse16; do
    case $k in
        c1) label="JSON c=1" ;;
        c64) label="JSON c=64" ;;
        sse16) label="SSE c=16" ;;
    esac
    row "$label p50" "${R[$k,dp50]} ms" "${R[$k,bp50]:-} ms" "${R[$k,pp50]} ms" "$(ratio "${R[$k,pp50]}" "${R[$k,dp50]}")"
    row "$label p99" "${R[$k,dp99]} ms" "${R[$k,bp99]:-} ms" "${R[$k,pp99]} ms" "$(ratio "${R[$k,pp99]}" "${R[$k,dp99]}")"
    row "$label req/s" "${R[$k,drps]}" "${R[$k,brps]:-}" "${R[$k,prps]}" "$(ratio "${R[$k,prps]}" "${R[$k,drps]}")"
    row "$label non-2xx + socket errors" "${R[$k,derr]}" "${R[$k,berr]:-}" "${R[$k,perr]}" ""
done
row "p50 added at c=1 (− direct)" "" "$( [[ "$BARE" == 1 ]] && added "${R[c1,bp50]}" "${R[c1,dp50]}")" "$(added "${R[c1,pp50]}" "${R[c1,dp50]}")" ""
row "p99 added at c=1 (− direct)" "" "$( [[ "$BARE" == 1 ]] && added "${R[c1,bp99]}" "${R[c1,dp99]}")" "$(added "${R[c1,pp99]}" "${R[c1,dp99]}")" ""
row "c=1 per request (paired-probe) p50 / p99" "$(probe direct 3) / $(probe direct 5) ms" "$( [[ "$BARE" == 1 ]] && echo "$(probe bare 3) / $(probe bare 5) ms")" "$(probe proxy 3) / $(probe proxy 5) ms" ""
row "c=1 per request: p50 / p99 added (− direct)" "" "$( [[ "$BARE" == 1 ]] && echo "$(added "$(probe bare 3)" "$(probe direct 3)") / $(added "$(probe bare 5)" "$(probe direct 5)")")" "$(added "$(probe proxy 3)" "$(probe direct 3)") / $(added "$(probe proxy 5)" "$(probe direct 5)")" ""
row "x-claudeflare-overhead-ms p50 / p99 (${OH_N} sequential requests)" "" "" "${OH_P50} / ${OH_P99} ms" ""
row "daemon RSS idle" "" "" "$(mb "$RSS_IDLE") MB" ""
row "daemon RSS at the end of c=64" "" "" "$(mb "$RSS_LOADED") MB" ""
row "daemon RSS 1 s after c=64" "" "" "$(mb "$RSS_SETTLED") MB" ""
row "rows recorded / requests completed" "" "" "${ROWS} / ${COMPLETED}" ""
row "payload rows" "" "" "${PAYLOADS}" ""
row "daemon exit code after SIGTERM" "" "" "${STOP_RC}" ""
