#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# No single point of failure in the monitor relay: under one open QMP
# connection, SIGKILL the active relay while a blockdev-add waits at each step
# of its way (peeked, rewritten, sent, consumed), and while a getfd with its
# fd waits (peeked, sent), then the standby, then the agent.  The connection never closes, the message in flight gets exactly one
# reply (QEMU's own), the standby takes over and a new standby and agent
# appear, a later blockdev-add still gets the policy, and QEMU's
# oom_score_adj is above every kvm-launch process of the VM.  Last, the
# active is killed while its decision child hangs: the survivor kills it.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
requires fallocate
KILLER=$KL_TOP/tests/helpers/relay-kill.py
fallocate -l 16M "$TMP/pre.raw"
export KL_TEST_RELAY_STALL=1500
start rk -qmp "unix:$TMP/m.sock,server=on,wait=off"
unset KL_TEST_RELAY_STALL
wait_for 20 test -S "$TMP/m.sock" || fail "no manager socket"
wait_for 20 grep -q '"agent"' "$ST/rk.json" || fail "no agent recorded: $(cat "$ST/rk.json")"
# Relays started later (new standbys) are gone once QEMU is: register them too.
cleanup_fn 'for p in $(relay_pids rk); do kill -9 $p 2>/dev/null; done'

timeout 300 python3 "$KILLER" "$TMP/m.sock" "$ST/rk.json" "$ST/rk.relay.log" "$TMP/pre.raw" > "$TMP/kill.out" 2>&1
rc=$?
cat "$TMP/kill.out"
[ "$rc" = 0 ] || fail "relay-kill: $(tail -n 1 "$TMP/kill.out"); relay log: $(cat "$ST/rk.relay.log")"
grep -c "takes over from" "$ST/rk.relay.log" | grep -qx 6 || fail "expected 6 takeovers: $(cat "$ST/rk.relay.log")"
kill -0 "$QPID" || fail "QEMU is gone"
# No fd passed by getfd stays with a relay (the dead ones' copies were swept).
for p in $(relay_pids rk); do
	n=$(ls "/proc/$p/fd" | wc -l)
	[ -z "$(find "/proc/$p/fd" -lname "$TMP/pre.raw")" ] || fail "relay $p still holds $TMP/pre.raw"
	[ "$n" -le 16 ] || fail "relay $p has $n fds: $(ls -l "/proc/$p/fd")"
	echo "relay $p: $n fds, none on the passed file"
done

# --status still sees the VM and a live agent.
"$KL" --config "$TMP/p.conf" --status --json > "$TMP/st.json" || fail "--status failed"
python3 -c 'import json,sys
vms = [v for v in json.load(open(sys.argv[1]))["vms"] if v.get("name") == "rk"]
sys.exit(0 if vms and vms[0]["agent"]["alive"] else 1)' "$TMP/st.json" || fail "--status: $(cat "$TMP/st.json")"

# OOM: QEMU ranks above each kvm-launch process of the VM.
qadj=$(cat "/proc/$QPID/oom_score_adj")
agent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["agent"]["pid"])' "$ST/rk.json")
for p in $(relay_pids rk) "$agent"; do
	adj=$(cat "/proc/$p/oom_score_adj")
	[ "$adj" -lt "$qadj" ] || fail "oom_score_adj: pid $p has $adj, QEMU $qadj"
	echo "oom_score_adj: pid $p $adj < QEMU $qadj"
done

# QEMU quits: every relay process goes with it.
quit_via "$TMP/m.sock"
wait_for 20 no_relay rk || fail "relays left after QEMU quit: $(relay_pids rk)"

# The active is killed while its decision child hangs (KL_TEST_RELAY_HOOK):
# the survivor kills that orphan, and the blockdev-add still gets a reply.
KL_TEST_RELAY_HOOK=hang start rh -qmp "unix:$TMP/h.sock,server=on,wait=off"
wait_for 20 test -S "$TMP/h.sock" || fail "no manager socket (rh)"
cleanup_fn 'for p in $(relay_pids rh); do kill -9 $p 2>/dev/null; done'
wait_for 10 sh -c "[ \$(echo $(relay_pids rh) | wc -w) = 2 ]"
exec 7> >(python3 "$SESSION" "$TMP/h.sock" > "$TMP/h.out")
printf '{"execute":"qmp_capabilities"}\n{"execute":"blockdev-add","arguments":{"driver":"file","filename":"%s","node-name":"h1"},"id":"h1"}\n' "$TMP/pre.raw" >&7
rs=" $(relay_pids rh | tr '\n' ' ') "
child=
for i in $(seq 50); do
	for r in $rs; do for c in $(pgrep -P "$r"); do case "$rs" in *" $c "*) ;; *) child=$c; active=$r ;; esac; done; done
	[ -n "$child" ] && break
	sleep 0.05
done
[ -n "$child" ] || fail "no decision child seen"
kill -9 "$active"
exec 7>&-
wait_for 15 grep -q '"id": "h1"' "$TMP/h.out" || fail "no reply to the blockdev-add after the kill: $(cat "$TMP/h.out")"
wait_for 10 gone "$child" || fail "the hung decision child $child of the killed relay is still there"
grep -q "killing pid $child, left by pid $active" "$ST/rh.relay.log" || fail "no log line: $(cat "$ST/rh.relay.log")"
echo "killed the active relay $active while its decision child $child hung: the survivor killed the child, the blockdev-add got its reply"
quit_via "$TMP/h.sock"
wait_for 20 no_relay rh || fail "relays left after QEMU quit: $(relay_pids rh)"
echo "all relay kill checks passed"
