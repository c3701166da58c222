#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The monitor relay with the real QEMU, for each monitor shape a manager
# uses (libvirt's inherited listening fd, -chardev path=, -qmp, -qmp-pretty):
# QEMU gets a private listener (fd=M), the manager's endpoint stays with the
# relay; greeting, commands and events in order through it; each connection
# a fresh QEMU session; fds passed with getfd/add-fd reach QEMU (an add-fd'd
# image opened as /dev/fdset/N).  Then the relay's added round trip.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
truncate -s 16M "$TMP/fd.raw"

# QEMU's own command line: the monitor is fd=M, no path= of the manager.
check_private() { # NAME MANAGER-ENDPOINT
	local cmd
	cmd=$(tr '\0' ' ' < "/proc/$QPID/cmdline")
	echo "$cmd" | grep -q 'fd=[0-9]*,server=on' || fail "$1: QEMU's monitor is not an fd: $cmd"
	case $cmd in *"$2"*) fail "$1: QEMU still has the manager's endpoint $2: $cmd" ;; esac
	[ -n "$(relay_pids)" ] || fail "$1: no relay process"
}

# The session every shape goes through: greeting, negotiation, query-status,
# events in order (cont, stop, cont), fds with getfd and add-fd.
exercise() { # NAME SOCKET
	session "$2" > "$TMP/$1.s1" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"query-status","id":"q1"}
{"execute":"cont","id":"c1"}
@wait-event RESUME 10
{"execute":"stop","id":"s1"}
@wait-event STOP 10
{"execute":"cont","id":"c2"}
@wait-event RESUME 10
@fd $TMP/fd.raw {"execute":"getfd","arguments":{"fdname":"kfd"},"id":"g1"}
{"execute":"closefd","arguments":{"fdname":"kfd"},"id":"g2"}
@fd $TMP/fd.raw {"execute":"add-fd","arguments":{"fdset-id":7},"id":"a1"}
{"execute":"blockdev-add","arguments":{"driver":"file","filename":"/dev/fdset/7","node-name":"fds"},"id":"b1"}
{"execute":"query-named-block-nodes","arguments":{"flat":true},"id":"n1"}
EOF
	cat "$TMP/$1.s1" | cut -c1-200 | sed 's/^/    /'
	grep -q '^greeting {"QMP"' "$TMP/$1.s1" || fail "$1: no greeting"
	grep -q '"status": "prelaunch".*"id": "q1"' "$TMP/$1.s1" || fail "$1: query-status"
	# Events in the order QEMU sent them.
	[ "$(grep -o '"event": "[A-Z]*"' "$TMP/$1.s1" | tr '\n' ' ')" = '"event": "RESUME" "event": "STOP" "event": "RESUME" ' ] ||
		fail "$1: events out of order: $(grep -o '"event": "[A-Z]*"' "$TMP/$1.s1" | tr '\n' ' ')"
	grep -q '{"return": {}, "id": "g2"}' "$TMP/$1.s1" || fail "$1: the getfd fd did not reach QEMU (closefd failed)"
	grep -q '"fdset-id": 7.*"id": "a1"' "$TMP/$1.s1" || fail "$1: add-fd"
	grep -q '{"return": {}, "id": "b1"}' "$TMP/$1.s1" || fail "$1: blockdev-add of /dev/fdset/7 failed"
	grep -q '"node-name": "fds"' "$TMP/$1.s1" || fail "$1: node fds missing"
	# A second connection is a fresh QEMU session: negotiation is accepted again.
	printf '{"execute":"qmp_capabilities","id":"n2"}\n{"execute":"query-status","id":"q2"}\n' | session "$2" > "$TMP/$1.s2"
	grep -q '{"return": {}, "id": "n2"}' "$TMP/$1.s2" || fail "$1: second connection not a fresh session: $(cat "$TMP/$1.s2")"
	grep -q '"id": "q2"' "$TMP/$1.s2" || fail "$1: second connection"
	echo "$1: ok (greeting, events in order, getfd/add-fd fds reached QEMU, fresh second session)"
}

# 1. libvirt: a listening socket it made, inherited as fd=N.
python3 - "$KL" "$TMP/p.conf" "$QEMU" "$TMP/lv.sock" > "$TMP/lv.out" 2>&1 <<'EOF' &
import os, socket, sys
kl, conf, qemu, path = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
os.set_inheritable(s.fileno(), True)
fd = s.fileno()
os.execv(kl, [kl, "--config", conf, "--qemu", qemu, "--", "-name", "lv", "-machine", "pc", "-accel", "tcg",
              "-nodefaults", "-display", "none", "-S",
              "-chardev", "socket,id=charmonitor,fd=%d,server=on,wait=off" % fd,
              "-mon", "chardev=charmonitor,id=monitor,mode=control"])
EOF
wait_for 20 test -S "$ST/lv.qmp.sock" || fail "lv: QEMU did not start: $(cat "$TMP/lv.out")"
QPID=$(qemu_pid_of lv)
cleanup_fn "kill -9 $QPID 2>/dev/null"
for p in $(relay_pids); do cleanup_fn "kill -9 $p 2>/dev/null"; done
check_private lv "fd=3,server"
# QEMU no longer holds the manager's listener: only the relay does.
for fd in /proc/$QPID/fd/*; do
	[ "$(readlink "$fd")" = "$(readlink "/proc/$(relay_pids | head -n 1)/fd/3")" ] && fail "lv: QEMU still holds the manager's listener"
done
exercise lv "$TMP/lv.sock"
quit_via "$TMP/lv.sock"
wait_for 10 gone "$QPID" || fail "lv: QEMU did not quit"
wait_for 10 no_relay lv || fail "lv: relay still running after QEMU quit"
[ ! -e "$ST/lv.relay0.sock" ] || fail "lv: private socket left behind"

# 2. Proxmox / scripts: -chardev path=, 3. -qmp, 4. -qmp-pretty.
start px -chardev "socket,id=qmp,path=$TMP/px.sock,server=on,wait=off" -mon "chardev=qmp,mode=control"
check_private px "$TMP/px.sock"
# The manager's socket has the mode QEMU would have given it (umask), QEMU's
# private one is the owner's only.
want=$(printf '%o' $(( 0777 & ~$(umask) )))
[ "$(stat -c %a "$TMP/px.sock")" = "$want" ] || fail "px: manager socket mode $(stat -c %a "$TMP/px.sock"), want $want"
[ "$(stat -c %a "$ST/px.relay0.sock")" = 700 ] || fail "px: private socket mode $(stat -c %a "$ST/px.relay0.sock")"
exercise px "$TMP/px.sock"
quit_via "$TMP/px.sock"
wait_for 10 gone "$QPID" || fail "px: QEMU did not quit"
wait_for 10 test ! -e "$TMP/px.sock" || fail "px: the manager's socket was not removed after QEMU exited"

start qm -qmp "unix:$TMP/qm.sock,server=on,wait=off"
check_private qm "$TMP/qm.sock"
exercise qm "$TMP/qm.sock"

start qp -qmp-pretty "unix:$TMP/qp.sock,server=on,wait=off"
check_private qp "$TMP/qp.sock"
grep -q 'pretty=on' "/proc/$QPID/cmdline" || fail "qp: pretty=on lost"
printf '{"execute":"qmp_capabilities"}\n' | session "$TMP/qp.sock" > /dev/null
# pretty output still arrives (the relay passes QEMU's bytes untouched)
python3 - "$TMP/qp.sock" <<'EOF' || fail "qp: not pretty-printed through the relay"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
buf = b""
while b"QMP" not in buf or not buf.rstrip().endswith(b"}"):
    buf += s.recv(4096)
sys.exit(0 if b"\n    " in buf else 1)
EOF
echo "qp: ok (pretty output through the relay)"

# A client mode chardev and an HMP monitor are not touched.
"$KL" --config "$TMP/p.conf" --qemu "$QEMU" --dry-run -- -name cm -machine pc -S \
	-chardev "socket,id=c1,path=$TMP/none.sock" -mon chardev=c1,mode=control -monitor "unix:$TMP/hmp.sock,server=on,wait=off" \
	> "$TMP/cm.dry" 2>&1
grep -q "path=$TMP/none.sock" "$TMP/cm.dry" && grep -q "unix:$TMP/hmp.sock" "$TMP/cm.dry" || fail "client/HMP monitor changed: $(cat "$TMP/cm.dry")"

# The relay's cost: query-status round trips through it and directly (the
# VM's own query socket), 1000 each, interleaved in 5 rounds of 200 (the
# machine is shared: interleaving spreads its load over both).
for round in 1 2 3 4 5; do
	printf '{"execute":"qmp_capabilities"}\n@bench 200 %s\n' "$TMP/bench.relay" | session "$TMP/qm.sock" > /dev/null
	printf '{"execute":"qmp_capabilities"}\n@bench 200 %s\n' "$TMP/bench.direct" | session "$ST/qm.qmp.sock" > /dev/null
done
stats() { sort -n "$1" | awk '{v[NR] = $1} END {printf "%.1f %.1f %.1f %d", v[int(NR/2)+1], v[int(NR/4)+1], v[int(3*NR/4)+1], NR}'; }
read -r rm rq1 rq3 rn <<< "$(stats "$TMP/bench.relay")"
read -r dm dq1 dq3 dn <<< "$(stats "$TMP/bench.direct")"
[ "$rn" -ge 200 ] && [ "$dn" -ge 200 ] || fail "too few samples ($rn, $dn)"
echo "query-status via the relay: median $rm us, IQR $rq1-$rq3 us ($rn calls)"
echo "query-status direct:        median $dm us, IQR $dq1-$dq3 us ($dn calls)"
echo "relay adds $(awk -v a="$rm" -v b="$dm" 'BEGIN {printf "%.1f", a - b}') us at the median"
# A large reply (query-qmp-schema, ~150 KB) through the relay and directly.
for round in 1 2 3; do
	printf '{"execute":"qmp_capabilities"}\n@bench 20 %s {"execute":"query-qmp-schema"}\n' "$TMP/schema.relay" | session "$TMP/qm.sock" > /dev/null
	printf '{"execute":"qmp_capabilities"}\n@bench 20 %s {"execute":"query-qmp-schema"}\n' "$TMP/schema.direct" | session "$ST/qm.qmp.sock" > /dev/null
done
read -r sm sq1 sq3 sn <<< "$(stats "$TMP/schema.relay")"
read -r tm tq1 tq3 tn <<< "$(stats "$TMP/schema.direct")"
echo "query-qmp-schema via the relay: median $sm us, IQR $sq1-$sq3 us ($sn calls); direct: median $tm us, IQR $tq1-$tq3 us ($tn calls)"
# Event latency: the same events (STOP/RESUME from 100 stop/cont pairs, the
# VM running after the checks above) read on a relayed and a direct
# connection; per connection, arrival (wall clock) minus QEMU's timestamp of
# the event.  QEMU writes an event to its monitors one after the other, so
# the two also differ by that order, not only by the relay.
python3 - "$TMP/qm.sock" "$ST/qm.qmp.sock" <<'EOF' > "$TMP/events.lat" || fail "event latency measurement failed"
import json, select, socket, sys, time
def conn(path):
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(10)
    f = s.makefile("rwb", buffering=0)
    f.readline()
    s.sendall(b'{"execute":"qmp_capabilities"}\r\n'); f.readline()
    return s, f
rs, rf = conn(sys.argv[1])
ds, df = conn(sys.argv[2])
lat = {"r": [], "d": []}
for i in range(200):
    rs.sendall(b'{"execute":"%s"}\r\n' % (b"cont" if i % 2 else b"stop"))
    got = set()
    replied = False
    while len(got) < 2 or not replied:
        r, _, _ = select.select([rs, ds], [], [], 10)
        if not r:
            sys.exit(1)
        for s, f, k in ((rs, rf, "r"), (ds, df, "d")):
            if s in r:
                now = time.time()
                line = f.readline()
                if b'"event"' in line and k not in got:
                    ts = json.loads(line)["timestamp"]
                    lat[k].append((now - ts["seconds"] - ts["microseconds"] / 1e6) * 1e6)
                    got.add(k)
                elif k == "r" and b'"return"' in line:
                    replied = True
for k in ("r", "d"):
    v = sorted(lat[k]); n = len(v)
    print("%.1f %.1f %.1f %d" % (v[n // 2], v[n // 4], v[3 * n // 4], n))
EOF
{ read -r em eq1 eq3 en; read -r fm fq1 fq3 fn; } < "$TMP/events.lat"
echo "event latency (arrival - QEMU timestamp): relayed median $em us, IQR $eq1-$eq3 ($en events); direct median $fm us, IQR $fq1-$fq3 ($fn events)"
echo "all relay QMP checks passed"
