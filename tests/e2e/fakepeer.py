#!/usr/bin/env python3
"""fakepeer.py — a misbehaving peer of byold, for the end-to-end tests.

    fakepeer.py MODE ADDRESS [--token-file FILE] [--timeout S] [--late S]
                [--requests N --run R --hold S] [--shm-end E]

ADDRESS: HOST:PORT, or unix:PATH for the daemon's Unix socket.

MODE:
  garbage    a frame of the right size whose bytes are not an Envelope
  oversize   a length prefix far over the daemon's limit
  truncated  a length prefix, part of the frame, then the end of the stream
  badtoken   the handshake with a wrong token
  shortgrad  a worker that registers, takes a run and answers its first tree
             node with a gradient of the wrong size
  hang       a worker that registers, takes a run, reads everything and answers
             heartbeats but never a ShardAssign (a worker whose compute hangs),
             until killed (or the timeout); prints each node it is given. With
             --late S it answers its first node after S seconds (with 2 floats:
             a NodeResult the daemon must ignore once another worker has
             answered that node), and no other
  greedy     a client that sends --requests N MetricsRequests for run --run R
             in one burst and then reads nothing for --hold S seconds (the
             daemon must not queue all the answers for it)
  flood      a worker that registers and sends --requests N NodeResults of a
             run that does not exist (each ignored by the daemon), then waits
             for the daemon to close it or the timeout; exits 0
  orphanattach    a worker that registers and sends an attachment frame (the
             length's top bit set) that no message announced
  attachmismatch  ... a NodeResult announcing a 16-byte attachment, then 8 bytes
  attachnone      ... a Heartbeat announcing an attachment it cannot carry
  deaf       a worker that registers, takes a run, reads its first StepParams
             and then reads nothing more, sending heartbeats until killed (or
             the timeout): the daemon's writes to it stay queued

Shared-memory attachments (ShmRegion, ShmAck, Envelope.shm_end): a worker that
says shm in its ClientAuth and registers. On unix:PATH it fails unless the
ServerHello said shm (the daemon offers it there), on TCP unless it did not. A
ring's descriptor travels with its ShmRegion frame (SCM_RIGHTS, in the same
sendmsg as the frame's bytes):
  shmunagreed     (over TCP) a ShmRegion, on a connection that did not agree
             to shared memory
  shmnoring       a NodeResult whose 16-byte gradient is said to lie in shared
             memory (shm_end 16), with no ShmRegion before it
  shmbadsize      a ShmRegion of 12345 bytes (not a multiple of 1 MiB)
  shmnotmemfd     a ShmRegion of 1 MiB carrying the descriptor of an ordinary
             file (of the right size): the daemon must answer ShmAck{1, error:
             "... not a sealed memfd"} and keep the connection, which must get
             the daemon's next Heartbeat; exits 0 then
  shmnofd         a ShmRegion of 1 MiB with no descriptor: the daemon must answer
             ShmAck{1, error: "no descriptor came with shm_region 1"} and keep
             the connection (as for shmnotmemfd)
  shmstrayfd      a Heartbeat carrying 20 descriptors (of /dev/null), which no
             ShmRegion takes: the daemon must close them and keep the
             connection, which must get the daemon's next Heartbeat; exits 0 then
  shmrange        a real ring (a sealed memfd of 1 MiB) sent with its ShmRegion,
             acknowledged by the daemon with no error, then a NodeResult whose
             64-byte gradient ends at ring position --shm-end E (default
             1048608: it would run over the ring's end)

Exits 0 when the daemon closed the connection (as it must; shmnotmemfd, shmnofd,
shmstrayfd: when it kept it, as it must), 1 otherwise, and prints what it saw.
Protobuf messages are encoded and decoded by hand: only the few fields used here
(proto/byol.proto has the numbers).
"""
import fcntl
import hashlib
import hmac
import os
import socket
import struct
import sys
import tempfile
import time

# Envelope field numbers
SERVER_HELLO, CLIENT_AUTH, AUTH_RESULT, ERROR, HEARTBEAT = 1, 2, 3, 4, 5
SHM_REGION, SHM_ACK = 6, 7
WORKER_REGISTER, RUN_SETUP, STEP_PARAMS, SHARD_ASSIGN, NODE_RESULT = 10, 11, 12, 13, 14
EVAL_JOB, EVAL_RESULT, RUN_READY = 15, 16, 17
ROLE_WORKER, ROLE_CLIENT = 1, 2
METRICS_REQUEST = 39
# Envelope fields beside the message: a tensor's bytes, and where it ends in
# the sender's shared-memory ring
ATTACHMENT, SHM_END = 100, 101
# a shared-memory ring: a header page, then a multiple of 1 MiB
SHM_HEADER, SHM_MIB, SHM_MAGIC = 4096, 1 << 20, 0x31676e69726c6f62


def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(num, v):
    return varint(num << 3) + varint(v)


def f_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((num << 3) | 2) + varint(len(b)) + b


def f_double(num, x):
    return varint((num << 3) | 1) + struct.pack("<d", x)


def parse(buf):
    """{field number: [values]}; varints as ints, length-delimited as bytes."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def read_varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def first(d, num, default=0):
    return d.get(num, [default])[0]


def frame(num, body):
    env = f_bytes(num, body)
    return struct.pack(">I", len(env)) + env


def shm_region(region_id, size):
    """The frame of a ShmRegion (its descriptor goes beside it: Peer.send_fds)."""
    return frame(SHM_REGION, f_varint(1, region_id) + f_varint(2, size))


class Peer:
    def __init__(self, addr, timeout):
        if addr.startswith("unix:"):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(addr[len("unix:"):])
        else:
            host, port = addr.rsplit(":", 1)
            self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.hello = {}

    def recv_frame(self):
        """(field number, body) of the next Envelope, or None at EOF."""
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    env = parse(self.buf[4:4 + n])
                    self.buf = self.buf[4 + n:]
                    num = next(iter(env))
                    return num, env[num][0]
            try:
                chunk = self.s.recv(1 << 20)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def send(self, data):
        self.s.sendall(data)

    def send_fds(self, data, fds):
        """data and the descriptors fds (SCM_RIGHTS) in one sendmsg: the
        descriptors arrive with data's first byte."""
        n = socket.send_fds(self.s, [data], fds)
        if n < len(data):
            self.send(data[n:])

    def take_frames(self, chunk):
        """Adds chunk to the buffer; the (field number, parsed body) of every
        frame it completes (field number 0 for an Envelope with no field)."""
        self.buf += chunk
        out = []
        while len(self.buf) >= 4 and len(self.buf) >= 4 + int.from_bytes(self.buf[:4], "big"):
            n = int.from_bytes(self.buf[:4], "big")
            env = parse(self.buf[4:4 + n])
            self.buf = self.buf[4 + n:]
            num = next(iter(env), 0)
            out.append((num, parse(env[num][0]) if num else {}))
        return out

    def closed_by_daemon(self):
        """Reads until EOF; True when the daemon closed (within the timeout)."""
        try:
            while True:
                got = self.recv_frame()
                if got is None:
                    return True
                num, body = got
                if num == ERROR:
                    d = parse(body)
                    print("daemon sent Error: %s" % first(d, 2, b"").decode(errors="replace"))
                elif num == AUTH_RESULT:
                    d = parse(body)
                    print("daemon sent AuthResult ok=%d reason=%s" %
                          (first(d, 1), first(d, 2, b"").decode(errors="replace")))
        except socket.timeout:
            return False

    def handshake(self, token, role=ROLE_WORKER, name="fakepeer", shm=False):
        """shm: say in ClientAuth that this side can map shared memory. The
        parsed ServerHello is kept in self.hello."""
        num, body = self.recv_frame()
        assert num == SERVER_HELLO, num
        hello = self.hello = parse(body)
        nonce = first(hello, 1, b"")
        client_nonce = os.urandom(32)
        mac = hmac.new(token, nonce + bytes([role]), hashlib.sha256).digest() if token else b""
        auth = (f_varint(1, role) + f_bytes(2, name) + (f_bytes(3, mac) if mac else b"") +
                f_bytes(4, client_nonce) + f_bytes(5, "fakepeer/1") + f_varint(6, 1) +
                (f_varint(8, 1) if shm else b""))
        self.send(frame(CLIENT_AUTH, auth))
        num, body = self.recv_frame()
        assert num == AUTH_RESULT, num
        res = parse(body)
        return bool(first(res, 1)), first(res, 2, b"").decode(errors="replace")

    def join(self, token, name, shm=False, auth_name="fakepeer"):
        """The handshake (as auth_name), then WorkerRegister; False (and a
        line) when refused."""
        ok, reason = self.handshake(token, name=auth_name, shm=shm)
        if not ok:
            print("handshake refused: %s" % reason)
            return False
        self.send(frame(WORKER_REGISTER, f_bytes(1, name) + f_varint(2, 1) +
                        f_bytes(3, "fakepeer/1") + f_bytes(4, "localhost")))
        return True

    def next_message(self):
        """The next message other than RunSetup (answered RunReady) and Heartbeat
        (answered): (field number, parsed body), or None at EOF. A socket
        timeout passes through."""
        while True:
            got = self.next_frame()
            if got is None or not self.answer(*got):
                return got

    def wait_for(self, num, deadline):
        """The parsed body of the next message number num before deadline (what
        comes before it is answered or, for an Error, printed); None at EOF or
        the deadline, with a line saying which."""
        while time.time() < deadline:
            got = self.next_message()
            if got is None:
                print("daemon closed the connection before message %d" % num)
                return None
            if got[0] == num:
                return got[1]
            if got[0] == ERROR:
                print("daemon sent Error: %s" % first(got[1], 2, b"").decode(errors="replace"))
        print("no message %d within the time" % num)
        return None

    def still_served(self, mode, deadline):
        """Sends a Heartbeat and waits for the daemon's next one (before
        deadline): True when it comes, False (and a line) when the daemon
        closes the connection or sends none."""
        self.send(frame(HEARTBEAT, f_varint(1, 1)))
        try:
            while time.time() < deadline:
                got = self.next_frame()
                if got is None:
                    print("%s: the daemon closed the connection" % mode)
                    return False
                if got[0] == HEARTBEAT:
                    print("%s: the connection stays open (a heartbeat came)" % mode)
                    return True
                if got[0] == ERROR:
                    print("daemon sent Error: %s" %
                          first(got[1], 2, b"").decode(errors="replace"))
        except socket.timeout:
            pass
        print("%s: no heartbeat from the daemon within the time" % mode)
        return False

    def next_frame(self):
        """(field number, parsed body) of the next message, or None at EOF."""
        got = self.recv_frame()
        return None if got is None else (got[0], parse(got[1]))

    def answer(self, num, d):
        """Answers a RunSetup (RunReady) or a Heartbeat; False for anything else."""
        if num == RUN_SETUP:
            print("run_setup run %d: param_count %d" % (first(d, 1), first(d, 3)))
            self.send(frame(RUN_READY, f_varint(1, first(d, 1))))
        elif num == HEARTBEAT:
            self.send(frame(HEARTBEAT, f_varint(1, 1)))
        else:
            return False
        return True


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print(__doc__)
        return 2
    mode, addr = args[0], args[1]
    token, timeout = None, 20.0
    if "--token-file" in args:
        token = open(args[args.index("--token-file") + 1], "rb").read().strip()
    if "--timeout" in args:
        timeout = float(args[args.index("--timeout") + 1])
    late = float(args[args.index("--late") + 1]) if "--late" in args else None
    opt = lambda name, default: (float(args[args.index(name) + 1]) if name in args
                                 else default)
    p = Peer(addr, timeout)

    if mode == "garbage":
        p.send(struct.pack(">I", 24) + b"\xff" * 24)
    elif mode == "oversize":
        p.send(b"\x7f\xff\xff\xf0" + b"\x00" * 64)
    elif mode == "truncated":
        p.send(struct.pack(">I", 1000) + b"\x0a" * 10)
        p.s.shutdown(socket.SHUT_WR)
    elif mode == "badtoken":
        ok, reason = p.handshake(b"this is not the cluster token at all")
        print("auth ok=%d reason=%s" % (ok, reason))
        if ok:
            return 1
    elif mode == "shortgrad":
        if not p.join(token, "fakepeer"):
            return 1
        d = p.wait_for(SHARD_ASSIGN, time.time() + timeout)
        if d is None:
            return 1
        run_id, step = first(d, 1), first(d, 2)
        node = parse(d[3][0]) if 3 in d else {}
        lo, hi = first(node, 1), first(node, 2)
        print("shard_assign run %d step %d node [%d, %d): answering 2 floats"
              % (run_id, step, lo, hi))
        res = (f_varint(1, run_id) + f_varint(2, step) + f_varint(3, lo) +
               f_varint(4, hi) + f_bytes(5, b"\x00" * 8) + f_double(7, 1.0) +
               f_varint(9, 32))
        p.send(frame(NODE_RESULT, res))
    elif mode == "hang":
        if not p.join(token, "hang"):
            return 1
        p.s.settimeout(0.5)
        deadline = time.time() + timeout
        held = None  # (time, result) of the first node, while --late holds it
        while time.time() < deadline:
            if held and time.time() >= held[0]:
                p.send(frame(NODE_RESULT, held[1]))
                print("answered the first node late")
                sys.stdout.flush()
                held = None
            try:
                got = p.next_frame()
            except socket.timeout:
                p.send(frame(HEARTBEAT, f_varint(1, 1)))
                continue
            if got is None:
                print("daemon closed the connection")
                return 0
            num, d = got
            if p.answer(num, d):
                continue
            if num == SHARD_ASSIGN:
                for raw in d.get(3, []):
                    node = parse(raw)
                    lo, hi = first(node, 1), first(node, 2)
                    print("shard_assign step %d node [%d, %d): not answering"
                          % (first(d, 2), lo, hi))
                    if late is not None:
                        res = (f_varint(1, first(d, 1)) + f_varint(2, first(d, 2)) +
                               f_varint(3, lo) + f_varint(4, hi) +
                               f_bytes(5, b"\x00" * 8) + f_varint(9, 32))
                        held, late = (time.time() + late, res), None
                sys.stdout.flush()
        return 0
    elif mode == "greedy":
        ok, reason = p.handshake(token, ROLE_CLIENT, "greedy")
        if not ok:
            print("handshake refused: %s" % reason)
            return 1
        req = frame(METRICS_REQUEST, f_varint(1, int(opt("--run", 1))))
        burst, sent = req * int(opt("--requests", 1000)), 0
        p.s.settimeout(2)
        try:
            while sent < len(burst):
                sent += p.s.send(burst[sent:sent + 65536])
            print("sent all %d requests; reading nothing" % int(opt("--requests", 1000)))
        except socket.timeout:
            print("the daemon stopped reading after %d of %d requests"
                  % (sent // len(req), len(burst) // len(req)))
        sys.stdout.flush()
        time.sleep(opt("--hold", 10))
        return 0
    elif mode == "flood":
        if not p.join(token, "flood"):
            return 1
        res = frame(NODE_RESULT, f_varint(1, 987654) + f_varint(2, 1) + f_varint(3, 0) +
                    f_varint(4, 1))
        p.send(res * int(opt("--requests", 1000)))
        p.send(frame(HEARTBEAT, f_varint(1, 1)))
        print("sent %d NodeResults of run 987654" % int(opt("--requests", 1000)))
        return 0
    elif mode in ("orphanattach", "attachmismatch", "attachnone"):
        if not p.join(token, mode):
            return 1
        if mode == "orphanattach":       # an attachment frame nothing announced
            p.send(struct.pack(">I", 0x80000000 | 8) + b"\x00" * 8)
        elif mode == "attachmismatch":   # 16 bytes announced, 8 sent
            env = (f_bytes(NODE_RESULT, f_varint(1, 1) + f_varint(2, 0)) +
                   f_varint(100, 16))
            p.send(struct.pack(">I", len(env)) + env)
            p.send(struct.pack(">I", 0x80000000 | 8) + b"\x00" * 8)
        else:                            # a Heartbeat cannot carry one
            env = f_bytes(HEARTBEAT, f_varint(1, 1)) + f_varint(100, 8)
            p.send(struct.pack(">I", len(env)) + env)
            p.send(struct.pack(">I", 0x80000000 | 8) + b"\x00" * 8)
    elif mode.startswith("shm"):
        if mode not in ("shmunagreed", "shmnoring", "shmbadsize", "shmnotmemfd", "shmnofd",
                        "shmstrayfd", "shmrange"):
            print("unknown mode %s" % mode)
            return 2
        if not p.join(token, mode, shm=True, auth_name=mode):
            return 1
        offered, on_socket = bool(first(p.hello, 6)), addr.startswith("unix:")
        print("server_hello shm=%d on %s" % (offered, "the Unix socket" if on_socket else "TCP"))
        if offered != on_socket:
            print("%s: the daemon %s shared memory on %s" % (
                mode, "offered" if offered else "did not offer", addr))
            return 1
        deadline = time.time() + timeout
        if mode == "shmunagreed":        # a region on a connection without shm
            p.send(shm_region(1, SHM_MIB))
        elif mode == "shmnoring":        # a tensor in a ring never named
            env = (f_bytes(NODE_RESULT, f_varint(1, 1) + f_varint(2, 0)) +
                   f_varint(ATTACHMENT, 16) + f_varint(SHM_END, 16))
            p.send(struct.pack(">I", len(env)) + env)
        elif mode == "shmbadsize":       # not a multiple of 1 MiB
            p.send(shm_region(1, 12345))
        elif mode in ("shmnotmemfd", "shmnofd"):
            if mode == "shmnotmemfd":    # an ordinary file of the right size
                f = tempfile.TemporaryFile()
                os.ftruncate(f.fileno(), SHM_HEADER + SHM_MIB)
                p.send_fds(shm_region(1, SHM_MIB), [f.fileno()])
                f.close()
                want = "not a sealed memfd"
            else:                        # no descriptor at all
                p.send(shm_region(1, SHM_MIB))
                want = "no descriptor came with shm_region 1"
            ack = p.wait_for(SHM_ACK, deadline)
            if ack is None:
                return 1
            error = first(ack, 2, b"").decode(errors="replace")
            print("shm_ack %d: error '%s'" % (first(ack, 1), error))
            if first(ack, 1) != 1 or want not in error:
                print("%s: expected shm_ack 1 with an error saying '%s'" % (mode, want))
                return 1
            return 0 if p.still_served(mode, deadline) else 1
        elif mode == "shmstrayfd":       # descriptors that no ShmRegion carries
            fds = [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) for _ in range(20)]
            p.send_fds(frame(HEARTBEAT, f_varint(1, 1)), fds)
            for fd in fds:
                os.close(fd)
            print("sent a heartbeat carrying %d descriptors" % len(fds))
            return 0 if p.still_served(mode, deadline) else 1
        else:                            # shmrange: a real ring, then a tensor past it
            fd = os.memfd_create("fakepeer-ring", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            os.ftruncate(fd, SHM_HEADER + SHM_MIB)
            os.pwrite(fd, struct.pack("<QQ", SHM_MAGIC, SHM_MIB), 0)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            p.send_fds(shm_region(1, SHM_MIB), [fd])
            ack = p.wait_for(SHM_ACK, deadline)
            if ack is None:
                return 1
            error = first(ack, 2, b"").decode(errors="replace")
            print("shm_ack %d: error '%s'" % (first(ack, 1), error))
            if first(ack, 1) != 1 or error:
                print("shmrange: the daemon did not map a valid ring")
                return 1
            end = int(opt("--shm-end", SHM_MIB + 32))
            env = (f_bytes(NODE_RESULT, f_varint(1, 1) + f_varint(2, 0)) +
                   f_varint(ATTACHMENT, 64) + f_varint(SHM_END, end))
            p.send(struct.pack(">I", len(env)) + env)
            print("sent a node_result of 64 bytes ending at ring position %d" % end)
    elif mode == "deaf":
        if not p.join(token, "deaf"):
            return 1
        deadline = time.time() + timeout
        d = p.wait_for(STEP_PARAMS, deadline)
        if d is None:
            return 1
        print("step_params of step %d: reading nothing more" % first(d, 2))
        sys.stdout.flush()
        while time.time() < deadline:
            p.send(frame(HEARTBEAT, f_varint(1, 1)))
            time.sleep(0.5)
        return 0
    else:
        print("unknown mode %s" % mode)
        return 2
    if p.closed_by_daemon():
        print("%s: the daemon closed the connection" % mode)
        return 0
    print("%s: the connection is still open after %.0f s" % (mode, timeout))
    return 1


if __name__ == "__main__":
    sys.exit(main())
