#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The io_uring calibration engine survives requests the kernel cancels.
# The kernel completes an io_uring request with -ECANCELED when it cannot
# start an io-wq worker thread for it; here that is made to happen with a
# pids cgroup (buffered writes on ext4 go to io-wq):
#   - the limit at 1 for 200 ms, then unlimited for 50 ms, over and over
#     (longer than the kernel's own retries of a worker thread, ~30 ms):
#     every io_uring run has numbers (a canceled request is tried again);
#     without the engine's retry the first buffered write fails here;
#   - the limit held at 1: the buffered-write runs fail with "Operation
#     canceled" (the condition is real), and the calibration still ends,
#     in bounded time (the retries are bounded), with the other runs.
. "$(dirname "$0")/../functions.sh"
CLI=$KL_TOP/tests/helpers/calibrate-cli
requires_root
requires "$CLI" fallocate timeout mount
kl_tmpdir

# A pids cgroup of our own: under the host's v1 or v2 hierarchy, or a v1
# pids hierarchy mounted in $TMP (a chroot with no /sys/fs/cgroup).
if [ -d /sys/fs/cgroup/pids ]; then
	base=/sys/fs/cgroup/pids
elif grep -qw pids /sys/fs/cgroup/cgroup.controllers 2>/dev/null &&
	grep -qw pids /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
	base=/sys/fs/cgroup
else
	mkdir "$TMP/cg"
	mount -t cgroup -o pids kl-test-pids "$TMP/cg" 2>/dev/null ||
		mount -t cgroup2 kl-test-pids "$TMP/cg" 2>/dev/null || { echo "SKIP: $0: no pids cgroup"; exit 77; }
	cleanup_fn "umount '$TMP/cg'"
	base=$TMP/cg
fi
CG=$base/kl-test-canceled.$$
mkdir "$CG" || fail "cannot make $CG"
cleanup_fn "rmdir '$CG'"
[ -w "$CG/pids.max" ] || { echo "SKIP: $0: $CG has no pids.max (pids controller not enabled)"; exit 77; }
cleanup_fn "for p in \$(cat '$CG/cgroup.procs' 2>/dev/null); do kill -9 \$p; done; sleep 0.2"

fallocate -l 64M "$TMP/f.img"
# calibrate NAME: a --write calibration inside the cgroup, its kv in $TMP/NAME.kv.
calibrate() {
	timeout 300 sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$CG" \
		"$CLI" --seconds 1 --write --size 64 --cache-dir "$TMP/cache-$1" --kv "$TMP/f.img" > "$TMP/$1.kv" 2>&1
}
uring_runs() { grep "^run engine=io_uring .*pattern=randwrite" "$TMP/$1.kv"; }

# --- the limit flapping: every io_uring run has numbers.
(while :; do echo 1 > "$CG/pids.max"; sleep 0.2; echo max > "$CG/pids.max"; sleep 0.05; done) &
flapper=$!
cleanup_fn "kill $flapper 2>/dev/null; echo max > '$CG/pids.max'"
calibrate flap || fail "calibration under a flapping pids limit failed: $(cat "$TMP/flap.kv")"
kill "$flapper"
wait "$flapper" 2>/dev/null
echo max > "$CG/pids.max"
uring_runs flap
bad=$(grep "^run engine=io_uring " "$TMP/flap.kv" | grep -v " ok=1 ")
[ -z "$bad" ] || fail "io_uring runs failed under a flapping pids limit: $bad"
echo "flapping limit: every io_uring run ok, $(cat "$CG/pids.events" 2>/dev/null || echo '?') refusals counted"

# --- the limit held at 1: canceled for good, reported, and the run ends.
echo 1 > "$CG/pids.max"
t0=$(date +%s)
calibrate held || fail "calibration under pids.max=1 failed as a whole: $(cat "$TMP/held.kv")"
t=$(( $(date +%s) - t0 ))
echo max > "$CG/pids.max"
uring_runs held
grep -q "^run engine=io_uring cache=buffered .*pattern=randwrite ok=0 .*Operation canceled" "$TMP/held.kv" ||
	fail "no canceled buffered write under pids.max=1 (the kernel did not cancel; the first test proves nothing)"
grep -q "^run engine=io_uring cache=direct .*pattern=randread ok=1" "$TMP/held.kv" || fail "the other io_uring runs did not run"
echo "pids.max=1: buffered writes canceled and reported, calibration ended in $t s"
