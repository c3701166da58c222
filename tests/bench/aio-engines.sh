#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs aio-engines (4 KiB random O_DIRECT reads, libaio vs io_uring, QD 8 and
# 32) on a preallocated file on the root filesystem and on a loop device over
# it.  Needs root for the loop device.  Not part of the test suite.
#   sh tests/bench/aio-engines.sh [SECONDS] [ROUNDS]
set -eu
secs=${1:-3}
rounds=${2:-1}
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/var/tmp}/aio-engines.XXXXXX")
bin=$dir/aio-engines
loop=
cleanup() { [ -n "$loop" ] && losetup -d "$loop"; rm -rf "$dir"; }
trap cleanup EXIT
cc -O2 -o "$bin" "$top/tests/bench/aio-engines.c" -laio -luring
# Written data, not fallocate: unwritten extents read back as zeros without I/O.
dd if=/dev/urandom of="$dir/img" bs=1M count=1024 conv=fsync status=none
loop=$(losetup --find --show --direct-io=on "$dir/img")
for r in $(seq "$rounds"); do
	for target in "$dir/img" "$loop"; do
		for qd in 8 32; do
			for e in libaio io_uring; do
				printf '%s ' "$(case $target in /dev/*) echo loop;; *) echo file;; esac)"
				"$bin" "$target" "$e" "$qd" "$secs"
			done
		done
	done
done
