#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Issue 17, attacks 3, 5 and 7 and the flock: kl-attacker (group kvm) fills the directories it may write (its own
# users/UID, and users/ itself) with FIFOs named like entries and lock files and with 32 MiB entries, holds a flock
# on root's state directory and on root's entry, tries to bind or block root's socket names, and squats the
# users/UID of another QEMU user.  Root's launches record their state and apply the policy's throttle, --status
# (table, --json, --prometheus) and --set finish within bounds with bounded memory, kl-attacker's own --status
# too; the squatted user's VM still starts, with one warning naming the squatter.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
. "$KL_TOP/tests/security/vm.sh"
requires "$QEMU" truncate perl mkfifo flock
sec_setup
sec_vm_helpers
sec_vm_policy
AD=$SEC_STATE/users/$ATTACKER_UID
as_attacker mkdir -m 2750 "$AD" || fail "kl-attacker cannot make its users/UID"

# ---- FIFOs and 32 MiB files wherever kl-attacker can write ----
as_attacker sh -c "cd '$AD' && mkfifo zz.json a.json .lock b.agent.log && mkfifo '$SEC_STATE/users/4242' &&
	for i in 1 2 3; do head -c 33554432 /dev/zero | tr '\\0' ' ' > big\$i.json; done &&
	{ printf '{\"name\":\"v1\",\"x\":\"'; head -c 33554432 /dev/zero | tr '\\0' a; printf '\"}'; } > big4.json" ||
	fail "kl-attacker could not plant its files"
ls -la "$AD" "$SEC_STATE/users" | sed 's/^/    /'

t0=$(date +%s%N)
sec_vm_start v1
V1=$VMPID
echo "launch of v1 (QEMU up, agent watching) took $((($(date +%s%N) - t0) / 1000000)) ms with the FIFOs and 32 MiB entries"
[ "$(own_qmp v1 query-block | "$H/json-get" - 0.inserted.iops)" = 77 ] || fail "v1: throttle not applied"
sec_timed 10 "$SEC_KL" --status > "$SEC_TMP/st.txt" || fail "--status"
[ "$TIMED_RSS" -lt 65536 ] || fail "--status used ${TIMED_RSS} KiB"
grep -q "^VM v1: pid $V1, running" "$SEC_TMP/st.txt" || fail "--status: v1 not running"
sec_timed 10 "$SEC_KL" --status --prometheus > "$SEC_TMP/st.prom" || fail "--status --prometheus"
[ "$TIMED_RSS" -lt 65536 ] || fail "--status --prometheus used ${TIMED_RSS} KiB"
sec_timed 10 "$SEC_KL" --set v1 vd0 iops=55 || fail "--set"
[ "$(own_qmp v1 query-block | "$H/json-get" - 0.inserted.iops)" = 55 ] || fail "v1: --set did not apply"
sec_timed 10 setpriv --reuid="$ATTACKER" --regid="$ATTACKER" --init-groups "$SEC_KL" --status --json > "$SEC_TMP/att.json" ||
	fail "kl-attacker's --status"
[ "$TIMED_RSS" -lt 65536 ] || fail "kl-attacker's --status used ${TIMED_RSS} KiB"
[ "$("$H/json-get" "$SEC_TMP/att.json" 'vms.[name=v1].state')" = running ] || fail "kl-attacker's --status: v1 not running"
echo "attack: FIFOs (zz.json, a.json, .lock, b.agent.log, users/4242) and four 32 MiB entries: launch, --status, --prometheus and --set within bounds"

# ---- flock on root's directory and root's entry ----
SEC_DEADLINE=60 as_attacker flock "$SEC_ROOTDIR" sleep 30 9>&- &
f1=$!
SEC_DEADLINE=60 as_attacker flock -s "$SEC_ROOTDIR/v1.json" sleep 30 9>&- &
f2=$!
# The flocks run under timeout, setpriv and flock: kill the whole trees, not just the subshells.
cleanup_fn "kill_tree $f1; kill_tree $f2"
sleep 1
t0=$(date +%s%N)
sec_vm_start v2
ms=$((($(date +%s%N) - t0) / 1000000))
echo "launch of v2 with kl-attacker holding flocks on root's directory and v1.json: ${ms} ms"
[ "$ms" -lt 20000 ] || fail "v2's launch stalled (${ms} ms)"
sec_timed 10 "$SEC_KL" --set v1 vd0 iops=66 || fail "--set under the attacker's flock"
[ "$(own_qmp v1 query-block | "$H/json-get" - 0.inserted.iops)" = 66 ] || fail "v1: --set under flock did not apply"
[ "$("$H/json-get" "$SEC_ROOTDIR/v1.json" disks.0.throttle.iops)" = 66 ] || fail "the change was not recorded in v1.json"
echo "attack: flock on root's directory and entry: no stall, state recorded"
kill_tree "$f1"; kill_tree "$f2"

# ---- socket squatting and name blocking in root's directory ----
for n in v3.agent.sock v3.qmp.sock v3.view.sock v3.json v3.agent.log; do
	as_attacker mkdir "$SEC_ROOTDIR/$n" 2>/dev/null && fail "kl-attacker made $SEC_ROOTDIR/$n"
	as_attacker perl -MSocket -e 'socket(S, PF_UNIX, SOCK_STREAM, 0) or die; bind(S, sockaddr_un($ARGV[0])) or exit 1; exit 0' \
		"$SEC_ROOTDIR/$n" && fail "kl-attacker bound $SEC_ROOTDIR/$n"
done
sec_vm_start v3
[ "$(own_qmp v3 query-block | "$H/json-get" - 0.inserted.iops)" = 77 ] || fail "v3: the agent's throttle did not reach QEMU"
grep -q "agent: disk vd0: throttle iops=77" "$SEC_ROOTDIR/v3.agent.log" || fail "v3: agent log"
echo "attack: bind or block v3's names in root's directory: refused; v3 started, recorded, throttled by root's agent"

# ---- a squatted users/UID: another QEMU user's VM starts without state, one warning ----
VICTIM=nobody
VUID=$(id -u "$VICTIM")
as_attacker mkdir -m 2750 "$SEC_STATE/users/$VUID" || fail "kl-attacker could not squat users/$VUID"
truncate -s 16M "$SEC_TMP/sq.img"
chmod 0666 "$SEC_TMP/sq.img"
(setpriv --reuid="$VICTIM" --regid=nogroup --groups="$(getent group kvm | cut -d: -f3)" --inh-caps=-all \
	env -u XDG_RUNTIME_DIR "$SEC_KL" --qemu "$QEMU" -- -machine pc -accel tcg -nodefaults -display none -S -name sq \
	-drive "file=$SEC_TMP/sq.img,format=raw,if=virtio,file.locking=off" > "$SEC_TMP/sq.log" 2>&1 &)
sqpid() { pgrep -u "$VICTIM" -f "name sq" | head -n 1; }
wait_for 30 sh -c "[ -n \"\$(pgrep -u $VICTIM -f 'name sq')\" ] && grep -q warning '$SEC_TMP/sq.log'" ||
	{ cat "$SEC_TMP/sq.log"; fail "the squatted user's VM did not start"; }
SQ=$(sqpid)
cleanup_fn "kill -9 $SQ 2>/dev/null"
sleep 1
kill -0 "$SQ" || fail "the squatted user's QEMU died"
[ "$(readlink "/proc/$SQ/exe")" = "$(readlink -f "$QEMU")" ] || fail "pid $SQ is not QEMU"
cat "$SEC_TMP/sq.log"
[ "$(grep -c '^kvm-launch: warning:' "$SEC_TMP/sq.log")" = 1 ] || fail "not exactly one warning"
grep -q "made by uid $ATTACKER_UID, not by uid $VUID" "$SEC_TMP/sq.log" || fail "the warning does not name the squatter"
kill -9 "$SQ"
echo "attack: users/$VUID squatted by uid $ATTACKER_UID: $VICTIM's VM started without state, one warning naming the squatter"

kill -0 "$V1" || fail "v1 died"
sec_vm_stop "$V1"
echo "stall: ok"
