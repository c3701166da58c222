#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The tiny guest launched through kvm-launch by hand, with a policy that gives each disk a different cache mode
# from the one on the command line:
#   vda  raw file (sparse)        -drive    given writeback/threads      policy directsync/native  -> "write through"
#   vdb  qcow2 over a raw backing -blockdev given none/native (JSON)     policy writethrough/threads -> "write through"
#   vdc  raw file (preallocated)  -blockdev given directsync (keyval)    policy writeback/threads  -> "write back"
#   vdd  loop block device        -drive    given writethrough           policy none/native        -> "write back"
# Checks: the launcher's PID becomes QEMU's (/proc/PID/exe is the real QEMU); /proc/PID/cmdline carries the policy's
# aio/cache on every node of every disk and nothing else changed but kvm-launch's own monitors at the end;
# query-block over our own QMP monitor agrees; --status (table and JSON) lists the VM, its PID, its disks and its
# live agent; the guest sees the expected write cache per disk and did reads and writes on each; /proc/PID/maps
# shows a libaio context (aio=native); after the guest powers off: QEMU exits 0, no agent, no state, no entry.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
requires "$KL" "$QEMU" qemu-img truncate fallocate losetup
requires_root # the block device disk is a loop device
kl_need_helpers "$QMP_CLI"
kl_guest_build
kl_tmpdir
kl_imgdir

ST=$TMP/state
LOG=$TMP/serial.log
QMP=$TMP/test.qmp
POLICY=$TMP/policy.conf

truncate -s 64M "$IMG/g-raw.img"
truncate -s 64M "$IMG/g-base.raw"
qemu-img create -q -f qcow2 -b "$IMG/g-base.raw" -F raw "$IMG/g-top.qcow2" 64M || fail "qemu-img create"
fallocate -l 64M "$IMG/g-wb.img" || fail "fallocate"

cat >"$POLICY" <<EOF
# t-guest-cache: every disk gets a mode different from its command line.
qemu = $QEMU
# Only disk arguments may change here; the relay would rewrite -qmp.
monitor-relay = off
[rule t-raw-directsync]
path = $IMG/g-raw.img
cache = directsync
aio = native

[rule t-qcow2-writethrough]
format = qcow2
cache = writethrough
aio = threads

[rule t-prealloc-writeback]
path = $IMG/g-wb.img
cache = writeback
aio = threads

[rule t-block-none]
backend = block
cache = none
aio = native
EOF
chmod 0644 "$POLICY"
"$KL" --check-policy "$POLICY" || fail "the test policy does not validate"

# id  mode  aio  (what the policy must give)
expect=(
	"vda directsync native"
	"vdb writethrough threads"
	"vdc writeback threads"
)
guestcmd="report,randio:vda:4:1:rw,randio:vdb:4:1:rw,randio:vdc:4:1:rw"
disk_args=(
	-drive "file=$IMG/g-raw.img,format=raw,if=none,id=d0,cache=writeback,aio=threads"
	-device virtio-blk-pci,drive=d0,id=vda,addr=0x4
	-blockdev "{\"driver\":\"file\",\"filename\":\"$IMG/g-top.qcow2\",\"aio\":\"native\",\"node-name\":\"q0s\",\"cache\":{\"direct\":true,\"no-flush\":false}}"
	-blockdev '{"node-name":"q0","read-only":false,"cache":{"direct":true,"no-flush":false},"driver":"qcow2","file":"q0s"}'
	-device '{"driver":"virtio-blk-pci","drive":"q0","id":"vdb","addr":"0x5","write-cache":"on"}'
	-blockdev "driver=file,filename=$IMG/g-wb.img,node-name=w0s,cache.direct=on"
	-blockdev driver=raw,file=w0s,node-name=w0,cache.direct=on
	-device virtio-blk-pci,drive=w0,id=vdc,addr=0x6,write-cache=off
)
truncate -s 64M "$IMG/g-loop.img"
kl_loop_setup "$IMG/g-loop.img"
expect+=("vdd none native")
guestcmd="$guestcmd,randio:vdd:4:1:rw"
disk_args+=(
	-drive "file=$KL_LOOP,format=raw,if=none,id=d3,cache=writethrough"
	-device virtio-blk-pci,drive=d3,id=vdd,addr=0x7
)
# The last command keeps the guest busy (reading vda at QD1) while the host looks; then the guest powers off.
window=20
guestcmd="$guestcmd,randio:vda:1:$window:r"

qemu_args=(
	-name g1 -accel tcg -m 256 -nographic -nodefaults -no-reboot -serial "file:$LOG"
	-kernel "$KL_GUEST_KERNEL" -initrd "$KL_GUEST_INITRD"
	-append "console=ttyS0 quiet panic=-1 no_timer_check kl.cmd=$guestcmd"
	-qmp "unix:$QMP,server=on,wait=off"
	"${disk_args[@]}"
)

# ---- what kvm-launch says it will do ----
"$KL" --config "$POLICY" --state-dir "$ST" --dry-run --json -- "${qemu_args[@]}" >"$TMP/dry.json" ||
	fail "--dry-run --json failed"
for e in "${expect[@]}"; do
	read -r id mode aio <<<"$e"
	c=$("$JSON_GET" "$TMP/dry.json" "disks.[id=$id].cache") || fail "--dry-run --json lists no disk $id: $(cat "$TMP/dry.json")"
	a=$("$JSON_GET" "$TMP/dry.json" "disks.[id=$id].aio")
	[ "$c $a" = "$mode $aio" ] || fail "--dry-run: disk $id would get cache=$c aio=$a, the policy says $mode/$aio"
done
[ ! -e "$ST" ] || [ -z "$(ls -A "$ST")" ] || fail "--dry-run left files in the state directory: $(ls -A "$ST")"
"$KL" --config "$POLICY" --state-dir "$ST" --explain -- "${qemu_args[@]}" || fail "--explain failed"

# ---- launch ----
t0=$(date +%s)
"$KL" --config "$POLICY" --state-dir "$ST" -- "${qemu_args[@]}" </dev/null >"$TMP/kl.out" 2>"$TMP/kl.err" &
QPID=$!
cleanup_fn "kl_kill_if $QPID '$QEMU'; kl_kill_if $QPID '$KL'"
cleanup_fn "[ -z \"\${PASSED:-}\" ] && [ -s '$TMP/kl.err' ] && sed 's/^/    launcher+qemu stderr: /' '$TMP/kl.err' >&2"

last=${expect[-1]%% *}
kl_wait_serial "$LOG" "^KL randio dev=$last qd=4 " 120 "$QPID"
echo "guest booted and did I/O on every disk after $(($(date +%s) - t0)) s"
grep '^KL ' "$LOG"

# The PID is the launcher's, and it is QEMU now.
exe=$(readlink -f "/proc/$QPID/exe") || fail "no /proc/$QPID/exe"
[ "$exe" = "$(readlink -f "$QEMU")" ] || fail "pid $QPID runs $exe, not the real QEMU $(readlink -f "$QEMU")"
echo "pid $QPID (the launcher's) runs $exe"

# The command line: each disk as the policy says, every other argument untouched, our monitors appended.
kl_args_load "$QPID"
for e in "${expect[@]}"; do
	read -r id mode aio <<<"$e"
	kl_check_disk_cmdline "$id" "$mode" "$aio"
done
orig=("$(readlink -f "$QEMU")" "${qemu_args[@]}")
[ "$(readlink -f "${KL_ARGS[0]}")" = "${orig[0]}" ] || fail "argv[0] is ${KL_ARGS[0]}"
[ "${#KL_ARGS[@]}" -ge "${#orig[@]}" ] || fail "QEMU has fewer arguments (${#KL_ARGS[@]}) than given (${#orig[@]})"
for ((i = 1; i < ${#orig[@]}; i++)); do
	[ "${KL_ARGS[i]}" = "${orig[i]}" ] && continue
	case ${orig[i - 1]} in
	-drive | -blockdev | -device) kl_check_only_cache_changed "${orig[i]}" "${KL_ARGS[i]}" ;;
	*) fail "argument $i changed: '${orig[i]}' became '${KL_ARGS[i]}' (only disk arguments may change)" ;;
	esac
done
extra=("${KL_ARGS[@]:${#orig[@]}}")
for ((i = 0; i < ${#extra[@]}; i += 2)); do
	case "${extra[i]} ${extra[i + 1]:-}" in
	"-chardev socket,"*"server=on"* | "-mon chardev="*"mode=control"*) ;;
	*) fail "unexpected argument added: ${extra[*]:i:2}" ;;
	esac
done
echo "cmdline: other arguments unchanged, disk arguments changed only in cache/aio; kvm-launch added: ${extra[*]}"

# QEMU's own view, on our monitor.
"$QMP_CLI" -w -t 10000 "$QMP" query-block >"$TMP/qb.json" || fail "query-block on $QMP failed"
for e in "${expect[@]}"; do
	read -r id mode aio <<<"$e"
	kl_check_query_block "$TMP/qb.json" "$id" "$mode"
done
grep -q '/\[aio\]' "/proc/$QPID/maps" || fail "aio=native is on the command line but QEMU has no libaio context"

# --status: the table and the JSON.
"$KL" --state-dir "$ST" --status >"$TMP/status.txt" || fail "--status failed"
cat "$TMP/status.txt"
grep -q "g1" "$TMP/status.txt" || fail "--status does not list g1"
for e in "${expect[@]}"; do
	read -r id mode aio <<<"$e"
	grep -Eq "(^|[[:space:]])${id}[[:space:]].*[[:space:]]$mode([[:space:]]|$)" "$TMP/status.txt" ||
		fail "--status has no row for disk $id with cache $mode"
done
"$KL" --state-dir "$ST" --status --json >"$TMP/status.json" || fail "--status --json failed"
sj() { "$JSON_GET" "$TMP/status.json" "vms.[name=g1].$1"; }
[ "$(sj pid)" = "$QPID" ] || fail "--status: pid $(sj pid), QEMU is $QPID"
[ "$(sj state)" = running ] || fail "--status: state $(sj state)"
[ "$(sj agent.alive)" = true ] || fail "--status: the agent is not alive: $(sj agent)"
APID=$(sj agent.pid)
cleanup_fn "kl_kill_if $APID '$KL'"
[ "$(readlink -f "/proc/$APID/exe")" = "$(readlink -f "$KL")" ] || fail "agent pid $APID is not kvm-launch"
kl_check_agent_detached "$APID" "$QPID"
for e in "${expect[@]}"; do
	read -r id mode aio <<<"$e"
	[ "$(sj "disks.[id=$id].cache")" = "$mode" ] || fail "--status: disk $id cache $(sj "disks.[id=$id].cache"), want $mode"
	[ "$(sj "disks.[id=$id].cache_source")" = qemu ] || fail "--status: disk $id cache not read from QEMU"
	[ "$(sj "disks.[id=$id].aio")" = "$aio" ] || fail "--status: disk $id aio $(sj "disks.[id=$id].aio"), want $aio"
	r=$(sj "disks.[id=$id].stats.rd_operations") && w=$(sj "disks.[id=$id].stats.wr_operations") ||
		fail "--status: no I/O counters for $id"
	[ "$r" -gt 0 ] && [ "$w" -gt 0 ] || fail "disk $id: QEMU counted $r reads and $w writes; the guest should have done both"
	echo "status: disk $id cache=$mode aio=$aio reads=$r writes=$w"
done

# The guest's view of each disk's write cache.
for e in "${expect[@]}"; do
	read -r id mode aio <<<"$e"
	kl_check_guest_wc "$LOG" "$id" "$mode"
done

# kvm-launch said what it did, on QEMU's stderr.
for e in "${expect[@]}"; do
	read -r id mode aio <<<"$e"
	grep -q "^kvm-launch: .*$id.*cache=$mode" "$TMP/kl.err" || fail "no 'kvm-launch:' line about disk $id"
done

# ---- the guest powers off ----
kill -0 "$QPID" 2>/dev/null || fail "QEMU exited before the checks were done (window ${window}s too short?)"
kl_wait_serial "$LOG" '^KL done' $((window + 60)) "$QPID"
grep -q '^KL done rc=0' "$LOG" || fail "the guest's commands failed: $(grep '^KL done' "$LOG")"
rc=0
wait "$QPID" || rc=$?
[ "$rc" = 0 ] || fail "QEMU exited with $rc after the guest powered off"
kl_wait_gone "$APID" 10 || fail "the agent (pid $APID) is still running 10 s after QEMU exited"
[ ! -e "$ST/g1.json" ] || fail "state file $ST/g1.json left behind: $(cat "$ST/g1.json")"
"$KL" --state-dir "$ST" --status --json >"$TMP/after.json" || fail "--status --json after poweroff failed"
if "$JSON_GET" "$TMP/after.json" "vms.[name=g1]" >/dev/null; then
	fail "--status still lists g1 after poweroff: $("$JSON_GET" "$TMP/after.json" "vms.[name=g1]")"
fi
kl_no_sanitizer_reports "$TMP/kl.err" "$ST/g1.agent.log"
left=$(ls -A "$ST" 2>/dev/null | grep -v -e '\.log$' -e '^\.lock$' || true)   # .lock: the directory's lock file stays
[ -z "$left" ] || fail "left in the state directory: $left"
echo "after poweroff: QEMU exit 0, agent gone, no state, --status lists nothing (total $(($(date +%s) - t0)) s)"
# shellcheck disable=SC2034 # read by a cleanup_fn string
PASSED=1
echo PASS
