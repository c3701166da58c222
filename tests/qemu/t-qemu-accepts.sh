#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The real QEMU accepts every cache x aio combination kvm-launch can write, on
# each disk shape (-drive, JSON -blockdev, dotted -blockdev, a qcow2 over a
# backing file), and really runs with it: query-block's cache flags, the
# O_DIRECT bit of the image's fd in /proc/PID/fdinfo, and the kernel AIO
# QEMU set up (an anon_inode:[io_uring] fd, or a /[aio] mapping for libaio).
# The AIO is looked for after a read from each disk (HMP qemu-io through QMP):
# QEMU 7.2 sets its io_uring ring up when it opens the image, QEMU 10.0 only at
# the first I/O, so under -S there is none yet (a version difference, not a
# failure).
. "$(dirname "$0")/../functions.sh"
requires "$KL" "$QEMU" qemu-img
QMPCLI=$KL_TOP/tests/helpers/qmp-cli
JSONGET=$KL_TOP/tests/helpers/json-get
requires "$QMPCLI" "$JSONGET"
kl_tmpdir

truncate -s 64M "$TMP/a.raw" "$TMP/b.raw" "$TMP/base.raw"
qemu-img create -q -f qcow2 -b "$TMP/base.raw" -F raw "$TMP/top.qcow2"
disks=(
	-drive "file=$TMP/a.raw,format=raw,if=none,id=d0,cache=writethrough,aio=threads"
	-device virtio-blk-pci,drive=d0,id=vd0
	-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/b.raw\",\"node-name\":\"s1\"}"
	-blockdev '{"driver":"raw","node-name":"f1","file":"s1"}'
	-device '{"driver":"virtio-blk-pci","drive":"f1","id":"vd1"}'
	-blockdev "driver=qcow2,node-name=f2,file.driver=file,file.filename=$TMP/top.qcow2"
	-device virtio-blk-pci,drive=f2,id=vd2
)
images=("$TMP/a.raw" "$TMP/b.raw" "$TMP/top.qcow2")

# Every QEMU this test starts (the launcher's PID is QEMU's: exec in place), killed at exit; registered before
# the first one starts.
ALL=
cleanup_fn 'for p in $ALL; do kill -KILL "$p" 2>/dev/null; done; for p in $ALL; do wait "$p" 2>/dev/null; done'

n=0
for cache in none writeback writethrough directsync unsafe; do
	for aio in threads io_uring native; do
		case $cache/$aio in none/native|directsync/native|*/threads|*/io_uring) ;; *) continue ;; esac
		n=$((n + 1))
		name=acc$n
		printf 'state-dir = %s/state\ncache-dir = %s/cache\n[rule all]\nbackend = file\ncache = %s\naio = %s\n' \
			"$TMP" "$TMP" "$cache" "$aio" > "$TMP/p.conf"
		chmod 0644 "$TMP/p.conf"
		sock=$TMP/$name.test.sock # the test's own monitor
		"$KL" --config "$TMP/p.conf" --qemu "$QEMU" -- -name "$name" -machine pc -accel tcg -nodefaults \
			-display none -S -qmp "unix:$sock,server=on,wait=off" "${disks[@]}" > "$TMP/$name.out" 2>&1 &
		pid=$!
		ALL="$ALL $pid"
		"$QMPCLI" -w -t 30000 "$sock" query-block > "$TMP/$name.qb" ||
			fail "$cache/$aio: query-block failed: $(cat "$TMP/$name.out")"
		[ "$(readlink -f "/proc/$pid/exe")" = "$(readlink -f "$QEMU")" ] || fail "$cache/$aio: pid $pid is not QEMU"
		want_wb=1 want_direct=0 want_noflush=0
		case $cache in
		none) want_direct=1 ;;
		writethrough) want_wb=0 ;;
		directsync) want_wb=0 want_direct=1 ;;
		unsafe) want_noflush=1 ;;
		esac
		for dev in vd0 vd1 vd2; do
			sel="[qdev=/machine/peripheral/$dev/virtio-backend].inserted.cache"
			got=$("$JSONGET" "$TMP/$name.qb" "$sel.writeback")/$("$JSONGET" "$TMP/$name.qb" "$sel.direct")/$("$JSONGET" "$TMP/$name.qb" "$sel.no-flush")
			want=$([ $want_wb = 1 ] && echo true || echo false)/$([ $want_direct = 1 ] && echo true || echo false)/$([ $want_noflush = 1 ] && echo true || echo false)
			[ "$got" = "$want" ] || fail "$cache/$aio: $dev: query-block writeback/direct/no-flush $got, want $want"
		done
		for img in "${images[@]}"; do
			[ "$(direct_bit "$pid" "$img")" = "$want_direct" ] ||
				fail "$cache/$aio: $img: O_DIRECT bit $(direct_bit "$pid" "$img"), want $want_direct"
		done
		# A read from each disk, so that QEMU has set up its kernel AIO context (lazily on QEMU >= 10).
		for node in d0 f1 f2; do
			"$QMPCLI" "$sock" human-monitor-command \
				"{\"command-line\":\"qemu-io $node \\\"read 0 4096\\\"\"}" > "$TMP/$name.io" ||
				fail "$cache/$aio: qemu-io on $node failed"
			# HMP qemu-io prints its report on QEMU's stdout (the reply is "", seen on 7.2 and 10.0) or in the
			# reply; an error is always in the reply.
			grep -Eqx '""|"read 4096/4096 bytes.*' "$TMP/$name.io" ||
				fail "$cache/$aio: qemu-io read on $node: $(cat "$TMP/$name.io")"
		done
		uring=$(find "/proc/$pid/fd" -lname 'anon_inode:\[io_uring\]' 2>/dev/null | wc -l)
		libaio=$(grep -c ' /\[aio\]' "/proc/$pid/maps" || true)
		case $aio in
		io_uring) [ "$uring" -gt 0 ] || fail "$cache/$aio: no io_uring fd in QEMU" ;;
		native) [ "$libaio" -gt 0 ] || fail "$cache/$aio: no libaio context in QEMU" ;;
		threads) [ "$uring" -eq 0 ] && [ "$libaio" -eq 0 ] || fail "$cache/$aio: kernel AIO in use (uring $uring, aio $libaio)" ;;
		esac
		"$QMPCLI" "$sock" quit > /dev/null || true
		wait "$pid"
		printf '%-13s %-9s ok (query-block, fdinfo O_DIRECT=%s, io_uring fds %s, libaio maps %s)\n' \
			"$cache" "$aio" "$want_direct" "$uring" "$libaio"
	done
done
echo "$n combinations accepted and verified on 3 disk shapes"
