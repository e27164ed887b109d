#!/usr/bin/env python3
"""Stream measurements for bench/streams.sh (standard library only).

Against a mock upstream that sends the first SSE event at once and the next ones
after a gap, and the daemon in front of it:

1. first event: sequential short streams (1 ms gap) on one keep-alive connection per
   side, alternating direct and through the proxy; the time from the request's last
   byte to the first `event:` line;
2. aborts: the RSS before and after N client-aborted streams (read the first event,
   hang up; half of them with a reset), after a warm-up of aborted streams, with the
   daemon's trim interval waited out;
3. open streams: N streams held open at once, the peak RSS while they are, and how
   many of them ended with `message_stop`.

Prints `key value` lines for the shell script to read.
"""

import argparse
import asyncio
import socket
import statistics
import struct
import time

BODY = (
    b'{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"stream":true,'
    b'"messages":[{"role":"user","content":"Hi"}]}'
)


def request(port, keep_alive=False, gap_ms=None):
    extra = f"x-mock-gap-ms: {gap_ms}\r\n" if gap_ms is not None else ""
    return (
        f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        "content-type: application/json\r\nanthropic-version: 2023-06-01\r\n"
        "x-api-key: sk-ant-client-000000000000000\r\n"
        f"{extra}content-length: {len(BODY)}\r\n"
        f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode() + BODY


async def read_more(reader, data, timeout, why):
    """`data` plus the next bytes read, split into (data, body or None); raises when
    the connection closes or the answer is not a 200."""
    chunk = await asyncio.wait_for(reader.read(65536), timeout)
    if not chunk:
        raise ConnectionError(why)
    data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    if sep and not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
    return data, (body if sep else None)


def complete(data, body):
    """Whether `body` is all of the answer: its content-length, or a chunked end."""
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return body.endswith(b"\r\n0\r\n\r\n")


class KeptConnection:
    """One keep-alive connection that times the first event of whole streams.

    Hanging up after the first event would also cost the daemon a new upstream
    connection per stream (a cut stream's connection cannot go back to the pool),
    which is not what "first event latency" is about; so each stream is read to
    its end (a short gap keeps that quick) and the connection is reused. With a gap
    of 0 the mock sends the whole stream in one write (with a content-length).
    """

    def __init__(self, port, gap_ms):
        self.port, self.gap_ms = port, gap_ms
        self.reader = self.writer = None

    async def time_first_event(self, timeout=10.0):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(request(self.port, keep_alive=True, gap_ms=self.gap_ms))
        await self.writer.drain()
        sent = time.perf_counter()
        first = None
        data = b""
        while True:
            data, body = await read_more(self.reader, data, timeout, "closed mid-stream")
            if first is None and body is not None and b"event:" in body:
                first = time.perf_counter() - sent
            if body is not None and complete(data, body):
                return first

    def close(self):
        if self.writer is not None:
            self.writer.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hang_up(writer, reset):
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close() sends a reset instead of a FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def first_event(port, reset=False, timeout=10.0):
    """Seconds from the request sent to the first `event:` line; then hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request(port))
        await writer.drain()
        sent = time.perf_counter()
        data = b""
        while True:
            data, body = await read_more(reader, data, timeout, "closed before the first event")
            if body is not None and b"event:" in body:
                break
        return time.perf_counter() - sent
    finally:
        hang_up(writer, reset)


async def whole_stream(port, opened, timeout):
    """Reads one stream to its end; `opened` is set once its first event is in."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request(port))
        await writer.drain()
        data = b""
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            data += chunk
            if not opened.done() and b"event:" in data:
                opened.set_result(True)
            if b"message_stop" in data and data.endswith(b"0\r\n\r\n"):
                break
        return b"message_stop" in data
    finally:
        if not opened.done():
            opened.set_result(False)
        writer.close()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--direct", type=int, required=True)
    ap.add_argument("--proxy", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--first", type=int, default=500)
    ap.add_argument("--aborts", type=int, default=10000)
    ap.add_argument("--abort-warmup", type=int, default=2000)
    ap.add_argument("--open", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=12.0)
    a = ap.parse_args()

    # 1. First event, alternating so that drift on a shared box hits both alike;
    #    once with the stream in one write (gap 0), once paced (1 ms between events,
    #    so every process waits in epoll between the events and requests).
    ms = lambda v: f"{v * 1000:.3f}"
    for gap in (0, 1):
        direct, proxy = [], []
        to_direct, to_proxy = KeptConnection(a.direct, gap), KeptConnection(a.proxy, gap)
        for i in range(a.first):
            direct.append(await to_direct.time_first_event())
            proxy.append(await to_proxy.time_first_event())
        to_direct.close()
        to_proxy.close()
        print(f"first{gap}_direct_p50", ms(statistics.median(direct)))
        print(f"first{gap}_direct_p99", ms(pct(direct, 0.99)))
        print(f"first{gap}_proxy_p50", ms(statistics.median(proxy)))
        print(f"first{gap}_proxy_p99", ms(pct(proxy, 0.99)))

    # 2. Client-aborted streams against a settled baseline: first a warm-up of
    #    aborted streams (the pools, SQLite's page cache and the allocator reach
    #    their working size), then the counted ones.
    failed = {}
    sem = asyncio.Semaphore(64)

    async def one_abort(i):
        async with sem:
            try:
                await first_event(a.proxy, reset=i % 2 == 1)
            except (OSError, asyncio.TimeoutError) as e:
                why = str(e) or type(e).__name__
                failed[why] = failed.get(why, 0) + 1

    await asyncio.sleep(a.settle)
    print("abort_cold_kb", rss_kb(a.pid))
    await asyncio.gather(*(one_abort(i) for i in range(a.abort_warmup)))
    await asyncio.sleep(a.settle)
    base = rss_kb(a.pid)
    await asyncio.gather(*(one_abort(i) for i in range(a.aborts)))
    peak_aborts = rss_kb(a.pid)
    await asyncio.sleep(a.settle)
    after = rss_kb(a.pid)
    print("abort_baseline_kb", base)
    print("abort_peak_kb", peak_aborts)
    print("abort_after_kb", after)
    print("abort_failed", sum(failed.values()))
    for why, n in sorted(failed.items(), key=lambda kv: -kv[1])[:3]:
        print("abort_failure", n, why.replace(" ", "_"))

    # 3. Many streams open at once.
    loop = asyncio.get_running_loop()
    opened = [loop.create_future() for _ in range(a.open)]
    connect = asyncio.Semaphore(200)

    async def one_open(f):
        async with connect:
            task = asyncio.ensure_future(whole_stream(a.proxy, f, 60.0))
            await asyncio.wait([f, task], return_when=asyncio.FIRST_COMPLETED)
        try:
            return await task
        except (OSError, asyncio.TimeoutError):
            return False
        finally:
            if not f.done():
                f.set_result(False)

    tasks = [asyncio.ensure_future(one_open(f)) for f in opened]
    await asyncio.wait(opened)
    all_open = sum(1 for f in opened if f.result())
    peak = 0
    for _ in range(10):
        peak = max(peak, rss_kb(a.pid))
        await asyncio.sleep(0.3)
    done = await asyncio.gather(*tasks)
    print("open_streams", all_open)
    print("open_peak_kb", peak)
    print("open_completed", sum(1 for d in done if d))


if __name__ == "__main__":
    asyncio.run(main())
