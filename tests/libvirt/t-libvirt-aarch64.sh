#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Another target through libvirt: the test installation of kvm-launch linked as qemu-system-aarch64 (as
# kvm-launch-divert installs it for every target).  libvirt's capability probe for it (`virsh domcapabilities
# --emulatorbin LINK --arch aarch64`) passes and describes a real aarch64 QEMU (machine virt, virtio disks); a
# transient TCG domain (machine virt, one virtio disk, no kernel) starts through it, runs the real
# qemu-system-aarch64 with the policy's cache on the disk, and shows in --status; virsh destroy leaves nothing.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
QA=$(dirname "$QEMU")/qemu-system-aarch64
requires "$QA"
klt_setup
D=$KLT_DIR
mkdir -p "$D/bin"
LINK=$D/bin/qemu-system-aarch64
ln -s "$KLT_BIN" "$LINK"
chmod 0755 "$D" "$D/bin"

# ---- libvirt's capability probe, through kvm-launch ----
"${VIRSH[@]}" domcapabilities --emulatorbin "$LINK" --arch aarch64 --machine virt --virttype qemu >"$D/domcaps.xml" 2>"$D/err" ||
	fail "virsh domcapabilities --arch aarch64 failed: $(cat "$D/err")"
grep -q "<path>$LINK</path>" "$D/domcaps.xml" || fail "domcapabilities does not name $LINK"
grep -q '<arch>aarch64</arch>' "$D/domcaps.xml" || fail "domcapabilities is not for aarch64"
grep -q '<machine>virt' "$D/domcaps.xml" || fail "no virt machine in domcapabilities: $(grep '<machine>' "$D/domcaps.xml")"
grep -q '<value>virtio</value>' "$D/domcaps.xml" || fail "no virtio bus in domcapabilities"
echo "domcapabilities for $LINK: $(grep -o '<machine>[^<]*</machine>' "$D/domcaps.xml"), arch aarch64"
klt_no_agents

# ---- a domain ----
name=kl-t-aarch64
truncate -s 64M "$D/lv-raw-a64.img"
# aarch64's virt machine has ACPI only with UEFI firmware, and no kernel is needed to run: drop those elements.
"$KL_TOP/tests/libvirt/make-domain.sh" ${KL_SUITE_ID:+--env "KL_SUITE_ID=$KL_SUITE_ID"} --name "$name" \
	--arch aarch64 --machine virt --emulator "$LINK" --serial-log "$D/$name.serial" \
	"file:$D/lv-raw-a64.img:raw:target=vda" |
	sed -e '/<kernel>/d' -e '/<initrd>/d' -e '/<cmdline>/d' -e '/<acpi\/>/d' -e '/<features>/d' -e '/<\/features>/d' \
		>"$D/$name.xml" || fail "make-domain.sh failed"
klt_create "$name"
PID=$(klt_pid "$name")
[ "$(readlink "/proc/$PID/exe")" = "$QA" ] || fail "the domain runs $(readlink "/proc/$PID/exe"), not $QA"
echo "$name: pid $PID runs $QA"
kl_args_load "$PID"
# The test policy's rule lv-raw: writethrough, threads.
kl_check_disk_cmdline virtio-disk0 writethrough threads
klt_query_block "$name" "$D/qb.json"
kl_check_query_block "$D/qb.json" virtio-disk0 writethrough
wait_for 20 sh -c "'$KLT_BIN' --status '$name' --json | grep -q '\"pid\":$PID'" || fail "--status does not show $name with pid $PID"
"$KLT_BIN" --status "$name" | tee "$D/status.txt"
grep -Eq "(^|[[:space:]])virtio-disk0[[:space:]].*[[:space:]]writethrough([[:space:]]|$)" "$D/status.txt" ||
	fail "--status: no virtio-disk0 row with writethrough"

klt_status_json "$D/status.json"
APID=$("$JSON_GET" "$D/status.json" "vms.[name=$name].agent.pid")
"${VIRSH[@]}" destroy "$name" >/dev/null || fail "virsh destroy failed"
klt_wait_cleaned "$name" "$PID" "$APID"
echo "PASS: aarch64 through kvm-launch and libvirt"
