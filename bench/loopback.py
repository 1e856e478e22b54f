#!/usr/bin/env python3
"""The machine's loopback TCP limit, for bench/cluster.sh to compare with.

usage: loopback.py BYTES ROUNDS

Prints "one_stream_GBps two_streams_GBps": a sender that writes one message of
BYTES and waits for a 1-byte answer, ROUNDS times (median), and two such pairs
at once (their total bytes over the time both take, median). The copies are
the kernel's (sendall, recv_into release the GIL), as they are byold's.
"""
import socket
import statistics
import sys
import threading
import time


def pair():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    ls.close()
    return c, s


def serve(s, n, rounds):
    buf = memoryview(bytearray(n))
    for _ in range(rounds):
        got = 0
        while got < n:
            got += s.recv_into(buf[got:], n - got)
        s.sendall(b"k")


def rounds_of(pairs, n, rounds):
    """Seconds of each round in which every pair moves one message."""
    data = bytes(n)
    srv = [threading.Thread(target=serve, args=(s, n, rounds)) for _, s in pairs]
    for t in srv:
        t.start()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        snd = [threading.Thread(target=lambda c=c: (c.sendall(data), c.recv(1))) for c, _ in pairs]
        for t in snd:
            t.start()
        for t in snd:
            t.join()
        times.append(time.perf_counter() - t0)
    for t in srv:
        t.join()
    return times


def main():
    n, rounds = int(sys.argv[1]), int(sys.argv[2])
    one = statistics.median(rounds_of([pair()], n, rounds))
    two = statistics.median(rounds_of([pair(), pair()], n, rounds))
    print("%.3f %.3f" % (n / one / 1e9, 2 * n / two / 1e9))


if __name__ == "__main__":
    main()
