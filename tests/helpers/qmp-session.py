#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""qmp-session: one QMP session over a unix socket, scripted on stdin, for the
relay tests (fd passing, event order, round-trip timing).

    qmp-session.py SOCKET < SCRIPT

Prints "greeting JSON" first, then one line per script line:
    {"execute": ...}            send, wait for the reply with its id or none:
                                "reply JSON"; events that came meanwhile:
                                "event JSON" lines, in arrival order, first
    @fd PATH {"execute": ...}   the same, with PATH opened read-write and its
                                fd sent with the command (SCM_RIGHTS)
    @raw TEXT                   send TEXT as it is (no reply awaited)
    @wait-event NAME SECONDS    print events until NAME arrives ("timeout" if not;
                                at once if it came while awaiting a reply)
    @bench N [FILE [CMD]]       N round trips of CMD (query-status): "bench
                                median_us q1_us q3_us n"; samples appended to FILE
    @sleep SECONDS
Exits 2 when the connection closes early."""
import array
import json
import os
import socket
import sys
import time


class Session:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(path)
        self.buf = b""
        self.dec = json.JSONDecoder()
        self.seen = []  # names of the events printed so far

    def recv_msg(self):
        while True:
            text = self.buf.lstrip()
            if text:
                try:
                    obj, end = self.dec.raw_decode(text.decode())
                    self.buf = text[len(text.decode()[:end].encode()):]
                    return obj
                except ValueError:
                    pass
            data = self.s.recv(65536)
            if not data:
                print("closed", flush=True)
                sys.exit(2)
            self.buf += data

    def send(self, text, fds=()):
        data = text.encode()
        if fds:
            self.s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.s.sendall(data)

    def command(self, text, fds=(), quiet=False):
        self.send(text + "\r\n", fds)
        while True:
            m = self.recv_msg()
            if "event" in m:
                if not quiet:
                    print("event " + json.dumps(m), flush=True)
                    self.seen.append(m["event"])
                continue
            return m


def main():
    sess = Session(sys.argv[1])
    print("greeting " + json.dumps(sess.recv_msg()), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@fd "):
            _, path, cmd = line.split(" ", 2)
            fd = os.open(path, os.O_RDWR)
            print("reply " + json.dumps(sess.command(cmd, [fd])), flush=True)
            os.close(fd)
        elif line.startswith("@raw "):
            sess.send(line[5:])
        elif line.startswith("@wait-event "):
            _, name, secs = line.split()
            if name in sess.seen:  # already came (before a reply)
                sess.seen.remove(name)
                continue
            end = time.time() + float(secs)
            sess.s.settimeout(float(secs))
            try:
                while time.time() < end:
                    m = sess.recv_msg()
                    print(("event " if "event" in m else "reply ") + json.dumps(m), flush=True)
                    if m.get("event") == name:
                        sess.seen.clear()
                        break
                else:
                    print("timeout", flush=True)
            except socket.timeout:
                print("timeout", flush=True)
            sess.s.settimeout(30)
        elif line.startswith("@bench "):
            parts = line.split(" ", 3)
            n = int(parts[1])
            cmd = parts[3] if len(parts) > 3 else '{"execute":"query-status"}'
            for _ in range(20):  # warm up
                sess.command(cmd, quiet=True)
            t = []
            for _ in range(n):
                a = time.perf_counter_ns()
                sess.command(cmd, quiet=True)
                t.append((time.perf_counter_ns() - a) / 1000.0)
            if len(parts) > 2:  # every sample, for statistics over several runs
                with open(parts[2], "a") as f:
                    f.write("".join("%.1f\n" % x for x in t))
            t.sort()
            print("bench %.1f %.1f %.1f %d" % (t[n // 2], t[n // 4], t[(3 * n) // 4], n), flush=True)
        elif line.startswith("@sleep "):
            time.sleep(float(line.split()[1]))
        else:
            print("reply " + json.dumps(sess.command(line)), flush=True)


main()
