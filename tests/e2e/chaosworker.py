#!/usr/bin/env python3
"""chaosworker.py — a worker that sends byold well-framed nonsense, for the
end-to-end tests.

    chaosworker.py HOST:PORT SEED SECONDS

Until SECONDS have passed: connects, authenticates (no token), registers, and
sends a random series of messages a worker may or may not send — Heartbeats,
a second WorkerRegister, RunReady for any run, NodeResults and EvalResults with
random runs, steps, nodes, jobs, sizes, NaN and infinite figures, messages of
the client's side, empty frames, Envelopes with an unknown message, bytes that
are no Envelope — reading what the daemon sends meanwhile; when the daemon closes
the connection it connects again. It answers a RunSetup with RunReady now and
then, so that it is given tree nodes, and answers every ShardAssign at once
with a NodeResult of a wrong size. It never sends a gradient of the run's size:
a worker that computes wrong numbers of the right shape is trusted, and out of
scope. Prints what it did; exits 0. SEED makes the series repeatable.
"""
import os
import random
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakepeer as fp  # noqa: E402

SUBMIT, STATUS_REQUEST, EXPORT_REQUEST = 30, 32, 46


def any_u64(rng):
    return rng.choice([0, 1, 2, 3, 7, 100, 2 ** 31, 2 ** 63 - 1, 2 ** 64 - 1])


def any_double(rng):
    return rng.choice([0.0, 1.0, -1.0, 0.5, 2.0, float("nan"), float("inf"), -float("inf"), 1e300])


def wrong_size(rng, right):
    while True:
        n = rng.choice([0, 1, 3, 4, 8, 1024, right - 4, right + 4, 4 * rng.randint(0, 5000)])
        if n != right and n >= 0:
            return n


def node_result(rng, run, step, lo, hi, grad_bytes, bn_bytes):
    return (fp.f_varint(1, run) + fp.f_varint(2, step) + fp.f_varint(3, lo) +
            fp.f_varint(4, hi) + fp.f_bytes(5, b"\x00" * grad_bytes) +
            fp.f_bytes(6, b"\x00" * bn_bytes) + fp.f_double(7, any_double(rng)) +
            fp.f_double(8, any_double(rng)) + fp.f_varint(9, any_u64(rng) & 0xFFFFFFFF))


def one_message(rng, st):
    """A random frame a chaotic worker could send."""
    k = rng.randrange(11)
    if k == 0:
        return fp.frame(fp.HEARTBEAT, fp.f_varint(1, any_u64(rng)))
    if k == 1:
        return fp.frame(fp.WORKER_REGISTER, fp.f_bytes(1, "chaos") + fp.f_varint(2, 1))
    if k == 2:
        return fp.frame(fp.RUN_READY, fp.f_varint(1, any_u64(rng)))
    if k in (3, 4):
        p = st.get("params", 1000)
        return fp.frame(fp.NODE_RESULT, node_result(
            rng, rng.choice([st.get("run", 1), any_u64(rng)]), any_u64(rng),
            rng.randrange(10), rng.randrange(10), wrong_size(rng, 4 * p),
            rng.choice([0, 4, 36864, 4 * rng.randrange(100)])))
    if k == 5:
        body = (fp.f_varint(1, rng.randrange(6)) + fp.f_varint(2, any_u64(rng)) +
                fp.f_varint(3, any_u64(rng)) +
                fp.f_bytes(4, rng.choice(["knn", "probe", "", "x" * 300])) +
                fp.f_double(5, any_double(rng)) + fp.f_double(6, any_double(rng)) +
                (fp.f_bytes(7, "chaos error") if rng.random() < 0.3 else b""))
        return fp.frame(fp.EVAL_RESULT, body)
    if k == 6:
        return fp.frame(rng.choice([SUBMIT, STATUS_REQUEST, EXPORT_REQUEST]),
                        fp.f_varint(1, any_u64(rng)))
    if k == 7:
        return rng.choice([b"\x00\x00\x00\x00",            # a zero-length frame
                           b"\x00\x00\x00\x01\x00"])       # a field number 0
    if k == 8:
        return fp.frame(rng.choice([99, 200, 1000]), fp.f_varint(1, 1))
    if k == 9:
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        return len(junk).to_bytes(4, "big") + junk
    return fp.frame(fp.STEP_PARAMS, fp.f_varint(1, 1))  # a coordinator's message


def session(rng, addr, deadline, log):
    p = fp.Peer(addr, 5)
    ok, reason = p.handshake(None, name="chaos")
    if not ok:
        log("handshake refused: %s" % reason)
        return
    p.send(fp.frame(fp.WORKER_REGISTER, fp.f_bytes(1, "chaos") + fp.f_varint(2, 1) +
                    fp.f_bytes(3, "chaos/1") + fp.f_bytes(4, "localhost")))
    st = {}
    sent = 0
    p.s.setblocking(False)
    while time.time() < deadline:
        r, _, _ = select.select([p.s], [], [], rng.choice([0, 0.01, 0.05]))
        if r:
            try:
                chunk = p.s.recv(1 << 20)
            except (BlockingIOError, ConnectionResetError):
                chunk = b""
            if not chunk:
                log("closed by the daemon after %d messages" % sent)
                return
            for num, d in p.take_frames(chunk):
                if num == fp.RUN_SETUP:
                    st["run"], st["params"] = fp.first(d, 1), fp.first(d, 3)
                    if rng.random() < 0.3:
                        p.s.setblocking(True)
                        p.send(fp.frame(fp.RUN_READY, fp.f_varint(1, st["run"])))
                        p.s.setblocking(False)
                elif num == fp.SHARD_ASSIGN:
                    node = fp.parse(d[3][0]) if 3 in d else {}
                    p.s.setblocking(True)
                    p.send(fp.frame(fp.NODE_RESULT, node_result(
                        rng, fp.first(d, 1), fp.first(d, 2), fp.first(node, 1),
                        fp.first(node, 2), wrong_size(rng, 4 * st.get("params", 1000)), 0)))
                    p.s.setblocking(False)
                    sent += 1
        if rng.random() < 0.5:
            try:
                p.s.setblocking(True)
                p.send(one_message(rng, st))
                p.s.setblocking(False)
                sent += 1
            except OSError:
                log("send failed after %d messages (the daemon closed)" % sent)
                return


def main():
    addr, seed, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    rng = random.Random(seed)
    deadline = time.time() + seconds
    sessions = 0

    def log(msg):
        print("session %d: %s" % (sessions, msg), flush=True)

    while time.time() < deadline:
        sessions += 1
        try:
            session(rng, addr, deadline, log)
        except (OSError, AssertionError) as e:
            log("ended: %r" % (e,))
        time.sleep(0.05)
    print("%d sessions" % sessions, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
