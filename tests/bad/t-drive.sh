#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Malformed and odd -drive arguments.  Malformed (the model refuses them, as
# QEMU would): fail-open with one "kvm-launch:" line and the original
# arguments byte for byte, or exit 1 with on-error = refuse.  Valid but odd
# (QEMU takes them): the rewrite is correct and touches nothing else.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
bad_setup
IMG=$TMP/disk.img
truncate -s 1M "$IMG" || fail "truncate"

# ---- malformed ----
expect_malformed -name bad -drive                      # missing value at the end of argv
expect_malformed -name bad -m 64 -drive
expect_malformed -drive
expect_malformed -name bad -drive '='
expect_malformed -name bad -drive '=x'
expect_malformed -name bad -drive ','
expect_malformed -name bad -drive ',,,'
expect_malformed -name bad -drive ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,"
expect_malformed -name bad -drive "file=$IMG,,,,,,,=x,if=virtio"
expect_malformed -name bad -drive "file=$IMG,,if=virtio,=raw"
expect_malformed -name bad -drive "file=$IMG,format=raw,cache=bogus"
expect_malformed -name bad -drive "file=$IMG,format=raw,cache="
expect_malformed -name bad -drive "file=$IMG,format=raw,aio=bogus"
expect_malformed -name bad -drive "file=$IMG,format=raw,aio="
expect_malformed -name bad -drive "file=$IMG,format=raw,file.aio=fast"
expect_malformed -name bad -drive "file=$IMG,format=raw,cache.direct=maybe"
expect_malformed -name bad -drive "file=$IMG,format=raw,cache.no-flush=2"
expect_malformed -name bad -drive "file=$IMG,format=raw,readonly=perhaps"
expect_malformed -name bad -drive "file=$IMG,format=raw,snapshot=2"
expect_malformed -name bad -drive "file=$IMG,if=none,id=d0" -drive "file=$IMG,if=none,id=d0"   # duplicate id
expect_malformed -name bad -drive "file=$IMG,if=none,id=d0" -device virtio-blk-pci,drive=nosuch
expect_malformed -name bad -drive "file=$IMG,if=none,id=d0" -set drive.d0.cache=none
expect_malformed -name bad -drive "file=$IMG,format=raw" -bogus-option
# A huge malformed value (one argument is at most 128 KiB on Linux: MAX_ARG_STRLEN).
big=$(head -c 120000 /dev/zero | tr '\0' 'x')
expect_malformed -name bad -drive "file=$IMG,cache=$big"
expect_malformed -name bad -drive "$big,=,"
echo "malformed -drive: ok"

# ---- valid but odd: what QEMU accepts must be rewritten correctly ----
# An empty -drive is an empty IDE drive: no medium, nothing to decide.
expect_started -name odd -drive ''
[ "$(got_arg 4)" = "" ] && expect_same_except "" -name odd -drive '' || fail "empty -drive changed"
# Unknown keys are QEMU's business: kept as they are, the disk still decided.
expect_started -name odd -drive "if=virtio,file=$IMG,foo=bar,format=raw,x.y.z=1"
[ "$(got_arg 4)" = "if=virtio,file=$IMG,foo=bar,format=raw,x.y.z=1,cache=none,aio=io_uring" ] ||
	fail "unknown keys: got $(got_arg 4)"
# ",," is an escaped comma: the file name is "$IMG,if=virtio", which does not exist: untouched.
expect_started -name odd -drive "file=$IMG,,if=virtio"
expect_same_except "" -name odd -drive "file=$IMG,,if=virtio"
# A value ending in an escaped comma, then a trailing separator.
expect_started -name odd -drive "file=$IMG,format=raw,if=virtio,serial=a,,"
[ "$(got_arg 4)" = "file=$IMG,format=raw,if=virtio,serial=a,,,cache=none,aio=io_uring" ] ||
	fail "escaped comma at the end: got $(got_arg 4)"
# One trailing comma is allowed and kept.
expect_started -name odd -drive "file=$IMG,format=raw,if=virtio,"
[ "$(got_arg 4)" = "file=$IMG,format=raw,if=virtio,cache=none,aio=io_uring," ] ||
	fail "trailing comma: got $(got_arg 4)"
# Repeated keys: the last one counts, and it is the one rewritten.
expect_started -name odd -drive "file=$IMG,format=raw,if=virtio,cache=writethrough,cache=writeback"
[ "$(got_arg 4)" = "file=$IMG,format=raw,if=virtio,cache=writethrough,cache=none,aio=io_uring" ] ||
	fail "repeated cache=: got $(got_arg 4)"
# cache.* keys win over cache=: made consistent.
expect_started -name odd -drive "file=$IMG,format=raw,if=virtio,cache=writeback,cache.direct=off,cache.no-flush=off"
[ "$(got_arg 4)" = "file=$IMG,format=raw,if=virtio,cache=none,aio=io_uring" ] ||
	fail "cache.* keys: got $(got_arg 4)"
# A file name with commas, spaces, quotes and bytes that are not UTF-8.
ODD=$TMP/$(printf 'a,b c"d\377\376')
cp "$IMG" "$ODD"
esc=$(printf '%s' "$ODD" | sed 's/,/,,/g')
expect_started -name odd -drive "file=$esc,format=raw,if=virtio"
[ "$(got_arg 4)" = "file=$esc,format=raw,if=virtio,cache=none,aio=io_uring" ] ||
	fail "odd file name: got $(got_arg 4 | tr -c '[:print:]' '?')"
# A huge but valid value (an unknown key of 120 kB): kept byte for byte.
expect_started -name odd -drive "file=$IMG,format=raw,if=virtio,serial=$big"
[ "$(got_arg 4)" = "file=$IMG,format=raw,if=virtio,serial=$big,cache=none,aio=io_uring" ] ||
	fail "huge value: not kept"
echo "odd -drive: ok ($CASES launches)"
