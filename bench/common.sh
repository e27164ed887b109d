# Helpers shared by the bench scripts (sourced, not run).

int_in() { # value min max name
    if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < $2 || $1 > $3)); then
        echo "$4 must be a whole number in $2..$3 (got $1)" >&2
        exit 2
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url: bounded wait until something answers
    for _ in $(seq 100); do
        if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
        sleep 0.1
    done
    echo "nothing answers at $1" >&2
    return 1
}

stop_pid() { # pid: TERM, bounded wait, then KILL
    local pid=$1
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

add_accounts() { # port: the three API-key accounts every bench uses
    local name
    for name in a b c; do
        curl -s -o /dev/null "http://127.0.0.1:$1/api/accounts" \
            -H 'content-type: application/json' \
            -d "{\"name\":\"$name\",\"apiKey\":\"sk-ant-$name-000000000000000\"}"
    done
}

# make_workdir NAME: WORK, a fresh temporary directory, removed at exit together with
# the mock and the daemon that start_mock_and_daemon starts.
make_workdir() {
    WORK=$(mktemp -d "/tmp/claudeflare-$1.XXXXXX")
    MOCK_PID=""
    DAEMON_PID=""
    trap 'stop_pid "$DAEMON_PID"; stop_pid "$MOCK_PID"; rm -rf "$WORK"' EXIT
    trap 'exit 130' INT TERM
}

# start_mock_and_daemon GAP_MS: the mock upstream (SSE events GAP_MS apart) and the
# daemon in front of it, with a fresh data directory under $WORK and the three
# accounts. Needs BIN and WORK (make_workdir); sets MOCK_PORT, PORT, MOCK_PID and
# DAEMON_PID.
start_mock_and_daemon() {
    MOCK_PORT=$(free_port)
    PORT=$(free_port)
    "$BIN/mock-upstream" "$MOCK_PORT" "$1" >"$WORK/mock.log" 2>&1 &
    MOCK_PID=$!
    wait_http "http://127.0.0.1:$MOCK_PORT/__mock/stats"
    "$BIN/claudeflare" serve --port "$PORT" --host 127.0.0.1 --data-dir "$WORK/data" \
        --upstream-url "http://127.0.0.1:$MOCK_PORT" --log-level warn >"$WORK/daemon.log" 2>&1 &
    DAEMON_PID=$!
    wait_http "http://127.0.0.1:$PORT/health"
    add_accounts "$PORT"
}
