#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Faults around a running VM launched through kvm-launch (real QEMU, TCG, -S,
# a raw disk): QEMU killed with SIGKILL (its agent is gone within about a
# second and the entry is cleaned), QEMU stopped with SIGTERM (SHUTDOWN
# recorded, cleaned), QEMU frozen with SIGSTOP (--status answers within its
# bound and says unresponsive), the agent killed (QEMU unaffected and still
# answering, --status says the agent is gone; when that QEMU then quits, its
# entry shows stopped, never running, and the next launch removes it).
. "$(dirname "$0")/../functions.sh"
requires "$QEMU" "$KL" truncate timeout
H=$KL_TOP/tests/helpers
for h in state-json state-qmp; do
	[ -x "$H/$h" ] || fail "$H/$h is missing: run make test-programs"
done
kl_tmpdir
ST=$TMP/state
truncate -s 64M "$TMP/disk.img"
# Without the monitor relay: with it, the relay starts a killed agent again
# (tests/qemu/t-relay-kill.sh), and here the agent must stay gone.
echo "monitor-relay = off" > "$TMP/policy.conf"
chmod 0644 "$TMP/policy.conf"
K() { "$KL" --config "$TMP/policy.conf" --state-dir "$ST" "$@"; }

# Through --status (the entry, its log and its sockets are where the entry says, not at assumed paths).
sj() { K --status --json | "$KL_TOP/tests/helpers/json-get" - "vms.[name=$1].$2" 2>/dev/null; }
agent_state() { sj "$1" agent.state; }
watching() { [ "$(agent_state "$1")" = watching ]; }

# Every QEMU and agent started here, killed at exit (registered before the first launch).
ALL=
cleanup_fn 'for p in $ALL; do kill -9 $p 2>/dev/null; done'
# launch NAME: QEMU through kvm-launch in the background; sets QPID, APID.
launch() {
	local name=$1
	"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- -machine pc -accel tcg -nodefaults \
		-display none -S -name "guest=$name" -qmp "unix:$TMP/$name.sock,server=on,wait=off" \
		-drive "file=$TMP/disk.img,format=raw,if=virtio,file.locking=off" > "$TMP/$name.log" 2>&1 &
	QPID=$!
	ALL="$ALL $QPID"
	wait_for 60 watching "$name" || { cat "$TMP/$name.log"; K --status; fail "$name: agent never watching"; }
	APID=$(sj "$name" agent.pid)
	ALL="$ALL $APID"
	[ "$(sj "$name" pid)" = "$QPID" ] || fail "$name: the entry's pid is not the launcher's"
	SF=$(sj "$name" state_file)
	eval "SF_$name=\$SF"
	eval "ALOG_$name=\$(\"\$H/state-json\" \"\$SF\" agent_log)"
	eval "SOCKS_$name=\"\$(\"\$H/state-json\" \"\$SF\" agent_socket) \$(\"\$H/state-json\" \"\$SF\" query_socket)\""
	[ "$(readlink "/proc/$QPID/exe")" = "$(readlink -f "$QEMU")" ] || fail "$name: pid $QPID is not QEMU"
	! entry_gone "$name" || fail "$name: no state file or sockets where its entry says ($SF)"
}
entry_gone() { # NAME: its state file and sockets (as its entry named them) are gone
	local f
	eval "f=\"\$SF_$1 \$SOCKS_$1\""
	for f in $f; do [ ! -e "$f" ] || return 1; done
}

# ---- SIGKILL of QEMU ----
launch k1
kill -9 "$QPID"
t0=$(date +%s%N)
wait_for 10 gone "$APID" || fail "k1: the agent outlived QEMU's SIGKILL by 10 s"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "SIGKILL: agent gone ${ms} ms after QEMU"
wait_for 10 entry_gone k1 || fail "k1: entry left: $(ls "$ST")"
[ "$(K --status)" = "No VMs launched through kvm-launch are running." ] || fail "k1: --status after SIGKILL"

# ---- SIGTERM of QEMU: a clean shutdown, recorded ----
launch k2
kill -TERM "$QPID"
wait_for 10 gone "$APID" || fail "k2: the agent outlived QEMU's SIGTERM"
wait_for 10 entry_gone k2 || fail "k2: entry left"
grep -q 'event SHUTDOWN.*host-signal' "$ALOG_k2" || { cat "$ALOG_k2"; fail "k2: SHUTDOWN not recorded"; }
echo "SIGTERM: SHUTDOWN recorded, entry cleaned"

# ---- SIGSTOP of QEMU: --status stays bounded ----
launch k3
kill -STOP "$QPID"
t0=$(date +%s%N)
timeout 20 "$KL" --config "$TMP/policy.conf" --state-dir "$ST" --status > "$TMP/status" 2>&1 || fail "k3: --status failed on a frozen QEMU"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
cat "$TMP/status"
grep -q "^VM k3: pid $QPID, unresponsive" "$TMP/status" || fail "k3: a frozen QEMU not shown unresponsive"
[ "$ms" -le 5000 ] || fail "k3: --status took ${ms} ms on a frozen QEMU"
echo "SIGSTOP: --status answered in ${ms} ms"
kill -CONT "$QPID"
wait_for 5 sh -c "'$KL' --config '$TMP/policy.conf' --state-dir '$ST' --status | grep -q '^VM k3: pid $QPID, running'" ||
	fail "k3: not running again after SIGCONT"
kill -9 "$QPID"
wait_for 10 gone "$APID" || fail "k3: agent outlived QEMU"

# ---- SIGKILL of the agent ----
launch k4
kill -9 "$APID"
wait_for 10 gone "$APID" || fail "k4: the agent did not die"
kill -0 "$QPID" || fail "k4: QEMU died with its agent"
"$H/state-qmp" "$TMP/k4.sock" query-status | grep -q '"status": *"prelaunch"\|"status":"prelaunch"' ||
	fail "k4: QEMU does not answer after its agent was killed"
K --status > "$TMP/status" || fail "k4: --status"
cat "$TMP/status"
grep -q "^VM k4: pid $QPID, running.*agent gone" "$TMP/status" || fail "k4: --status does not say the agent is gone"
K --status --json > "$TMP/s.json"
[ "$("$H/state-json" "$TMP/s.json" vms.0.agent.alive)" = false ] || fail "k4: --json: agent shown alive"
[ "$("$H/state-json" "$TMP/s.json" vms.0.state)" = running ] || fail "k4: --json: VM not running"
# QEMU quits with no agent to clean up: stopped, never running.
"$H/state-qmp" "$TMP/k4.sock" quit > /dev/null 2>&1
wait_for 5 gone "$QPID" || fail "k4: QEMU did not quit"
K --status --json > "$TMP/s.json"
[ "$("$H/state-json" "$TMP/s.json" vms.0.running)" = false ] || fail "k4: a dead VM shown running"
K --status | grep -q "^VM k4: pid $QPID, running" && fail "k4: table shows a dead VM running"
# The next launch removes the stale entry.
launch k5
wait_for 10 entry_gone k4 || fail "k4: stale entry not removed by the next launch"
kill -9 "$QPID"
wait_for 10 gone "$APID" || fail "k5: agent outlived QEMU"
wait_for 10 entry_gone k5 || fail "k5: entry left"
echo "agent killed: QEMU unaffected, --status says so, stale entry cleaned later"
