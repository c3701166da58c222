#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Fail-open: whatever kvm-launch cannot handle reaches QEMU unchanged, with one
# "kvm-launch:" line on stderr; on-error = refuse exits 1 instead.
. "$(dirname "$0")/../functions.sh"
requires "$KL"
kl_tmpdir
fake=$KL_TOP/tests/helpers/fake-qemu.sh
export KL_RECORD=$TMP/argv
printf 'cache-dir = %s/cache\nstate-dir = %s/state\n' "$TMP" "$TMP" > "$TMP/pass.conf"
printf 'on-error = refuse\ncache-dir = %s/cache\nstate-dir = %s/state\n' "$TMP" "$TMP" > "$TMP/refuse.conf"
chmod 0644 "$TMP"/*.conf

# expect_passthrough ARGS...: QEMU must receive exactly ARGS.
expect_passthrough() {
	rm -f "$KL_RECORD"
	"$KL" --config "$TMP/pass.conf" --qemu "$fake" -- "$@" 2> "$TMP/err" || fail "exit $? for: $*"
	[ -f "$KL_RECORD" ] || fail "QEMU was not started for: $*"
	printf '%s\0' "$fake" "$@" > "$TMP/expected"
	cmp -s "$TMP/expected" "$KL_RECORD" || fail "arguments changed for: $*"
	grep -q '^kvm-launch: ' "$TMP/err" || fail "no kvm-launch: message for: $*"
	[ "$(grep -c '' "$TMP/err")" -le 2 ] || { cat "$TMP/err"; fail "too chatty for: $*"; }
}

expect_passthrough -name bad -drive '='
expect_passthrough -name bad -drive ',,,'
expect_passthrough -name bad -drive 'file=/x,cache=bogus'
expect_passthrough -name bad -drive 'file=/x,aio=bogus'
expect_passthrough -name bad -drive 'file=/x,cache.direct=maybe'
expect_passthrough -name bad -blockdev '{"driver":"file","filename":"/x"'
expect_passthrough -name bad -blockdev '[1,2]'
expect_passthrough -name bad -blockdev '{"driver":"qcow2","node-name":"f","file":"nosuch"}'
expect_passthrough -name bad -blockdev '{"driver":"raw","node-name":"a","file":"b"}' -blockdev '{"driver":"raw","node-name":"b","file":"a"}'
expect_passthrough -name bad -device '{"driver":"virtio-blk-pci","drive":'
expect_passthrough -name bad -drive

# The same malformed line with on-error = refuse: exit 1, QEMU not started.
rm -f "$KL_RECORD"
if "$KL" --config "$TMP/refuse.conf" --qemu "$fake" -- -drive '=' 2> "$TMP/err"; then
	fail "on-error = refuse did not refuse"
fi
[ ! -f "$KL_RECORD" ] || fail "QEMU started despite on-error = refuse"
grep -q '^kvm-launch: .*refus' "$TMP/err" || fail "no refusal message"

# An unreadable policy: QEMU still starts with the original arguments.
printf 'this is = not [valid\n' > "$TMP/broken.conf"
rm -f "$KL_RECORD"
# (--state-dir: the policy that would name one is unreadable, and the
# fail-open state file must not land in the system's directory.)
"$KL" --config "$TMP/broken.conf" --state-dir "$TMP/state" --qemu "$fake" -- -name x -m 64 2> "$TMP/err" ||
	fail "broken policy: exit $?"
printf '%s\0' "$fake" -name x -m 64 | cmp -s - "$KL_RECORD" || fail "broken policy: arguments changed"
grep -q '^kvm-launch: ' "$TMP/err" || fail "broken policy: no message"
# The fail-open start is recorded: the VM's name, why, the original command line.
[ "$("$KL" --state-dir "$TMP/state" --status x --json | "$KL_TOP/tests/helpers/json-get" - vms.0.failed_open)" = true ] ||
	fail "broken policy: the fail-open start is not recorded"
echo "fail-open: ok"

# A policy with an error that says on-error = refuse: refused, QEMU not started.
printf 'on-error = refuse\n[rule x]\nbogus-key = 1\n' > "$TMP/broken-refuse.conf"
chmod 0644 "$TMP/broken-refuse.conf"
rm -f "$KL_RECORD"
if "$KL" --config "$TMP/broken-refuse.conf" --qemu "$fake" -- -name x 2> "$TMP/err"; then
	fail "broken policy with on-error = refuse started QEMU"
fi
[ ! -f "$KL_RECORD" ] || fail "broken refusing policy: QEMU started"
grep -q '^kvm-launch: .*refus' "$TMP/err" || fail "broken refusing policy: no refusal message"
echo "broken policy with on-error = refuse: ok"
