#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Hostile QMP from QEMU's capability probe (kvm-launch asks the QEMU binary,
# over `-qmp stdio`, whether it has io_uring).  QMP replies are untrusted
# input: whatever the stand-in QEMU answers (null where a string belongs,
# garbage, a JSON array, an error, a flood of events, silence), kvm-launch
# must not crash or hang (the probe is bounded), and the VM starts with a
# decision made without io_uring knowledge.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
bad_setup
IMG=$TMP/disk.img
truncate -s 1M "$IMG"
VM=(-name q -drive "file=$IMG,format=raw,if=virtio")
GREET='{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}'
CAPS='{"return": {}, "id": "kl-1"}'

qmp_case() { # NAME MAX-SECONDS: the transcript is in $TMP/NAME.qmp
	rm -rf "$TMP/cache"
	export KL_FAKE_QMP=$TMP/$1.qmp
	start=$(date +%s)
	expect_started "${VM[@]}"
	secs=$(( $(date +%s) - start ))
	unset KL_FAKE_QMP
	[ "$secs" -le "$2" ] || fail "$1: took $secs s (at most $2)"
	stderr_ours 3 "${VM[@]}"
	got_arg 4 | grep -q "^file=$IMG,format=raw,if=virtio,cache=none" || fail "$1: not decided: $(got_arg 4)"
	echo "$1: ok (${secs} s): $(grep -v 'disk virtio0' "$ERR" | head -n 1)"
}

# The crash found by fuzz-qmp (tests/fuzz/crashes/qmp-schema-null-meta-type).
printf '%s\n' "$GREET" "$CAPS" '{"return": [{"name": "x", "meta-type": null}, {"name": "y", "meta-type": "enum", "values": [null, 1, "threads", "io_uring"]}], "id": "kl-2"}' > "$TMP/null-meta-type.qmp"
qmp_case null-meta-type 5
got_arg 4 | grep -q 'aio=io_uring' || fail "null-meta-type: the valid enum after the null was not seen"
printf 'this is not JSON\n' > "$TMP/garbage.qmp"
qmp_case garbage 5
printf '[1, 2, 3]\n' > "$TMP/array.qmp"
qmp_case array 5
printf '%s\n' "$GREET" '{"error": {"class": "GenericError", "desc": "no"}, "id": "kl-1"}' > "$TMP/refused.qmp"
qmp_case refused 5
printf '%s\n' "$GREET" "$CAPS" '{"return": "not a list", "id": "kl-2"}' > "$TMP/wrong-type.qmp"
qmp_case wrong-type 5
printf '%s\n' "$GREET" "$CAPS" '{"return": [], "id": "kl-9"}' > "$TMP/wrong-id.qmp"
qmp_case wrong-id 15
{ printf '%s\n' "$GREET" "$CAPS"; for i in $(seq 3000); do echo '{"event": "X", "data": {}}'; done; echo '{"return": [], "id": "kl-2"}'; } > "$TMP/flood.qmp"
qmp_case flood 5
printf '%s' "${GREET%??}" > "$TMP/cut.qmp"
qmp_case cut 15
: > "$TMP/silent.qmp"
qmp_case silent 15
echo "hostile capability probes: ok"
