#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# --set and --status against a guest that switches its own write cache off and back on.
#   vda  raw file, -blockdev pair (libvirt style)     given writeback  policy none/io_uring
#   vdb  raw file, -drive with node names             given writeback  policy none/threads
# The guest is served commands over its serial console (init's `serve`); `wcset:vdX:through|back` writes
# /sys/block/vdX/cache_type, which virtio-blk passes to the device: QEMU's BlockBackend write cache follows and
# query-block's "writeback" changes, while the node options (cache.direct, cache.no-flush) stay.  In each state
# (on, off, on again), --set cache=writeback and back to none must work and be real (query-named-block-nodes on
# every node, O_DIRECT in /proc/PID/fdinfo), directsync/writethrough stay refused (the write cache configured at
# start is on), and --status shows the configured mode and the guest's write cache apart (table, JSON,
# Prometheus).  Guest I/O runs between the steps; at the end the guest powers off and QEMU exits 0.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
requires "$KL" "$QEMU" fallocate mkfifo
kl_need_helpers "$QMP_CLI"
kl_guest_build
kl_tmpdir
kl_imgdir

ST=$TMP/state
LOG=$TMP/serial.log
QMP=$TMP/test.qmp
POLICY=$TMP/policy.conf
fallocate -l 64M "$IMG/wc-a.img" || fail "fallocate"
fallocate -l 64M "$IMG/wc-b.img" || fail "fallocate"
A=$IMG/wc-a.img B=$IMG/wc-b.img

cat >"$POLICY" <<EOF
qemu = $QEMU
[rule t-a]
path = $A
cache = none
aio = io_uring

[rule t-b]
path = $B
cache = none
aio = threads
EOF
chmod 0644 "$POLICY"
"$KL" --check-policy "$POLICY" || fail "the test policy does not validate"

qemu_args=(
	-name g2 -accel tcg -m 256 -display none -nodefaults -no-reboot -serial stdio
	-kernel "$KL_GUEST_KERNEL" -initrd "$KL_GUEST_INITRD"
	-append "console=ttyS0 quiet panic=-1 no_timer_check kl.cmd=report,serve"
	-qmp "unix:$QMP,server=on,wait=off"
	-blockdev "{\"driver\":\"file\",\"filename\":\"$A\",\"node-name\":\"a-storage\",\"discard\":\"unmap\"}"
	-blockdev '{"node-name":"a-format","read-only":false,"driver":"raw","file":"a-storage"}'
	-device '{"driver":"virtio-blk-pci","drive":"a-format","id":"vda","addr":"0x4","write-cache":"on"}'
	-drive "file=$B,format=raw,if=none,id=d1,cache=writeback,node-name=b-format,file.node-name=b-storage"
	-device virtio-blk-pci,drive=d1,id=vdb,addr=0x5
)

# The console: QEMU reads the guest's input from a FIFO the test keeps open (fd 3), writes its output to LOG.
mkfifo "$TMP/console"
exec 3<>"$TMP/console"
"$KL" --config "$POLICY" --state-dir "$ST" -- "${qemu_args[@]}" <"$TMP/console" >"$LOG" 2>"$TMP/kl.err" &
QPID=$!
cleanup_fn "kl_kill_if $QPID '$QEMU'; kl_kill_if $QPID '$KL'"
cleanup_fn "[ -z \"\${PASSED:-}\" ] && [ -s '$TMP/kl.err' ] && sed 's/^/    launcher+qemu stderr: /' '$TMP/kl.err' >&2"
kl_wait_serial "$LOG" '^KL serving' 120 "$QPID"
grep '^KL ' "$LOG"
APID=$("$KL" --state-dir "$ST" --status --json | "$JSON_GET" - "vms.[name=g2].agent.pid") || fail "no agent in --status"
cleanup_fn "kl_kill_if $APID '$KL'"
kl_args_load "$QPID"
kl_check_disk_cmdline vda none io_uring
kl_check_disk_cmdline vdb none threads

# gcmd CMD: one command to the guest; waits for its `KL served CMD rc=N` and fails unless N is 0.
gcmd() {
	local n i=0
	n=$(grep -c '^KL served ' "$LOG")
	printf '%s\n' "$1" >&3
	while [ "$(grep -c '^KL served ' "$LOG")" -le "$n" ]; do
		i=$((i + 1))
		[ $i -lt 600 ] || { grep '^KL ' "$LOG" | tail -n 5 >&2; fail "the guest did not answer '$1' in 60 s"; }
		kill -0 "$QPID" 2>/dev/null || fail "QEMU exited while the guest ran '$1'"
		sleep 0.1
	done
	grep '^KL ' "$LOG" | tail -n 2 | sed 's/^/  guest: /'
	[ "$(grep '^KL served ' "$LOG" | tail -n 1)" = "KL served $1 rc=0" ] ||
		fail "guest command '$1' failed: $(grep '^KL ' "$LOG" | tail -n 3)"
}
# qwc ID: the BlockBackend's write cache (query-block "writeback"), on/off.
qwc() {
	"$QMP_CLI" -t 10000 "$QMP" query-block >"$TMP/qb.json" || fail "query-block"
	local f
	f=$(kl_qb_flags "$TMP/qb.json" "$1") || exit 1
	echo "${f%% *}"
}
# nodes NODE...: "NODE=direct/no-flush" of each node, from query-named-block-nodes.
nodes() {
	"$QMP_CLI" -t 10000 "$QMP" query-named-block-nodes '{"flat":true}' >"$TMP/nn.json" || fail "query-named-block-nodes"
	local n out=
	for n in "$@"; do
		out="$out $n=$(kl_bool "$("$JSON_GET" "$TMP/nn.json" "[node-name=$n].cache.direct")")/$(kl_bool "$("$JSON_GET" "$TMP/nn.json" "[node-name=$n].cache.no-flush")")"
	done
	echo "${out# }"
}
# odirect FILE: on/off for every fd of QEMU on FILE ("mixed"/"none" otherwise), from /proc/PID/fdinfo.
odirect() {
	local fd fl on=0 off=0
	for fd in /proc/"$QPID"/fd/*; do
		[ "$(readlink "$fd")" = "$1" ] || continue
		fl=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$QPID/fdinfo/${fd##*/}")
		if [ $((0$fl & 040000)) -ne 0 ]; then on=$((on + 1)); else off=$((off + 1)); fi
	done
	if [ $on -gt 0 ] && [ $off -eq 0 ]; then echo on; elif [ $off -gt 0 ] && [ $on -eq 0 ]; then echo off
	elif [ $on -eq 0 ]; then echo none; else echo mixed; fi
}
set_ok() { # ARGS...
	"$KL" --state-dir "$ST" --set g2 "$@" >"$TMP/set.out" 2>&1 || { cat "$TMP/set.out"; fail "--set g2 $* failed"; }
	sed 's/^/  set: /' "$TMP/set.out"
}
set_refused() { # PATTERN ARGS...
	local pat=$1
	shift
	if "$KL" --state-dir "$ST" --set g2 "$@" >"$TMP/set.out" 2>&1; then
		cat "$TMP/set.out"
		fail "--set g2 $* was not refused"
	fi
	grep -q "$pat" "$TMP/set.out" || { cat "$TMP/set.out"; fail "--set g2 $*: the refusal does not say '$pat'"; }
	echo "  refused: $*"
}
# status_is ID CACHE WC: --status (JSON, table, Prometheus) shows the configured mode and the guest's write cache.
status_is() {
	local id=$1 cache=$2 wc=$3 jwc
	"$KL" --state-dir "$ST" --status --json >"$TMP/st.json" || fail "--status --json"
	[ "$("$JSON_GET" "$TMP/st.json" "vms.[name=g2].disks.[id=$id].cache")" = "$cache" ] ||
		fail "--status: $id cache $("$JSON_GET" "$TMP/st.json" "vms.[name=g2].disks.[id=$id].cache"), want $cache"
	jwc=$(kl_bool "$("$JSON_GET" "$TMP/st.json" "vms.[name=g2].disks.[id=$id].guest_write_cache")")
	[ "$jwc" = "$wc" ] || fail "--status: $id guest_write_cache $jwc, want $wc"
	"$KL" --state-dir "$ST" --status g2 >"$TMP/st.txt" || fail "--status"
	grep -Eq "^ +$id .*[[:space:]]$cache +$wc +user:t-" "$TMP/st.txt" || { cat "$TMP/st.txt"; fail "--status table: $id not '$cache $wc'"; }
	"$KL" --state-dir "$ST" --status --prometheus >"$TMP/st.prom" || fail "--status --prometheus"
	grep -qx "kvm_launch_disk_guest_write_cache{vm=\"g2\",disk=\"$id\"} $([ "$wc" = on ] && echo 1 || echo 0)" "$TMP/st.prom" ||
		fail "--prometheus: no guest write cache sample '$wc' for $id"
	grep -q "^kvm_launch_disk_info{vm=\"g2\",disk=\"$id\",.*,cache=\"$cache\"," "$TMP/st.prom" ||
		fail "--prometheus: kvm_launch_disk_info of $id does not say cache=$cache"
	echo "  status: $id cache=$cache, guest write cache $wc"
}
# round ID IMAGE STORAGE FORMAT: none -> writeback -> none, checked on the nodes and in fdinfo; the
# write-through modes refused.
round() {
	local id=$1 img=$2 sn=$3 fn=$4
	set_ok "$id" cache=writeback
	grep -q "^g2: $id: cache none -> writeback (O_DIRECT off" "$TMP/set.out" || fail "--set output for $id"
	[ "$(nodes "$sn" "$fn")" = "$sn=off/off $fn=off/off" ] || fail "$id after cache=writeback: nodes $(nodes "$sn" "$fn")"
	[ "$(odirect "$img")" = off ] || fail "$id after cache=writeback: O_DIRECT $(odirect "$img") on $img"
	status_is "$id" writeback "$(qwc "$id")"
	set_refused "fixed at start" "$id" cache=directsync
	set_refused "fixed at start" "$id" cache=writethrough
	[ "$(odirect "$img")" = off ] || fail "a refusal changed O_DIRECT on $img"
	set_ok "$id" cache=none
	[ "$(nodes "$sn" "$fn")" = "$sn=on/off $fn=on/off" ] || fail "$id after cache=none: nodes $(nodes "$sn" "$fn")"
	[ "$(odirect "$img")" = on ] || fail "$id after cache=none: O_DIRECT $(odirect "$img") on $img"
	echo "  $id: none -> writeback -> none: nodes $(nodes "$sn" "$fn"), O_DIRECT $(odirect "$img")"
}

echo "== the guest's write cache on (as started)"
[ "$(qwc vda)" = on ] && [ "$(qwc vdb)" = on ] || fail "write cache not on at start: vda $(qwc vda), vdb $(qwc vdb)"
status_is vda none on
round vda "$A" a-storage a-format
round vdb "$B" b-storage b-format
gcmd randio:vda:4:1:rw
gcmd randio:vdb:4:1:rw

echo "== the guest turns its write cache off"
gcmd wcset:vda:through
gcmd wcset:vdb:through
grep -q '^KL disk vda write_cache=write through ' "$LOG" || fail "the guest does not report write through on vda"
[ "$(qwc vda)" = off ] && [ "$(qwc vdb)" = off ] || fail "QEMU did not follow: vda $(qwc vda), vdb $(qwc vdb)"
[ "$(nodes a-storage a-format)" = "a-storage=on/off a-format=on/off" ] || fail "node options changed with the write cache"
status_is vda none off
status_is vdb none off
round vda "$A" a-storage a-format
round vdb "$B" b-storage b-format
# --set while the guest writes through: the disk keeps working.
set_ok vda cache=writeback
gcmd randio:vda:4:1:rw
status_is vda writeback off
set_ok vda cache=none

echo "== the guest turns its write cache back on"
gcmd wcset:vda:back
gcmd wcset:vdb:back
[ "$(qwc vda)" = on ] && [ "$(qwc vdb)" = on ] || fail "QEMU did not follow: vda $(qwc vda), vdb $(qwc vdb)"
status_is vda none on
round vda "$A" a-storage a-format
round vdb "$B" b-storage b-format
gcmd randio:vda:4:1:rw
gcmd randio:vdb:4:1:rw

# Kernel aio after I/O: vda runs io_uring and did I/O, so QEMU holds a ring.
"$KL" --state-dir "$ST" --status g2 >"$TMP/st.txt" || fail "--status"
uring=$(find "/proc/$QPID/fd" -lname 'anon_inode:\[io_uring\]' 2>/dev/null | wc -l)
[ "$uring" -gt 0 ] || fail "vda did I/O with aio=io_uring but QEMU holds no io_uring fd"
grep -q "kernel aio in use: io_uring$" "$TMP/st.txt" || { cat "$TMP/st.txt"; fail "--status does not say io_uring after I/O"; }
cat "$TMP/st.txt"
"$KL" --state-dir "$ST" --status --json | "$JSON_GET" - "vms.[name=g2].changes.length" >"$TMP/nchanges" ||
	fail "no change history"
echo "change history: $(cat "$TMP/nchanges") entries"

# ---- the guest powers off ----
printf 'quit\n' >&3
kl_wait_serial "$LOG" '^KL done' 60 "$QPID"
grep -q '^KL done rc=0' "$LOG" || fail "the guest's commands failed: $(grep '^KL done' "$LOG")"
rc=0
wait "$QPID" || rc=$?
[ "$rc" = 0 ] || fail "QEMU exited with $rc after the guest powered off"
exec 3>&-
kl_wait_gone "$APID" 10 || fail "the agent (pid $APID) is still running 10 s after QEMU exited"
kl_no_sanitizer_reports "$TMP/kl.err" "$ST/g2.agent.log"
# shellcheck disable=SC2034 # read by a cleanup_fn string
PASSED=1
echo PASS
