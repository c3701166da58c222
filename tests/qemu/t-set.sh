#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# --set against a real QEMU launched by the real launcher (kvm-launch --state-dir DIR --qemu QEMU; a policy gives
# each disk its mode): cache=writeback/none flips O_DIRECT in /proc/PID/fdinfo (and back), unsafe only with
# --force, throttling visible in --status and the state file, and every refusal refuses and changes nothing:
# writethrough/directsync, aio=native, shared storage (an image on a FUSE mount of subtype sshfs, which
# kvm-launch's probe takes for shared storage), -incoming, a -drive with automatic node names.  A -drive with
# node names works.  Needs root (the FUSE mount).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../guest/lib.sh"
requires "$QEMU" "$KL" truncate
requires_root
H=$KL_TOP/tests/helpers
FUSEFS=$H/kl-powercut-fs
if [ ! -x "$FUSEFS" ]; then
	echo "SKIP: $0: $FUSEFS is not built (libfuse3-dev missing: contrib/deps.sh --tests installs it)"
	exit 77
fi
for h in state-json state-qmp; do
	[ -x "$H/$h" ] || fail "$H/$h is missing: run make test-programs"
done
kl_tmpdir
ST=$TMP/state
for f in a b c d-back e g; do truncate -s 64M "$TMP/$f.img"; done
# Everything started, killed at exit (registered before anything starts); the mount goes last.
ALL= DPID=
mkdir "$TMP/shared"
cleanup_fn 'grep -q " $TMP/shared fuse" /proc/mounts && umount -l "$TMP/shared"'
cleanup_fn 'kl_kill_if "$DPID" "$FUSEFS"'
cleanup_fn 'for p in $ALL; do kl_kill_if "$p" "$QEMU"; kl_kill_if "$p" "$KL"; done'
"$FUSEFS" -t sshfs "$TMP/d-back.img" "$TMP/shared" "$TMP/fs.log" </dev/null 2>>"$TMP/fs.log" &
DPID=$!
wait_for 20 grep -q '^mounted' "$TMP/fs.log" || fail "the FUSE mount failed: $(cat "$TMP/fs.log")"
grep -q " $TMP/shared fuse.sshfs " /proc/mounts || fail "no fuse.sshfs mount at $TMP/shared"
cat > "$TMP/policy.conf" <<EOP
[rule a]
path = $TMP/a.img
cache = none
aio = io_uring
[rule b]
path = $TMP/b.img
cache = writeback
aio = threads
[rule c]
path = $TMP/c.img
cache = none
aio = native
[rule d]
path = $TMP/shared/disk.img
cache = none
aio = threads
[rule e]
path = $TMP/e.img
cache = none
aio = threads
[rule g]
path = $TMP/g.img
cache = none
aio = io_uring
EOP
chmod 0644 "$TMP/policy.conf"
K() { "$KL" --config "$TMP/policy.conf" --state-dir "$ST" "$@"; }
sj() { K --status --json | "$JSON_GET" - "vms.[name=$1].$2"; }

agent_watching() { [ "$(sj "$1" agent.state 2>/dev/null)" = watching ]; }
# O_DIRECT (octal 040000) on QEMU's fds for an image: prints on/off, or
# "mixed"/"none".
odirect() {
	on=0 off=0
	for fd in /proc/$QPID/fd/*; do
		[ "$(readlink "$fd")" = "$1" ] || continue
		fl=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$QPID/fdinfo/${fd##*/}")
		if [ $(( 0$fl & 040000 )) -ne 0 ]; then on=$((on + 1)); else off=$((off + 1)); fi
	done
	if [ $on -gt 0 ] && [ $off -eq 0 ]; then echo on
	elif [ $off -gt 0 ] && [ $on -eq 0 ]; then echo off
	elif [ $on -eq 0 ]; then echo none
	else echo mixed; fi
}
set_ok() { K --set "$@" > "$TMP/set.out" 2>&1 || { cat "$TMP/set.out"; fail "set $* failed"; }; cat "$TMP/set.out"; }
set_refused() { # PATTERN ARGS...
	pat=$1; shift
	if K --set "$@" > "$TMP/set.out" 2>&1; then cat "$TMP/set.out"; fail "set $* was not refused"; fi
	cat "$TMP/set.out"
	grep -q "^kvm-launch: error: .*$pat" "$TMP/set.out" || fail "set $*: message does not say '$pat'"
}
# A read through the disk's BlockBackend (HMP qemu-io) completes: QEMU 10.0
# hung its main loop on the first request after a reopen that listed both
# nodes of a -drive.  QEMU prints qemu-io's output on its stdout; an error
# comes back in the answer.
reads() { # DRIVE-ID
	timeout 20 "$H/state-qmp" "$TMP/test.sock" human-monitor-command \
		"{\"command-line\":\"qemu-io $1 \\\"read 0 4k\\\"\"}" > "$TMP/io.json" 2>&1 ||
		fail "a read on $1 did not complete (rc $?): $(cat "$TMP/io.json")"
	! grep -qi error "$TMP/io.json" || fail "a read on $1 failed: $(cat "$TMP/io.json")"
}
qcache() { # DEVICE-ID: the cache flags QEMU reports, from the test's own monitor
	"$H/state-qmp" "$TMP/test.sock" query-block > "$TMP/qb.json" || fail "query-block"
	n=$("$H/state-json" "$TMP/qb.json" length)
	i=0
	while [ $i -lt "$n" ]; do
		if "$H/state-json" "$TMP/qb.json" $i.qdev | grep -q "/$1/"; then
			"$H/state-json" "$TMP/qb.json" $i.inserted.cache; return
		fi
		i=$((i + 1))
	done
	fail "no $1 in query-block"
}

# vd0: -blockdev JSON, io_uring, none.   vd1: -blockdev keyval, threads, writeback.
# vd2: aio=native, none.                 vd3: on "shared" storage, none.
# vd4: -drive without node names, none.  vd5: -drive with node names, none.
# What the command line gives differs from the policy on vd0 (writeback) and vd1 (none): a rewrite is needed.
"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- \
	-machine pc -accel tcg -nodefaults -display none -S -name guest=t1 \
	-qmp "unix:$TMP/test.sock,server=on,wait=off" \
	-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/a.img\",\"node-name\":\"s0\",\"cache\":{\"direct\":false,\"no-flush\":false},\"discard\":\"unmap\"}" \
	-blockdev '{"node-name":"f0","read-only":false,"cache":{"direct":false,"no-flush":false},"driver":"raw","file":"s0"}' \
	-device '{"driver":"virtio-blk-pci","drive":"f0","id":"vd0","write-cache":"on"}' \
	-blockdev "driver=file,filename=$TMP/b.img,node-name=s1,cache.direct=on" \
	-blockdev driver=raw,node-name=f1,file=s1,cache.direct=on \
	-device virtio-blk-pci,drive=f1,id=vd1 \
	-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/c.img\",\"node-name\":\"s2\",\"cache\":{\"direct\":true,\"no-flush\":false}}" \
	-blockdev '{"node-name":"f2","cache":{"direct":true,"no-flush":false},"driver":"raw","file":"s2"}' \
	-device virtio-blk-pci,drive=f2,id=vd2 \
	-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/shared/disk.img\",\"node-name\":\"s3\",\"cache\":{\"direct\":true,\"no-flush\":false}}" \
	-blockdev '{"node-name":"f3","cache":{"direct":true,"no-flush":false},"driver":"raw","file":"s3"}' \
	-device virtio-blk-pci,drive=f3,id=vd3 \
	-drive "file=$TMP/e.img,format=raw,if=none,id=drive4,cache=none" \
	-device virtio-blk-pci,drive=drive4,id=vd4 \
	-drive "file=$TMP/g.img,format=raw,if=none,id=drive5,cache=none,node-name=fmt5,file.node-name=st5,discard=unmap" \
	-device virtio-blk-pci,drive=drive5,id=vd5 \
	> "$TMP/qemu.log" 2>&1 &
QPID=$!
ALL="$ALL $QPID"
wait_for 30 agent_watching t1 || { cat "$TMP/qemu.log"; fail "the agent never reached 'watching'"; }
ALL="$ALL $(sj t1 agent.pid)"
SF=$(sj t1 state_file)
for e in vd0:io_uring:none vd1:threads:writeback vd2:native:none vd3:threads:none vd4:threads:none vd5:io_uring:none; do
	IFS=: read -r id aio cache <<< "$e"
	[ "$(sj t1 "disks.[id=$id].aio") $(sj t1 "disks.[id=$id].cache")" = "$aio $cache" ] ||
		fail "$id runs aio=$(sj t1 "disks.[id=$id].aio") cache=$(sj t1 "disks.[id=$id].cache"), the policy says $aio/$cache"
done
A=$TMP/a.img B=$TMP/b.img C=$TMP/c.img D=$TMP/shared/disk.img E=$TMP/e.img G=$TMP/g.img
[ "$(odirect "$A")" = on ] && [ "$(odirect "$B")" = off ] || fail "unexpected O_DIRECT at start"

# none -> writeback -> none on a libvirt-style -blockdev pair.
set_ok t1 vd0 cache=writeback
grep -q "^t1: vd0: cache none -> writeback (O_DIRECT off" "$TMP/set.out" || fail "output line"
[ "$(odirect "$A")" = off ] || fail "O_DIRECT still on after cache=writeback ($(odirect "$A"))"
qcache vd0 | grep -q '"direct":false' || fail "QEMU still reports direct"
[ "$("$H/state-json" "$SF" disks.0.cache)" = writeback ] || fail "state file not updated"
[ "$(sj t1 "disks.[id=vd0].cache")" = writeback ] || fail "status"
set_ok t1 vd0 cache=none
[ "$(odirect "$A")" = on ] || fail "O_DIRECT not back on after cache=none"
set_ok t1 vd0 cache=none
grep -q "already none" "$TMP/set.out" || fail "no-op not reported"
# The disk by its image path, and a keyval -blockdev.
set_ok t1 "$B" cache=none
[ "$(odirect "$B")" = on ] || fail "O_DIRECT not on for b.img"
set_ok t1 vd1 cache=writeback
[ "$(odirect "$B")" = off ] || fail "O_DIRECT not off for b.img"
# The options we reopen with are complete: discard survived on s0
# (x-debug-query-block-graph, in 7.2 and 10.0, shows no node options; check what we sent instead).

# unsafe: only with --force.
set_refused "add --force" t1 vd1 cache=unsafe
qcache vd1 | grep -q '"no-flush":false' || fail "refused unsafe changed no-flush"
K --set --force t1 vd1 cache=unsafe > "$TMP/set.out" 2>&1 || { cat "$TMP/set.out"; fail "--force unsafe"; }
qcache vd1 | grep -q '"no-flush":true' || fail "unsafe did not set no-flush"
set_ok t1 vd1 cache=writeback

# The guest write cache is fixed at start.
set_refused "fixed at start" t1 vd0 cache=writethrough
set_refused "fixed at start" t1 vd0 cache=directsync
[ "$(odirect "$A")" = on ] || fail "refusal changed O_DIRECT"
qcache vd0 | grep -q '"writeback":true' || fail "refusal changed the write cache"

# aio=native needs O_DIRECT: refused even with --force.
set_refused "aio=native" t1 vd2 cache=writeback
K --set --force t1 vd2 cache=writeback > /dev/null 2>&1 && fail "aio=native + --force accepted"
[ "$(odirect "$C")" = on ] || fail "aio=native disk lost O_DIRECT"

# Shared storage: only with --force.
set_refused "shared storage" t1 vd3 cache=writeback
[ "$(odirect "$D")" = on ] || fail "refusal on shared storage changed O_DIRECT"
K --set --force t1 vd3 cache=writeback > "$TMP/set.out" 2>&1 || { cat "$TMP/set.out"; fail "--force on shared"; }
[ "$(odirect "$D")" = off ] || fail "--force on shared storage did not drop O_DIRECT"

# A -drive without node names: QEMU cannot reopen its automatic nodes.
set_refused "node-name" t1 vd4 cache=writeback
[ "$(odirect "$E")" = on ] || fail "-drive refusal changed O_DIRECT"
# A -drive with node-name= and file.node-name=: works, aio kept.
reads drive5
set_ok t1 vd5 cache=writeback
[ "$(odirect "$G")" = off ] || fail "-drive with node names: O_DIRECT still on"
qcache vd5 | grep -q '"direct":false' || fail "-drive with node names: QEMU still reports direct"
reads drive5
set_ok t1 vd5 cache=none
[ "$(odirect "$G")" = on ] || fail "-drive with node names: O_DIRECT not back"
reads drive5

# Things that cannot change, and mistakes.
set_refused "aio cannot change" t1 vd0 aio=threads
set_refused "unknown setting" t1 vd0 colour=blue
set_refused "not a cache mode" t1 vd0 cache=fast
set_refused "not a non-negative number" t1 vd0 iops=-5
set_refused "no disk 'vd9'" t1 vd9 iops=5
set_refused "no VM named" nosuch vd0 iops=5
set_refused "usage" t1 vd0

# Throttling: all six base values kept unless given; visible in --status.
set_ok t1 vd0 iops=100 bps=1M
grep -q "^t1: vd0: iops 0 -> 100$" "$TMP/set.out" || fail "iops line"
grep -q "^t1: vd0: bps 0 -> 1048576$" "$TMP/set.out" || fail "bps line"
set_ok t1 vd0 iops_max=400
qthrottle() { # KEY: vd0's value in query-block ("absent" if not there)
	"$H/state-qmp" "$TMP/test.sock" query-block > "$TMP/qb.json"
	for i in 0 1 2 3 4 5; do
		if "$H/state-json" "$TMP/qb.json" $i.qdev 2>/dev/null | grep -q /vd0/; then
			"$H/state-json" "$TMP/qb.json" $i.inserted.$1 2>/dev/null || echo absent
			return
		fi
	done
}
[ "$(qthrottle iops)" = 100 ] || fail "iops lost"
[ "$(qthrottle bps)" = 1048576 ] || fail "bps lost"
[ "$(qthrottle iops_max)" = 400 ] || fail "iops_max"
K --status > "$TMP/table"
grep -E "^ +vd0 .*bps=1048576 iops=100 iops_max=400" "$TMP/table" >/dev/null || { cat "$TMP/table"; fail "throttle not in --status"; }
[ "$("$H/state-json" "$SF" disks.0.throttle.iops)" = 100 ] || fail "throttle not in the state file"
# Dropping a base value drops its bursts.
set_ok t1 vd0 iops=0 iops_rd=20
[ "$(qthrottle iops)" = 0 ] && [ "$(qthrottle iops_rd)" = 20 ] || fail "iops=0 iops_rd=20"
case $(qthrottle iops_max) in absent|0) ;; *) fail "iops_max kept without iops" ;; esac
[ "$(qthrottle bps)" = 1048576 ] || fail "bps lost"
# QEMU's own refusal (total and read/write values together) is reported.
set_refused "cannot be used at the same time" t1 vd0 bps_wr=5
[ "$(qthrottle bps_wr)" = 0 ] || fail "refused bps_wr applied"
# A -drive disk is throttled too (by its qdev path).
set_ok t1 vd4 bps_wr=2M
K --status | grep -E "^ +vd4 .*bps_wr=2097152" >/dev/null || fail "vd4 throttle"
"$H/state-json" "$SF" changes.length | grep -qv '^0$' || fail "no change history"

# The guest turns its write cache off: the firmware runs (SeaBIOS's
# virtio-blk driver negotiates no flush), and query-block's "writeback" goes
# false on every disk although no node option changed.  --set judges by what
# was configured at start and by the node options: none <-> writeback still
# works, directsync is still refused.
nodes() { # NODE: "direct no-flush" of a node, from query-named-block-nodes
	"$H/state-qmp" "$TMP/test.sock" query-named-block-nodes '{"flat":true}' > "$TMP/nn.json" || fail "query-named-block-nodes"
	i=0
	while [ $i -lt "$("$H/state-json" "$TMP/nn.json" length)" ]; do
		if [ "$("$H/state-json" "$TMP/nn.json" $i.node-name)" = "$1" ]; then
			echo "$("$H/state-json" "$TMP/nn.json" $i.cache.direct) $("$H/state-json" "$TMP/nn.json" $i.cache.no-flush)"
			return
		fi
		i=$((i + 1))
	done
	fail "no node $1 in query-named-block-nodes"
}
"$H/state-qmp" "$TMP/test.sock" cont > /dev/null || fail "cont"
wc_off() { qcache vd0 | grep -q '"writeback":false'; }
wait_for 30 wc_off || fail "the firmware did not turn vd0's write cache off"
qcache vd0 | grep -q '"direct":true' || fail "vd0 lost O_DIRECT when the guest turned its write cache off"
echo "guest turned vd0's write cache off: $(qcache vd0)"
set_ok t1 vd0 cache=writeback
grep -q "^t1: vd0: cache none -> writeback (O_DIRECT off" "$TMP/set.out" || fail "output line with the guest's write cache off"
[ "$(odirect "$A")" = off ] || fail "O_DIRECT still on after cache=writeback with the guest's write cache off"
[ "$(nodes s0)" = "false false" ] && [ "$(nodes f0)" = "false false" ] || fail "nodes s0/f0: $(nodes s0) / $(nodes f0)"
"$H/state-cli" status "$ST" --json > "$TMP/st.json"
[ "$("$H/state-json" "$TMP/st.json" vms.0.disks.0.cache)" = writeback ] || fail "status cache after --set"
[ "$("$H/state-json" "$TMP/st.json" vms.0.disks.0.guest_write_cache)" = false ] || fail "status guest_write_cache"
set_refused "was started with it on (it runs cache=writeback) and that is fixed at start" t1 vd0 cache=directsync
set_refused "fixed at start" t1 vd0 cache=writethrough
[ "$(odirect "$A")" = off ] || fail "a refusal changed O_DIRECT"
set_ok t1 vd0 cache=none
[ "$(odirect "$A")" = on ] && [ "$(nodes s0)" = "true false" ] && [ "$(nodes f0)" = "true false" ] ||
	fail "cache=none with the guest's write cache off: O_DIRECT $(odirect "$A"), nodes $(nodes s0) / $(nodes f0)"
# A -drive with node names, likewise.
set_ok t1 vd5 cache=writeback
[ "$(odirect "$G")" = off ] && [ "$(nodes st5)" = "false false" ] || fail "vd5 writeback with the write cache off"
set_ok t1 vd5 cache=none
[ "$(odirect "$G")" = on ] && [ "$(nodes fmt5)" = "true false" ] || fail "vd5 none with the write cache off"

# A VM started with -incoming: dropping O_DIRECT needs --force.
"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- \
	-machine pc -accel tcg -nodefaults -display none -S -name guest=t2 -incoming defer \
	-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/e.img\",\"node-name\":\"s0\",\"cache\":{\"direct\":true,\"no-flush\":false},\"locking\":\"off\"}" \
	-blockdev '{"node-name":"f0","cache":{"direct":true,"no-flush":false},"driver":"raw","file":"s0"}' \
	-device virtio-blk-pci,drive=f0,id=vd0 > "$TMP/qemu2.log" 2>&1 &
Q2=$!
ALL="$ALL $Q2"
wait_for 30 agent_watching t2 || { cat "$TMP/qemu2.log"; fail "t2: no agent"; }
ALL="$ALL $(sj t2 agent.pid)"
set_refused "incoming" t2 vd0 cache=writeback
K --set --force t2 vd0 cache=writeback > "$TMP/set.out" 2>&1 || { cat "$TMP/set.out"; fail "t2 --force"; }
echo PASS
