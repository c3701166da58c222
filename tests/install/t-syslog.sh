#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Messages go to syslog when standard error would lose them (closed, or
# /dev/null: a daemon that threw its output away), and only to standard error
# when someone reads it (a pipe, as libvirt's log through virtlogd; a file; a
# terminal).  A small listener stands in for /dev/log: created when there is
# none, else bind-mounted over it in a private mount namespace.
. "$(dirname "$0")/../functions.sh"
requires_root
requires python3 "$KL"
kl_tmpdir
sock=$TMP/log.sock
out=$TMP/syslog.txt

python3 - "$sock" "$out" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666)
s.settimeout(20)
with open(sys.argv[2], "a") as f:
    try:
        while True:
            f.write(s.recv(65536).decode(errors="replace") + "\n"); f.flush()
    except socket.timeout:
        pass
PY
listener=$!
cleanup_fn "kill $listener 2>/dev/null"
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || fail "listener did not start"

# Runs "$@" with /dev/log being our socket.
if [ ! -e /dev/log ] && [ ! -L /dev/log ]; then
	ln -s "$sock" /dev/log
	cleanup_fn "[ \"\$(readlink /dev/log)\" = '$sock' ] && rm -f /dev/log"
	with_log() { "$@"; }
else
	requires unshare
	with_log() { unshare --mount sh -c 'mount --bind "$0" /dev/log && exec "$@"' "$sock" "$@"; }
fi

# One warning each: the policy file named does not exist.
w='"$0" --config "/nonexistent/$1" --dry-run -- -name x'
with_log bash -c "$w >/dev/null 2>/dev/null" "$KL" devnull
with_log bash -c "$w >/dev/null 2>&-" "$KL" closed
with_log bash -c "$w 2>&1 >/dev/null | cat > \"\$2\"" "$KL" pipe "$TMP/pipe.txt"
with_log bash -c "$w >/dev/null 2>\"\$2\"" "$KL" file "$TMP/file.txt"
# The datagrams are sent before kvm-launch exits; wait until the listener has written both.
wait_for 10 sh -c "grep -q /nonexistent/devnull '$out' && grep -q /nonexistent/closed '$out'"

echo "syslog got:"; sed 's/^/  /' "$out"
grep -q 'kvm-launch\[[0-9]*\]: policy file /nonexistent/devnull does not exist' "$out" || fail "stderr /dev/null: nothing in syslog"
grep -q '^<28>' "$out" || fail "not at daemon.warning (<28>)"
grep -q '/nonexistent/closed does not exist' "$out" || fail "stderr closed: nothing in syslog"
! grep -q '/nonexistent/pipe' "$out" || fail "stderr a pipe: went to syslog too"
! grep -q '/nonexistent/file' "$out" || fail "stderr a file: went to syslog too"
grep -q '^kvm-launch: warning: policy file /nonexistent/pipe does not exist' "$TMP/pipe.txt" || fail "nothing in the pipe"
grep -q '^kvm-launch: warning: policy file /nonexistent/file does not exist' "$TMP/file.txt" || fail "nothing in the file"
echo "PASS: syslog when stderr is closed or /dev/null, stderr otherwise"
