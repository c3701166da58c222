#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Issue 17, attack 1 (driving root's VMs) and the operator's view.  Root starts a VM through the package's layout;
# kl-attacker (group kvm) tries QEMU's monitor sockets (refused: kvm-launch bound them 0600 in a directory only root
# writes), cannot create anything in root's directory, still gets --status as a table, --json and --prometheus with
# live figures (through the agent's read-only view socket), and is refused --set with the reason; root's --set and
# the policy's throttle reach the real QEMU.  A client that connects to the view and never reads does not stall
# the agent, and the agent does not wake up periodically.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
. "$KL_TOP/tests/security/vm.sh"
requires "$QEMU" truncate perl
sec_setup
sec_vm_helpers
sec_vm_policy
echo "state tree before any VM:"
sec_tree

sec_vm_start s1
echo "state tree while s1 runs (QEMU pid $VMPID):"
sec_tree
mode() { stat -c '%a %U:%G %F' "$1"; }
expect_mode() { [ "$(mode "$1")" = "$2" ] || fail "$1: $(mode "$1"), want $2"; }
expect_mode "$SEC_STATE" "755 root:root directory"
expect_mode "$SEC_ROOTDIR" "2750 root:kvm directory"
expect_mode "$SEC_STATE/users" "3770 root:kvm directory"
expect_mode "$SEC_ROOTDIR/s1.json" "640 root:kvm regular file"
expect_mode "$SEC_ROOTDIR/s1.agent.sock" "600 root:kvm socket"
expect_mode "$SEC_ROOTDIR/s1.qmp.sock" "600 root:kvm socket"
expect_mode "$SEC_ROOTDIR/s1.view.sock" "660 root:kvm socket"
expect_mode "$SEC_ROOTDIR/s1.agent.log" "600 root:kvm regular file"
expect_mode "$SEC_ROOTDIR/.lock" "600 root:kvm regular empty file"
# QEMU got its monitors as fds, not paths it would bind itself.
tr '\0' '\n' < "/proc/$VMPID/cmdline" | grep -q '^socket,id=kvmlaunch-query,fd=[0-9]*,server=on,wait=off$' ||
	fail "QEMU's query monitor is not an fd: $(tr '\0' ' ' < "/proc/$VMPID/cmdline")"
# The policy's throttle, applied by root's agent to the real QEMU.
[ "$(own_qmp s1 query-block | "$H/json-get" - 0.inserted.iops)" = 77 ] || fail "the agent did not apply iops=77"

# ---- attack: connect to QEMU's monitors ----
for s in agent qmp; do
	if as_attacker "$H/state-qmp" "$SEC_ROOTDIR/s1.$s.sock" query-status > "$SEC_TMP/att.$s" 2>&1; then
		fail "kl-attacker drove root's QEMU over s1.$s.sock: $(cat "$SEC_TMP/att.$s")"
	fi
	grep -q "Permission denied" "$SEC_TMP/att.$s" || fail "s1.$s.sock: not refused for permission: $(cat "$SEC_TMP/att.$s")"
	echo "attack: connect to s1.$s.sock as kl-attacker: refused ($(cat "$SEC_TMP/att.$s"))"
done
for f in x.json s1.qmp.sock.new .lock2; do
	as_attacker touch "$SEC_ROOTDIR/$f" 2>/dev/null && fail "kl-attacker created $SEC_ROOTDIR/$f"
done
as_attacker perl -e 'open(my $f, "<", $ARGV[0]) and exit 0; exit 1' "$SEC_ROOTDIR/.lock" &&
	fail "kl-attacker can open root's .lock"
echo "attack: create files in root's directory, open its .lock: refused"

# ---- the operator's view, as kl-attacker ----
as_attacker "$SEC_KL" --status > "$SEC_TMP/st.txt" 2> "$SEC_TMP/st.err" || { cat "$SEC_TMP/st.err"; fail "--status as kl-attacker"; }
cat "$SEC_TMP/st.txt"
grep -q "^VM s1: pid $VMPID, running" "$SEC_TMP/st.txt" || fail "--status as kl-attacker: s1 not running"
as_attacker "$SEC_KL" --status --json > "$SEC_TMP/st.json" || fail "--status --json as kl-attacker"
J() { "$H/json-get" "$SEC_TMP/st.json" "vms.[name=s1].$1"; }
[ "$(J state)" = running ] && [ "$(J responsive)" = true ] || fail "--json: s1 is $(J state), responsive $(J responsive)"
[ "$(J guest_status)" = prelaunch ] || fail "--json: guest status $(J guest_status) (live from QEMU: prelaunch)"
[ "$(J disks.0.cache_source)" = qemu ] || fail "--json: the cache mode did not come from QEMU"
[ "$(J disks.0.throttle.iops)" = 77 ] || fail "--json: live throttle $(J disks.0.throttle.iops)"
[ -n "$(J disks.0.stats.rd_operations)" ] || fail "--json: no live disk statistics"
as_attacker "$SEC_KL" --status --prometheus > "$SEC_TMP/st.prom" || fail "--status --prometheus as kl-attacker"
grep -q '^kvm_launch_vm_responsive{.*vm="s1".*} 1$' "$SEC_TMP/st.prom" || { cat "$SEC_TMP/st.prom"; fail "--prometheus: s1 not responsive"; }
grep -q '^kvm_launch_disk_read_ops_total{.*vm="s1".*} [0-9]' "$SEC_TMP/st.prom" || fail "--prometheus: no live read ops"
echo "kl-attacker's --status: table, --json and --prometheus show s1 running with live figures"

# ---- --set: refused for kl-attacker, with the reason; root's goes through ----
as_attacker "$SEC_KL" --set s1 vd0 iops=5 > "$SEC_TMP/set.out" 2>&1 && fail "--set as kl-attacker succeeded"
cat "$SEC_TMP/set.out"
grep -q "needs root or uid 0, the user its QEMU runs as" "$SEC_TMP/set.out" || fail "--set refusal does not say why"
[ "$(own_qmp s1 query-block | "$H/json-get" - 0.inserted.iops)" = 77 ] || fail "kl-attacker's --set changed the throttle"
"$SEC_KL" --set s1 vd0 iops=88 || fail "root's --set"
[ "$(own_qmp s1 query-block | "$H/json-get" - 0.inserted.iops)" = 88 ] || fail "root's --set did not reach QEMU"
echo "--set: kl-attacker refused with the reason; root's iops=88 reached the real QEMU"

# ---- a view client that never reads, and many at once ----
APID=$("$H/state-json" "$SEC_ROOTDIR/s1.json" agent.pid)
as_attacker perl -MSocket -e 'my @s; for (1..20) { socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die; connect($s, sockaddr_un($ARGV[0])) or last; push @s, $s } sleep 8' \
	"$SEC_ROOTDIR/s1.view.sock" 9>&- &
hog=$!
sleep 1
sec_timed 5 "$SEC_KL" --status s1 > "$SEC_TMP/st2.txt" || fail "--status while a client hogs the view"
grep -q "^VM s1: pid $VMPID, running" "$SEC_TMP/st2.txt" || fail "--status (root) while the view is hogged: $(cat "$SEC_TMP/st2.txt")"
sec_timed 10 setpriv --reuid="$ATTACKER" --regid="$ATTACKER" --init-groups "$SEC_KL" --status s1 > "$SEC_TMP/st3.txt" ||
	fail "kl-attacker's --status while the view is hogged"
cat "$SEC_TMP/st3.txt" | head -n 2
wait $hog
kill -0 "$APID" || fail "the agent died"
# No periodic wake-ups: an idle agent's context switches stay put.
cs() { awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$APID/status"; }
c0=$(cs); sleep 3; c1=$(cs)
echo "agent $APID: voluntary context switches $c0 -> $c1 in 3 s idle"
[ "$c0" = "$c1" ] || fail "the agent woke up while idle ($c0 -> $c1)"

sec_vm_stop "$VMPID"
wait_for 10 sh -c "! test -e '$SEC_ROOTDIR/s1.json'" || fail "s1's entry left"
for s in agent qmp view; do [ ! -e "$SEC_ROOTDIR/s1.$s.sock" ] || fail "s1.$s.sock left"; done
echo "state tree after s1 exited:"
sec_tree
echo "sockets: ok"
