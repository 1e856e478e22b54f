#!/usr/bin/env python3
"""chaosclient.py — a client that sends byold random requests, for the
end-to-end tests.

    chaosclient.py HOST:PORT SEED SECONDS PROTECTED_RUN

Until SECONDS have passed: connects as a client, sends a random series of
requests — Submits of broken and of odd experiment files and JSON, status,
list and history queries with random filters and orders, show, metrics, watch
and export requests of random runs and parameters, cancels and resumes —
reading the answers most of the time and now and then none; connects again
when the daemon closes it. It never cancels PROTECTED_RUN (the test's own run).
Prints a count of the answers by kind; exits 0. SEED makes the series
repeatable.
"""
import os
import random
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakepeer as fp  # noqa: E402

SUBMIT, STATUS, LIST, HISTORY, SHOW, METRICS = 30, 32, 34, 36, 37, 39
WATCH, CANCEL, RESUME, WORKERS, EXPORT = 41, 43, 44, 45, 46

U64 = [0, 1, 2, 3, 5, 999, 2 ** 31, 2 ** 63 - 1, 2 ** 64 - 1]
WORDS = ["status", "=", "completed", "and", "or", "not", "(", ")", "model.encoder", "'mlp'",
         "loss", "<", ">=", "1e309", "-", "knn", "probe", "name", "glob", "'*'", "config.",
         "data.batch_size", "256", "'; DROP TABLE runs; --", "\"", "'", "\\", "\u00e9\u6f22",
         "finished", "2026-01-01", "experiment", "seed", "in", ",", "like", "%", "NULL"]
INIS = [
    "", "[", "[experiment]\nname = x\n", "garbage \x01\x02 = \xff",
    "[data]\nbatch_size = -5\n", "[data]\ntrain_limit = 256\nbatch_size = 64\nshard_size = 64\n"
    "[optim]\nepochs = 1\nwarmup_epochs = 0\n[eval]\nknn_every_epochs = 0\nprobe = false\n",
    "[sweep]\noptim.lr = " + ", ".join(str(i) for i in range(40)) + "\n",
    "[sweep]\nseed = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16\n"
    "optim.lr = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16\n"
    "optim.momentum = 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.91, 0.92, 0.93, 0.94,"
    " 0.95, 0.96, 0.97\n[data]\ntrain_limit = 64\n",
    "[variant a]\nmodel.encoder = cnn\n[sweep]\nexperiment.variant = a, b\n",
    "[model]\nencoder_widths = " + ", ".join(["65536"] * 40) + "\n",
    "[experiment]\nname = " + "n" * 5000 + "\n",
]


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def request(rng, protected):
    k = rng.randrange(12)
    run = rng.choice(U64)
    if k == 0:
        if rng.random() < 0.2:
            body = fp.f_bytes(1, rng.choice(["{", "{}", "[]", "{\"data\": 5}", "null"]))
        else:
            body = fp.f_bytes(2, rng.choice(INIS))
        for _ in range(rng.randrange(3)):
            body += fp.f_bytes(3, rng.choice(["data.batch_size=1", "x", "=", "sweep.seed=1,2",
                                              "model.encoder=none", "a.b=" + "c" * 300]))
        return SUBMIT, body + fp.f_bytes(4, rng.choice(["", "chaos.ini", "\x00"]))
    if k == 1:
        return STATUS, fp.f_varint(1, run)
    if k == 2:
        return LIST, fp.f_bytes(1, words(rng, rng.randrange(8))) + fp.f_varint(2, rng.choice(U64) & 0xFFFFFFFF)
    if k == 3:
        body = b"".join(fp.f_bytes(1, words(rng, rng.randrange(6))) for _ in range(rng.randrange(4)))
        body += fp.f_bytes(2, rng.choice(["", "-loss", "knn", "config.seed", "-", "((", "x" * 200]))
        return HISTORY, body + fp.f_varint(3, rng.choice([0, 1, 10000, 10001, 2 ** 32 - 1]))
    if k == 4:
        return SHOW, fp.f_varint(1, run)
    if k == 5:
        return METRICS, (fp.f_varint(1, run) + fp.f_varint(2, rng.choice(U64)) +
                         fp.f_varint(3, rng.choice(U64)) + fp.f_varint(4, rng.choice([0, 1, 2, 3, 2 ** 32 - 1])))
    if k == 6:
        return WATCH, fp.f_varint(1, run) + fp.f_varint(2, rng.choice([0, 1, 20, 2 ** 32 - 1]))
    if k == 7:
        return CANCEL, fp.f_varint(1, run if run != protected else 999)
    if k == 8:
        return RESUME, fp.f_varint(1, run)
    if k == 9:
        return WORKERS, b""
    if k == 10:
        return EXPORT, (fp.f_varint(1, run) + fp.f_bytes(2, rng.choice(["encoder", "online", "", "x"])) +
                        fp.f_varint(3, rng.choice(U64)) +
                        fp.f_varint(4, rng.choice([0, 1, 4 << 20, (4 << 20) + 1, 2 ** 32 - 1])))
    return rng.choice([99, 5, 12, 200]), fp.f_varint(1, run)  # not a client's request


def session(rng, addr, deadline, protected, seen):
    p = fp.Peer(addr, 5)
    ok, _ = p.handshake(None, fp.ROLE_CLIENT, "chaos")
    if not ok:
        seen["refused"] = seen.get("refused", 0) + 1
        return
    reading = True
    while time.time() < deadline:
        num, body = request(rng, protected)
        try:
            p.send(fp.frame(num, body))
        except OSError:
            seen["closed"] = seen.get("closed", 0) + 1
            return
        if rng.random() < 0.05:
            reading = not reading
        if not reading:
            time.sleep(0.01)
            continue
        end = time.time() + rng.choice([0.0, 0.02, 0.2])
        while True:
            r, _, _ = select.select([p.s], [], [], max(0.0, end - time.time()))
            if not r:
                break
            try:
                chunk = p.s.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                seen["closed"] = seen.get("closed", 0) + 1
                return
            for kind, _ in p.take_frames(chunk):
                seen[kind] = seen.get(kind, 0) + 1


def main():
    addr, seed, seconds, protected = (sys.argv[1], int(sys.argv[2]), float(sys.argv[3]),
                                      int(sys.argv[4]))
    rng = random.Random(seed)
    deadline = time.time() + seconds
    seen = {}
    sessions = 0
    while time.time() < deadline:
        sessions += 1
        try:
            session(rng, addr, deadline, protected, seen)
        except (OSError, AssertionError) as e:
            seen["ended"] = seen.get("ended", 0) + 1
            print("session %d ended: %r" % (sessions, e), flush=True)
        time.sleep(0.02)
    print("%d sessions; answers by Envelope field: %s" % (sessions, dict(sorted(
        seen.items(), key=lambda kv: str(kv[0])))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
