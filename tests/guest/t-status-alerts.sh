#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The metrics behind the alert rules, from a real VM, and the rules on them.
# The tiny guest, launched through kvm-launch, has:
#   vda  a raw image behind blkdebug that fails every read with EIO
#        (rerror=report): QEMU reports BLOCK_IO_ERROR and failed requests
#   vdb  a plain raw image, then `--set vdb cache=writeback` away from the
#        policy's choice
#   hot0 a disk added over QMP while the VM runs, past kvm-launch
# --status --prometheus must show kvm_launch_disk_io_error_events_total and
# kvm_launch_disk_failed_ops_total above 0 for vda, kvm_launch_disk_policy_match
# 1 then 0 for vdb (policy_cache kept), kvm_launch_disk_unmanaged for hot0.
# Then the scraped text, as promtool test input, must fire exactly the
# expected alerts of contrib/prometheus/kvm-launch.rules.yml.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
requires "$KL" "$QEMU" truncate python3
PROMTOOL=${PROMTOOL:-promtool}
requires "$PROMTOOL"
kl_need_helpers "$QMP_CLI"
kl_guest_build
kl_tmpdir
kl_imgdir
ST=$TMP/state
LOG=$TMP/serial.log
QMP=$TMP/test.qmp
: > "$TMP/policy.conf"
chmod 0644 "$TMP/policy.conf"
truncate -s 16M "$IMG/err.img" "$IMG/ok.img" "$IMG/hot.img"

"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- -name alerts1 -accel tcg -m 256 -nographic \
	-nodefaults -no-reboot -serial "file:$LOG" -kernel "$KL_GUEST_KERNEL" -initrd "$KL_GUEST_INITRD" \
	-append "console=ttyS0 quiet panic=-1 no_timer_check kl.cmd=sleep" -qmp "unix:$QMP,server=on,wait=off" \
	-blockdev "{\"driver\":\"blkdebug\",\"node-name\":\"bd0\",\"image\":{\"driver\":\"file\",\"filename\":\"$IMG/err.img\",\"node-name\":\"s0\"},\"inject-error\":[{\"event\":\"read_aio\",\"errno\":5}]}" \
	-blockdev '{"driver":"raw","node-name":"f0","file":"bd0"}' \
	-device '{"driver":"virtio-blk-pci","drive":"f0","id":"vda","rerror":"report","werror":"report"}' \
	-drive "file=$IMG/ok.img,format=raw,if=none,id=d1,node-name=f1,file.node-name=s1" -device virtio-blk-pci,drive=d1,id=vdb \
	</dev/null >"$TMP/kl.out" 2>&1 &
QPID=$!
# By its own serial log too: while another test diverts the system QEMU, the
# process's executable is not the one $QEMU names.
cleanup_fn "kl_kill_if $QPID '$QEMU'; kl_kill_if $QPID '$KL'; tr '\\0' '\\n' < /proc/$QPID/cmdline 2>/dev/null | grep -qxF 'file:$LOG' && kill -9 $QPID"

prom() { "$KL" --state-dir "$ST" --status --prometheus > "$TMP/metrics" 2>"$TMP/status.err"; }
sample() { prom && grep -E "^$1 " "$TMP/metrics" | sed 's/.* //'; }
positive() { v=$(sample "$1") && [ -n "$v" ] && awk -v v="$v" 'BEGIN { exit !(v > 0) }'; }

kl_wait_serial "$LOG" '^KL sleeping' 120 "$QPID"
wait_for 30 positive 'kvm_launch_disk_io_error_events_total\{vm="alerts1",disk="vda"\}' ||
	{ grep -E 'io_error|failed_ops' "$TMP/metrics"; fail "no BLOCK_IO_ERROR counted for vda"; }
positive 'kvm_launch_disk_failed_ops_total\{vm="alerts1",disk="vda",backend="file"\}' || fail "no failed requests for vda"
echo "vda: $(grep -E '^kvm_launch_disk_(io_error_events|failed_ops)_total\{vm="alerts1",disk="vda"' "$TMP/metrics" | tr '\n' ' ')"
grep -qx 'kvm_launch_vm_io_error_paused{vm="alerts1"} 0' "$TMP/metrics" || fail "rerror=report must not pause the guest"
grep -qx 'kvm_launch_vm_failed_open{vm="alerts1"} 0' "$TMP/metrics" || fail "kvm_launch_vm_failed_open is not 0"

pc=$("$KL" --state-dir "$ST" --status alerts1 --json | "$JSON_GET" - 'vms.0.disks.[id=vdb].cache_policy')
[ "$pc" = none ] || [ "$pc" = writeback ] || fail "vdb: policy cache $pc"
grep -qx "kvm_launch_disk_policy_match{vm=\"alerts1\",disk=\"vdb\",policy_cache=\"$pc\"} 1" "$TMP/metrics" ||
	{ grep policy_match "$TMP/metrics"; fail "vdb: policy_match is not 1 at start"; }
other=writeback
[ "$pc" = writeback ] && other=none
"$KL" --state-dir "$ST" --set alerts1 vdb cache=$other || fail "--set vdb cache=$other"
prom || fail "--status --prometheus"
grep -qx "kvm_launch_disk_policy_match{vm=\"alerts1\",disk=\"vdb\",policy_cache=\"$pc\"} 0" "$TMP/metrics" ||
	{ grep policy_match "$TMP/metrics"; fail "vdb: policy_match is not 0 after --set cache=$other"; }
echo "vdb: policy chose cache=$pc; after --set cache=$other: $(grep 'policy_match{vm="alerts1",disk="vdb"' "$TMP/metrics")"

# Past kvm-launch: over kvm-launch's own query monitor, which the relay does
# not see (over the relayed -qmp socket the disk would get the policy).
"$QMP_CLI" "$ST/alerts1.qmp.sock" blockdev-add "{\"driver\":\"raw\",\"node-name\":\"hot0f\",\"file\":{\"driver\":\"file\",\"filename\":\"$IMG/hot.img\"}}" \
	>/dev/null || fail "blockdev-add"
"$QMP_CLI" "$ST/alerts1.qmp.sock" device_add '{"driver":"virtio-blk-pci","drive":"hot0f","id":"hot0"}' >/dev/null || fail "device_add"
prom || fail "--status --prometheus"
grep -qx "kvm_launch_disk_unmanaged{vm=\"alerts1\",disk=\"hot0\",node=\"hot0f\",path=\"$IMG/hot.img\"} 1" "$TMP/metrics" ||
	{ grep unmanaged "$TMP/metrics"; fail "the hot-added disk is not reported as unmanaged"; }
! grep -q 'kvm_launch_disk_unmanaged{vm="alerts1",disk="vd[ab]"' "$TMP/metrics" || fail "a launched disk is reported unmanaged"
"$PROMTOOL" check metrics < "$TMP/metrics" || fail "promtool check metrics"
echo "hot0: $(grep '^kvm_launch_disk_unmanaged' "$TMP/metrics")"

echo "$pc" > "$TMP/pc"
echo "$IMG/hot.img" > "$TMP/hotpath"

# The scrape as promtool input (instance h1): gauges constant, counters from
# 0 to their value; annotations are left out of this comparison (the unit
# tests in contrib/prometheus/tests check them).
python3 - "$TMP/metrics" "$KL_TOP/contrib/prometheus/kvm-launch.rules.yml" "$TMP" <<'PY' || fail "cannot build the promtool test"
import re, sys, yaml
metrics, rules_in, tmp = sys.argv[1:]
series = []
for line in open(metrics):
    if line.startswith('#') or not line.strip():
        continue
    name_labels, value = line.rsplit(' ', 1)
    m = re.match(r'([a-z_]+)(\{(.*)\})?$', name_labels)
    labels = 'instance="h1"' + (',' + m.group(3) if m.group(3) else '')
    v = float(value)
    values = ('0 ' if m.group(1).endswith('_total') else '') + '%gx40' % v
    series.append({'series': '%s{%s}' % (m.group(1), labels), 'values': values})
rules = yaml.safe_load(open(rules_in))
for g in rules['groups']:
    for r in g['rules']:
        r.pop('annotations', None)
yaml.safe_dump(rules, open(tmp + '/rules.yml', 'w'))
def alert(name, sev, **labels):
    l = dict(labels, instance='h1', severity=sev)
    return {'exp_labels': l}
tests = [{'interval': '1m', 'input_series': series, 'alert_rule_test': [
    {'eval_time': '20m', 'alertname': 'KvmLaunchDiskOutsidePolicy',
     'exp_alerts': [alert('x', 'warning', vm='alerts1', disk='vdb', policy_cache=open(tmp + '/pc').read().strip())]},
    {'eval_time': '20m', 'alertname': 'KvmLaunchDiskUnmanaged',
     'exp_alerts': [alert('x', 'warning', vm='alerts1', disk='hot0', node='hot0f', path=open(tmp + '/hotpath').read().strip())]},
    {'eval_time': '5m', 'alertname': 'KvmLaunchDiskIOErrors',
     'exp_alerts': [alert('x', 'critical', vm='alerts1', disk='vda', backend='file'),
                    alert('x', 'critical', vm='alerts1', disk='vda')]},
    {'eval_time': '20m', 'alertname': 'KvmLaunchAgentGone', 'exp_alerts': []},
    {'eval_time': '20m', 'alertname': 'KvmLaunchFailedOpen', 'exp_alerts': []},
    {'eval_time': '20m', 'alertname': 'KvmLaunchVMPausedOnIOError', 'exp_alerts': []},
]}]
yaml.safe_dump({'rule_files': ['rules.yml'], 'evaluation_interval': '1m', 'tests': tests}, open(tmp + '/live.test.yml', 'w'))
PY
(cd "$TMP" && "$PROMTOOL" test rules live.test.yml) || fail "the alerts on this VM's metrics are not the expected ones"
echo "PASS: the VM's metrics fire KvmLaunchDiskOutsidePolicy (vdb), KvmLaunchDiskUnmanaged (hot0), KvmLaunchDiskIOErrors (vda), nothing else of theirs"
