#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Ten domains started at once (parallel `virsh create`) through the test installation of kvm-launch: every one
# boots, runs the real QEMU under the PID libvirt forked, carries the policy's settings on its command line and in
# query-block, shows the right write cache in the guest, and has its own --status entry and agent.  Then all are
# destroyed at once: no QEMU, agent, state file or --status entry may remain.
# Even domains have one raw disk (policy: writethrough/threads), odd ones a qcow2 disk as well (none/native).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
klt_setup
D=$KLT_DIR
N=${KLT_MANY:-10}
T0=$(date +%s)

names=()
for ((i = 0; i < N; i++)); do
	name=kl-t-many-$i
	names+=("$name")
	truncate -s 32M "$D/lv-raw-$i.img"
	disks=("file:$D/lv-raw-$i.img:raw:cache=none:target=vda")
	cmd="report,randio:vda:2:1:rw"
	if ((i % 2)); then
		qemu-img create -q -f qcow2 "$D/lv-q-$i.qcow2" 32M || fail "qemu-img create"
		disks+=("file:$D/lv-q-$i.qcow2:qcow2:cache=writethrough:io=threads:target=vdb")
		cmd="$cmd,randio:vdb:2:1:rw"
	fi
	klt_domain "$name" --memory 192 --guest-cmd "$cmd,sleep" "${disks[@]}"
	# Registered here (not in klt_create: that runs in a subshell below) so an early failure destroys them all.
	cleanup_fn "'${VIRSH[0]}' -q -c qemu:///system destroy '$name' >/dev/null 2>&1; rm -f '$KLT_STATE/$name.agent.log'"
	"${VIRSH[@]}" destroy "$name" >/dev/null 2>&1 || true
	rm -f "/var/log/libvirt/qemu/$name.log"
done

# All at once, with kvm-launch's QEMU capability cache empty: a host booting with many autostarted domains.
rm -rf "$KLT_VAR/cache/kvm-launch"
for name in "${names[@]}"; do
	"${VIRSH[@]}" create "$D/$name.xml" >"$D/$name.create" 2>&1 &
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=$((failed + 1)); done
[ "$failed" = 0 ] || fail "$failed of $N virsh create failed: $(cat "$D"/*.create)"
echo "$N domains created in $(($(date +%s) - T0)) s"

declare -A pid
for name in "${names[@]}"; do pid[$name]=$(klt_pid "$name"); done
for i in "${!names[@]}"; do
	name=${names[i]}
	last=vda
	((i % 2)) && last=vdb
	kl_wait_serial "$D/$name.serial" "^KL randio dev=$last qd=2 " 300 "${pid[$name]}"
done
echo "all $N guests booted and did I/O after $(($(date +%s) - T0)) s"

klt_status_json "$D/status.json"
[ "$("$JSON_GET" "$D/status.json" 'vms.length')" -ge "$N" ] || fail "--status lists fewer than $N VMs"
declare -A agent
for i in "${!names[@]}"; do
	name=${names[i]}
	klt_check_qemu_pid "$name" "$D/status.json"
	agent[$name]=$("$JSON_GET" "$D/status.json" "vms.[name=$name].agent.pid")
	kl_args_load "${pid[$name]}"
	kl_check_disk_cmdline virtio-disk0 writethrough threads
	klt_query_block "$name" "$D/qb-$name.json"
	kl_check_query_block "$D/qb-$name.json" virtio-disk0 writethrough
	kl_check_guest_wc "$D/$name.serial" vda writethrough
	[ "$("$JSON_GET" "$D/status.json" "vms.[name=$name].disks.[id=virtio-disk0].cache")" = writethrough ] ||
		fail "$name: --status shows the wrong cache for virtio-disk0"
	if ((i % 2)); then
		kl_check_disk_cmdline virtio-disk1 none native
		kl_check_query_block "$D/qb-$name.json" virtio-disk1 none
		kl_check_guest_wc "$D/$name.serial" vdb none
		[ "$("$JSON_GET" "$D/status.json" "vms.[name=$name].disks.[id=virtio-disk1].cache")" = none ] ||
			fail "$name: --status shows the wrong cache for virtio-disk1"
	fi
	grep -q '^kvm-launch: ' "/var/log/libvirt/qemu/$name.log" || fail "$name: no kvm-launch line in its domain log"
done
"$KLT_BIN" --status >"$D/status.txt" || fail "--status failed"
for name in "${names[@]}"; do grep -q "VM $name:" "$D/status.txt" || fail "--status table does not list $name"; done
echo "all $N domains checked after $(($(date +%s) - T0)) s"

# All destroyed at once.
for name in "${names[@]}"; do "${VIRSH[@]}" destroy "$name" >"$D/$name.destroy" 2>&1 & done
failed=0
for job in $(jobs -p); do wait "$job" || failed=$((failed + 1)); done
[ "$failed" = 0 ] || fail "$failed virsh destroy failed: $(cat "$D"/*.destroy)"
for name in "${names[@]}"; do klt_wait_cleaned "$name" "${pid[$name]}" "${agent[$name]}"; done
klt_status_json "$D/after.json"
for name in "${names[@]}"; do
	! "$JSON_GET" "$D/after.json" "vms.[name=$name]" >/dev/null || fail "--status still lists $name after destroy"
done
for name in "${names[@]}"; do kl_no_sanitizer_reports "/var/log/libvirt/qemu/$name.log"; done
klt_no_agents
[ -z "$(find "$KLT_STATE" -name 'kl-t-many-*' ! -name '*.log' | head -n1)" ] || fail "left in $KLT_STATE: $(ls "$KLT_STATE")"
echo "all $N destroyed: no QEMU, agent, state or --status entry left (total $(($(date +%s) - T0)) s)"
echo PASS
