#!/usr/bin/env python3
"""CPU time of a set of processes between two of byold's step lines.

usage: cpuwatch.py LOG FIRST LAST OUT PID...

Follows LOG from its current end. At the debug line of step FIRST and again at
the one of step LAST (of the first run that reaches them) it reads the user and
system time of each PID (all threads, /proc/PID/stat) and the monotonic clock;
writes to OUT one line: "steps WALL_S PID:USER_S:SYS_S:RUN_S ..." for the LAST -
FIRST steps in between. USER_S and SYS_S are the kernel's tick-sampled split;
RUN_S is the scheduler's exact time on a CPU, summed over the threads
(/proc/PID/task/*/schedstat): on a virtual machine the ticks can miss a tenth
of it. Polls every 5 ms; a sample is late by at most that, which
the wall time it reports includes, so CPU / wall stays consistent.
"""
import os
import re
import sys
import time


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    run = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                run += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass                # a thread that ended meanwhile
    return int(rest[11]) / hz, int(rest[12]) / hz, run / 1e9  # utime, stime, on CPU


def main():
    log, first, last, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    pids = [int(p) for p in sys.argv[5:]]
    line = re.compile(r"debug: run (\d+) step (\d+): ")
    fd = os.open(log, os.O_RDONLY)
    os.lseek(fd, 0, os.SEEK_END)
    buf, marks, run = b"", {}, None
    while len(marks) < 2:
        chunk = os.read(fd, 65536)
        if not chunk:
            time.sleep(0.005)
            continue
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for ln in lines:
            m = line.search(ln.decode("utf-8", "replace"))
            if not m:
                continue
            r, k = int(m.group(1)), int(m.group(2))
            if run is None and k == first:
                run = r
            if r == run and k in (first, last) and k not in marks:
                marks[k] = (time.monotonic(), [cpu(p) for p in pids])
    (t0, c0), (t1, c1) = marks[first], marks[last]
    with open(out, "w") as f:
        f.write("%d %.6f %s\n" % (last - first, t1 - t0, " ".join(
            "%d:%.2f:%.2f:%.4f" % (p, b[0] - a[0], b[1] - a[1], b[2] - a[2]) for p, a, b in zip(pids, c0, c1))))


if __name__ == "__main__":
    main()
