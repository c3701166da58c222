#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
# runtime-facts.py — what QEMU itself runs a node with, for tests/libvirt/t-libvirt-runtime.sh.
#
#   runtime-facts.py node NODES.json FILE     "NODE DIRECT NOFLUSH FORMATNODE" of the protocol node on FILE
#                                             (NODES.json: query-named-block-nodes as virsh prints it)
#   runtime-facts.py odirect PID FILE         1 if QEMU's fd on FILE has O_DIRECT, 0 if not, "missing"
#   runtime-facts.py aio PID                  "RINGS CQTAIL WORKERS LIBAIO": QEMU's io_uring fds and the sum of
#                                             their completion-queue tails, its thread-pool workers (threads
#                                             named "worker"), and its libaio contexts (/[aio] mappings)
#   runtime-facts.py state STATE.json FILE    "AIO CACHE RULE ORIGIN" of the state entry's disk on FILE (its
#                                             active layer; ORIGIN "layer" for a layer below), or "- - - -"
import json
import os
import re
import sys


def node(nodes_file, path):
    with open(nodes_file) as f:
        nodes = json.load(f)["return"]
    proto = [n for n in nodes if n.get("file") == path and n["drv"] in ("file", "host_device")]
    if not proto:
        print("- - - -")
        return
    p = proto[0]
    fmt = "-"
    for n in nodes:
        if n is not p and n.get("file") == path and n["drv"] not in ("file", "host_device"):
            fmt = n["node-name"]
    c = p["cache"]
    print(p["node-name"], str(c["direct"]).lower(), str(c["no-flush"]).lower(), fmt)


def odirect(pid, path):
    d = "/proc/%s/fd" % pid
    for fd in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, fd)) != path:
                continue
            with open("/proc/%s/fdinfo/%s" % (pid, fd)) as f:
                flags = int(re.search(r"^flags:\s*(\d+)", f.read(), re.M).group(1), 8)
        except (OSError, AttributeError):
            continue
        print(1 if flags & 0o40000 else 0)
        return
    print("missing")


def aio(pid):
    rings = tail = 0
    d = "/proc/%s/fd" % pid
    for fd in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, fd)) != "anon_inode:[io_uring]":
                continue
            with open("/proc/%s/fdinfo/%s" % (pid, fd)) as f:
                m = re.search(r"^CqTail:\s*(\d+)", f.read(), re.M)
        except OSError:
            continue
        rings += 1
        tail += int(m.group(1)) if m else 0
    workers = 0
    for t in os.listdir("/proc/%s/task" % pid):
        try:
            with open("/proc/%s/task/%s/comm" % (pid, t)) as f:
                workers += f.read().strip() == "worker"
        except OSError:
            pass
    with open("/proc/%s/maps" % pid) as f:
        libaio = sum(1 for line in f if " /[aio]" in line)
    print(rings, tail, workers, libaio)


def state(state_file, path):
    with open(state_file) as f:
        st = json.load(f)
    for d in st.get("disks", []):
        if d.get("path") == path:
            print(d.get("aio") or "-", d.get("cache") or "-", d.get("rule") or "-", d.get("origin") or "cmdline")
            return
    for d in st.get("disks", []):
        for layer in d.get("layers") or []:
            if layer.get("path") == path:
                print(layer.get("aio") or "-", layer.get("cache") or "-", layer.get("rule") or "-", "layer")
                return
    print("- - - -")


cmd = sys.argv[1]
{"node": node, "odirect": odirect, "aio": aio, "state": state}[cmd](*sys.argv[2:])
