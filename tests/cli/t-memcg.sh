#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# launcher/vm/memcg (through tests/helpers/memcg-cli) on this host's real cgroups: a child of the test's own memory
# cgroup (v1 or v2) is charged the page cache a process in it reads and writes, and stays under the limit set on it;
# a cgroup2 without the memory controller (the hybrid layout's unified/) and a root with nothing mounted give a
# clear "no accounting possible" message.  The cgroups it makes are removed at exit.
. "$(dirname "$0")/../functions.sh"
requires_root
H=$KL_TOP/tests/helpers/memcg-cli
requires "$H" dd
kl_tmpdir
MIB=1048576

# The nothing-mounted root, and a process that is gone: always testable.
mkdir "$TMP/empty"
out=$("$H" --root "$TMP/empty" pid $$ 2>&1) && fail "an empty cgroup root gave figures: $out"
case $out in
*"no memory hierarchy is mounted"* | *"no cgroup2 is mounted"* | *"no memory cgroup"*) ;;
*) fail "empty root: unclear message: $out" ;;
esac
out=$("$H" pid 2147483646 2>&1) && fail "a missing process gave figures"
case $out in *"cannot tell the memory cgroup of process 2147483646"*) ;; *) fail "missing pid: $out" ;; esac

# The hybrid layout's cgroup2 without the memory controller.
tested_v2none=0
if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && ! grep -qw memory /sys/fs/cgroup/unified/cgroup.controllers; then
	out=$("$H" --v2 pid $$ 2>&1) && fail "cgroup2 without memory gave figures: $out"
	case $out in *"no memory controller"*"no memory accounting possible"*) tested_v2none=1 ;; *) fail "unified: $out" ;; esac
fi

# A mount namespace with /sys but not the cgroup mounts below it (the backports root binds /sys alone) while this
# process is in a v1 memory cgroup: mount the kernel's memory hierarchy for this test (the same hierarchy, private
# to the namespace) and use it as the cgroup root.
if ! "$H" pid $$ > /dev/null 2>&1 && [ ! -e /sys/fs/cgroup/memory ] &&
	grep -q '^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}:' /proc/self/cgroup; then
	mkdir -p "$TMP/cg/memory"
	if mount -t cgroup -o memory kl-t-memcg "$TMP/cg/memory" 2> /dev/null; then
		cleanup_fn "umount -l '$TMP/cg/memory'"
		H_ROOT=$TMP/cg
		echo "the memory hierarchy is not mounted at /sys/fs/cgroup/memory here: mounted it at $H_ROOT/memory"
	fi
fi
if [ -n "${H_ROOT:-}" ]; then
	mc() { "$KL_TOP/tests/helpers/memcg-cli" --root "$H_ROOT" "$@"; }
	H=mc
fi

# The real hierarchy: this test's own memory cgroup.
if ! own=$("$H" pid $$ 2>&1); then
	echo "SKIP: $0: no memory cgroup here ($own); tested the missing and v2-without-memory cases only"
	exit 77
fi
version=$(printf '%s\n' "$own" | sed -n 's/^version=//p')
dir=$("$H" create "kl-t-memcg-$$" 64) || fail "cannot create a child cgroup of $(printf '%s\n' "$own" | sed -n 's/^dir=//p')"
cleanup_fn "'$H' rm '$dir' 3000 2>/dev/null"
[ -d "$dir" ] || fail "$dir was not made"
get() { "$H" read "$dir" | sed -n "s/^$1=//p"; }
[ "$(get limit)" = $((64 * MIB)) ] || fail "limit: $(get limit), set 64 MiB"
[ "$(get current)" -lt $((4 * MIB)) ] || fail "a new cgroup is charged $(get current) bytes"

# Write 32 MiB through the page cache from inside: the cgroup is charged for it (the kernel's own figures).
"$H" exec "$dir" -- dd if=/dev/zero of="$TMP/w" bs=1M count=32 status=none || fail "dd in the cgroup failed"
file=$(get file)
[ "$file" -ge $((28 * MIB)) ] || fail "page cache after writing 32 MiB: $file bytes (expected >= 28 MiB)"
[ "$(get current)" -ge "$file" ] || fail "current $(get current) < page cache $file"
echo "after writing 32 MiB ($version): current=$(get current) file=$file peak=$(get peak)"

# Read 160 MiB (not cached: written and evicted outside) under the 64 MiB limit: charged up to the limit, never over.
dd if=/dev/zero of="$TMP/r" bs=1M count=160 status=none || fail "cannot write $TMP/r"
"$H" evict "$TMP/r" || fail "cannot evict $TMP/r"
"$H" exec "$dir" -- dd if="$TMP/r" of=/dev/null bs=1M status=none || fail "read in the cgroup failed (OOM?)"
peak=$(get peak)
echo "after reading 160 MiB under a 64 MiB limit: current=$(get current) file=$(get file) peak=$peak limit_hits=$(get limit_hits)"
[ "$(get current)" -le $((64 * MIB)) ] || fail "current $(get current) over the 64 MiB limit"
[ "$peak" = -1 ] || [ "$peak" -le $((64 * MIB)) ] || fail "peak $peak over the 64 MiB limit"
[ "$peak" = -1 ] || [ "$peak" -ge $((48 * MIB)) ] || fail "peak $peak: the read never filled the cgroup"
[ "$(get limit_hits)" -gt 0 ] || fail "the limit was never hit (limit_hits $(get limit_hits))"

# Removing it: gone, and reading it then says so.
"$H" rm "$dir" 3000 || fail "cannot remove $dir"
[ ! -d "$dir" ] || fail "$dir still there"
out=$("$H" read "$dir" 2>&1) && fail "a removed cgroup gave figures"
case $out in *"no such directory"*) ;; *) fail "removed cgroup: $out" ;; esac
echo "ok: $version memory cgroup charged and limited; missing root and process$([ $tested_v2none = 1 ] && echo ', cgroup2 without memory') refused clearly"
