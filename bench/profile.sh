#!/usr/bin/env bash
# Profiles the daemon under load (companion to bench/run.sh; release binaries must exist).
#
#   bench/profile.sh perf       # perf record (cpu-clock sampling, call graphs) during wrk c=64
#   bench/profile.sh callgrind  # the daemon under valgrind --tool=callgrind during wrk c=1
#
# This machine kind has no hardware counters (`perf stat -e instructions` is "not
# supported"), so perf samples the software cpu-clock event. Output: /tmp/claudeflare-profile.*
# Environment: DURATION (default 10, 1..60), DAEMON_ARGS (extra serve flags).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-perf}
DURATION=${DURATION:-10}
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 60)); then
    echo "DURATION must be 1..60" >&2
    exit 2
fi
DAEMON_ARGS=${DAEMON_ARGS:-}
BIN=target/release
OUT=/tmp/claudeflare-profile
WORK=$(mktemp -d /tmp/claudeflare-prof.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_http() {
    for _ in $(seq 300); do
        curl -s -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    return 1
}

MOCK_PORT=$(free_port)
PORT=$(free_port)
"$BIN/mock-upstream" "$MOCK_PORT" 0 >/dev/null 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/"

WRAP=()
if [[ "$MODE" == callgrind ]]; then
    WRAP=(valgrind --tool=callgrind "--callgrind-out-file=$OUT.callgrind.%p" --separate-threads=no)
fi
# shellcheck disable=SC2086
"${WRAP[@]}" "$BIN/claudeflare" serve --port "$PORT" --host 127.0.0.1 --data-dir "$WORK/data" \
    --upstream-url "http://127.0.0.1:$MOCK_PORT" --log-level warn $DAEMON_ARGS \
    >"$WORK/daemon.log" 2>&1 &
DAEMON=$!
PIDS=("$DAEMON" "${PIDS[@]}")
wait_http "http://127.0.0.1:$PORT/"
for name in a b c; do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/api/accounts" -H 'content-type: application/json' \
        -d "{\"name\":\"$name\",\"apiKey\":\"sk-ant-$name-000000000000000\"}"
done
cat >"$WORK/json.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}'
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "sk-ant-client-000000000000000"
EOF

case "$MODE" in
    perf)
        perf record -F 1999 -g -e cpu-clock -o "$OUT.perf.data" -p "$DAEMON" -- sleep "$DURATION" 2>/dev/null &
        PERF=$!
        wrk -t2 -c64 -d"${DURATION}s" --latency -s "$WORK/json.lua" "http://127.0.0.1:$PORT/v1/messages"
        wait "$PERF" || true
        perf report -i "$OUT.perf.data" --no-children --stdio --percent-limit 0.7 -g none \
            --sort dso,symbol 2>/dev/null | grep -v '^$' | head -80 >"$OUT.perf.txt"
        perf report -i "$OUT.perf.data" --no-children --stdio --sort comm 2>/dev/null \
            | grep -v '^#' | grep -v '^$' | head -20 >>"$OUT.perf.txt"
        echo "report: $OUT.perf.txt (data: $OUT.perf.data)"
        ;;
    callgrind)
        wrk -t1 -c1 -d"${DURATION}s" --latency -s "$WORK/json.lua" "http://127.0.0.1:$PORT/v1/messages"
        kill -TERM "$DAEMON"
        for _ in $(seq 600); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
        echo "callgrind output: $OUT.callgrind.* (callgrind_annotate --inclusive=yes FILE)"
        ;;
    *)
        echo "mode: perf or callgrind" >&2
        exit 2
        ;;
esac
