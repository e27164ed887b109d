#!/usr/bin/env python3
"""CPU time per request of a running process, split by thread name.

    bench/cpu_per_request.py PID URL LUA_SCRIPT [CONNECTIONS] [SECONDS]

Runs `wrk -t2 -cCONNECTIONS -dSECONDS --latency -s LUA_SCRIPT URL` against the
process (the daemon, or bench/bare_proxy.rs) and reads every thread's user+system
time from /proc before and after. Prints req/s, p50/p99 and microseconds of CPU per
completed request for each thread name (actix workers, the engine's thread, the
blocking pool that runs the SQLite writer). Used for docs/performance.md's CPU budget.
"""
import collections
import os
import re
import subprocess
import sys

if len(sys.argv) < 4:
    sys.exit(__doc__.strip().splitlines()[2].strip())
pid, url, lua = sys.argv[1], sys.argv[2], sys.argv[3]
conns = sys.argv[4] if len(sys.argv) > 4 else "64"
secs = sys.argv[5] if len(sys.argv) > 5 else "10"
if not (pid.isdigit() and conns.isdigit() and secs.isdigit()):
    sys.exit("PID, CONNECTIONS and SECONDS must be whole numbers")
ticks = os.sysconf("SC_CLK_TCK")


def cpu_by_thread_name():
    out = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] += int(fields[11]) + int(fields[12])  # utime + stime
    return out


before = cpu_by_thread_name()
wrk = subprocess.run(
    ["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--latency", "-s", lua, url],
    capture_output=True, text=True, check=True,
).stdout
after = cpu_by_thread_name()
done = int(re.search(r"(\d+) requests in", wrk).group(1))
rps = re.search(r"Requests/sec:\s+(\S+)", wrk).group(1)
p50 = re.search(r"50%\s+(\S+)", wrk).group(1)
p99 = re.search(r"99%\s+(\S+)", wrk).group(1)
print(f"{rps} req/s, p50 {p50}, p99 {p99}, {done} requests")
total = 0.0
for name in sorted(after, key=lambda n: before[n] - after[n]):
    us = (after[name] - before[name]) / ticks * 1e6 / max(done, 1)
    total += us
    if us >= 0.1:
        print(f"  {name:20s} {us:7.1f} µs/request")
print(f"  {'all threads':20s} {total:7.1f} µs/request")
