#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""relay-kill: SIGKILL the processes of a VM's monitor relay under one open
QMP connection and check that the connection and QEMU's answers survive.

    relay-kill.py SOCKET STATE_FILE RELAY_LOG IMAGE [STEPS]

The relay must run with KL_TEST_RELAY_STALL=MS (a message naming
kl-stall-STEP waits MS ms at STEP).  For each step (default: peeked
rewritten sent consumed) a blockdev-add of a null-co node is sent, the active
relay is killed while it waits at that step, and exactly one reply must come,
a success (QEMU ran it once: a second run would fail on the duplicate name);
then the standby is killed, then the agent; each time the connection must
still answer and a new standby (and agent) must appear.  Last, a blockdev-add
of IMAGE must still get the policy (cache.direct on).  Prints one line per
check; exits 1 with the reason on the first failure."""
import array
import json
import os
import signal
import socket
import sys
import time


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


class Client:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        self.dec = json.JSONDecoder()
        self.replies = {}

    def recv_msg(self, deadline):
        while True:
            text = self.buf.lstrip()
            if text:
                try:
                    s = text.decode()
                    obj, end = self.dec.raw_decode(s)
                    self.buf = s[end:].encode()
                    if "id" in obj:
                        self.replies.setdefault(obj["id"], []).append(obj)
                    return obj
                except ValueError:
                    pass
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                return None
            if not data:
                fail("the connection closed (libvirt would destroy the domain)")
            self.buf += data

    def wait_id(self, ident, secs):
        deadline = time.monotonic() + secs
        while ident not in self.replies:
            if self.recv_msg(deadline) is None:
                return None
        return self.replies[ident][0]

    def drain(self, secs):
        deadline = time.monotonic() + secs
        while self.recv_msg(deadline) is not None:
            pass

    def call(self, cmd, ident, args=None, secs=30):
        msg = {"execute": cmd, "id": ident}
        if args is not None:
            msg["arguments"] = args
        self.s.sendall((json.dumps(msg) + "\r\n").encode())
        return self.wait_id(ident, secs)


def relays(state_file):
    """{pid: ppid} of the relay processes of this VM."""
    want = "kvm-launch\0--relay\0"
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = open("/proc/%s/cmdline" % d).read()
            stat = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if cmd.startswith(want) and (state_file + "\0") in cmd and fields[0] != "Z":
            out[int(d)] = int(fields[1])
    return out


def roles(state_file, secs=10):
    """(active, standby) once there are exactly two relay processes."""
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        r = relays(state_file)
        if len(r) == 2:
            a = [p for p, pp in r.items() if pp not in r]
            s = [p for p, pp in r.items() if pp in r]
            if len(a) == 1 and len(s) == 1:
                return a[0], s[0]
        time.sleep(0.05)
    fail("no active and standby relay: %s" % relays(state_file))


def log_has(path, start, text, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            f.seek(start)
            if text in f.read():
                return True
        time.sleep(0.02)
    return False


def agent_pid(state_file):
    try:
        st = json.load(open(state_file))
    except (OSError, ValueError):
        return 0
    return int((st.get("agent") or {}).get("pid") or 0)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main():
    sock, state_file, log, image = sys.argv[1:5]
    steps = sys.argv[5].split() if len(sys.argv) > 5 else ["peeked", "rewritten", "sent", "consumed"]
    c = Client(sock)
    c.drain(0.5)  # the greeting
    if not c.call("qmp_capabilities", "cap"):
        fail("no reply to qmp_capabilities")
    for step in steps:
        active, standby = roles(state_file)
        mark = os.path.getsize(log)
        ident = "kl-stall-" + step
        c.s.sendall((json.dumps({"execute": "blockdev-add", "id": ident,
                                 "arguments": {"driver": "null-co", "node-name": "k-" + step}}) + "\r\n").encode())
        if not log_has(log, mark, "relay: stall at " + step, 10):
            fail("%s: the relay never waited at that step" % step)
        os.kill(active, signal.SIGKILL)
        r = c.wait_id(ident, 30)
        if r is None:
            fail("%s: no reply to the message in flight after the active relay (pid %d) was killed" % (step, active))
        if c.call("query-status", "after-" + step) is None:
            fail("%s: no reply after the takeover" % step)
        c.drain(0.3)
        n = len(c.replies[ident])
        if n != 1 or "return" not in r:
            fail("%s: %d replies to the message in flight: %s" % (step, n, c.replies[ident]))
        na, ns = roles(state_file)
        if na != standby:
            fail("%s: the standby %d did not take over (active now %d)" % (step, standby, na))
        print("killed the active relay at %s: one reply %s; pid %d took over, new standby %d" %
              (step, json.dumps(r), na, ns), flush=True)
    # An fd sent with a command in flight (getfd, as libvirt's save and dump
    # do) reaches QEMU once, with its command: closefd by that name works.
    for step in ("peeked", "sent"):
        active, standby = roles(state_file)
        mark = os.path.getsize(log)
        ident = "kl-stall-%s-fd" % step
        fd = os.open(image, os.O_RDONLY)
        msg = json.dumps({"execute": "getfd", "id": ident, "arguments": {"fdname": "fd-" + step}}) + "\r\n"
        c.s.sendmsg([msg.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        os.close(fd)
        if not log_has(log, mark, "relay: stall at " + step, 10):
            fail("getfd %s: the relay never waited at that step" % step)
        os.kill(active, signal.SIGKILL)
        r = c.wait_id(ident, 30)
        if r is None or "return" not in r:
            fail("getfd killed at %s: %s" % (step, r))
        r2 = c.call("closefd", "close-" + step, {"fdname": "fd-" + step})
        c.drain(0.3)
        if r2 is None or "return" not in r2 or len(c.replies[ident]) != 1:
            fail("getfd killed at %s: closefd %s, replies %s" % (step, r2, c.replies[ident]))
        print("killed the active relay at %s with getfd and an fd in flight: one reply, QEMU holds the fd (closefd ok)"
              % step, flush=True)
    active, standby = roles(state_file)
    os.kill(standby, signal.SIGKILL)
    time.sleep(0.2)
    na, ns = roles(state_file)
    if na != active or ns == standby:
        fail("after the standby was killed: active %d standby %d" % (na, ns))
    if c.call("query-status", "after-standby") is None:
        fail("no reply after the standby was killed")
    print("killed the standby %d: active %d answers, new standby %d" % (standby, na, ns), flush=True)
    ag = agent_pid(state_file)
    if not ag or not alive(ag):
        fail("no live agent recorded before the kill")
    os.kill(ag, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (agent_pid(state_file) in (0, ag) or not alive(agent_pid(state_file))):
        time.sleep(0.1)
    nag = agent_pid(state_file)
    if nag == ag or not alive(nag):
        fail("the agent was not started again (state names pid %d)" % nag)
    if c.call("query-status", "after-agent") is None:
        fail("no reply after the agent was killed")
    print("killed the agent %d: started again as %d" % (ag, nag), flush=True)
    r = c.call("blockdev-add", "late-add", {"driver": "file", "filename": image, "node-name": "late"})
    if r is None or "return" not in r:
        fail("blockdev-add after the kills: %s" % r)
    r = c.call("query-named-block-nodes", "nodes", {"flat": True})
    node = [n for n in r["return"] if n["node-name"] == "late"]
    if not node or not node[0]["cache"]["direct"]:
        fail("the node added after the kills did not get the policy: %s" % node)
    names = sorted(n["node-name"] for n in r["return"] if n["node-name"].startswith("k-"))
    if names != sorted("k-" + s for s in steps):
        fail("null-co nodes: %s" % names)
    print("blockdev-add after the kills: cache.direct %s; nodes %s" % (node[0]["cache"]["direct"], names), flush=True)


main()
