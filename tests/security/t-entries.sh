#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Issue 17, attacks 2 and 4: entries kl-attacker (group kvm) writes in the one directory it may write, its own
# users/UID.  Spoofed entries naming root's VM and the real QEMU's PID and start time are not believed (the
# process is not the entry's owner): --set goes to the real QEMU, never to the attacker's socket.  An entry of the
# attacker's own live process with root's VM name makes --set refuse as ambiguous.  Entries naming other VMs'
# files and a root-only file, a users/UID that is a symlink to root's directory, a world-writable one, and a
# renameat2(RENAME_EXCHANGE) race between the attacker's directory and a symlink into root's: root's launches,
# --status and --set delete nothing outside root's own stale entries; other VMs' files stay.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
. "$KL_TOP/tests/security/vm.sh"
requires "$QEMU" truncate perl
sec_setup
sec_vm_helpers
sec_vm_policy

sec_vm_start v1
V1=$VMPID
sec_vm_start v2
V2=$VMPID
ticks() { sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f20; }
AD=$SEC_STATE/users/$ATTACKER_UID
as_attacker mkdir -m 2750 "$AD" || fail "kl-attacker cannot make its users/UID"
# A root-only file, and the names of v2's files, as targets.
install -d -m 0700 "$SEC_TMP/rootonly"
echo keep > "$SEC_TMP/rootonly/victim"
snapshot() { (ls -la "$SEC_ROOTDIR" | grep -v '^total' | awk '{ print $1, $3, $NF }' | grep -v ' \.\.\?$'; cat "$SEC_TMP/rootonly/victim") | sort; }

# ---- the attacker's fake QMP server, logging every connection ----
cat > "$SEC_TMP/fake-qmp.pl" <<'EOT'
use Socket; use IO::Handle;
my ($path, $log) = @ARGV;
socket(my $l, PF_UNIX, SOCK_STREAM, 0) or die; unlink $path; bind($l, sockaddr_un($path)) or die "bind: $!";
chmod 0777, $path; listen($l, 16) or die;
while (accept(my $c, $l)) {
	open(my $f, ">>", $log); print $f "connection\n"; close $f;
	$c->autoflush(1);
	print $c '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}' . "\r\n";
	while (my $line = <$c>) {
		open(my $g, ">>", $log); print $g $line; close $g;
		my ($id) = $line =~ /"id"\s*:\s*("[^"]*"|\d+)/;
		print $c '{"return": {}' . (defined $id ? ", \"id\": $id" : "") . "}\r\n";
	}
}
EOT
chmod 0644 "$SEC_TMP/fake-qmp.pl"
: > "$SEC_TMP/fake.log"
chmod 0666 "$SEC_TMP/fake.log"
# (Background jobs must not keep lib.sh's lock, fd 9.)
SEC_DEADLINE=600 as_attacker perl "$SEC_TMP/fake-qmp.pl" "$AD/0.qmp.sock" "$SEC_TMP/fake.log" 9>&- &
cleanup_fn "pkill -u $ATTACKER -f fake-qmp.pl 2>/dev/null"
wait_for 10 test -S "$AD/0.qmp.sock" || fail "the fake server did not start"
as_attacker ln -s 0.qmp.sock "$AD/1.qmp.sock"

# ---- spoofed entries: root's VM name, the real QEMU's PID and start time ----
entry() { # FILE NAME PID TICKS [extra JSON members]
	printf '{"version":1,"name":"%s","pid":%s,"start_ticks":%s,"running":true,"query_socket":"%s","agent_socket":"%s","agent_log":"%s","disks":[{"id":"vd0","node":"vd0","path":"/x","aio":"threads","cache":"none"}],"agent":{"pid":1,"start_ticks":1},"changes":[]%s}\n' \
		"$2" "$3" "$4" "$AD/0.qmp.sock" "$SEC_ROOTDIR/v2.qmp.sock" "$SEC_TMP/rootonly/victim" "${5:-}" |
		as_attacker sh -c "umask 027; cat > '$AD/$1'"
}
entry 0.json v1 "$V1" "$(ticks "$V1")"
entry 1.json v1 "$V1" 0
entry 2.json v2 "$V2" "$(ticks "$V2")"
"$SEC_KL" --status --json > "$SEC_TMP/st.json" || fail "--status"
"$H/json-get" "$SEC_TMP/st.json" 'vms.*.name' | sort | uniq -c
[ "$("$H/json-get" "$SEC_TMP/st.json" 'vms.[name=v1].running' | grep -cx true)" = 1 ] || fail "not exactly one v1 running"
[ "$("$H/json-get" "$SEC_TMP/st.json" "vms.[state_file=$SEC_ROOTDIR/v1.json].running")" = true ] ||
	fail "the running v1 is not root's entry"
"$SEC_KL" --set v1 vd0 iops=55 || fail "root's --set v1"
[ "$(own_qmp v1 query-block | "$H/json-get" - 0.inserted.iops)" = 55 ] || fail "--set v1 did not reach the real QEMU"
[ ! -s "$SEC_TMP/fake.log" ] || fail "root talked to the attacker's server: $(cat "$SEC_TMP/fake.log")"
echo "attack: spoofed entries for v1 and v2 (real PIDs, real start time, start time 0): not believed; --set reached the real QEMU, nothing reached the attacker's server"

# ---- the attacker's own live process under root's VM name: ambiguous ----
SEC_DEADLINE=600 as_attacker sleep 300 9>&- &
for _ in $(seq 50); do SLEEP=$(pgrep -u "$ATTACKER" -x sleep | head -n 1); [ -n "$SLEEP" ] && break; sleep 0.1; done
[ -n "$SLEEP" ] || fail "no attacker sleep"
cleanup_fn "kill $SLEEP 2>/dev/null"
entry 3.json v1 "$SLEEP" "$(ticks "$SLEEP")"
"$SEC_KL" --set v1 vd0 iops=44 > "$SEC_TMP/amb.out" 2>&1 && fail "--set v1 with two live v1 succeeded"
cat "$SEC_TMP/amb.out"
grep -q "ambiguous" "$SEC_TMP/amb.out" || fail "--set did not say ambiguous"
[ "$(own_qmp v1 query-block | "$H/json-get" - 0.inserted.iops)" = 55 ] || fail "the ambiguous --set changed v1"
[ ! -s "$SEC_TMP/fake.log" ] || fail "root talked to the attacker's server: $(cat "$SEC_TMP/fake.log")"
# --status shows the attacker's entry, its socket refused (served by another PID than the entry's).
"$SEC_KL" --status --json > "$SEC_TMP/st.json" || fail "--status"
[ -s "$SEC_TMP/fake.log" ] && fail "--status talked to the attacker's server"
as_attacker rm -f "$AD/3.json"
echo "attack: an entry of the attacker's own process named v1: --set refused as ambiguous"

# ---- deletion: stale entries naming root's files; users/UID swapped with a symlink into root's directory ----
before=$(snapshot)
for i in 4 5 6; do entry "$i.json" v2 99999999 12345; done
entry v2.json v2 99999999 12345
as_attacker sh -c "ln -s '$SEC_ROOTDIR/v2.json' '$AD/v1.json'; ln -s '$SEC_TMP/rootonly/victim' '$AD/x.agent.log'"
as_attacker mkdir -m 0777 "$SEC_STATE/users/$((ATTACKER_UID + 1))" 2>/dev/null   # a squat, world-writable: ignored
# The race: users/UID and a symlink to root's directory exchange places, as fast as they can.
as_attacker ln -s ../root "$SEC_STATE/users/swap"
cat > "$SEC_TMP/swap.pl" <<'EOT'
my ($a, $b, $secs) = @ARGV; my $end = time + $secs; my $n = 0;
while (time < $end) { syscall(316, -100, $a, -100, $b, 2) == 0 or die "renameat2: $!"; $n++ }
print "swapped $n times\n";
EOT
chmod 0644 "$SEC_TMP/swap.pl"
SEC_DEADLINE=60 as_attacker perl "$SEC_TMP/swap.pl" "$AD" "$SEC_STATE/users/swap" 12 9>&- &
swapper=$!
sleep 0.5
for i in 1 2 3; do
	sec_vm_start "r$i"
	eval "R$i=\$VMPID"
	"$SEC_KL" --status > /dev/null 2>&1
	"$SEC_KL" --set v1 vd0 iops=66 > /dev/null 2>&1
done
wait $swapper || fail "the swapper failed"
sec_vm_stop "$R1"; sec_vm_stop "$R2"
sec_vm_start r4     # its launch cleans root's stale entries (r1, r2), nothing else
sec_vm_stop "$R3"
wait_for 10 sh -c "! ls '$SEC_ROOTDIR'/r[123].json >/dev/null 2>&1" || fail "root's stale entries left"
after=$(snapshot)
diff <(echo "$before") <(echo "$after" | grep -v ' r4\.') | grep '^<' && fail "files of root's VMs or the root-only file went away"
[ "$(cat "$SEC_TMP/rootonly/victim")" = keep ] || fail "the root-only file changed"
for f in v1.json v1.qmp.sock v1.agent.sock v1.view.sock v2.json v2.qmp.sock v2.agent.sock v2.view.sock; do
	[ -e "$SEC_ROOTDIR/$f" ] || fail "$f was deleted"
done
[ "$(own_qmp v1 query-block | "$H/json-get" - 0.inserted.iops)" = 66 ] || fail "v1 not reached during the race"
kill -0 "$V1" && kill -0 "$V2" || fail "root's VMs died"
echo "attack: stale entries naming root's files, symlinks, a world-writable squat, 12 s of RENAME_EXCHANGE between users/UID and a symlink to root's directory during 3 launches, --status and --set: nothing of root's deleted"
ls -la "$SEC_ROOTDIR" "$SEC_STATE/users" | sed 's/^/    /'
echo "entries: ok"
