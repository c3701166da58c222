#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A client that sends 20000 pipelined commands and does not read the
# replies for 2 s: the relay neither spins (under 40 of 200 CPU ticks while
# it waits; QEMU's bytes stay in the kernel) nor loses anything (all 20001
# replies arrive once the client reads).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
start bp -qmp "unix:$TMP/m.sock,server=on,wait=off"
wait_for 20 test -S "$TMP/m.sock" || fail "no manager socket"
cleanup_fn 'for p in $(relay_pids bp); do kill -9 $p 2>/dev/null; done'
timeout 120 python3 - "$TMP/m.sock" $(relay_pids bp) > "$TMP/out" <<'EOF2' || fail "$(cat "$TMP/out")"
import socket, sys, time
sock, pids = sys.argv[1], [int(p) for p in sys.argv[2:]]
def cpu(p):
    f = open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
s.sendall(b'{"execute":"qmp_capabilities"}\r\n')
N = 20000
data = b"".join(b'{"execute":"query-status","id":%d}\r\n' % i for i in range(N))
s.setblocking(False)
sent, t0 = 0, time.time()
while sent < len(data) and time.time() - t0 < 5:
    try:
        sent += s.send(data[sent:])
    except BlockingIOError:
        time.sleep(0.01)
c0 = [cpu(p) for p in pids]
time.sleep(2)
spent = [cpu(p) - c for p, c in zip(pids, c0)]
print("CPU ticks of the relays while the client did not read (2 s):", spent)
buf, deadline = b"", time.time() + 60
while buf.count(b'"return"') < N + 1 and time.time() < deadline:
    if sent < len(data):
        try:
            sent += s.send(data[sent:])
        except BlockingIOError:
            pass
    try:
        buf += s.recv(1 << 20)
    except BlockingIOError:
        time.sleep(0.001)
print("replies:", buf.count(b'"return"'), "of", N + 1)
sys.exit(0 if max(spent) < 40 and buf.count(b'"return"') == N + 1 else 1)
EOF2
cat "$TMP/out"
echo "relay back-pressure: no spinning, nothing lost"
