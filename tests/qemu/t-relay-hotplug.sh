#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Disks added while the VM runs get the policy through the monitor relay,
# checked in QEMU itself: a hot-plugged preallocated raw file (blockdev-add
# storage + format, device_add) and a qcow2 snapshot overlay (blockdev-add +
# transaction blockdev-snapshot) run with the same aio/cache, rule and
# reasons as `kvm-launch --dry-run` gives the same node on a command line
# (query-named-block-nodes cache flags, O_DIRECT in /proc/PID/fdinfo, the
# io_uring rings' completions growing, or a libaio mapping, with the guest
# device's own I/O: HMP `qemu-io -d ID`; a node-name qemu-io is refused by
# the device's permissions), and so does a blockdev-mirror
# target; blockdev-reopen keeps them;
# --status lists the runtime disks with their origin; blockdev-del removes
# them.  A decision child that crashes or hangs costs one rewrite: the
# original bytes go to QEMU, the relay lives on.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
requires qemu-img qemu-io fallocate
fallocate -l 64M "$TMP/pre.raw"
fallocate -l 64M "$TMP/pre2.raw"
qemu-img create -q -f qcow2 -b "$TMP/pre.raw" -F raw "$TMP/ov.qcow2"

# What the command line would get: kvm-launch --dry-run --json on this node.
expect() { # NODE-JSON -> "aio cache rule"
	"$KL" --config "$TMP/p.conf" --qemu "$QEMU" --dry-run --json -- -blockdev "$1" |
		python3 -c 'import json,sys; d=json.load(sys.stdin)["disks"][0]; print(d["aio"], d["cache"], d["rule"])'
}
# The state entry's runtime disk with this node: "aio cache rule origin id".
entry() {
	python3 - "$ST/hp.json" "$1" <<'EOF'
import json, sys
for d in json.load(open(sys.argv[1]))["disks"]:
    if d.get("node") == sys.argv[2]:
        print(d["aio"], d["cache"], d["rule"], d.get("origin"), d.get("id"), d.get("previous_node"))
        break
else:
    print("absent")
EOF
}
# Cache flags of a node in QEMU: "direct no-flush".
flags() { # SESSION-OUTPUT NODE
	python3 - "$1" "$2" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("reply ") and '"node-name"' in line:
        r = json.loads(line[6:]).get("return")
        if isinstance(r, list):
            for n in r:
                if n.get("node-name") == sys.argv[2]:
                    print(str(n["cache"]["direct"]).lower(), str(n["cache"]["no-flush"]).lower())
EOF
}
# hmp_ok SESSION-OUTPUT ID: the HMP command with that id succeeded: an
# empty "return" (HMP errors come back as its text; qemu-io's own report
# goes to QEMU's stdout, so the data is checked in the images afterwards).
hmp_ok() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("reply ") and '"id": "%s"' % sys.argv[2] in line:
        r = json.loads(line[6:]).get("return")
        sys.exit(0 if r == "" else 1)
sys.exit(1)
EOF
}
# uring_cq PID: completions posted on all of QEMU's io_uring rings so far
# (the CqTail of each anon_inode:[io_uring] fd; 0 with no ring yet).
uring_cq() {
	local fd n=0 t
	for fd in $(find "/proc/$1/fd" -lname 'anon_inode:\[io_uring\]' 2>/dev/null); do
		t=$(awk '/^CqTail:/ {print $2}' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null)
		n=$((n + ${t:-0}))
	done
	echo "$n"
}
want_direct() { case $1 in none|directsync) echo true ;; *) echo false ;; esac; }

start hp -qmp "unix:$TMP/hp.sock,server=on,wait=off"
cq0=$(uring_cq "$QPID")
read -r e_aio e_cache e_rule <<< "$(expect "{\"driver\":\"file\",\"filename\":\"$TMP/pre.raw\",\"node-name\":\"s1\"}")"
read -r o_aio o_cache o_rule <<< "$(expect "{\"driver\":\"file\",\"filename\":\"$TMP/ov.qcow2\",\"node-name\":\"s2\"}")"
echo "command line would give: pre.raw aio=$e_aio cache=$e_cache ($e_rule); ov.qcow2 aio=$o_aio cache=$o_cache ($o_rule)"
[ "$e_cache" = none ] || echo "note: the policy gives pre.raw cache=$e_cache here"

session "$TMP/hp.sock" > "$TMP/hp.s1" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"blockdev-add","arguments":{"driver":"file","filename":"$TMP/pre.raw","node-name":"s1","auto-read-only":true,"discard":"unmap"},"id":"a1"}
{"execute":"blockdev-add","arguments":{"node-name":"f1","read-only":false,"driver":"raw","file":"s1"},"id":"a2"}
{"execute":"device_add","arguments":{"driver":"scsi-hd","bus":"scsi0.0","drive":"f1","id":"sd1"},"id":"d1"}
{"execute":"human-monitor-command","arguments":{"command-line":"qemu-io -d sd1 \\"write -P 0x5a 0 1M\\""},"id":"io1"}
{"execute":"query-named-block-nodes","arguments":{"flat":true},"id":"n1"}
EOF
for id in a1 a2 d1 io1 n1; do grep -q "\"id\": \"$id\"" "$TMP/hp.s1" && ! grep -q "\"error\".*\"id\": \"$id\"" "$TMP/hp.s1" ||
	fail "hot-plug: command $id failed: $(cat "$TMP/hp.s1")"; done
hmp_ok "$TMP/hp.s1" io1 || fail "hot-plug: qemu-io through sd1 failed: $(grep '"io1"' "$TMP/hp.s1")"
read -r g_aio g_cache g_rule g_origin g_id _ <<< "$(entry f1)"
echo "state: f1 aio=$g_aio cache=$g_cache rule=$g_rule origin=$g_origin id=$g_id"
[ "$g_aio $g_cache $g_rule" = "$e_aio $e_cache $e_rule" ] || fail "hot-plug decided $g_aio $g_cache $g_rule, the command line $e_aio $e_cache $e_rule"
[ "$g_origin $g_id" = "hot-plug sd1" ] || fail "hot-plug: origin/id $g_origin $g_id"
wd=$(want_direct "$e_cache")
[ "$(flags "$TMP/hp.s1" s1)" = "$wd false" ] || fail "s1 cache flags in QEMU: $(flags "$TMP/hp.s1" s1), want $wd false"
[ "$(flags "$TMP/hp.s1" f1)" = "$wd false" ] || fail "f1 (format) cache flags: $(flags "$TMP/hp.s1" f1), want $wd false"
[ "$(direct_bit "$QPID" "$TMP/pre.raw")" = "$([ "$wd" = true ] && echo 1 || echo 0)" ] || fail "pre.raw O_DIRECT bit $(direct_bit "$QPID" "$TMP/pre.raw")"
cq1=$(uring_cq "$QPID")
libaio=$(grep -c ' /\[aio\]' "/proc/$QPID/maps" || true)
case $e_aio in
io_uring) [ "$cq1" -gt "$cq0" ] || fail "no io_uring completions in QEMU for the write (CqTail $cq0 -> $cq1)" ;;
native) [ "$libaio" -gt 0 ] || fail "no libaio context in QEMU after I/O" ;;
esac
echo "hot-plug ok: O_DIRECT $(direct_bit "$QPID" "$TMP/pre.raw"), io_uring completions $cq0 -> $cq1, libaio maps $libaio"
# --set works on a disk made at run time (it finds it through the entry).
"$KL" --config "$TMP/p.conf" --set hp sd1 iops=100 > "$TMP/hp.set" 2>&1 || fail "--set on the hot-plugged disk: $(cat "$TMP/hp.set")"
"$KL" --config "$TMP/p.conf" --status hp | grep -q "sd1 .*iops=100" || fail "--status does not show the throttle --set gave sd1"
echo "--set ok: $(cat "$TMP/hp.set")"

# blockdev-reopen as libvirt sends it (the format node with the XML's
# cache): kvm-launch's flags stay.
session "$TMP/hp.sock" > "$TMP/hp.s2" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"blockdev-reopen","arguments":{"options":[{"node-name":"f1","read-only":false,"driver":"raw","file":"s1","cache":{"direct":false,"no-flush":false}}]},"id":"r1"}
{"execute":"query-named-block-nodes","arguments":{"flat":true},"id":"n2"}
EOF
grep -q '{"return": {}, "id": "r1"}' "$TMP/hp.s2" || fail "blockdev-reopen failed: $(cat "$TMP/hp.s2")"
[ "$(flags "$TMP/hp.s2" f1)" = "$wd false" ] || fail "after reopen f1 cache flags $(flags "$TMP/hp.s2" f1), want $wd false"
echo "reopen ok: f1 keeps direct=$wd"

# A snapshot overlay: judged as the qcow2 file it is.
session "$TMP/hp.sock" > "$TMP/hp.s3" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"blockdev-add","arguments":{"driver":"file","filename":"$TMP/ov.qcow2","node-name":"s2","auto-read-only":true,"discard":"unmap"},"id":"b1"}
{"execute":"blockdev-add","arguments":{"node-name":"f2","read-only":false,"driver":"qcow2","file":"s2","backing":null},"id":"b2"}
{"execute":"transaction","arguments":{"actions":[{"type":"blockdev-snapshot","data":{"node":"f1","overlay":"f2"}}]},"id":"t1"}
{"execute":"human-monitor-command","arguments":{"command-line":"qemu-io -d sd1 \\"write -P 0x33 1M 1M\\""},"id":"io2"}
{"execute":"query-named-block-nodes","arguments":{"flat":true},"id":"n3"}
EOF
for id in b1 b2 t1 io2; do ! grep -q "\"error\".*\"id\": \"$id\"" "$TMP/hp.s3" || fail "snapshot: $id failed: $(cat "$TMP/hp.s3")"; done
hmp_ok "$TMP/hp.s3" io2 || fail "snapshot: qemu-io through sd1 failed: $(grep '"io2"' "$TMP/hp.s3")"
read -r s_aio s_cache s_rule s_origin s_id s_prev <<< "$(entry f2)"
echo "state: f2 aio=$s_aio cache=$s_cache rule=$s_rule origin=$s_origin id=$s_id previous=$s_prev"
[ "$s_aio $s_cache $s_rule" = "$o_aio $o_cache $o_rule" ] || fail "overlay decided $s_aio $s_cache $s_rule, the command line $o_aio $o_cache $o_rule"
[ "$s_origin $s_id $s_prev" = "snapshot sd1 f1" ] || fail "overlay entry: $s_origin $s_id $s_prev"
[ "$(entry f1)" = absent ] || fail "the covered node still has its own entry"
owd=$(want_direct "$o_cache")
[ "$(flags "$TMP/hp.s3" s2)" = "$owd false" ] || fail "s2 cache flags $(flags "$TMP/hp.s3" s2), want $owd false"
[ "$(direct_bit "$QPID" "$TMP/ov.qcow2")" = "$([ "$owd" = true ] && echo 1 || echo 0)" ] || fail "ov.qcow2 O_DIRECT bit"
echo "snapshot ok: overlay direct=$owd"

"$KL" --config "$TMP/p.conf" --status hp > "$TMP/hp.status" 2>&1 || fail "--status: $(cat "$TMP/hp.status")"
cat "$TMP/hp.status"
grep -q "sd1 *f2 .*$o_rule" "$TMP/hp.status" || fail "--status does not show sd1 on the overlay with its rule"
grep -q "added while running: snapshot, over f1" "$TMP/hp.status" || fail "--status does not give the origin"

# A mirror target (blockcopy, nova's volume swap): judged as the file it is; the
# pivot (job-complete) makes it the disk's active layer.
fallocate -l 64M "$TMP/copy.raw"
session "$TMP/hp.sock" > "$TMP/hp.s5" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"blockdev-add","arguments":{"driver":"file","filename":"$TMP/copy.raw","node-name":"s3"},"id":"m1"}
{"execute":"blockdev-add","arguments":{"node-name":"f3","driver":"raw","file":"s3"},"id":"m2"}
{"execute":"blockdev-mirror","arguments":{"job-id":"cp","device":"f2","target":"f3","sync":"full"},"id":"m3"}
@wait-event BLOCK_JOB_READY 30
{"execute":"query-named-block-nodes","arguments":{"flat":true},"id":"n5"}
{"execute":"job-complete","arguments":{"id":"cp"},"id":"m4"}
@wait-event BLOCK_JOB_COMPLETED 30
EOF
for id in m1 m2 m3 m4; do ! grep -q "\"error\".*\"id\": \"$id\"" "$TMP/hp.s5" || fail "mirror: $id failed: $(cat "$TMP/hp.s5")"; done
# The pivot (job-complete) made the copy sd1's active layer.
read -r m_aio m_cache m_rule m_origin m_id m_prev <<< "$(entry f3)"
echo "state: f3 aio=$m_aio cache=$m_cache rule=$m_rule origin=$m_origin id=$m_id previous=$m_prev"
[ "$m_aio $m_cache $m_rule" = "$e_aio $e_cache $e_rule" ] || fail "mirror target decided $m_aio $m_cache $m_rule, want $e_aio $e_cache $e_rule"
[ "$m_origin $m_id $m_prev" = "mirror sd1 f2" ] || fail "mirror target entry: $m_origin $m_id $m_prev"
[ "$(entry f2)" = absent ] || fail "after the pivot the source still has its own entry"
[ "$(flags "$TMP/hp.s5" s3)" = "$wd false" ] || fail "s3 cache flags $(flags "$TMP/hp.s5" s3)"
echo "mirror ok: target direct=$wd"

# Detach: device_del, then blockdev-del of the active layer: the entry goes.
session "$TMP/hp.sock" > "$TMP/hp.s4" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"device_del","arguments":{"id":"sd1"},"id":"x1"}
@wait-event DEVICE_DELETED 10
{"execute":"blockdev-del","arguments":{"node-name":"f3"},"id":"x2"}
EOF
grep -q '{"return": {}, "id": "x2"}' "$TMP/hp.s4" || fail "blockdev-del failed: $(cat "$TMP/hp.s4")"
[ "$(entry f3)" = absent ] || fail "detached disk still in the state entry"
echo "detach ok"

# A decision child that crashes, then one that hangs: the original goes through.
quit_via "$TMP/hp.sock"
wait_for 10 gone "$QPID" || fail "hp: QEMU did not quit"
# The writes landed where the guest's device pointed: 0x5a in the raw file
# (before the snapshot), 0x33 in the overlay (after it).
qemu-io -f raw -r -c "read -P 0x5a 0 1M" -c "read -P 0 1M 1M" "$TMP/pre.raw" > "$TMP/hp.v1" 2>&1
qemu-io -f qcow2 -r -c "read -P 0x5a 0 1M" -c "read -P 0x33 1M 1M" "$TMP/ov.qcow2" > "$TMP/hp.v2" 2>&1
for v in hp.v1 hp.v2; do
	[ "$(grep -c '^read 1048576/1048576 bytes' "$TMP/$v")" = 2 ] && ! grep -q 'Pattern verification failed' "$TMP/$v" ||
		fail "the written data is not in the images ($v): $(cat "$TMP/$v")"
done
echo "data ok: pre.raw holds 0x5a at 0, ov.qcow2 holds 0x33 at 1M over it"
for mode in crash hang; do
	KL_TEST_RELAY_HOOK=$mode start "i$mode" -qmp "unix:$TMP/i$mode.sock,server=on,wait=off"
	t0=$(date +%s%N)
	session "$TMP/i$mode.sock" > "$TMP/i$mode.s" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"blockdev-add","arguments":{"driver":"file","filename":"$TMP/pre2.raw","node-name":"s9"},"id":"a9"}
{"execute":"query-named-block-nodes","arguments":{"flat":true},"id":"n9"}
{"execute":"query-status","id":"q9"}
EOF
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	grep -q '{"return": {}, "id": "a9"}' "$TMP/i$mode.s" || fail "$mode: blockdev-add failed: $(cat "$TMP/i$mode.s")"
	[ "$(flags "$TMP/i$mode.s" s9)" = "false false" ] || fail "$mode: the node was changed: $(flags "$TMP/i$mode.s" s9)"
	grep -q '"id": "q9"' "$TMP/i$mode.s" || fail "$mode: the session did not go on"
	grep -q "blockdev-add s9: .*forwarded as sent" "$ST/i$mode.relay.log" || fail "$mode: no log line: $(cat "$ST/i$mode.relay.log")"
	grep "blockdev-add s9" "$ST/i$mode.relay.log"
	[ "$mode" = crash ] || [ "$ms" -lt 6000 ] || fail "hang: the session took $ms ms"
	echo "$mode: original forwarded, session went on ($ms ms)"
	[ -n "$(relay_pids "i$mode")" ] || fail "$mode: the relay died"
	[ -z "$(relay_children "i$mode")" ] || fail "$mode: the relay left a child"
done
echo "all relay hot-plug checks passed"
