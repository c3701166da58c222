#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The relay process under valgrind memcheck, started by hand the way
# kl_relay_setup starts it (the manager's listener at fd 3, a state entry
# naming QEMU): a session with blockdev-add (decided in the child), a format
# node over it, device_add, blockdev-reopen and getfd with an fd, then a
# second session that quits QEMU.  No memcheck error and no definite leak in
# the relay (the decision children _exit and are not followed); the relay
# exits when QEMU does; the hot-plugged disk is in the entry.
. "$(dirname "$0")/../functions.sh"
SESSION=$KL_TOP/tests/helpers/qmp-session.py
requires "$KL" "$QEMU" python3 valgrind fallocate
kl_tmpdir
fallocate -l 16M "$TMP/pre.raw"
truncate -s 1M "$TMP/fd.raw"
"$QEMU" -name vgq -machine pc -accel tcg -nodefaults -display none -S \
	-chardev "socket,id=m,path=$TMP/q.sock,server=on,wait=off" -mon chardev=m,mode=control > "$TMP/qemu.out" 2>&1 &
QPID=$!
cleanup_fn "kill -9 $QPID 2>/dev/null"
wait_for 20 test -S "$TMP/q.sock" || fail "QEMU did not start: $(cat "$TMP/qemu.out")"
ticks=$(sed 's/^.*) //' "/proc/$QPID/stat" | cut -d' ' -f20)
echo "{\"name\":\"vgq\",\"pid\":$QPID,\"start_ticks\":$ticks,\"disks\":[]}" > "$TMP/vgq.json"
python3 - "$KL" "$TMP" "$QEMU" <<'EOF' &
import os, socket, sys
kl, tmp, qemu = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX); s.bind(tmp + "/mgr.sock"); s.listen(1)
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.execvp("valgrind", ["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=99",
    "--child-silent-after-fork=yes", "--log-file=" + tmp + "/vg.log",
    kl, "--relay", tmp + "/q.sock", tmp + "/vgq.json", tmp + "/relay.log", "", qemu, tmp + "/cache"])
EOF
VPID=$!
cleanup_fn "kill -9 $VPID 2>/dev/null"
wait_for 30 test -S "$TMP/mgr.sock" || fail "no manager socket"
wait_for 30 grep -q 'relay: pid' "$TMP/relay.log" || fail "the relay did not start: $(cat "$TMP/vg.log" "$TMP/relay.log" 2>&1)"
timeout 120 python3 "$SESSION" "$TMP/mgr.sock" > "$TMP/s1" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"blockdev-add","arguments":{"driver":"file","filename":"$TMP/pre.raw","node-name":"s1"},"id":"a1"}
{"execute":"blockdev-add","arguments":{"driver":"raw","file":"s1","node-name":"f1"},"id":"a2"}
{"execute":"device_add","arguments":{"driver":"virtio-blk-pci","drive":"f1","id":"vd1"},"id":"d1"}
{"execute":"blockdev-reopen","arguments":{"options":[{"driver":"raw","file":"s1","node-name":"f1","cache":{"direct":false}}]},"id":"r1"}
@fd $TMP/fd.raw {"execute":"getfd","arguments":{"fdname":"x"},"id":"g1"}
{"execute":"closefd","arguments":{"fdname":"x"},"id":"g2"}
EOF
for id in a1 a2 d1 r1 g1 g2; do grep -q "{\"return\": {}, \"id\": \"$id\"}" "$TMP/s1" || fail "$id failed: $(cat "$TMP/s1")"; done
printf '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n' | timeout 60 python3 "$SESSION" "$TMP/mgr.sock" > /dev/null
wait_for 60 gone "$VPID" || fail "the relay did not exit after QEMU quit"
wait "$VPID"
rc=$?
cat "$TMP/relay.log"
[ "$rc" = 0 ] || fail "the relay under valgrind exited $rc: $(cat "$TMP/vg.log")"
# "--PID--" lines are valgrind's notes (3.19 knows neither pidfd_open nor
# clone3, so the relay runs without its standby here); errors are "==PID==".
grep -v '^--[0-9]*-- ' "$TMP/vg.log" > "$TMP/vg.err" || true
[ ! -s "$TMP/vg.err" ] || fail "valgrind: $(cat "$TMP/vg.log")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["disks"]; sys.exit(0 if [(x["node"], x["origin"], x["id"]) for x in d] == [("f1", "hot-plug", "vd1")] else 1)' "$TMP/vgq.json" ||
	fail "state entry: $(cat "$TMP/vgq.json")"
echo "relay under valgrind: clean, exited with QEMU, recorded vd1"
