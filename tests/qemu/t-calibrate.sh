#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Calibration behaviour on this machine, short runs (2 s each):
#   - a regular file as PATH: measured through a temporary file next to it,
#     the file itself untouched, nothing left in the directory
#   - engines denied by a seccomp filter (io_uring_setup EPERM, io_setup
#     EAGAIN): reported unavailable with the reason, threads still ranked
#   - killed (SIGKILL, SIGINT) in the middle: nothing left behind
#   - as root: a loop device read-only (its data untouched, no writes
#     measured), --write refused on a mounted device, a filesystem right on
#     a device does not lend its calibration to the device (same number,
#     other kind), a tmpfs
#   - errors: a missing path, a character device
. "$(dirname "$0")/../functions.sh"
CLI=$KL_TOP/tests/helpers/calibrate-cli
requires "$CLI" md5sum stat dd
kl_tmpdir
CACHE=$TMP/cache
skipped=

kv() { sed -n "s/^$1=//p" "$2" | head -n 1; }
runs_ok() {   # KVFILE: every run of an available engine has numbers
	local e bad
	for e in $(sed -n 's/^engine \([a-z_]*\) available=1.*/\1/p' "$1"); do
		bad=$(grep "^run engine=$e " "$1" | awk '$6 != "ok=1" || !(substr($7, 6) + 0 > 0)')
		[ -z "$bad" ] || fail "runs without numbers: $bad"
		grep -q "^run engine=$e " "$1" || fail "no runs of $e"
	done
}

# --- a regular file: the calibration works next to it and leaves it alone
mkdir "$TMP/images"
dd if=/dev/urandom of="$TMP/images/vm.img" bs=1M count=4 status=none
before=$(md5sum < "$TMP/images/vm.img")
"$CLI" --seconds 2 --size 16 --cache-dir "$CACHE" --kv-out "$TMP/file.kv" "$TMP/images/vm.img" > "$TMP/file.out" ||
	fail "calibrate-cli on a file: $(cat "$TMP/file.out")"
cat "$TMP/file.out"
[ "$(md5sum < "$TMP/images/vm.img")" = "$before" ] || fail "the image changed"
[ "$(ls -A "$TMP/images")" = vm.img ] || fail "left in the directory: $(ls -A "$TMP/images")"
[ "$(kv storage_id "$TMP/file.kv")" = "dev:$(stat -c '%Hd:%Ld' "$TMP/images/vm.img")" ] || fail "storage_id"
[ "$(kv kind "$TMP/file.kv")" = file ] || fail "kind"
[ "$(kv temp_file "$TMP/file.kv")" = 1 ] || fail "temp_file"
[ "$(kv write "$TMP/file.kv")" = 1 ] || fail "random writes go to the temporary file and are measured"
grep -q "pattern=randwrite" "$TMP/file.kv" || fail "no randwrite runs"
runs_ok "$TMP/file.kv"
grep -q 'page cache' "$TMP/file.out" || fail "the table does not say buffered reads hit the page cache"
[ -s "$CACHE/calibration/$(kv storage_id "$TMP/file.kv" | tr : -).json" ] || fail "not stored"
"$CLI" --lookup-path --cache-dir "$CACHE" "$TMP/images/vm.img" > "$TMP/lookup"
want=$(kv rank_direct "$TMP/file.kv")
[ -n "$want" ] || want=$(kv rank_buffered "$TMP/file.kv")
[ "$(kv ranking "$TMP/lookup")" = "$want" ] || fail "lookup: $(cat "$TMP/lookup"), expected $want"
grep -q native <<< "$(kv rank_buffered "$TMP/file.kv")" && fail "native ranked for buffered use"

# --- engines denied: unavailable with the reason, not a failure
"$CLI" --seconds 2 --size 8 --deny io_uring,libaio --kv "$TMP/images" > "$TMP/deny.kv" 2>&1 ||
	fail "calibrate-cli with engines denied: $(cat "$TMP/deny.kv")"
grep -q '^engine io_uring available=0 reason=io_uring_setup: Operation not permitted' "$TMP/deny.kv" ||
	fail "io_uring: $(grep '^engine io_uring' "$TMP/deny.kv")"
grep -q '^engine native available=0 reason=io_setup(1): Resource temporarily unavailable (fs.aio-nr' "$TMP/deny.kv" ||
	fail "native: $(grep '^engine native' "$TMP/deny.kv")"
grep -q '^run engine=\(io_uring\|native\)' "$TMP/deny.kv" && fail "runs of a denied engine"
[ "$(kv rank_buffered "$TMP/deny.kv")" = threads ] || fail "rank_buffered=$(kv rank_buffered "$TMP/deny.kv")"
if [ "$(kv odirect "$TMP/deny.kv")" = 1 ]; then
	[ "$(kv rank_direct "$TMP/deny.kv")" = threads ] || fail "rank_direct=$(kv rank_direct "$TMP/deny.kv")"
fi
runs_ok "$TMP/deny.kv"
echo "engines denied: $(grep '^engine' "$TMP/deny.kv" | tr '\n' ';')"

# --- killed in the middle: the temporary file never had a name.  (SIGTERM
# stands for SIGINT, which a non-interactive shell's background jobs ignore.)
for sig in KILL TERM; do
	mkdir "$TMP/kill-$sig"
	"$CLI" --seconds 60 --size 64 "$TMP/kill-$sig" > /dev/null 2>&1 &
	pid=$!
	# Killed once it is measuring: it holds a file in the directory open (O_TMPFILE, nameless).
	measuring() { ls -l "/proc/$pid/fd" 2>/dev/null | grep -q -- "-> $TMP/kill-$sig/"; }
	wait_for 30 measuring || fail "calibrate-cli never opened a file in $TMP/kill-$sig"
	kill -$sig $pid
	wait $pid 2>/dev/null
	rc=$?
	[ $rc -gt 128 ] || fail "calibrate-cli was not killed by SIG$sig (exit $rc)"
	[ -z "$(ls -A "$TMP/kill-$sig")" ] || fail "SIG$sig left: $(ls -A "$TMP/kill-$sig")"
done
echo "killed with SIGKILL and SIGTERM: nothing left"

# --- errors
"$CLI" --seconds 1 /nonexistent/kl-calibrate > "$TMP/out" 2>&1 && fail "a missing path was accepted"
grep -q 'calibrate /nonexistent/kl-calibrate: No such file or directory' "$TMP/out" || fail "$(cat "$TMP/out")"
"$CLI" --seconds 1 /dev/null > "$TMP/out" 2>&1 && fail "a character device was accepted"
grep -q 'neither a block device, a directory nor a regular file' "$TMP/out" || fail "$(cat "$TMP/out")"
"$CLI" --lookup --cache-dir "$CACHE" dev:12345:678 > "$TMP/out"
[ "$(kv ranking "$TMP/out")" = "" ] && [ "$(kv calibration "$TMP/out")" = "" ] || fail "lookup of nothing: $(cat "$TMP/out")"

# --- as root: block devices
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
	dd if=/dev/urandom of="$TMP/disk.raw" bs=1M count=16 status=none
	sum=$(md5sum < "$TMP/disk.raw")
	# One cleanup for whatever $LOOP holds at exit: a device detached here is no longer ours, and its name may
	# already belong to someone else's loop device.
	LOOP=
	cleanup_fn '[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null'
	if LOOP=$(losetup --find --show "$TMP/disk.raw" 2>/dev/null); then
		loop=$LOOP
		"$CLI" --seconds 2 --cache-dir "$CACHE" --kv-out "$TMP/loop.kv" "$loop" > "$TMP/loop.out" ||
			fail "calibrate-cli $loop: $(cat "$TMP/loop.out")"
		cat "$TMP/loop.out"
		[ "$(kv kind "$TMP/loop.kv")" = block ] || fail "kind"
		[ "$(kv storage_id "$TMP/loop.kv")" = "dev:$(stat -c '%Hr:%Lr' "$loop")" ] || fail "storage_id"
		[ "$(kv write "$TMP/loop.kv")" = 0 ] || fail "wrote without --write"
		grep -q "pattern=randwrite" "$TMP/loop.kv" && fail "randwrite runs without --write"
		grep -q "random writes not measured" "$TMP/loop.out" || fail "the table does not say writes were not measured"
		runs_ok "$TMP/loop.kv"
		losetup -d "$loop"
		LOOP=
		[ "$(md5sum < "$TMP/disk.raw")" = "$sum" ] || fail "the device's data changed without --write"
		LOOP=$(losetup --find --show "$TMP/disk.raw") || fail "losetup again"
		loop=$LOOP

		if command -v mkfs.ext4 >/dev/null && mkfs.ext4 -q -F "$loop" 2>/dev/null && mkdir "$TMP/mnt" &&
		   mount "$loop" "$TMP/mnt" 2>/dev/null; then
			cleanup_fn "umount '$TMP/mnt' 2>/dev/null"
			"$CLI" --seconds 1 --write "$loop" > "$TMP/out" 2>&1 && fail "--write on a mounted device was accepted"
			grep -q "is in use (mounted" "$TMP/out" || fail "$(cat "$TMP/out")"
			echo "--write on mounted $loop: $(cat "$TMP/out")"
			# the filesystem on it has the device's number: its calibration is not the device's
			"$CLI" --seconds 2 --size 4 --cache-dir "$CACHE" --kv-out "$TMP/mnt.kv" "$TMP/mnt" > /dev/null ||
				fail "calibrate-cli $TMP/mnt"
			[ "$(kv storage_id "$TMP/mnt.kv")" = "$(kv storage_id "$TMP/loop.kv")" ] ||
				echo "note: the filesystem's st_dev differs from the device number here"
			"$CLI" --lookup-path --cache-dir "$CACHE" "$loop" > "$TMP/out"
			[ "$(kv ranking "$TMP/out")" = "" ] || fail "a filesystem calibration used for the block device: $(cat "$TMP/out")"
			touch "$TMP/mnt/vm.img"
			"$CLI" --lookup-path --cache-dir "$CACHE" "$TMP/mnt/vm.img" > "$TMP/out"
			[ -n "$(kv ranking "$TMP/out")" ] || fail "no ranking for a file on the calibrated filesystem: $(cat "$TMP/out")"
			umount "$TMP/mnt"
		else
			echo "cannot make and mount an ext4 on $loop: mounted-device part skipped"
			skipped="$skipped mounted"
		fi
	else
		skipped="$skipped loop"
	fi
	mkdir -p "$TMP/tmpfs"
	if mount -t tmpfs -o size=64M kl-calibrate "$TMP/tmpfs" 2>/dev/null; then
		cleanup_fn "umount '$TMP/tmpfs' 2>/dev/null"
		"$CLI" --seconds 2 --size 16 --kv-out "$TMP/tmpfs.kv" "$TMP/tmpfs" > "$TMP/out" || fail "tmpfs: $(cat "$TMP/out")"
		runs_ok "$TMP/tmpfs.kv"
		echo "tmpfs on Linux $(uname -r): odirect=$(kv odirect "$TMP/tmpfs.kv") rank_direct=$(kv rank_direct "$TMP/tmpfs.kv") rank_buffered=$(kv rank_buffered "$TMP/tmpfs.kv")"
		[ "$(kv odirect "$TMP/tmpfs.kv")" = 1 ] || grep -q "O_DIRECT:" "$TMP/out" || fail "no word on O_DIRECT"
		umount "$TMP/tmpfs"
	else
		skipped="$skipped tmpfs"
	fi
else
	skipped="$skipped loop tmpfs"
fi

if [ -n "$skipped" ]; then
	echo "SKIP: parts needing root were skipped:$skipped"
	exit 77
fi
echo "all calibration checks passed"
