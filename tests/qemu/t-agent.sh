#!/bin/sh
# The per-VM agent against a real QEMU: detached (no zombie under QEMU, not
# QEMU's child, own session), holding none of the launcher's inherited fds,
# applying the policy's throttle over QMP, recording events, idle in poll()
# (no CPU), small (VmRSS printed), and gone within about a second of QEMU
# (SIGKILL or quit) together with the state entry.  Killing the agent leaves
# QEMU running and --status says the agent is gone.
. "$(dirname "$0")/../functions.sh"
requires "$QEMU" truncate
H=$KL_TOP/tests/helpers
for h in state-launch state-cli state-json state-qmp; do
	[ -x "$H/$h" ] || fail "$H/$h is missing: run make test-programs"
done
kl_tmpdir
ST=$TMP/state
truncate -s 64M "$TMP/a.img"

agent_state() { "$H/state-json" "$ST/$1.json" agent.state 2>/dev/null; }
watching() { [ "$(agent_state "$1")" = watching ]; }
field() { sed "s/^.*) //" "/proc/$1/stat" | cut -d" " -f$(( $2 - 2 )); } # field N of /proc/PID/stat (3 = state)

launch() { # NAME: starts QEMU through state-launch with one throttled disk
	name=$1
	# fd 7 stands for what libvirt passes (monitor, log pipe): QEMU keeps it, the agent must not.
	exec 7> "$TMP/inherited-$name"
	"$H/state-launch" "$ST" "$name" "$QEMU" \
		--disk "id=vd0,node=f0,path=$TMP/a.img,aio=threads,cache=none,iops=123" -- \
		-machine pc -accel tcg -nodefaults -display none -S -name "guest=$name" \
		-qmp "unix:$TMP/test-$name.sock,server=on,wait=off" \
		-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/a.img\",\"node-name\":\"s0\",\"cache\":{\"direct\":true,\"no-flush\":false},\"locking\":\"off\"}" \
		-blockdev '{"node-name":"f0","cache":{"direct":true,"no-flush":false},"driver":"raw","file":"s0"}' \
		-device virtio-blk-pci,drive=f0,id=vd0 > "$TMP/qemu-$name.log" 2>&1 &
	QPID=$!
	exec 7>&-
	cleanup_fn "kill -9 $QPID 2>/dev/null"
	wait_for 20 watching "$name" || { cat "$TMP/qemu-$name.log" "$ST/$name.agent.log"; fail "$name: agent never watching"; }
	APID=$("$H/state-json" "$ST/$name.json" agent.pid)
	cleanup_fn "kill -9 $APID 2>/dev/null"
}

launch a1
echo "QEMU $QPID, agent $APID"
# Detached: reparented (not QEMU's child), its own session, no zombie under QEMU.
[ "$(field "$APID" 4)" != "$QPID" ] || fail "the agent is QEMU's child"
[ "$(field "$APID" 6)" != "$(field "$QPID" 6)" ] || fail "the agent shares QEMU's session"
for p in /proc/[0-9]*; do
	[ -r "$p/stat" ] || continue
	if [ "$(field "${p#/proc/}" 4 2>/dev/null)" = "$QPID" ]; then
		fail "QEMU has a child process ${p#/proc/} ($(field "${p#/proc/}" 3))"
	fi
done
# fds: stdio on /dev/null, the pidfd, its log and its monitor socket; not fd 7.
ls -l "/proc/$APID/fd" | sed 's/^/    /'
readlink "/proc/$QPID/fd/7" | grep -q "inherited-a1" || fail "QEMU lost the inherited fd 7"
for fd in /proc/$APID/fd/*; do
	l=$(readlink "$fd")
	case $l in
	/dev/null|anon_inode:\[pidfd\]|pidfd:*|socket:*|"$ST/a1.agent.log") ;;
	*) fail "the agent holds fd ${fd##*/} -> $l" ;;
	esac
done
[ "$(readlink "/proc/$APID/fd/0")" = /dev/null ] || fail "stdin not /dev/null"
[ "$(readlink "/proc/$APID/fd/2")" = /dev/null ] || fail "stderr not /dev/null"

# The live setting from the decision, applied and recorded.
"$H/state-qmp" "$TMP/test-a1.sock" query-block | "$H/state-json" - 0.inserted.iops | grep -qx 123 ||
	fail "throttle iops=123 not applied"
[ "$("$H/state-json" "$ST/a1.json" agent.applied.0.ok)" = true ] || fail "applied not recorded"
grep -q "agent: disk vd0: throttle iops=123" "$ST/a1.agent.log" || fail "agent log"

# Events land in the state file.
"$H/state-qmp" "$TMP/test-a1.sock" cont > /dev/null || fail "cont"
"$H/state-qmp" "$TMP/test-a1.sock" stop > /dev/null || fail "stop"
wait_for 3 grep -q '"event":"STOP"' "$ST/a1.json" || fail "STOP event not recorded"
grep -q '"event":"RESUME"' "$ST/a1.json" || fail "RESUME event not recorded"

# Idle: no CPU time spent over a second (no busy loop).
t0=$(( $(field "$APID" 14) + $(field "$APID" 15) ))
sleep 1
t1=$(( $(field "$APID" 14) + $(field "$APID" 15) ))
[ $((t1 - t0)) -le 1 ] || fail "the agent used $((t1 - t0)) ticks while idle"
rss=$("$H/state-cli" rss "$APID")
echo "agent VmRSS: $rss KiB ($("$H/state-cli" memory "$APID"))"
[ "$rss" -gt 0 ] || fail "no VmRSS"
[ "$rss" -le 2048 ] || echo "note: agent VmRSS $rss KiB is above the 2 MiB target"

# SIGKILL of QEMU: agent and entry gone within about a second.
kill -9 "$QPID"
start=$(date +%s%N)
wait_for 3 gone "$APID" || fail "the agent outlived QEMU"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "agent gone $ms ms after QEMU's SIGKILL"
[ "$ms" -lt 1500 ] || fail "agent took $ms ms"
[ ! -e "$ST/a1.json" ] || fail "state entry left behind"
[ ! -e "$ST/a1.qmp.sock" ] && [ ! -e "$ST/a1.agent.sock" ] || fail "sockets left behind"
"$H/state-cli" status "$ST" | grep -q "No VMs launched through kvm-launch are running." || fail "status lists a dead VM"

# Killing the agent leaves QEMU running; --status says the agent is gone.
launch a2
kill -9 "$APID"
wait_for 3 gone "$APID" || fail "agent did not die"
kill -0 "$QPID" || fail "QEMU died with its agent"
"$H/state-cli" status "$ST" --json > "$TMP/s.json"
[ "$("$H/state-json" "$TMP/s.json" vms.0.state)" = running ] || fail "VM not running after agent kill"
[ "$("$H/state-json" "$TMP/s.json" vms.0.agent.alive)" = false ] || fail "agent still shown alive"
"$H/state-cli" status "$ST" | grep -q "pid $QPID, running.*agent gone" || fail "table: agent gone"
# Then QEMU dies with nobody to clean up: shown stopped, never running ...
kill -9 "$QPID"
wait_for 3 gone "$QPID"
"$H/state-cli" status "$ST" --json > "$TMP/s.json"
[ "$("$H/state-json" "$TMP/s.json" vms.0.state)" = stopped ] || fail "dead VM without agent not shown stopped"
[ "$("$H/state-json" "$TMP/s.json" vms.0.running)" = false ] || fail "dead VM shown running"
# ... and the next launch into the directory removes the stale entry.
launch a3
[ ! -e "$ST/a2.json" ] || fail "stale entry a2 not cleaned by the next launch"

# A QEMU that quits on its own: the agent logs SHUTDOWN and leaves.
"$H/state-qmp" "$TMP/test-a3.sock" quit > /dev/null 2>&1
wait_for 3 gone "$APID" || fail "agent outlived a quitting QEMU"
grep -q "event SHUTDOWN" "$ST/a3.agent.log" || fail "SHUTDOWN not logged"
[ ! -e "$ST/a3.json" ] || fail "entry left after quit"

# An unnamed VM: pid-PID, and its log goes too.
exec 7> /dev/null
"$H/state-launch" "$ST" "" "$QEMU" -- -machine pc -accel tcg -nodefaults -display none -S > "$TMP/qemu-u.log" 2>&1 &
QPID=$!
exec 7>&-
cleanup_fn "kill -9 $QPID 2>/dev/null"
wait_for 20 test -e "$ST/pid-$QPID.json" || fail "no pid-$QPID.json"
wait_for 10 watching "pid-$QPID" || fail "unnamed: agent never watching"
APID=$("$H/state-json" "$ST/pid-$QPID.json" agent.pid)
kill -9 "$QPID"
wait_for 3 gone "$APID" || fail "unnamed: agent outlived QEMU"
ls "$ST"
[ -z "$(ls "$ST" | grep "pid-$QPID")" ] || fail "files of pid-$QPID left"
echo PASS
