#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# kvm-launch --top in a real terminal (tmux): the tiny guest, launched
# through kvm-launch, does random I/O on its disk; --top runs in a tmux pane.
# Two captures of the pane must show the VM's disk with IOPS and MB/s above
# zero, the aio/cache/rule --status reports, and figures that move between
# refreshes; the sort keys change the order; `q` quits, and so does ^C
# (SIGINT); each time the process is gone, the pane has left the alternate
# screen and the terminal modes (stty -g) are as before.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../guest/lib.sh"
requires "$KL" "$QEMU" tmux truncate
[ -x "$KL_TOP/kvm-launch-top" ] || fail "$KL_TOP/kvm-launch-top is missing: run make"
kl_need_helpers
kl_guest_build
kl_tmpdir
kl_imgdir
ST=$TMP/state
LOG=$TMP/serial.log
: > "$TMP/policy.conf"
chmod 0644 "$TMP/policy.conf"
truncate -s 64M "$IMG/top.img"

# ---- a VM doing I/O for a while ----
window=90
"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- -name top1 -accel tcg -m 256 -nographic \
	-nodefaults -no-reboot -serial "file:$LOG" -kernel "$KL_GUEST_KERNEL" -initrd "$KL_GUEST_INITRD" \
	-append "console=ttyS0 quiet panic=-1 no_timer_check kl.cmd=randio:vda:4:$window:rw" \
	-drive "file=$IMG/top.img,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0,id=vda \
	</dev/null >"$TMP/kl.out" 2>&1 &
QPID=$!
# By its own serial log too: while another test diverts the system QEMU, the
# process's executable is not the one $QEMU names.
cleanup_fn "kl_kill_if $QPID '$QEMU'; kl_kill_if $QPID '$KL'; tr '\\0' '\\n' < /proc/$QPID/cmdline 2>/dev/null | grep -qxF 'file:$LOG' && kill -9 $QPID"

ops() { "$KL" --state-dir "$ST" --status top1 --json > "$TMP/s.json" 2>/dev/null &&
	"$JSON_GET" "$TMP/s.json" vms.0.disks.0.stats.wr_operations; }
busy() { [ "$(ops || echo 0)" -gt 50 ]; }
wait_for 120 busy || { cat "$TMP/kl.out" "$LOG"; fail "the guest does no I/O on vda"; }
aio=$("$JSON_GET" "$TMP/s.json" vms.0.disks.0.aio)
cache=$("$JSON_GET" "$TMP/s.json" vms.0.disks.0.cache)
rule=$("$JSON_GET" "$TMP/s.json" vms.0.disks.0.rule)
echo "VM top1 (pid $QPID) writes to vda: aio=$aio cache=$cache rule=$rule"

# ---- --top in a tmux pane ----
T=(tmux -L "kl-top-$$" -f /dev/null)
cleanup_fn "${T[*]} kill-server 2>/dev/null"
cat > "$TMP/pane.sh" <<EOS
trap : INT
stty -g > '$TMP/stty.before'
'$KL' --state-dir '$ST' --top --interval 1
echo "top exited rc=\$?"
stty -g > '$TMP/stty.after1'
while [ ! -e '$TMP/go2' ]; do sleep 0.1; done
'$KL' --state-dir '$ST' --top --interval 1
echo "top exited rc=\$?"
stty -g > '$TMP/stty.after2'
exec sleep 600
EOS
"${T[@]}" new-session -d -s top -x 160 -y 24 "env TERM=xterm-256color sh '$TMP/pane.sh'" || fail "tmux new-session"
pane_pid=$("${T[@]}" display -p -t top '#{pane_pid}')
top_pid() { pgrep -P "$pane_pid" -x kvm-launch-top; }
wait_for 10 top_pid || fail "kvm-launch-top is not running in the pane"
TPID=$(top_pid)
[ "$(readlink -f /proc/$TPID/exe)" = "$(readlink -f "$KL_TOP/kvm-launch-top")" ] || fail "--top does not run kvm-launch-top"
# The launch path never loads the terminal library: only kvm-launch-top links it.
! ldd "$KL" | grep -q curses || fail "kvm-launch itself links ncurses"
grep -q ncurses "/proc/$TPID/maps" || fail "kvm-launch-top does not map ncurses"
alt() { "${T[@]}" display -p -t top '#{alternate_on}'; }
capture() { "${T[@]}" capture-pane -p -t top; }
row_of() { grep -E "^top1 +$QPID +vda " "$1"; }
has_rates() { capture > "$TMP/cap" && row=$(row_of "$TMP/cap") && set -- $row && [ "$4" != - ] && [ "$4" != 0.0 ]; }

wait_for 15 has_rates || { capture; fail "no IOPS for top1/vda on the --top screen"; }
[ "$(alt)" = 1 ] || fail "--top does not use the alternate screen"
cp "$TMP/cap" "$TMP/cap1"
sleep 2.5
capture > "$TMP/cap2"
echo "---- first capture ----"; cat "$TMP/cap1"
echo "---- second capture ----"; cat "$TMP/cap2"
r1=$(row_of "$TMP/cap1") || fail "capture 1: no row for top1/vda"
r2=$(row_of "$TMP/cap2") || fail "capture 2: no row for top1/vda"
# VM PID DISK IOPS RD/s WR/s MB/s LAT AIO CACHE RULE
read -r _ _ _ iops1 _ wr1 mb1 lat1 aio1 cache1 rule1 <<<"$r1"
read -r _ _ _ iops2 _ wr2 mb2 lat2 _ _ _ <<<"$r2"
for v in "$iops1" "$iops2" "$wr1" "$wr2" "$mb1" "$mb2" "$lat1" "$lat2"; do
	[[ $v =~ ^[0-9]+(\.[0-9])?$ ]] || fail "not a figure: '$v' (rows: '$r1' / '$r2')"
done
awk -v a="$iops1" -v b="$iops2" -v c="$mb1" -v d="$mb2" 'BEGIN { exit !(a > 0 && b > 0 && c > 0 && d > 0) }' ||
	fail "IOPS or MB/s is zero: '$r1' / '$r2'"
[ "$iops1 $wr1 $mb1 $lat1" != "$iops2 $wr2 $mb2 $lat2" ] || fail "the figures did not move between refreshes: '$r1'"
[ "$aio1 $cache1 $rule1" = "$aio $cache ${rule:0:${#rule1}}" ] ||
	fail "--top shows aio=$aio1 cache=$cache1 rule=$rule1, --status says $aio/$cache/$rule"
echo "figures moved: IOPS $iops1 -> $iops2, MB/s $mb1 -> $mb2, latency $lat1 -> $lat2 ms"

# Sort keys: the header says the order.
"${T[@]}" send-keys -t top n
wait_for 5 sh -c "${T[*]} capture-pane -p -t top | head -n 1 | grep -q 'sort name -'" || fail "key n: not sorted by name"
"${T[@]}" send-keys -t top r
wait_for 5 sh -c "${T[*]} capture-pane -p -t top | head -n 1 | grep -q 'sort name (reversed)'" || fail "key r: not reversed"
"${T[@]}" send-keys -t top l
wait_for 5 sh -c "${T[*]} capture-pane -p -t top | head -n 1 | grep -q 'sort latency (reversed)'" || fail "key l"

# ---- q quits; the terminal is restored ----
"${T[@]}" send-keys -t top q
wait_for 5 gone "$TPID" || fail "kvm-launch-top (pid $TPID) still runs after q"
wait_for 5 test -s "$TMP/stty.after1" || fail "the pane did not continue after q"
shows() { capture > "$TMP/cap" && grep -q "$1" "$TMP/cap"; }
wait_for 5 shows '^top exited rc=' || { cat "$TMP/cap"; fail "q: the pane shows no exit status"; }
grep -q '^top exited rc=0$' "$TMP/cap" || { cat "$TMP/cap"; fail "q: exit status not 0"; }
[ "$(alt)" = 0 ] || fail "q: the pane is still on the alternate screen"
cmp -s "$TMP/stty.before" "$TMP/stty.after1" || fail "q: terminal modes changed: $(cat "$TMP/stty.before") -> $(cat "$TMP/stty.after1")"
echo "q: process gone, exit 0, normal screen, stty as before"

# ---- ^C (SIGINT) quits too, terminal restored ----
touch "$TMP/go2"
wait_for 10 top_pid || fail "second kvm-launch-top did not start"
TPID=$(top_pid)
wait_for 10 sh -c "[ \"\$(${T[*]} display -p -t top '#{alternate_on}')\" = 1 ]" || fail "second --top: no alternate screen"
"${T[@]}" send-keys -t top C-c
wait_for 5 gone "$TPID" || fail "kvm-launch-top (pid $TPID) still runs after ^C"
wait_for 5 test -s "$TMP/stty.after2" || fail "the pane did not continue after ^C"
wait_for 5 shows '^top exited rc=130$' || { cat "$TMP/cap"; fail "^C: not killed by SIGINT"; }
[ "$(alt)" = 0 ] || fail "^C: the pane is still on the alternate screen"
cmp -s "$TMP/stty.before" "$TMP/stty.after2" || fail "^C: terminal modes changed"
echo "^C: process gone (SIGINT), normal screen, stty as before"

# Not a terminal: a clear refusal, not a garbled screen.
"$KL" --state-dir "$ST" --top </dev/null > "$TMP/notty" 2>&1 && fail "--top without a terminal succeeded"
grep -q 'needs a terminal' "$TMP/notty" || fail "--top without a terminal: $(cat "$TMP/notty")"
rc=0
"$KL" --state-dir "$ST" --top --interval 0.1 > "$TMP/iv" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q -- '--interval: expected 0.5 to 3600' "$TMP/iv" || fail "--interval 0.1: exit $rc, $(cat "$TMP/iv")"
echo "PASS: --top under tmux"
