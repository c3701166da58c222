#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# -daemonize when QEMU fails to start: kvm-launch (which follows -daemonize)
# exits with the same status and the same stderr as QEMU run by hand, before
# and after QEMU daemonizes, and leaves nothing behind: no state entry, no
# socket, no agent, no relay.
. "$(dirname "$0")/../functions.sh"
requires "$KL" "$QEMU" fallocate
kl_tmpdir
ST=$TMP/state
printf 'state-dir = %s\ncache-dir = %s/cache\nmonitor-relay = on\n' "$ST" "$TMP" > "$TMP/p.conf"
chmod 0644 "$TMP/p.conf"
fallocate -l 16M "$TMP/d.raw"
cleanup_fn 'for p in $(pgrep -f -- "-name dg-"); do kill -9 $p 2>/dev/null; done'

common=(-machine pc -accel tcg -nodefaults -display none -S
	-drive "file=$TMP/d.raw,if=none,id=drive-scsi0,format=raw,cache=writeback,aio=threads")
n=0
check() { # WHAT EXTRA-ARGS...
	local what=$1
	shift
	n=$((n + 1))
	rm -f "$TMP/plain.pid" "$TMP/kl.pid"
	# NO_PIDFILE=1: a hand-run line without -pidfile (kvm-launch adds its own in the state directory).
	local ppf=(-pidfile "$TMP/plain.pid") kpf=(-pidfile "$TMP/kl.pid")
	[ -z "${NO_PIDFILE:-}" ] || { ppf=(); kpf=(); }
	"$QEMU" -name "dg-$n" -chardev "socket,id=qmp,path=$TMP/plain.qmp,server=on,wait=off" -mon chardev=qmp,mode=control \
		"${ppf[@]}" -daemonize "${common[@]}" "$@" > /dev/null 2> "$TMP/plain.err"
	local prc=$?
	"$KL" --config "$TMP/p.conf" --qemu "$QEMU" -- -name "dg-$n" \
		-chardev "socket,id=qmp,path=$TMP/kl.qmp,server=on,wait=off" -mon chardev=qmp,mode=control \
		"${kpf[@]}" -daemonize "${common[@]}" "$@" > /dev/null 2> "$TMP/kl.err.all"
	local krc=$?
	grep -v '^kvm-launch: ' "$TMP/kl.err.all" | sed "s|$TMP/kl\.|$TMP/plain.|g" > "$TMP/kl.err"
	echo "$what: plain QEMU exit $prc, kvm-launch exit $krc; QEMU's stderr: $(head -c 200 "$TMP/plain.err")"
	[ "$prc" != 0 ] || fail "$what: plain QEMU started: the case proves nothing"
	[ "$krc" = "$prc" ] || fail "$what: kvm-launch exited $krc, QEMU $prc"
	[ -s "$TMP/plain.err" ] || fail "$what: QEMU printed nothing"
	cmp -s "$TMP/plain.err" "$TMP/kl.err" || fail "$what: stderr differs: $(diff "$TMP/plain.err" "$TMP/kl.err")"
	# It went the follow way: state and a relay were set up, then removed.
	grep -q '^kvm-launch: monitor qmp: relayed' "$TMP/kl.err.all" || fail "$what: not followed: $(cat "$TMP/kl.err.all")"
	grep -q '^kvm-launch: .*following' "$TMP/kl.err.all" && fail "$what: kvm-launch claims to follow a failed QEMU"
	left=$(ls -A "$ST" 2>/dev/null | grep -v '^\.lock$' || true)
	[ -z "$left" ] || fail "$what: left in the state directory: $left"
	[ ! -e "$TMP/kl.qmp" ] || fail "$what: the manager's socket is left"
	[ -z "$(pgrep -f -- "kvm-launch --(agent|relay) $ST/")" ] || fail "$what: an agent or relay is left"
	[ -z "$(pgrep -f -- "-name dg-$n ")" ] || fail "$what: a QEMU is left"
}
# Fails after QEMU daemonized (the device is checked by the daemon).
check "after daemonizing" -device scsi-hd,drive=drive-scsi0,id=scsi0
# Fails before (an unknown machine type).
check "before daemonizing" -global no-such-driver.prop=1 -machine no-such-machine-type
# The same without -pidfile.
NO_PIDFILE=1 check "after daemonizing, no -pidfile" -device scsi-hd,drive=drive-scsi0,id=scsi0
NO_PIDFILE=1 check "before daemonizing, no -pidfile" -global no-such-driver.prop=1 -machine no-such-machine-type
# And a start that works is followed (the control).
"$KL" --config "$TMP/p.conf" --qemu "$QEMU" -- -name dg-ok -pidfile "$TMP/ok.pid" -daemonize "${common[@]}" 2> "$TMP/ok.err" ||
	fail "the control did not start: $(cat "$TMP/ok.err")"
pid=$(cat "$TMP/ok.pid")
cleanup_fn "kill -9 $pid 2>/dev/null"
grep -q "following QEMU's daemon, PID $pid\$" "$TMP/ok.err" || fail "the control is not followed: $(cat "$TMP/ok.err")"
test -e "$ST/dg-ok.json" || fail "no state for the control"
kill -9 "$pid"
