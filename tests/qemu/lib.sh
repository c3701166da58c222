# SPDX-License-Identifier: GPL-2.0-or-later
# Shared by the monitor relay tests (tests/qemu/t-relay-*.sh), sourced after
# functions.sh as `. "$(dirname "$0")/lib.sh"`; sourcing it makes TMP and a
# policy with the relay on.
SESSION=$KL_TOP/tests/helpers/qmp-session.py
requires "$KL" "$QEMU" python3 "$SESSION"
kl_tmpdir
ST=$TMP/state
printf 'state-dir = %s\ncache-dir = %s/cache\nmonitor-relay = on\n' "$ST" "$TMP" > "$TMP/p.conf"
chmod 0644 "$TMP/p.conf"

# relay_pids [NAME]: the relay processes of this test's VMs (of VM NAME).
relay_pids() {
	local p
	for p in /proc/[0-9]*; do
		tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "^kvm-launch --relay $ST/${1:-}" && echo "${p#/proc/}"
	done
	return 0
}
no_relay() { [ -z "$(relay_pids "$1")" ]; }
# relay_children NAME: children of VM NAME's relays that are not relays
# themselves (each relay has a standby, the active's child).
relay_children() {
	local r c rs
	rs=" $(relay_pids "$1" | tr '\n' ' ') "
	for r in $rs; do
		for c in $(pgrep -P "$r"); do
			case "$rs" in *" $c "*) ;; *) echo "$c" ;; esac
		done
	done
}
qemu_pid_of() { pgrep -f -- "-name $1 " | head -n 1; }

# start NAME MONITOR-ARGS...: kvm-launch + QEMU (TCG, -S), with the monitor
# options given, in the background; sets QPID.  Cleanups registered.
start() {
	local name=$1
	shift
	"$KL" --config "$TMP/p.conf" --qemu "$QEMU" -- -name "$name" -machine pc -accel tcg -nodefaults \
		-display none -S -device virtio-scsi-pci,id=scsi0 "$@" > "$TMP/$name.out" 2>&1 &
	wait_for 20 test -S "$ST/$name.qmp.sock" || fail "$name: QEMU did not start: $(cat "$TMP/$name.out")"
	QPID=$(qemu_pid_of "$name")
	[ -n "$QPID" ] || fail "$name: no QEMU process"
	cleanup_fn "kill -9 $QPID 2>/dev/null"
	for p in $(relay_pids); do cleanup_fn "kill -9 $p 2>/dev/null"; done
}

# session SOCKET < SCRIPT: one scripted QMP session, output on stdout.
session() { timeout 60 python3 "$SESSION" "$1"; }

# quit SOCKET: ends QEMU through that monitor.
quit_via() { printf '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n' | session "$1" > /dev/null; }
