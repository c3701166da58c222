#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The probes and the built-in policy on real btrfs and xfs, loop-mounted
# from image files (where test-probe's fake root can only pretend):
#   btrfs: a copy-on-write file (fallocate'd raw, qcow2) and NOCOW files
#          (chattr +C on the file, and inherited from a +C directory as
#          libvirt's btrfs pools make them), preallocated and sparse;
#   xfs:   preallocated and sparse raw, qcow2.
# Facts are checked against independent tools (stat -f, lsattr, stat's
# block count, dd iflag=direct); decisions with kvm-launch --dry-run --json
# and the built-in rules only.  A NOCOW file keeps no data checksums and is
# written in place, so it is decided like a file on any local filesystem:
# O_DIRECT, not the btrfs rule's host page cache and thread pool.
# Mounts and loop devices are removed on every path (cleanup_fn).
. "$(dirname "$0")/../functions.sh"
CLI=$KL_TOP/tests/helpers/probe-cli
JSON_GET=$KL_TOP/tests/helpers/json-get
requires_root
requires "$CLI" "$JSON_GET" "$KL" "$QEMU" mkfs.btrfs mkfs.xfs losetup mount umount chattr lsattr fallocate truncate \
	stat dd qemu-img
# (A filesystem not in /proc/filesystems yet may be a module the mount loads; a kernel without it fails the
# mount below: CI must run where btrfs and xfs exist.)
grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null || true
grep -qw xfs /proc/filesystems || modprobe xfs 2>/dev/null || true
kl_tmpdir

# mount_img FS SIZE DIR MKFS...: a fresh filesystem in an image file on a loop device, mounted at DIR.
mount_img() {
	local fs=$1 size=$2 dir=$3 loop
	shift 3
	truncate -s "$size" "$TMP/$fs.fsimg"
	"$@" "$TMP/$fs.fsimg" > "$TMP/mkfs.out" 2>&1 || { cat "$TMP/mkfs.out"; fail "$* failed"; }
	loop=$(losetup -f --show "$TMP/$fs.fsimg") || fail "losetup -f --show $TMP/$fs.fsimg failed"
	cleanup_fn "losetup -d '$loop' 2>/dev/null"
	mkdir -p "$dir"
	# Registered before mounting: an interrupted mount is still undone.
	cleanup_fn "umount '$dir' 2>/dev/null || umount -l '$dir' 2>/dev/null"
	mount -t "$fs" "$loop" "$dir" || fail "mount -t $fs $loop $dir failed (does this kernel have $fs?)"
	[ "$(stat -f -c %T "$dir")" = "$fs" ] || fail "$dir is $(stat -f -c %T "$dir"), not $fs"
	echo "$fs: $loop ($size) mounted on $dir"
}

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
odirect_of() { if dd if="$1" of=/dev/null iflag=direct count=0 2>/dev/null; then echo yes; else echo no; fi; }
# NOCOW as lsattr shows it (the 'C' flag), yes/no.
nocow_of() { case $(lsattr -d "$1" | cut -d' ' -f1) in *C*) echo yes ;; *) echo no ;; esac; }
# Preallocated as stat shows it: allocated blocks cover the size (raw files).
prealloc_of() { [ $(($(stat -c '%b * %B' "$1"))) -ge "$(stat -c %s "$1")" ] && echo yes || echo no; }
facts() { # FILE FS: the facts every file gets, against the tools
	probe "$1"
	expect backend file
	expect fs "$2"
	expect fs_magic "0x$(stat -f -c %t "$1")"
	expect storage_id "dev:$(stat -c '%Hd:%Ld' "$1")"
	expect odirect "$(odirect_of "$1")"
	expect shared no
}

# The built-in policy (an empty policy file), asked through --dry-run.
POLICY=$TMP/policy.conf
printf 'qemu = %s\n' "$QEMU" > "$POLICY"
chmod 0644 "$POLICY"
decide() { # FILE FORMAT: sets RULE CACHE AIO for a -drive given cache=writeback (QEMU's default)
	"$KL" --config "$POLICY" --state-dir "$TMP/state" --dry-run --json -- -accel tcg -nodefaults \
		-drive "file=$1,format=$2,if=none,id=d0,cache=writeback" -device virtio-blk-pci,drive=d0,id=vd0 \
		> "$TMP/dry.json" 2> "$TMP/dry.err" || { cat "$TMP/dry.err"; fail "--dry-run on $1 failed"; }
	RULE=$("$JSON_GET" "$TMP/dry.json" "disks.[id=vd0].rule") || fail "--dry-run lists no vd0: $(cat "$TMP/dry.json")"
	CACHE=$("$JSON_GET" "$TMP/dry.json" "disks.[id=vd0].cache")
	AIO=$("$JSON_GET" "$TMP/dry.json" "disks.[id=vd0].aio")
	echo "  $1: rule $RULE, cache=$CACHE aio=$AIO"
}
expect_decision() { # RULE CACHE AIO... (any of them; autosel follows the host's io_uring and libaio)
	local r=$1 c=$2 a
	shift 2
	[ "$RULE" = "$r" ] || { cat "$TMP/dry.json"; fail "$what: rule $RULE, expected $r"; }
	[ "$CACHE" = "$c" ] || fail "$what: cache=$CACHE, expected $c"
	for a in "$@"; do [ "$AIO" = "$a" ] && return 0; done
	fail "$what: aio=$AIO, expected one of: $*"
}

# ---- btrfs ----
B=$TMP/btrfs
mount_img btrfs 256M "$B" mkfs.btrfs -q -f

# A copy-on-write file, preallocated: every write still allocates.
fallocate -l 64M "$B/cow.raw"
[ "$(nocow_of "$B/cow.raw")" = no ] || fail "a new file on a fresh btrfs has NOCOW"
facts "$B/cow.raw" btrfs
expect format raw
expect cow yes
expect preallocated "$(prealloc_of "$B/cow.raw")"
expect_note "btrfs is copy-on-write"
decide "$B/cow.raw" raw
expect_decision default:btrfs writeback threads

qemu-img create -q -f qcow2 "$B/cow.qcow2" 64M || fail "qemu-img create on btrfs"
facts "$B/cow.qcow2" btrfs
expect format qcow2
expect cow yes
decide "$B/cow.qcow2" qcow2
expect_decision default:btrfs writeback threads

# NOCOW on the file (chattr +C takes effect only while the file is empty).
touch "$B/nocow.raw"
chattr +C "$B/nocow.raw" || fail "chattr +C $B/nocow.raw"
fallocate -l 64M "$B/nocow.raw"
[ "$(nocow_of "$B/nocow.raw")" = yes ] || fail "lsattr does not show NOCOW on $B/nocow.raw"
facts "$B/nocow.raw" btrfs
expect format raw
expect cow no
expect preallocated "$(prealloc_of "$B/nocow.raw")"
expect preallocated yes
expect_note "btrfs file has the NOCOW attribute: writes go in place"
decide "$B/nocow.raw" raw
expect_decision default:raw-preallocated none io_uring native

# NOCOW inherited from the directory (libvirt's btrfs storage pools), sparse.
mkdir "$B/pool"
chattr +C "$B/pool" || fail "chattr +C $B/pool"
truncate -s 64M "$B/pool/sparse.raw"
[ "$(nocow_of "$B/pool/sparse.raw")" = yes ] || fail "a file made in a +C directory has no NOCOW"
facts "$B/pool/sparse.raw" btrfs
expect cow no
expect preallocated no
decide "$B/pool/sparse.raw" raw
expect_decision default:file none io_uring threads
qemu-img create -q -f qcow2 "$B/pool/vm.qcow2" 64M || fail "qemu-img create in the +C directory"
[ "$(nocow_of "$B/pool/vm.qcow2")" = yes ] || fail "qcow2 in the +C directory has no NOCOW"
facts "$B/pool/vm.qcow2" btrfs
expect format qcow2
expect cow no
decide "$B/pool/vm.qcow2" qcow2
expect_decision default:file none io_uring threads

# ---- xfs ----
X=$TMP/xfs
mount_img xfs 512M "$X" mkfs.xfs -q -f
fallocate -l 64M "$X/prealloc.raw"
facts "$X/prealloc.raw" xfs
expect format raw
expect preallocated "$(prealloc_of "$X/prealloc.raw")"
expect preallocated yes
expect cow unknown
decide "$X/prealloc.raw" raw
expect_decision default:raw-preallocated none io_uring native

truncate -s 64M "$X/sparse.raw"
facts "$X/sparse.raw" xfs
expect preallocated no
expect_note "sparse file"
decide "$X/sparse.raw" raw
expect_decision default:file none io_uring threads

qemu-img create -q -f qcow2 "$X/vm.qcow2" 64M || fail "qemu-img create on xfs"
facts "$X/vm.qcow2" xfs
expect format qcow2
expect preallocated no
decide "$X/vm.qcow2" qcow2
expect_decision default:file none io_uring threads

echo PASS
