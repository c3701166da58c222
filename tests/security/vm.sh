# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by tests/security/t-*.sh after lib.sh: root's VMs through the test installation ($SEC_KL, compiled-in
# layout, no --state-dir), with the real QEMU.
#
#   sec_vm_helpers         copy the QMP/JSON helpers to $SEC_TMP/bin (so kl-attacker can run them too)
#   sec_vm_policy          root's policy ($SEC_POLICY): every disk under $SEC_TMP gets iops = 77 (the agent applies it)
#   sec_vm_start NAME      QEMU as root through $SEC_KL, with our own QMP at $SEC_TMP/NAME.own.sock; waits until
#                          its entry says the agent is watching; VMPID = QEMU's PID (killed at exit)
#   sec_vm_stop PID        kill -9 and wait until it is gone
#   own_qmp NAME CMD [ARGS]  a QMP command over the test's own monitor of NAME (not kvm-launch's)
#   sec_tree               ls -laR of the state tree, indented
#   sec_timed LIMIT_S CMD...  run CMD (root) with a deadline; prints its time and max RSS; fails past LIMIT_S
SEC_ROOTDIR=$SEC_STATE/root

sec_vm_helpers() {
	for h in state-qmp state-json json-get; do [ -x "$KL_TOP/tests/helpers/$h" ] || fail "tests/helpers/$h is missing: run make test-programs"; done
	install -d -m 0755 "$SEC_TMP/bin"
	install -m 0755 "$KL_TOP/tests/helpers/state-qmp" "$KL_TOP/tests/helpers/state-json" "$KL_TOP/tests/helpers/json-get" "$SEC_TMP/bin/"
	H=$SEC_TMP/bin
}

sec_vm_policy() {
	install -d -m 0755 "$(dirname "$SEC_POLICY")"
	printf '[rule sec]\npath = %s/*\niops = 77\n' "$SEC_TMP" > "$SEC_POLICY"
	chmod 0644 "$SEC_POLICY"
}

sec_agent_watching() { [ "$("$H/state-json" "$SEC_ROOTDIR/$1.json" agent.state 2>/dev/null)" = watching ]; }

sec_vm_start() {
	local name=$1
	[ -f "$SEC_TMP/$name.img" ] || truncate -s 16M "$SEC_TMP/$name.img"
	("$SEC_KL" --qemu "$QEMU" -- -machine pc -accel tcg -nodefaults -display none -S -name "$name" \
		-qmp "unix:$SEC_TMP/$name.own.sock,server=on,wait=off" \
		-drive "file=$SEC_TMP/$name.img,format=raw,if=virtio,id=vd0,file.locking=off" > "$SEC_TMP/$name.log" 2>&1 &)
	wait_for 60 sec_agent_watching "$name" || { cat "$SEC_TMP/$name.log"; fail "$name: the agent never watched"; }
	VMPID=$("$H/state-json" "$SEC_ROOTDIR/$name.json" pid)
	cleanup_fn "kill -9 $VMPID 2>/dev/null"
	[ "$(readlink "/proc/$VMPID/exe")" = "$(readlink -f "$QEMU")" ] || fail "$name: pid $VMPID is not QEMU"
}

sec_vm_stop() {
	kill -9 "$1" 2>/dev/null
	wait_for 10 gone "$1" || fail "QEMU $1 did not die"
}

own_qmp() {
	local name=$1
	shift
	"$H/state-qmp" "$SEC_TMP/$name.own.sock" "$@"
}

sec_tree() {
	ls -laR "$SEC_STATE" | sed 's/^/    /'
}

sec_timed() {
	local limit=$1 t0 t1 rc=0
	shift
	t0=$(date +%s%N)
	timeout -k 2 $((limit + 5)) /usr/bin/time -f '%M' -o "$SEC_TMP/rss" "$@" || rc=$?
	t1=$(date +%s%N)
	TIMED_MS=$(((t1 - t0) / 1000000))
	TIMED_RSS=$(tail -n 1 "$SEC_TMP/rss")
	echo "  timed: $*: exit $rc, ${TIMED_MS} ms, max RSS ${TIMED_RSS} KiB" >&2
	[ "$TIMED_MS" -le $((limit * 1000)) ] || fail "$*: took ${TIMED_MS} ms (bound ${limit} s)"
	return "$rc"
}
