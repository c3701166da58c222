#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# NEWS: "a closed standard error is replaced by /dev/null at start so no file kvm-launch opens becomes it".
# kvm-launch is started with fd 2 closed and execs a stand-in QEMU that reports what its fd 2 is: it must be
# /dev/null (without the replacement it would be closed, or one of kvm-launch's own files: the policy, a state
# file).  The launch writes a state entry (so kvm-launch opens files), and a warning is provoked (a missing disk
# image) whose text must not land in any file kvm-launch wrote.  With fd 2 open, QEMU gets that same fd 2.
. "$(dirname "$0")/../functions.sh"
requires "$KL"
kl_tmpdir
cat > "$TMP/qemu" <<'EOQ'
#!/bin/sh
# A stand-in QEMU: the capability query (-qmp stdio) gets no answer; otherwise record fd 2 and exit.
for a in "$@"; do [ "$a" = stdio ] && exit 1; done
t=$(readlink /proc/$$/fd/2) || t=closed
echo "$t" > "$KL_FD2"
EOQ
chmod 0755 "$TMP/qemu"
printf 'cache-dir = %s/cache\nstate-dir = %s/state\n' "$TMP" "$TMP" > "$TMP/p.conf"
chmod 0644 "$TMP/p.conf"
args=(-name closed -drive "file=$TMP/nosuch.img,format=raw,if=virtio")

KL_FD2=$TMP/fd2.closed "$KL" --config "$TMP/p.conf" --qemu "$TMP/qemu" -- "${args[@]}" 2>&- ||
	fail "kvm-launch with stderr closed: exit $?"
[ -f "$TMP/fd2.closed" ] || fail "QEMU was not started"
[ "$(cat "$TMP/fd2.closed")" = /dev/null ] || fail "with stderr closed, QEMU's fd 2 is $(cat "$TMP/fd2.closed"), not /dev/null"
if grep -rl 'nosuch.img' "$TMP/state" "$TMP/cache" 2>/dev/null | xargs -r grep -l 'warning\|error' | grep .; then
	fail "a message went into a file kvm-launch wrote"
fi
echo "stderr closed: QEMU's fd 2 is /dev/null"

KL_FD2=$TMP/fd2.open "$KL" --config "$TMP/p.conf" --qemu "$TMP/qemu" -- "${args[@]}" 2> "$TMP/err" ||
	fail "kvm-launch with stderr open: exit $?"
[ "$(cat "$TMP/fd2.open")" = "$TMP/err" ] || fail "with stderr open, QEMU's fd 2 is $(cat "$TMP/fd2.open")"
echo "stderr open: QEMU's fd 2 is the caller's ($TMP/err)"
echo PASS
