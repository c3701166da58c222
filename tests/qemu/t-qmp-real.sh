#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The QMP client (qmp/) against the real QEMU, through tests/helpers/qmp-cli:
# greeting and capabilities, small and large replies, error classes, a wire
# trace, two monitors at once (a busy one times out, events reach the other),
# an already-connected socket (-qmp stdio), and quit.
. "$(dirname "$0")/../functions.sh"
requires "$QEMU"
CLI=$KL_TOP/tests/helpers/qmp-cli
[ -x "$CLI" ] || fail "$CLI is missing: run make test-programs"
kl_tmpdir

# cli NAME ARGS...: runs qmp-cli; stdout in $TMP/NAME.out, stderr in $TMP/NAME.err, exit code in $rc.
cli() {
	name=$1
	shift
	rc=0
	"$CLI" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err" || rc=$?
	echo "qmp-cli $*: exit $rc: $(head -c 300 "$TMP/$name.out") $(head -c 300 "$TMP/$name.err")"
}
expect_rc() { [ "$rc" = "$1" ] || fail "expected exit $1, got $rc: $(cat "$TMP/$name.err")"; }
has() { grep -qF -- "$2" "$TMP/$1" || fail "$1 lacks '$2': $(head -c 500 "$TMP/$1")"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

M1=$TMP/m1.sock
M2=$TMP/m2.sock
"$QEMU" -machine none -nodefaults -display none -S \
	-chardev socket,id=m1,path="$M1",server=on,wait=off -mon chardev=m1,mode=control \
	-chardev socket,id=m2,path="$M2",server=on,wait=off -mon chardev=m2,mode=control \
	2> "$TMP/qemu.err" &
qpid=$!
cleanup_fn "kill $qpid 2>/dev/null; wait $qpid 2>/dev/null"

# query-status (waiting for QEMU to create the socket)
cli status -w -t 10000 "$M1" query-status
expect_rc 0
has status.out '"status":"prelaunch"'
has status.out '"running":false'

# query-version matches the binary
cli version "$M1" query-version
expect_rc 0
set -- $("$QEMU" --version | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\)\.\([0-9]*\).*/\1 \2 \3/p')
[ $# = 3 ] || fail "cannot read the version of $QEMU"
has version.out "\"major\":$1"
has version.out "\"minor\":$2"
has version.out "\"micro\":$3"

# query-qmp-schema: a large reply (about 190 KB with QEMU 7.2)
cli schema "$M1" query-qmp-schema
expect_rc 0
size=$(wc -c < "$TMP/schema.out")
echo "schema: $size bytes"
[ "$size" -gt 100000 ] || fail "query-qmp-schema returned only $size bytes"
has schema.out '"name":"query-status"'
has schema.out '"name":"blockdev-reopen"'
if command -v python3 > /dev/null; then
	python3 -c 'import json, sys; s = json.load(sys.stdin); assert isinstance(s, list) and len(s) > 100' \
		< "$TMP/schema.out" || fail "query-qmp-schema output is not a JSON array"
fi

# QMP errors: exit 1 with "CLASS: desc"
cli nocmd "$M1" no-such-command
expect_rc 1
[ "$(cat "$TMP/nocmd.err")" = "CommandNotFound: The command no-such-command has not been found" ] ||
	fail "unexpected error message: $(cat "$TMP/nocmd.err")"
cli badarg "$M1" query-status '{"bogus":1}'
expect_rc 1
has badarg.err "GenericError: "
has badarg.err "bogus"
cli devdel "$M1" device_del '{"id":"nodev"}'
expect_rc 1
has devdel.err "DeviceNotFound: "
# arguments that are not an object never reach QEMU
cli notobj "$M1" query-status '[1]'
expect_rc 2

# the wire trace covers the greeting and the capabilities exchange
cli trace -T "$M1" query-status
expect_rc 0
has trace.err '<- {"QMP":{"version":{"qemu":'
has trace.err '-> {"execute":"qmp_capabilities","id":"kl-1"}'
has trace.err '<- {"return":{},"id":"kl-1"}'
has trace.err '-> {"execute":"query-status","id":"kl-2"}'
has trace.err '<- {"return":{"status":"prelaunch"'

# two monitors at once: hold the first and listen for events there ...
"$CLI" -E 15000 -n 2 "$M1" query-status > "$TMP/hold.out" 2> "$TMP/hold.err" &
hold=$!
cleanup_fn "kill $hold 2>/dev/null"
i=0
until [ -s "$TMP/hold.out" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "the holding client did not connect: $(cat "$TMP/hold.err")"
	sleep 0.1
done
# ... a second client of the busy monitor gets no greeting: timeout, on time
t0=$(ms)
cli busy -t 500 "$M1" query-status
dt=$(( $(ms) - t0 ))
expect_rc 2
has busy.err "no greeting within 500 ms"
[ "$dt" -ge 500 ] && [ "$dt" -lt 3000 ] || fail "busy monitor: gave up after $dt ms, expected 500"
# ... while the second monitor works, and its commands raise events on the first
cli cont "$M2" cont
expect_rc 0
cli stop "$M2" stop
expect_rc 0
wait $hold || fail "the holding client failed: $(cat "$TMP/hold.err")"
cat "$TMP/hold.out"
has hold.out '"event":"RESUME"'
has hold.out '"event":"STOP"'
# the first monitor is free again
cli again "$M1" query-status
expect_rc 0
has again.out '"status":"paused"'

# an already-connected socket: QEMU's -qmp stdio over a socketpair (qmp_connect_fd)
cli stdio -t 10000 --stdio query-status -- "$QEMU" -machine none -nodefaults -display none -S -qmp stdio
expect_rc 0
has stdio.out '"status":"prelaunch"'

# quit: the reply, then QEMU exits and its sockets are gone
cli quit "$M2" quit
expect_rc 0
[ "$(cat "$TMP/quit.out")" = "{}" ] || fail "quit returned $(cat "$TMP/quit.out")"
i=0
while kill -0 $qpid 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "QEMU did not exit after quit"
	sleep 0.1
done
wait $qpid
qrc=$?
[ $qrc = 0 ] || fail "QEMU exited with $qrc: $(cat "$TMP/qemu.err")"
cli gone -t 1000 "$M1" query-status
expect_rc 2
echo "PASS: $0"
