#!/usr/bin/env python3
"""CPU time per request of a running process, split by thread name.

    bench/cpu_per_request.py PID URL LUA_SCRIPT [CONNECTIONS] [SECONDS]

Runs `wrk -t2 -cCONNECTIONS -dSECONDS --latency -s LUA_SCRIPT URL` (one wrk thread
for one connection) against the process (the daemon, or bench/bare_proxy.rs) and
reads its threads' user+system time from /proc before and after. Prints req/s,
p50/p99 and microseconds of CPU per completed request for each thread name (actix
workers, the engine's thread, the blocking pool that runs the SQLite writer), and
the whole process's figure, which also counts threads that ended during the run.
Also the rest of the box (wrk, the upstream, the kernel's softirq work not charged
to a process, anything else) from /proc/stat, and the idle share: at full load the
process and the rest share the cores, so the rest's figure is what a faster
process has to leave room for. Used for docs/performance.md's CPU budget.
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


def process_cpu():
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, ended threads included


def box_cpu():
    """All cores' (busy, idle) ticks; iowait counts as idle."""
    fields = [int(f) for f in open("/proc/stat").readline().split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, idle


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


threads = str(min(2, int(conns)))
before, process_before, box_before = cpu_by_thread_name(), process_cpu(), box_cpu()
wrk = subprocess.run(
    ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", "-s", lua, url],
    capture_output=True, text=True, check=True,
).stdout
after, process_after, box_after = cpu_by_thread_name(), process_cpu(), box_cpu()
done = int(re.search(r"(\d+) requests in", wrk).group(1))
rps = re.search(r"Requests/sec:\s+(\S+)", wrk).group(1)
# The latency distribution's lines ("  50%  1.23ms"), not the Stdev column ("95.50%").
p50 = re.search(r"^\s*50%\s+(\S+)", wrk, re.M).group(1)
p99 = re.search(r"^\s*99%\s+(\S+)", wrk, re.M).group(1)
print(f"{rps} req/s, p50 {p50}, p99 {p99}, {done} requests")
per_request = 1e6 / ticks / max(done, 1)
for name in sorted(after, key=lambda n: before[n] - after[n]):
    us = (after[name] - before[name]) * per_request
    if us >= 0.1:
        print(f"  {name:20s} {us:7.1f} µs/request")
whole = (process_after - process_before) * per_request
print(f"  {'whole process':20s} {whole:7.1f} µs/request")
busy = box_after[0] - box_before[0]
idle = box_after[1] - box_before[1]
rest = busy * per_request - whole
print(f"  {'rest of the box':20s} {rest:7.1f} µs/request (idle {100 * idle / max(busy + idle, 1):.0f}%)")
