#!/usr/bin/env python3
"""Load generator for bench/soak.sh: paced, mixed JSON and SSE Messages requests
against the daemon on loopback, a share of the streams aborted by the client mid-way.

Standard library only. Worker threads each send sequential requests on a keep-alive
connection, paced so that all together send about --rate requests a second. At the
end one JSON line with the counts goes to stdout (and to --out when given):

  sent       requests whose headers and body went out
  ok         2xx answers read to their end (a stream up to `message_stop`)
  errors     everything else: non-2xx, a cut or truncated answer, a socket error
  aborted    streams the client closed on purpose after the first bytes
  statuses   count per HTTP status (0: no status, the connection failed)
"""

import argparse
import http.client
import json
import random
import socket
import struct
import sys
import threading
import time

MODEL = "claude-sonnet-4-5-20250929"


def body(stream):
    return json.dumps(
        {
            "model": MODEL,
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "Hi from the soak test"}],
        },
        separators=(",", ":"),
    ).encode()


JSON_BODY = body(False)
STREAM_BODY = body(True)


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = 0
        self.ok = 0
        self.errors = 0
        self.aborted = 0
        self.statuses = {}
        self.error_kinds = {}

    def add(self, status, outcome, kind=None):
        with self.lock:
            self.sent += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if outcome == "ok":
                self.ok += 1
            elif outcome == "aborted":
                self.aborted += 1
            else:
                self.errors += 1
                if kind:
                    self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def summary(self):
        with self.lock:
            return {
                "sent": self.sent,
                "ok": self.ok,
                "errors": self.errors,
                "aborted": self.aborted,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "error_kinds": dict(sorted(self.error_kinds.items())),
            }


def abort(conn, rng):
    """Closes the connection under a response being read: half the time with a reset
    (SO_LINGER 0), half with a plain close."""
    sock = conn.sock
    if sock is not None:
        try:
            if rng.random() < 0.5:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass
    conn.close()


def one_request(conn, headers, stream, abort_it, rng, counts):
    """Sends one request on `conn`; returns False when the connection must be replaced."""
    try:
        conn.request("POST", "/v1/messages", STREAM_BODY if stream else JSON_BODY, headers)
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as e:
        counts.add(0, "error", type(e).__name__)
        return False
    status = resp.status
    try:
        if stream and abort_it and status == 200:
            resp.read1(64)  # the first bytes, then hang up mid-way
            abort(conn, rng)
            counts.add(status, "aborted")
            return False
        data = resp.read()
    except (OSError, http.client.HTTPException) as e:
        counts.add(status, "error", type(e).__name__)
        return False
    if not 200 <= status < 300:
        counts.add(status, "error", f"http_{status}")
        return not resp.will_close
    if stream:
        complete = b"event: message_stop" in data and b"event: error" not in data
        counts.add(status, "ok" if complete else "error", None if complete else "stream_incomplete")
    else:
        try:
            json.loads(data)
            counts.add(status, "ok")
        except ValueError:
            counts.add(status, "error", "json_cut")
    return not resp.will_close


def worker(args, index, deadline, counts):
    rng = random.Random(args.seed * 1000 + index)
    interval = args.threads / args.rate
    headers = {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": "sk-ant-soak-client-000000000000",
    }
    conn = None
    next_at = time.monotonic() + rng.random() * interval  # spread the threads' phases
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if next_at > now:
            time.sleep(min(next_at - now, deadline - now))
            continue
        # Behind schedule (slow answers): skip the missed slots rather than burst.
        next_at = max(next_at + interval, now)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
        stream = rng.random() < args.stream_share
        abort_it = stream and rng.random() < args.abort_share
        if not one_request(conn, headers, stream, abort_it, rng, counts):
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument("--rate", type=float, default=100.0, help="requests per second, all threads")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--stream-share", type=float, default=0.5)
    p.add_argument("--abort-share", type=float, default=0.10, help="share of streams aborted")
    p.add_argument("--timeout", type=float, default=30.0, help="socket timeout, seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="also write the summary JSON here")
    args = p.parse_args()
    if args.rate <= 0 or args.threads <= 0 or args.duration <= 0:
        p.error("--rate, --threads and --duration must be positive")

    counts = Counts()
    deadline = time.monotonic() + args.duration
    threads = [
        threading.Thread(target=worker, args=(args, i, deadline, counts), daemon=True)
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.duration + args.timeout + 10)
    summary = counts.summary()
    line = json.dumps(summary, sort_keys=True)
    print(line)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
