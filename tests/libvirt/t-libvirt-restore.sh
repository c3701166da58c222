#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `virsh save` + `virsh restore` with kvm-launch as the emulator (the restore runs QEMU with -incoming defer, like the
# destination of a migration).  The guest-visible write cache is part of what the running guest believes: Linux
# reads it when it probes the disk and never again, so it must be the same after the restore as before the save.
# A guest told "write through" sends no flushes; if the restored QEMU runs that disk with the write cache on,
# writes the guest completed and fsync'd are not durable.  Two real-life cases:
#   A  started through kvm-launch:  raw file, XML cache=none io=native, policy writethrough/threads (guest: write
#      through); saved and restored through kvm-launch.
#   B  started before kvm-launch was installed (emulator = the real QEMU): qcow2, XML cache=writethrough (guest:
#      write through); restored with kvm-launch as the emulator (virsh restore --xml), policy none/native.
# Checked for each: the PID libvirt forked runs the real QEMU with -incoming; --status lists it (incoming, live
# agent); kvm-launch's line is in the domain log; query-block's writeback after the restore equals the one before
# the save; after the restore the guest prints its view of the write cache again, writes + fsyncs a pattern, and
# the number of flushes QEMU received is reported; save and destroy leave no QEMU, agent or state entry.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
klt_setup
D=$KLT_DIR
T0=$(date +%s)
problems=()

# restore_case NAME XML-FOR-RESTORE(or "") EXPECTED-MODE-BEFORE VIA-KVM-LAUNCH(yes|no)
restore_case() {
	local name=$1 rxml=$2 mode=$3 via=$4 PID PID2 APID before after guest_after flushes
	klt_create "$name"
	PID=$(klt_pid "$name")
	kl_wait_serial "$D/$name.serial" '^KL disk vda ' 120 "$PID"
	kl_check_guest_wc "$D/$name.serial" vda "$mode"
	klt_query_block "$name" "$D/$name-qb-before.json"
	kl_check_query_block "$D/$name-qb-before.json" virtio-disk0 "$mode"
	before=$(kl_qb_flags "$D/$name-qb-before.json" virtio-disk0) || exit 1
	APID=
	if [ "$via" = yes ]; then
		klt_status_json "$D/$name-status1.json"
		klt_check_qemu_pid "$name" "$D/$name-status1.json"
		APID=$("$JSON_GET" "$D/$name-status1.json" "vms.[name=$name].agent.pid")
	fi

	"${VIRSH[@]}" save "$name" "$D/$name.save" >/dev/null || fail "virsh save $name failed"
	[ "$(grep -c '^KL disk vda ' "$D/$name.serial")" = 1 ] ||
		echo "note: $name: the guest ended its 20 s read before the save (slow host): the flush count below is not meaningful"
	klt_wait_cleaned "$name" "$PID" "$APID"
	echo "$name saved: QEMU $PID${APID:+, agent $APID} and any state entry are gone"
	"${VIRSH[@]}" restore "$D/$name.save" ${rxml:+--xml "$rxml"} >/dev/null || {
		tail -n 20 "/var/log/libvirt/qemu/$name.log" | sed 's/^/    domain log: /' >&2
		fail "virsh restore $name failed"
	}
	PID2=$(klt_pid "$name")
	kl_args_load "$PID2"
	printf '%s\n' "${KL_ARGS[@]}" | grep -qx -- -incoming || fail "$name: the restored QEMU has no -incoming"
	klt_status_json "$D/$name-status2.json"
	klt_check_qemu_pid "$name" "$D/$name-status2.json"
	[ "$("$JSON_GET" "$D/$name-status2.json" "vms.[name=$name].incoming")" = true ] ||
		fail "$name: --status does not mark the VM incoming"
	grep '^kvm-launch:' "/var/log/libvirt/qemu/$name.log" | sed "s/^/$name domain log: /"
	grep -q '^kvm-launch:' "/var/log/libvirt/qemu/$name.log" || fail "$name: no kvm-launch line in the domain log"
	kl_disk_effective virtio-disk0
	echo "$name after restore, on the command line: aio=$D_AIO direct=$D_DIRECT no-flush=$D_NOFLUSH write-cache=$D_WC"
	klt_query_block "$name" "$D/$name-qb-after.json"
	after=$(kl_qb_flags "$D/$name-qb-after.json" virtio-disk0) || exit 1

	# What the guest does after the restore: its view of the write cache, then a pattern written and fsync'd.
	kl_wait_serial "$D/$name.serial" '^KL flushed' 120 "$PID2"
	guest_after=$(grep '^KL disk vda ' "$D/$name.serial" | tail -n1)
	"${VIRSH[@]}" qemu-monitor-command "$name" '{"execute":"query-blockstats"}' >"$D/$name-bs.json" ||
		fail "$name: query-blockstats"
	flushes=$("$JSON_GET" "$D/$name-bs.json" \
		"return.[qdev=/machine/peripheral/virtio-disk0/virtio-backend].stats.flush_operations") ||
		fail "$name: no blockstats for virtio-disk0: $(cat "$D/$name-bs.json")"
	echo "$name: query-block writeback/direct/no-flush before the save '$before', after the restore '$after'"
	echo "$name: after the restore the guest says '$guest_after'; its fsync reached QEMU as $flushes flushes"
	if [ "${after%% *}" != "${before%% *}" ]; then
		problems+=("$name: the guest-visible write cache changed across save/restore: QEMU's writeback was ${before%% *} before the save (the guest was told '$(kl_guest_wc "$mode")'), ${after%% *} after the restore through kvm-launch; the guest still says '${guest_after#KL disk vda }' and its fsync reached QEMU as $flushes flushes")
	fi

	"${VIRSH[@]}" destroy "$name" >/dev/null || fail "virsh destroy $name failed"
	klt_wait_cleaned "$name" "$PID2" "$("$JSON_GET" "$D/$name-status2.json" "vms.[name=$name].agent.pid")"
	kl_no_sanitizer_reports "/var/log/libvirt/qemu/$name.log"
}

# The guest reads vda for 20 s (the save and restore happen meanwhile), then prints its view of vda's write cache
# again and writes + fsyncs a pattern.
seed=$(((RANDOM << 15 | RANDOM) + 1))
gcmd="report,randio:vda:1:20:r,wc:vda,pattern:vda:$seed:4"

# A: started, saved and restored through kvm-launch.
truncate -s 64M "$D/lv-raw-r.img"
klt_domain kl-t-restore-a --guest-cmd "$gcmd" "file:$D/lv-raw-r.img:raw:cache=none:io=native:target=vda"
restore_case kl-t-restore-a "" writethrough yes

# B: started by the real QEMU, restored through kvm-launch.
qemu-img create -q -f qcow2 "$D/lv-r.qcow2" 64M || fail "qemu-img create"
klt_domain kl-t-restore-b --guest-cmd "$gcmd" "file:$D/lv-r.qcow2:qcow2:cache=writethrough:io=threads:target=vda"
mv "$D/kl-t-restore-b.xml" "$D/kl-t-restore-b-kl.xml"
sed "s|<emulator>.*</emulator>|<emulator>$QEMU</emulator>|" "$D/kl-t-restore-b-kl.xml" >"$D/kl-t-restore-b.xml"
grep -q "<emulator>$QEMU</emulator>" "$D/kl-t-restore-b.xml" || fail "cannot make the plain-QEMU XML"
restore_case kl-t-restore-b "$D/kl-t-restore-b-kl.xml" writethrough no

klt_no_agents
echo "total $(($(date +%s) - T0)) s"
if [ ${#problems[@]} -gt 0 ]; then
	for p in "${problems[@]}"; do echo "FAIL: $p" >&2; done
	fail "${#problems[@]} of 2 restores changed what the guest was told about its write cache"
fi
echo PASS
