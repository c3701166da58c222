#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The backend probes against this machine: sparse and preallocated raw files,
# images made by the real qemu-img (every format it creates), a tmpfs, a loop
# device with a partition, the root filesystem's disk, the host's io_uring and
# libaio.  Expected values come from independent tools (stat, dd
# iflag=direct, sysfs), not from the code under test.  The tmpfs mount and
# the loop device need root: without it those parts are skipped (exit 77
# after everything else passed).
. "$(dirname "$0")/../functions.sh"
CLI=$KL_TOP/tests/helpers/probe-cli
requires "$CLI" stat dd truncate
kl_tmpdir
skipped=

probe() {
	what="$*"
	"$CLI" "$@" > "$TMP/out" 2> "$TMP/err" || fail "probe-cli $*: exit $? ($(cat "$TMP/err"))"
}
get() { sed -n "s/^$1=//p" "$TMP/out" | head -n 1; }
expect() {
	local v
	v=$(get "$1")
	[ "$v" = "$2" ] || { cat "$TMP/out"; fail "$what: $1=$v, expected $2"; }
}
expect_note() {
	grep -q "^note=.*$1" "$TMP/out" || { cat "$TMP/out"; fail "$what: no note matching '$1'"; }
}
# What an O_DIRECT open of the file does, asked of dd.
odirect_of() {
	if dd if="$1" of=/dev/null iflag=direct count=0 2>/dev/null; then echo yes; else echo no; fi
}
fs_checks() {   # FILE: fs magic, storage id and O_DIRECT against stat and dd
	expect backend file
	expect fs_magic "0x$(stat -f -c %t "$1")"
	expect storage_id "dev:$(stat -c '%Hd:%Ld' "$1")"
	expect odirect "$(odirect_of "$1")"
}

# --- raw files on the test directory's filesystem
truncate -s 64M "$TMP/sparse.raw"
probe "$TMP/sparse.raw"
fs_checks "$TMP/sparse.raw"
expect format raw
expect preallocated no
expect_note "sparse file"
echo "sparse raw: fs=$(get fs) odirect=$(get odirect) rotational=$(get rotational)"

if command -v fallocate >/dev/null && fallocate -l 64M "$TMP/full.raw" 2>/dev/null; then :; else
	dd if=/dev/zero of="$TMP/full.raw" bs=1M count=64 status=none
fi
probe "$TMP/full.raw"
fs_checks "$TMP/full.raw"
expect format raw
expect preallocated yes

# --- images made by the real qemu-img
if command -v qemu-img >/dev/null; then
	qemu-img create -q -f qcow2 "$TMP/d.qcow2" 1G
	probe "$TMP/d.qcow2"
	fs_checks "$TMP/d.qcow2"
	expect format qcow2
	expect preallocated no
	expect_note "qcow2 version 3"
	probe --format raw "$TMP/d.qcow2"
	expect_note "looks like qcow2, the command line says format raw"

	qemu-img create -q -f qcow2 -o preallocation=falloc "$TMP/falloc.qcow2" 64M
	probe "$TMP/falloc.qcow2"
	expect preallocated yes
	qemu-img create -q -f qcow2 -o preallocation=metadata "$TMP/meta.qcow2" 64M
	probe "$TMP/meta.qcow2"
	expect preallocated no
	qemu-img create -q -f qcow2 -o compat=0.10 -b "$TMP/d.qcow2" -F qcow2 "$TMP/overlay.qcow2"
	probe "$TMP/overlay.qcow2"
	expect format qcow2
	expect_note "backing file"

	for fmt in qed vmdk vdi vhdx vpc parallels raw; do
		qemu-img create -q -f $fmt "$TMP/img.$fmt" 64M || fail "qemu-img create -f $fmt"
		probe "$TMP/img.$fmt"
		expect format $fmt
	done
	qemu-img create -q -f vpc -o subformat=fixed "$TMP/fixed.vpc" 16M
	probe "$TMP/fixed.vpc"
	expect format vpc
	expect_note "fixed-size VHD"
	qemu-img create -q -f vmdk -o subformat=monolithicFlat "$TMP/flat.vmdk" 16M
	probe "$TMP/flat.vmdk"
	expect format vmdk
	# LUKS key setup times PBKDF iterations by CPU usage, which can fail on
	# a coarse clock ("Unable to get accurate CPU usage"): retry, then fall
	# back to the header bytes.
	for it in 50 200 1000; do
		qemu-img create -q --object secret,id=s0,data=kvm-launch -f luks -o key-secret=s0,iter-time=$it \
			"$TMP/img.luks" 16M 2>/dev/null && break
	done
	if [ ! -s "$TMP/img.luks" ]; then
		echo "qemu-img could not make a LUKS image: writing its header by hand"
		printf 'LUKS\272\276\000\002' > "$TMP/img.luks"
		truncate -s 16M "$TMP/img.luks"
	fi
	probe "$TMP/img.luks"
	expect format luks
else
	echo "qemu-img not found: writing a qcow2 header by hand"
	printf 'QFI\373\000\000\000\003' > "$TMP/d.qcow2"
	truncate -s 1M "$TMP/d.qcow2"
	probe "$TMP/d.qcow2"
	expect format qcow2
fi

# --- what cannot be probed
probe "$TMP/missing.img"
expect backend unknown
expect_note "stat $TMP/missing.img: No such file or directory"
probe /dev/fdset/3
expect backend unknown
expect_note "cannot probe an fd set"
probe nbd:localhost:10809
expect backend network
expect network_driver nbd
probe --driver rbd pool/image
expect backend network
expect shared yes

# --- permission denied, as an unprivileged user (needs root to switch)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	mkdir "$TMP/private"
	cp "$TMP/full.raw" "$TMP/private/vm.raw" 2>/dev/null || truncate -s 1M "$TMP/private/vm.raw"
	chmod 0700 "$TMP/private"
	chmod 0755 "$TMP"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$CLI" "$TMP/private/vm.raw" > "$TMP/out" 2>&1 ||
		fail "probe-cli as nobody: $(cat "$TMP/out")"
	what="unprivileged stat"
	expect backend unknown
	expect_note "stat $TMP/private/vm.raw: Permission denied"
	chmod 0755 "$TMP/private"
	chmod 0600 "$TMP/private/vm.raw"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$CLI" "$TMP/private/vm.raw" > "$TMP/out" 2>&1 ||
		fail "probe-cli as nobody: $(cat "$TMP/out")"
	what="unprivileged open"
	expect backend file
	expect odirect unknown
	expect_note "O_DIRECT open of $TMP/private/vm.raw: Permission denied"
	expect_note "cannot read the image header"
fi

# --- tmpfs: /dev/shm when it is one, and a fresh mount as root
check_tmpfs() {   # FILE
	probe "$1"
	fs_checks "$1"
	expect fs tmpfs
	expect shared no
	expect rotational unknown
	echo "tmpfs ($1): odirect=$(get odirect) on Linux $(uname -r)"
	if [ "$(get odirect)" = no ]; then expect_note "filesystem refuses O_DIRECT (tmpfs)"; fi
}
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ]; then
	shm=$(mktemp /dev/shm/kl-probe.XXXXXX)
	cleanup_fn "rm -f '$shm'"
	truncate -s 16M "$shm"
	check_tmpfs "$shm"
fi
if [ "$(id -u)" = 0 ]; then
	mkdir "$TMP/tmpfs"
	if mount -t tmpfs -o size=64M kl-probe "$TMP/tmpfs" 2>/dev/null; then
		cleanup_fn "umount '$TMP/tmpfs'"
		dd if=/dev/zero of="$TMP/tmpfs/vm.raw" bs=1M count=8 status=none
		check_tmpfs "$TMP/tmpfs/vm.raw"
		expect preallocated yes
	else
		echo "cannot mount a tmpfs here: that part skipped"
		skipped="$skipped tmpfs"
	fi
else
	skipped="$skipped tmpfs"
fi

# --- a loop device with a partition, and one over a qcow2 file
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
	truncate -s 32M "$TMP/loop.raw"
	# An MBR with one Linux partition: sectors 2048..32767.
	printf '\000\000\000\000\203\000\000\000\000\010\000\000\000\170\000\000' |
		dd of="$TMP/loop.raw" bs=1 seek=446 conv=notrunc status=none
	printf '\125\252' | dd of="$TMP/loop.raw" bs=1 seek=510 conv=notrunc status=none
	if loop=$(losetup -f --show -P "$TMP/loop.raw" 2>/dev/null); then
		cleanup_fn "losetup -d '$loop'"
		name=${loop#/dev/}
		probe "$loop"
		expect backend block
		expect block_kind loop
		expect storage_id "dev:$(stat -c '%Hr:%Lr' "$loop")"
		expect rotational "$(sed 's/1/yes/; s/0/no/' /sys/block/$name/queue/rotational)"
		expect odirect "$(odirect_of "$loop")"
		expect format raw
		expect_note "loop device $name backed by $TMP/loop.raw"
		# the partition: its disk's kind and queue.  Without udev, make
		# the node ourselves from sysfs.
		part=/sys/block/$name/${name}p1
		if [ -r "$part/dev" ]; then
			node=${loop}p1
			if [ ! -b "$node" ]; then
				node=$TMP/${name}p1
				mknod "$node" b $(tr ':' ' ' < "$part/dev") || fail "mknod $node"
			fi
			probe "$node"
			expect block_kind loop
			expect storage_id "dev:$(cat "$part/dev")"
			expect rotational "$(sed 's/1/yes/; s/0/no/' /sys/block/$name/queue/rotational)"
			expect_note "partition ${name}p1 of $name"
		else
			echo "the kernel found no partition on $loop (no MBR partition support?): partition part skipped"
		fi
		if [ -e "$TMP/d.qcow2" ] && loop2=$(losetup -f --show -r "$TMP/d.qcow2" 2>/dev/null); then
			cleanup_fn "losetup -d '$loop2'"
			probe --readonly "$loop2"
			expect block_kind loop
			expect format qcow2
		fi
	else
		echo "losetup failed: loop part skipped"
		skipped="$skipped loop"
	fi
else
	skipped="$skipped loop"
fi

# --- the disk under / (read-only look)
root_dev=$(findmnt -no SOURCE / 2>/dev/null || true)
if [ -b "$root_dev" ]; then
	probe "$root_dev"
	expect backend block
	mm=$(stat -c '%Hr:%Lr' "$root_dev")
	expect storage_id "dev:$mm"
	rot=/sys/dev/block/$mm/queue/rotational
	[ -r "$rot" ] || rot=/sys/dev/block/$mm/../queue/rotational
	expect rotational "$(sed 's/1/yes/; s/0/no/' "$rot")"
	echo "root disk $root_dev: kind=$(get block_kind) rotational=$(get rotational) odirect=$(get odirect)"
fi

# --- the host
probe --host
if [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" = 2 ]; then
	expect io_uring_kernel no
else
	v=$(get io_uring_kernel)
	[ "$v" = yes ] || [ "$v" = no ] || fail "io_uring_kernel=$v"
fi
expect io_uring_qemu unknown
expect aio_max_nr "$(cat /proc/sys/fs/aio-max-nr)"
v=$(get libaio)
[ "$v" = yes ] || fail "libaio=$v on this host: $(grep ^note= "$TMP/out")"
echo "host: io_uring=$(get io_uring_kernel) libaio=$(get libaio) aio-nr=$(get aio_nr)/$(get aio_max_nr) headroom=$(get libaio_headroom)"

# --- speed: 4 disks with a warm page cache
disks=("$TMP/sparse.raw" "$TMP/full.raw" "$TMP/d.qcow2")
if [ -n "${shm:-}" ]; then disks+=("$shm"); else disks+=("$TMP/full.raw"); fi
probe --bench 2000 --host "${disks[@]}"
cat "$TMP/out"
us=$(get per_disk_us_mean)
# A generous bound (sanitizers, loaded CI): a probe must never take a millisecond.
awk -v us="$us" 'BEGIN { exit !(us > 0 && us < 1000) }' || fail "probing took $us us per disk"

if [ -n "$skipped" ]; then
	echo "SKIP: parts needing root were skipped:$skipped"
	exit 77
fi
echo "all probe checks passed"
