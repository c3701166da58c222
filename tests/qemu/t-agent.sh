#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The per-VM agent against a real QEMU launched by the real launcher (kvm-launch --state-dir DIR --qemu QEMU, a
# policy whose rule throttles the disk): detached (no zombie under QEMU, not QEMU's child, own session), holding
# none of the launcher's inherited fds, applying the policy's throttle over QMP, recording events, idle in poll()
# (no CPU), small (VmRSS at most 2 MiB, NEWS: 1.6 MiB), and gone soon after QEMU (SIGKILL or quit) together with
# the state entry and the sockets it names.  Killing the agent leaves QEMU running and --status says the agent is
# gone.  The state entry, the agent's log and its sockets are found through --status --json and the entry itself
# (state_file, agent_log, agent_socket, query_socket), not assumed paths.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../guest/lib.sh"
requires "$QEMU" "$KL" truncate
H=$KL_TOP/tests/helpers
for h in state-cli state-json state-qmp; do
	[ -x "$H/$h" ] || fail "$H/$h is missing: run make test-programs"
done
kl_tmpdir
ST=$TMP/state
truncate -s 64M "$TMP/a.img"
printf '[rule t]\npath = %s\ncache = none\naio = threads\niops = 123\n' "$TMP/a.img" > "$TMP/policy.conf"
chmod 0644 "$TMP/policy.conf"
K() { "$KL" --config "$TMP/policy.conf" --state-dir "$ST" "$@"; }
# NAME's entry in --status --json (vms.[name=NAME]); PATH under it.
sj() { K --status --json | "$JSON_GET" - "vms.[name=$1].$2"; }
watching() { [ "$(sj "$1" agent.state 2>/dev/null)" = watching ]; }
field() { sed "s/^.*) //" "/proc/$1/stat" | cut -d" " -f$(( $2 - 2 )); } # field N of /proc/PID/stat (3 = state)

# Everything started, killed at exit (registered before anything starts).
ALL=
cleanup_fn 'for p in $ALL; do kl_kill_if "$p" "$QEMU"; kl_kill_if "$p" "$KL"; done'

launch() { # NAME: starts QEMU through kvm-launch; sets QPID APID SF (state file) ALOG QSOCK ASOCK
	name=$1
	# fd 7 stands for what libvirt passes (monitor, log pipe): QEMU keeps it, the agent must not.
	exec 7> "$TMP/inherited-$name"
	"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- \
		-machine pc -accel tcg -nodefaults -display none -S -name "guest=$name" \
		-qmp "unix:$TMP/test-$name.sock,server=on,wait=off" \
		-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/a.img\",\"node-name\":\"s0\",\"locking\":\"off\"}" \
		-blockdev '{"node-name":"f0","driver":"raw","file":"s0"}' \
		-device virtio-blk-pci,drive=f0,id=vd0 > "$TMP/qemu-$name.log" 2>&1 &
	QPID=$!
	ALL="$ALL $QPID"
	exec 7>&-
	wait_for 30 watching "$name" || { cat "$TMP/qemu-$name.log"; K --status --json; fail "$name: agent never watching"; }
	APID=$(sj "$name" agent.pid)
	ALL="$ALL $APID"
	SF=$(sj "$name" state_file)
	ALOG=$("$H/state-json" "$SF" agent_log)
	QSOCK=$("$H/state-json" "$SF" query_socket)
	ASOCK=$("$H/state-json" "$SF" agent_socket)
	[ "$(readlink -f "/proc/$QPID/exe")" = "$(readlink -f "$QEMU")" ] || fail "$name: pid $QPID is not QEMU"
}

launch a1
echo "QEMU $QPID, agent $APID"
# Detached: reparented (not QEMU's child), its own session, no zombie under QEMU.
[ "$(field "$APID" 4)" != "$QPID" ] || fail "the agent is QEMU's child"
[ "$(field "$APID" 6)" != "$(field "$QPID" 6)" ] || fail "the agent shares QEMU's session"
# Niceness 10 above QEMU's (field 19): nothing it does at start is urgent.
qn=$(field "$QPID" 19)
an=$(field "$APID" 19)
[ "$an" = "$(( qn + 10 > 19 ? 19 : qn + 10 ))" ] || fail "agent niceness $an, QEMU's $qn"
for p in /proc/[0-9]*; do
	[ -r "$p/stat" ] || continue
	if [ "$(field "${p#/proc/}" 4 2>/dev/null)" = "$QPID" ]; then
		fail "QEMU has a child process ${p#/proc/} ($(field "${p#/proc/}" 3))"
	fi
done
# fds: stdio on /dev/null, the pidfd, its log, its state directory, its
# monitor connection and the view socket's listener; not fd 7, and never
# QEMU's own monitor listeners (a1.agent.sock, a1.qmp.sock).
ls -l "/proc/$APID/fd" | sed 's/^/    /'
readlink "/proc/$QPID/fd/7" | grep -q "inherited-a1" || fail "QEMU lost the inherited fd 7"
for fd in /proc/$APID/fd/*; do
	l=$(readlink "$fd")
	case $l in
	/dev/null|anon_inode:\[pidfd\]|pidfd:*|"$ALOG"|"$ST") ;;
	socket:*)
		ino=${l#socket:[}
		ino=${ino%]}
		bound=$(awk -v i="$ino" '$7 == i { print $8 }' /proc/net/unix)
		case $bound in
		*.agent.sock|*.qmp.sock) fail "the agent holds QEMU's monitor listener $bound (fd ${fd##*/})" ;;
		esac ;;
	*) fail "the agent holds fd ${fd##*/} -> $l" ;;
	esac
done
[ "$(readlink "/proc/$APID/fd/0")" = /dev/null ] || fail "stdin not /dev/null"
[ "$(readlink "/proc/$APID/fd/2")" = /dev/null ] || fail "stderr not /dev/null"

# The live setting from the decision, applied and recorded.
"$H/state-qmp" "$TMP/test-a1.sock" query-block | "$H/state-json" - 0.inserted.iops | grep -qx 123 ||
	fail "throttle iops=123 not applied"
[ "$(sj a1 agent.applied.0.ok)" = true ] || fail "applied not recorded"
grep -q "agent: disk vd0: throttle iops=123" "$ALOG" || fail "agent log"

# Events land in the state file.
"$H/state-qmp" "$TMP/test-a1.sock" cont > /dev/null || fail "cont"
"$H/state-qmp" "$TMP/test-a1.sock" stop > /dev/null || fail "stop"
wait_for 10 grep -q '"event":"STOP"' "$SF" || fail "STOP event not recorded"
grep -q '"event":"RESUME"' "$SF" || fail "RESUME event not recorded"

# Idle: no CPU time spent over a second (no busy loop).
t0=$(( $(field "$APID" 14) + $(field "$APID" 15) ))
sleep 1
t1=$(( $(field "$APID" 14) + $(field "$APID" 15) ))
[ $((t1 - t0)) -le 1 ] || fail "the agent used $((t1 - t0)) ticks while idle"
# Read from /proc directly (not through kvm-launch's own procinfo code).
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$APID/status")
echo "agent VmRSS: $rss KiB (/proc/$APID/status; kvm-launch's view: $("$H/state-cli" memory "$APID"))"
[ "$rss" -gt 0 ] || fail "no VmRSS"
# NEWS promises 1.6 MiB idle; the bound leaves room for libc versions, not for a regression (a sanitizer build
# maps its shadow memory: far larger, bounded separately).
limit=2048
ldd "$KL" 2>/dev/null | grep -q 'libasan\|libubsan' && limit=131072
[ "$rss" -le "$limit" ] || fail "the idle agent's VmRSS is $rss KiB, above $limit KiB"

# SIGKILL of QEMU: agent and entry gone within about a second.
kill -9 "$QPID"
start=$(date +%s%N)
wait_for 10 gone "$APID" || fail "the agent outlived QEMU by 10 s"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "agent gone $ms ms after QEMU's SIGKILL"
wait_for 10 test ! -e "$SF" || fail "state entry $SF left behind"
[ ! -e "$QSOCK" ] && [ ! -e "$ASOCK" ] || fail "sockets left behind: $QSOCK $ASOCK"
K --status | grep -q "No VMs launched through kvm-launch are running." || fail "status lists a dead VM"

# Killing the agent leaves QEMU running; --status says the agent is gone.
launch a2
kill -9 "$APID"
wait_for 10 gone "$APID" || fail "agent did not die"
kill -0 "$QPID" || fail "QEMU died with its agent"
K --status --json > "$TMP/s.json"
[ "$("$H/state-json" "$TMP/s.json" vms.0.state)" = running ] || fail "VM not running after agent kill"
[ "$("$H/state-json" "$TMP/s.json" vms.0.agent.alive)" = false ] || fail "agent still shown alive"
K --status | grep -q "pid $QPID, running.*agent gone" || fail "table: agent gone"
# Then QEMU dies with nobody to clean up: shown stopped, never running ...
kill -9 "$QPID"
wait_for 10 gone "$QPID"
K --status --json > "$TMP/s.json"
[ "$("$H/state-json" "$TMP/s.json" vms.0.state)" = stopped ] || fail "dead VM without agent not shown stopped"
[ "$("$H/state-json" "$TMP/s.json" vms.0.running)" = false ] || fail "dead VM shown running"
# ... and the next launch's agent, once its QEMU runs, removes the stale
# entry (the launch itself leaves that off every VM's start path).
SF2=$SF
launch a3
wait_for 10 test ! -e "$SF2" || fail "stale entry a2 ($SF2) not cleaned after the next launch"

# A QEMU that quits on its own: the agent logs SHUTDOWN and leaves.
"$H/state-qmp" "$TMP/test-a3.sock" quit > /dev/null 2>&1
wait_for 10 gone "$APID" || fail "agent outlived a quitting QEMU"
grep -q "event SHUTDOWN" "$ALOG" || fail "SHUTDOWN not logged"
wait_for 10 test ! -e "$SF" || fail "entry left after quit"

# An unnamed VM: named pid-PID, and its log goes too.
"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- -machine pc -accel tcg -nodefaults \
	-display none -S > "$TMP/qemu-u.log" 2>&1 &
QPID=$!
ALL="$ALL $QPID"
wait_for 30 watching "pid-$QPID" || { cat "$TMP/qemu-u.log"; fail "unnamed: no entry pid-$QPID watching"; }
APID=$(sj "pid-$QPID" agent.pid)
ALL="$ALL $APID"
SF=$(sj "pid-$QPID" state_file)
ALOG=$("$H/state-json" "$SF" agent_log)
kill -9 "$QPID"
wait_for 10 gone "$APID" || fail "unnamed: agent outlived QEMU"
wait_for 10 test ! -e "$SF" || fail "unnamed: $SF left"
[ ! -e "$ALOG" ] || fail "unnamed: its agent log $ALOG is left"
echo PASS
