#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The alert rules (contrib/prometheus/kvm-launch.rules.yml): promtool checks
# them and runs their unit tests (contrib/prometheus/tests/: each alert
# firing and not firing); every metric they use is one kvm-launch prints
# and documents.  Then a real fail-open launch (fake QEMU) must show up as
# kvm_launch_vm_failed_open 1 in text promtool accepts.
. "$(dirname "$0")/../functions.sh"
PROMTOOL=${PROMTOOL:-promtool}
requires "$PROMTOOL" "$KL"
kl_tmpdir
rules=$KL_TOP/contrib/prometheus/kvm-launch.rules.yml

"$PROMTOOL" check rules "$rules" || fail "promtool check rules"
(cd "$KL_TOP/contrib/prometheus/tests" && "$PROMTOOL" test rules ./*.test.yml) || fail "promtool test rules"

# Each alert has a unit test, and each test file names only alerts that exist.
for a in $(sed -n 's/^ *- alert: *//p' "$rules"); do
	grep -q "alertname: $a\$" "$KL_TOP"/contrib/prometheus/tests/*.test.yml || fail "alert $a has no unit test"
done
# Every metric the rules use: printed by --status --prometheus, documented.
for m in $(grep -o 'kvm_launch_[a-z_]*' "$rules" | sort -u); do
	grep -q "\"$m\"" "$KL_TOP"/launcher/vm/status*.c || fail "$m is not printed by kvm-launch (launcher/vm/status*.c)"
	grep -q "$m" "$KL_TOP/doc/kvm-launch.8" || fail "$m is not in doc/kvm-launch.8"
	grep -q "$m" "$KL_TOP/contrib/prometheus/README" || fail "$m is not in contrib/prometheus/README"
done
echo "rules: $(grep -c '^ *- alert:' "$rules") alerts, each tested; their metrics printed and documented"

# A fail-open launch is recorded: a broken -drive reaches QEMU unchanged and
# the state says so, under the -name the model never got to.
printf 'cache-dir = %s/cache\nstate-dir = %s/state\n' "$TMP" "$TMP" > "$TMP/p.conf"
chmod 0644 "$TMP/p.conf"
KL_RECORD=$TMP/argv "$KL" --config "$TMP/p.conf" --qemu "$KL_TOP/tests/helpers/fake-qemu.sh" -- -name fo -drive '=' \
	2> "$TMP/err" || fail "fail-open launch: exit $?"
printf '%s\0' "$KL_TOP/tests/helpers/fake-qemu.sh" -name fo -drive '=' | cmp -s - "$TMP/argv" || fail "fail-open: arguments changed"
"$KL" --status --state-dir "$TMP/state" --prometheus > "$TMP/metrics" || fail "--status --prometheus"
grep -qx 'kvm_launch_vm_failed_open{vm="fo"} 1' "$TMP/metrics" || { cat "$TMP/metrics"; fail "no kvm_launch_vm_failed_open 1"; }
"$KL" --status --state-dir "$TMP/state" --json | grep -q '"failed_open_why":".*parameter without a name' ||
	fail "--status --json does not say why it failed open"
"$PROMTOOL" check metrics < "$TMP/metrics" || fail "promtool check metrics"
echo "fail-open recorded: $(grep '^kvm_launch_vm_failed_open' "$TMP/metrics")"
echo "PASS: alert rules checked and unit-tested with $("$PROMTOOL" --version 2>&1 | head -n 1)"
