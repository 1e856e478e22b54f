#!/usr/bin/env python3
"""dropproxy.py — a worker's connection to byold through a proxy that loses
some of the daemon's messages, for the end-to-end tests.

    dropproxy.py PORT_FILE HOST:PORT FIELD...

Listens on 127.0.0.1 (an ephemeral port, written to PORT_FILE), takes one
connection (a byol-worker's) and connects it to the daemon at HOST:PORT. Frames
pass unchanged both ways (the handshake's HMAC still holds), except frames from
the daemon whose Envelope message has one of the field numbers FIELD
(proto/byol.proto: 15 = EvalJob): those are swallowed, and a line is printed for
each. Attachment frames (the length's top bit set: a tensor after its message)
pass as they are. To the daemon the worker then looks alive (its heartbeats pass) but never
answers those messages. Runs until either side closes.
"""
import os
import select
import socket
import struct
import sys


def field_of(env):
    """The field number of an Envelope's first key (its oneof message)."""
    shift = key = 0
    for b in env[:10]:
        key |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return key >> 3
    return 0


def main():
    port_file, addr, drop = sys.argv[1], sys.argv[2], {int(x) for x in sys.argv[3:]}
    host, port = addr.rsplit(":", 1)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])

    os.rename(port_file + ".tmp", port_file)
    worker, _ = ls.accept()
    daemon = socket.create_connection((host, int(port)))
    bufs = {daemon: b"", worker: b""}
    peer = {daemon: worker, worker: daemon}
    while True:
        ready, _, _ = select.select([daemon, worker], [], [])
        for s in ready:
            chunk = s.recv(1 << 20)
            if not chunk:
                return 0
            if s is worker:
                daemon.sendall(chunk)
                continue
            bufs[s] += chunk
            while len(bufs[s]) >= 4:
                n = struct.unpack(">I", bufs[s][:4])[0]
                attachment = n & 0x80000000
                n &= 0x7FFFFFFF
                if len(bufs[s]) < 4 + n:
                    break
                fr, bufs[s] = bufs[s][:4 + n], bufs[s][4 + n:]
                f = 0 if attachment else field_of(fr[4:])
                if f in drop:
                    print("dropped a message of field %d (%d bytes)" % (f, n), flush=True)
                else:
                    peer[s].sendall(fr)


if __name__ == "__main__":
    sys.exit(main())
