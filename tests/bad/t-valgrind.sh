#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# kvm-launch under valgrind memcheck (leaks definite and indirect are
# errors): dry runs, --explain and --json on libvirt's and hand-written
# command lines, fail-open, --check-policy on every test policy, --status;
# then a real launch (QEMU under TCG with -S), --status and --set against
# it, and the agent, run by hand as `kvm-launch --agent STATEFILE` (under
# valgrind the launcher's own re-exec of /proc/self/exe would start
# valgrind's tool binary instead, so the launcher's agent never starts
# there: we start it ourselves, with no environment variable involved),
# until QEMU quits and the agent removes the entry and exits 0.
# Skipped (77) without valgrind or QEMU, and for a sanitizer build (make check-asan).
. "$(dirname "$0")/../functions.sh"
requires valgrind "$KL" timeout "$QEMU"
if ldd "$KL" 2>/dev/null | grep -q 'libasan\|libubsan'; then
	echo "SKIP: $0: $KL is built with the sanitizers: valgrind cannot run it"
	exit 77
fi
kl_tmpdir
chmod 0755 "$TMP"
H=$KL_TOP/tests/helpers
ST=$TMP/state
# Without the monitor relay (tests/qemu/t-relay-valgrind.sh runs it under
# valgrind): here the agent is run by hand, and a relay would start its own.
printf 'cache-dir = %s/cache\nstate-dir = %s\nmonitor-relay = off\n' "$TMP" "$ST" > "$TMP/p.conf"
chmod 0644 "$TMP/p.conf"
truncate -s 64M "$TMP/a.img" "$TMP/b.img"
VGLOG=$TMP/vg
mkdir "$VGLOG"
runs=0

# vg EXPECTED-EXIT ARGS...: kvm-launch ARGS under memcheck; no error, no leak.
vg() {
	local want=$1 log rc
	shift
	runs=$((runs + 1))
	log=$VGLOG/run$runs
	timeout -k 5 300 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
		--log-file="$log" "$KL" "$@" > "$TMP/out" 2> "$TMP/err" < /dev/null
	rc=$?
	vg_clean "$log" "$*"
	[ "$rc" = "$want" ] || { cat "$TMP/err"; fail "exit $rc (expected $want) for: $(printf '%s ' "$@" | head -c 200)"; }
}
# No error in a valgrind log (valgrind's own "--PID--" notes, e.g. about the
# pidfd_open system call it does not know, are not errors).
vg_clean() {
	if grep -v '^--[0-9]*-- ' "$1" | grep -q .; then
		cat "$1"
		fail "valgrind reports errors for: $(printf '%s' "$2" | head -c 200)"
	fi
}

# ---- without QEMU running ----
K=(--config "$TMP/p.conf" --qemu "$KL_TOP/tests/helpers/fake-qemu-rec.sh")
HAND=(-name vg -machine q35 -drive "file=$TMP/a.img,format=raw,if=none,id=d0,cache=writethrough"
      -device virtio-blk-pci,drive=d0,id=vd0
      -blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/b.img\",\"node-name\":\"s1\",\"aio\":\"native\",\"cache\":{\"direct\":true}}"
      -blockdev '{"driver":"raw","node-name":"f1","file":"s1","cache":{"direct":true}}'
      -device '{"driver":"virtio-blk-pci","drive":"f1","id":"vd1","write-cache":"on"}'
      -drive 'file=nbd:localhost:10809,format=raw,if=virtio' -drive if=none,id=cd,media=cdrom -incoming defer)
vg 0 "${K[@]}" --dry-run -- "${HAND[@]}"
vg 0 "${K[@]}" --explain -- "${HAND[@]}"
vg 0 "${K[@]}" --dry-run --json -- "${HAND[@]}"
vg 0 "${K[@]}" --explain --json -- "${HAND[@]}"
for f in "$KL_TOP"/tests/data/argv/*.args "$KL_TOP"/tests/golden/file-none-native.args \
	"$KL_TOP"/tests/golden/qcow2-chain.args "$KL_TOP"/tests/golden/start-multi.args "$KL_TOP"/tests/golden/rbd.args; do
	[ -f "$f" ] || continue
	mapfile -t args < <(tail -n +2 "$f")
	vg 0 "${K[@]}" --dry-run --json -- "${args[@]}"
done
# Fail-open paths.
vg 0 "${K[@]}" --dry-run -- -name vg -drive ','
vg 0 "${K[@]}" --dry-run -- -name vg -blockdev '{"driver":"raw","node-name":"a","file":"a"}'
vg 0 "${K[@]}" --dry-run -- -name vg -blockdev '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['
# The probe only: libvirt's capability probe passes through.
vg 0 "${K[@]}" --dry-run -- -S -no-user-config -nodefaults -nographic -machine none,accel=kvm:tcg
for conf in "$KL_TOP"/tests/policies/*.conf; do
	cp "$conf" "$TMP/check.conf"
	chmod 0644 "$TMP/check.conf"
	case $conf in */bad-*) want=1 ;; *) want=0 ;; esac
	vg $want --check-policy "$TMP/check.conf"
done
vg 0 --config "$TMP/p.conf" --status
vg 0 --config "$TMP/p.conf" --status --json
vg 0 --help
echo "$runs runs without QEMU: clean"

# ---- a real launch ----
QMP=$TMP/test.sock
(timeout -k 5 600 valgrind -q --trace-children=no --error-exitcode=99 --log-file="$VGLOG/launch" \
	"$KL" --config "$TMP/p.conf" --qemu "$QEMU" -- -machine pc -accel tcg -nodefaults -display none -S -name vg1 \
	-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/a.img\",\"node-name\":\"s0\"}" \
	-blockdev '{"node-name":"f0","driver":"raw","file":"s0"}' -device '{"driver":"virtio-blk-pci","drive":"f0","id":"vd0"}' \
	-qmp "unix:$QMP,server=on,wait=off" > "$TMP/qemu.log" 2>&1; echo $? > "$TMP/qemu.rc") &
for i in $(seq 300); do
	[ -S "$QMP" ] && [ -f "$ST/vg1.json" ] && break
	sleep 0.1
done
[ -S "$QMP" ] || { cat "$TMP/qemu.log" "$VGLOG/launch"; fail "QEMU did not start"; }
QPID=$("$H/state-json" "$ST/vg1.json" pid) || fail "no state for vg1"
cleanup_fn "kill -9 $QPID 2>/dev/null"
[ "$(readlink "/proc/$QPID/exe")" = "$(readlink -f "$QEMU")" ] || fail "pid $QPID is not QEMU"
vg_clean "$VGLOG/launch" "the launch"
echo "launch: clean up to the exec of QEMU (pid $QPID)"

# The agent, by hand, under valgrind.
(timeout -k 5 600 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	--log-file="$VGLOG/agent" "$KL" --agent "$ST/vg1.json" < /dev/null > /dev/null 2>&1; echo $? > "$TMP/agent.rc") &
for i in $(seq 600); do
	[ "$("$H/state-json" "$ST/vg1.json" agent.state 2>/dev/null)" = watching ] && break
	sleep 0.1
done
[ "$("$H/state-json" "$ST/vg1.json" agent.state)" = watching ] || { cat "$ST/vg1.agent.log"; fail "the agent is not watching"; }
APID=$("$H/state-json" "$ST/vg1.json" agent.pid)
cleanup_fn "kill -9 $APID 2>/dev/null"

# --status and --set against the live VM, under valgrind too.
vg 0 --config "$TMP/p.conf" --status
grep -q "^VM vg1: pid $QPID, running" "$TMP/out" || { cat "$TMP/out"; fail "--status does not show vg1"; }
vg 0 --config "$TMP/p.conf" --status --json
vg 0 --config "$TMP/p.conf" --status --prometheus
vg 0 --config "$TMP/p.conf" --set vg1 vd0 cache=writeback
vg 0 --config "$TMP/p.conf" --set vg1 vd0 iops=100 bps=1M
vg 1 --config "$TMP/p.conf" --set vg1 vd0 cache=writethrough
vg 1 --config "$TMP/p.conf" --set vg1 nosuch iops=1
"$H/state-qmp" "$QMP" cont > /dev/null && "$H/state-qmp" "$QMP" stop > /dev/null || fail "cont/stop"

# QEMU quits: the agent records SHUTDOWN, removes the entry and exits 0, clean.
"$H/state-qmp" "$QMP" quit > /dev/null 2>&1
for i in $(seq 200); do
	[ -f "$TMP/agent.rc" ] && break
	sleep 0.1
done
[ -f "$TMP/agent.rc" ] || fail "the agent did not exit after QEMU quit"
vg_clean "$VGLOG/agent" "the agent"
[ "$(cat "$TMP/agent.rc")" = 0 ] || { cat "$ST/vg1.agent.log"; fail "the agent exited $(cat "$TMP/agent.rc")"; }
grep -q "event SHUTDOWN" "$ST/vg1.agent.log" || fail "the agent did not see SHUTDOWN"
[ ! -e "$ST/vg1.json" ] || fail "the entry is left"
echo "agent: clean, exit 0, entry removed ($runs valgrind runs in all)"
