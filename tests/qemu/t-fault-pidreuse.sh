#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# PID reuse: a state entry whose PID now belongs to an unrelated live process
# (its /proc/PID/stat start time differs from the recorded one) is not shown
# running by --status, --set refuses it, and the next launch into the
# directory removes it, together with the socket and log it names inside the
# state directory, but never files it names elsewhere (a crafted entry must
# not make kvm-launch delete /etc/passwd), nor the unrelated process.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../guest/lib.sh"
requires "$QEMU" "$KL" truncate perl
H=$KL_TOP/tests/helpers
for h in state-json state-qmp; do
	[ -x "$H/$h" ] || fail "$H/$h is missing: run make test-programs"
done
kl_tmpdir
ST=$TMP/state
mkdir -m 0750 "$ST"
OUT=$TMP/outside
mkdir "$OUT"
truncate -s 64M "$TMP/disk.img"
: > "$TMP/policy.conf"
chmod 0644 "$TMP/policy.conf"
K() { "$KL" --config "$TMP/policy.conf" --state-dir "$ST" "$@"; }
mksock() { perl -MSocket -e 'socket(S, PF_UNIX, SOCK_STREAM, 0) or die; bind(S, sockaddr_un($ARGV[0])) or die "$!"' "$1"; }

# An unrelated long-lived process, and its real start time.
sleep 600 &
VICTIM=$!
cleanup_fn "kill $VICTIM 2>/dev/null"
ticks=$(sed 's/^.*) //' "/proc/$VICTIM/stat" | cut -d' ' -f20)
[ -n "$ticks" ] || fail "no start time for $VICTIM"
wrong=$((ticks + 12345))

mksock "$ST/ghost.agent.sock"
mksock "$ST/ghost.qmp.sock"
mksock "$OUT/victim.sock"
echo keep > "$OUT/victim.log"
echo keep > "$OUT/victim.json"
cat > "$ST/ghost.json" <<EOT
{"version":1,"name":"ghost","stem":"ghost","pid":$VICTIM,"start_ticks":$wrong,"started":1,"running":true,
 "qemu":"$QEMU","argv_original":[],"argv":[],"state_dir":"$ST",
 "agent_socket":"$ST/ghost.agent.sock","query_socket":"$ST/ghost.qmp.sock","agent_log":"$ST/ghost.agent.log",
 "disks":[{"id":"vd0","node":"f0","path":"$TMP/disk.img","driver":"file","aio":"native","cache":"none"}],
 "agent":{"pid":$VICTIM,"start_ticks":$wrong,"state":"watching","applied":[],"events":[]},"changes":[]}
EOT
echo log > "$ST/ghost.agent.log"
# A second crafted entry naming files outside the directory.
cat > "$ST/evil.json" <<EOT
{"version":1,"name":"evil","pid":$VICTIM,"start_ticks":$wrong,"running":true,
 "agent_socket":"$OUT/victim.sock","query_socket":"/etc/passwd","agent_log":"$OUT/victim.log",
 "state_dir":"$OUT","disks":[],"agent":{"pid":1,"start_ticks":1}}
EOT
# A symlink named like an entry, pointing outside.
ln -s "$OUT/victim.json" "$ST/link.json"
chmod 0640 "$ST"/*.json

# --status: not running.
K --status > "$TMP/status" 2>&1
cat "$TMP/status"
grep -q "^VM ghost: pid $VICTIM, running" "$TMP/status" && fail "--status shows a reused PID running"
grep -q "^VM evil: pid $VICTIM, running" "$TMP/status" && fail "--status shows evil running"
K --status --json > "$TMP/s.json" 2>/dev/null
n=$("$H/state-json" "$TMP/s.json" vms.length) || fail "--status --json has no vms: $(cat "$TMP/s.json")"
# Both crafted entries are listed (not running): an empty answer proves nothing.
[ "$n" -ge 2 ] || fail "--status --json lists $n VMs, want ghost and evil: $(cat "$TMP/s.json")"
for nm in ghost evil; do
	"$JSON_GET" "$TMP/s.json" "vms.[name=$nm]" >/dev/null || fail "--status --json does not list $nm"
done
for i in $(seq 0 $((n - 1))); do
	[ "$("$H/state-json" "$TMP/s.json" vms.$i.running)" = false ] || fail "--status --json: vms.$i running"
done
# --set refuses a VM that is not running.
K --set ghost vd0 iops=100 > "$TMP/set" 2>&1 && fail "--set accepted a dead VM"
cat "$TMP/set"
kill -0 "$VICTIM" || fail "the unrelated process was killed"

# The next launch cleans: the ghost's files in the directory, nothing outside.
QPID=
cleanup_fn 'kl_kill_if "$QPID" "$QEMU"; kl_kill_if "$QPID" "$KL"'
"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- -machine pc -accel tcg -nodefaults \
	-display none -S -name real -qmp "unix:$TMP/real.sock,server=on,wait=off" \
	-drive "file=$TMP/disk.img,format=raw,if=virtio,file.locking=off" > "$TMP/real.log" 2>&1 &
QPID=$!
real_watching() { [ "$(K --status --json real | "$JSON_GET" - vms.0.agent.state)" = watching ]; }
wait_for 60 real_watching || { cat "$TMP/real.log"; K --status --json real; fail "real: no live agent"; }
ls -la "$ST"
for f in ghost.json ghost.agent.sock ghost.qmp.sock ghost.agent.log evil.json; do
	[ ! -e "$ST/$f" ] || fail "stale $f not removed"
done
[ -S "$OUT/victim.sock" ] || fail "a socket outside the state directory was removed"
[ "$(cat "$OUT/victim.log")" = keep ] || fail "a log outside the state directory was touched"
[ "$(cat "$OUT/victim.json")" = keep ] || fail "a symlink target outside was touched"
[ -f /etc/passwd ] || fail "/etc/passwd is gone"
kill -0 "$VICTIM" || fail "the unrelated process was killed"
K --status | grep -q "^VM real: pid $QPID, running" || fail "real: not shown running"
kill -9 "$QPID"
echo "PID reuse: not running, refused, cleaned inside only"
