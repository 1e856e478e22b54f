#!/usr/bin/env python3
"""fakecoord.py — a scripted coordinator that puts byol-worker through the
protocol of docs/protocol.md, including what a worker must refuse.

    fakecoord.py PORTFILE EXPERIMENT_JSON

Listens on a free loopback port (written to PORTFILE), waits for a worker and
checks, in order:
  1. RunSetup with wrong counts is answered with an Error naming the count; the
     connection stays up. (The worker's own counts are learnt from the errors.)
  2. RunSetup with its counts is answered with RunReady.
  3. StepParams 0 (with target) + ShardAssign of two nodes -> two NodeResults
     of the right sizes, lo/hi and n; the same node assigned again alone gives
     the same bytes.
  4. StepParams 1 without target (the worker moves its replica) -> a result.
  5. StepParams 3 without target (its replica is at 1): the worker drops the
     connection and reconnects; RunSetup of the same run is answered at once.
  6. StepParams with an online tensor of the wrong size, a ShardAssign before
     any StepParams, a ShardAssign of a range that is not a tree node: each
     dropped, and the worker reconnects.
  7. EvalJob of an unknown kind -> EvalResult with an error; EvalJob "knn" ->
     an accuracy in (0, 1].
Exits 0 when every check passed, else 1 with the reason. Protobuf encoded and
decoded by hand (fakepeer.py has the helpers).
"""
import json
import os
import random
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakepeer import (AUTH_RESULT, CLIENT_AUTH, ERROR, EVAL_JOB, EVAL_RESULT,  # noqa: E402
                      HEARTBEAT, NODE_RESULT, RUN_READY, RUN_SETUP, SERVER_HELLO,
                      SHARD_ASSIGN, STEP_PARAMS, WORKER_REGISTER, f_bytes, f_varint,
                      first, frame, parse)

TIMEOUT = 60.0


def die(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


class Conn:
    def __init__(self, s):
        self.s = s
        self.buf = b""

    def send(self, num, body):
        self.s.sendall(frame(num, body))

    def recv(self, timeout=TIMEOUT):
        """(num, parsed body) of the next message that is not a heartbeat; None at EOF."""
        deadline = time.time() + timeout
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    env = parse(self.buf[4:4 + n])
                    self.buf = self.buf[4 + n:]
                    num = next(iter(env))
                    if num == HEARTBEAT:
                        continue
                    return num, parse(env[num][0])
            left = deadline - time.time()
            if left <= 0:
                die("no message from the worker in %.0f s" % timeout)
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(1 << 20)
            except ConnectionResetError:
                return None
            except socket.timeout:
                continue
            if not chunk:
                return None
            self.buf += chunk

    def expect(self, want, what):
        got = self.recv()
        if got is None:
            die("%s: the worker closed the connection" % what)
        num, d = got
        if num == ERROR and want != ERROR:
            die("%s: the worker sent Error: %s" % (what, first(d, 2, b"").decode()))
        if num != want:
            die("%s: expected message %d, got %d" % (what, want, num))
        return d

    def expect_eof(self, what):
        got = self.recv()
        while got is not None:
            num, d = got
            if num not in (ERROR,):
                die("%s: expected the worker to close, got message %d" % (what, num))
            print("  worker says: %s" % first(d, 2, b"").decode(errors="replace"))
            got = self.recv()
        self.s.close()


def accept(srv):
    """Accepts the worker's next connection and does the server's handshake (no token)."""
    srv.settimeout(TIMEOUT)
    try:
        s, _ = srv.accept()
    except socket.timeout:
        die("the worker did not connect within %.0f s" % TIMEOUT)
    c = Conn(s)
    c.send(SERVER_HELLO, f_bytes(1, os.urandom(32)) + f_bytes(2, "fakecoord") + f_varint(4, 1))
    d = c.expect(CLIENT_AUTH, "handshake")
    if first(d, 1) != 1:
        die("the peer's role is %d, not worker" % first(d, 1))
    c.send(AUTH_RESULT, f_varint(1, 1))
    d = c.expect(WORKER_REGISTER, "register")
    print("worker %s registered, %d threads" % (first(d, 1, b"").decode(), first(d, 2)),
          flush=True)
    return c


COUNTS = ["param_count", "target_count", "bn_count", "n_train", "total_steps"]


def setup_msg(run_id, cfg, counts):
    body = f_varint(1, run_id) + f_bytes(2, cfg)
    for i, k in enumerate(COUNTS):
        body += f_varint(3 + i, counts[k])
    return body


def floats(n, seed, scale=0.05):
    r = random.Random(seed)
    return struct.pack("<%df" % n, *[r.gauss(0, scale) for _ in range(n)])


def node_result_ok(d, counts, step, lo, hi, shard):
    if first(d, 2) != step or first(d, 3) != lo or first(d, 4) != hi:
        die("NodeResult for step %d [%d, %d), expected step %d [%d, %d)" %
            (first(d, 2), first(d, 3), first(d, 4), step, lo, hi))
    g, bn = first(d, 5, b""), first(d, 6, b"")
    if len(g) != 4 * counts["param_count"] or len(bn) != 4 * counts["bn_count"]:
        die("NodeResult sizes %d, %d; expected %d, %d" %
            (len(g), len(bn), 4 * counts["param_count"], 4 * counts["bn_count"]))
    if first(d, 9) != (hi - lo) * shard:
        die("NodeResult n = %d, expected %d" % (first(d, 9), (hi - lo) * shard))
    loss = struct.unpack("<d", first(d, 7, b"\0" * 8))[0]
    if not loss > 0:
        die("NodeResult loss %r" % loss)
    return g


def main():
    portfile, cfg = sys.argv[1], open(sys.argv[2]).read()
    ecfg = json.loads(cfg)
    shard = ecfg["data"]["shard_size"]
    S = ecfg["data"]["batch_size"] // shard
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    c = accept(srv)
    run = 7

    # 1. wrong counts: an Error naming each, until the worker's own are known
    counts = {k: 1 for k in COUNTS}
    for _ in range(len(COUNTS) + 1):
        c.send(RUN_SETUP, setup_msg(run, cfg, counts))
        num, d = c.recv() or die("the worker closed the connection after a bad RunSetup")
        if num == RUN_READY:
            break
        if num != ERROR:
            die("RunSetup with wrong counts: got message %d" % num)
        msg = first(d, 2, b"").decode()
        m = re.search(r"says (\w+) = \d+, this worker computes (\d+)", msg)
        if not m or m.group(1) not in counts:
            die("Error without the count: %s" % msg)
        print("  refused: %s" % msg, flush=True)
        counts[m.group(1)] = int(m.group(2))
    else:
        die("no RunReady after %d set-ups" % (len(COUNTS) + 1))
    # 2. (the loop's last answer was RunReady)
    if first(d, 1) != run:
        die("RunReady for run %d" % first(d, 1))
    print("ready with %s" % counts, flush=True)
    P, NT = counts["param_count"], counts["target_count"]
    online = floats(P, 1)
    target = online[:4 * NT]

    # 3. step 0, two nodes of the tree (S = 4: [0, 2) and [2, 4))
    c.send(STEP_PARAMS, f_varint(1, run) + f_varint(2, 0) + f_bytes(3, online) +
           f_bytes(4, target))
    nodes = f_bytes(3, f_varint(1, 0) + f_varint(2, 2)) + f_bytes(3, f_varint(1, 2) + f_varint(2, 4))
    c.send(SHARD_ASSIGN, f_varint(1, run) + f_varint(2, 0) + nodes)
    got = {}
    for _ in range(2):
        d = c.expect(NODE_RESULT, "step 0")
        got[first(d, 3)] = node_result_ok(d, counts, 0, first(d, 3), first(d, 4), shard)
    if sorted(got) != [0, 2]:
        die("step 0: results for nodes %s" % sorted(got))
    # the same node again, alone: the same bytes (another job, another leaf layout)
    c.send(SHARD_ASSIGN, f_varint(1, run) + f_varint(2, 0) +
           f_bytes(3, f_varint(1, 0) + f_varint(2, 2)))
    d = c.expect(NODE_RESULT, "step 0 again")
    if node_result_ok(d, counts, 0, 0, 2, shard) != got[0]:
        die("node [0, 2) of step 0 computed twice gave different bytes")
    print("step 0: two nodes, right sizes; node [0, 2) again: same bytes", flush=True)

    # 4. step 1 without target: the worker moves its replica
    online1 = floats(P, 2)
    c.send(STEP_PARAMS, f_varint(1, run) + f_varint(2, 1) + f_bytes(3, online1))
    c.send(SHARD_ASSIGN, f_varint(1, run) + f_varint(2, 1) +
           f_bytes(3, f_varint(1, 0) + f_varint(2, S)))
    node_result_ok(c.expect(NODE_RESULT, "step 1"), counts, 1, 0, S, shard)
    print("step 1 without target: a result", flush=True)

    # 5. step 3 without target: the replica is at 1 -> dropped; reconnects
    c.send(STEP_PARAMS, f_varint(1, run) + f_varint(2, 3) + f_bytes(3, online1))
    c.expect_eof("step 3 without target")
    t0 = time.time()
    c = accept(srv)
    print("dropped for a target gap; reconnected in %.2f s" % (time.time() - t0), flush=True)
    c.send(RUN_SETUP, setup_msg(run, cfg, counts))
    c.expect(RUN_READY, "RunSetup of the same run")

    # 6. an online tensor of the wrong size -> dropped; reconnects
    c.send(STEP_PARAMS, f_varint(1, run) + f_varint(2, 0) + f_bytes(3, online[:-4]) +
           f_bytes(4, target))
    c.expect_eof("short online tensor")
    c = accept(srv)
    print("dropped for a short tensor; reconnected", flush=True)
    c.send(RUN_SETUP, setup_msg(run, cfg, counts))
    c.expect(RUN_READY, "RunSetup after the short tensor")
    # a ShardAssign before any StepParams: dropped
    c.send(SHARD_ASSIGN, f_varint(1, run) + f_varint(2, 0) +
           f_bytes(3, f_varint(1, 0) + f_varint(2, S)))
    c.expect_eof("ShardAssign without parameters")
    c = accept(srv)
    c.send(RUN_SETUP, setup_msg(run, cfg, counts))
    c.expect(RUN_READY, "RunSetup again")
    # a node that is not a node of the tree: dropped
    c.send(STEP_PARAMS, f_varint(1, run) + f_varint(2, 0) + f_bytes(3, online) +
           f_bytes(4, target))
    c.send(SHARD_ASSIGN, f_varint(1, run) + f_varint(2, 0) +
           f_bytes(3, f_varint(1, 1) + f_varint(2, 3)))
    c.expect_eof("node [1, 3)")
    c = accept(srv)
    c.send(RUN_SETUP, setup_msg(run, cfg, counts))
    c.expect(RUN_READY, "RunSetup once more")
    print("dropped for ShardAssign without parameters and for a non-node", flush=True)

    # 7. evaluations
    # BN running statistics (means and variances): all ones will do
    bn = struct.pack("<%df" % counts["bn_count"], *([1.0] * counts["bn_count"]))
    c.send(EVAL_JOB, f_varint(1, 1) + f_varint(2, run) + f_varint(3, 0) + f_bytes(4, "nope") +
           f_bytes(5, online) + f_bytes(6, bn))
    d = c.expect(EVAL_RESULT, "unknown kind")
    if first(d, 1) != 1 or "nope" not in first(d, 7, b"").decode():
        die("EvalResult for an unknown kind: %s" % d)
    c.send(EVAL_JOB, f_varint(1, 2) + f_varint(2, run) + f_varint(3, 0) + f_bytes(4, "knn") +
           f_bytes(5, online) + f_bytes(6, bn))
    d = c.expect(EVAL_RESULT, "knn")
    acc = struct.unpack("<d", first(d, 5, b"\0" * 8))[0]
    if first(d, 1) != 2 or first(d, 7, b"") or not 0 < acc <= 1:
        die("EvalResult knn: job %d accuracy %r error %r" % (first(d, 1), acc, first(d, 7, b"")))
    print("evaluations: unknown kind refused; knn %.4f" % acc, flush=True)
    print("fakecoord: ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
