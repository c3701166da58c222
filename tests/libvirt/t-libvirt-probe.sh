#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# libvirt's capability probe of kvm-launch as an emulator: `virsh domcapabilities --emulatorbin KVM-LAUNCH
# --virttype qemu` works (libvirt ran kvm-launch with -machine none ... -daemonize and talked QMP to the QEMU it
# became), libvirt really probed it (its capabilities cache for that path was rewritten), and the probe left no
# state file, no socket and no agent.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
klt_setup

capdir=/var/cache/libvirt/qemu/capabilities
mkdir -p "$KLT_STATE"
before=$(ls -A "$KLT_STATE")
klt_no_agents

# libvirt caches a binary's capabilities until its ctime changes: make it probe again.
touch "$KLT_DIR/marker"
sleep 1
touch "$KLT_BIN"
t0=$(date +%s%N)
"${VIRSH[@]}" domcapabilities --emulatorbin "$KLT_BIN" --virttype qemu >"$KLT_DIR/domcaps.xml" 2>"$KLT_DIR/err" ||
	fail "virsh domcapabilities failed: $(cat "$KLT_DIR/err")"
echo "domcapabilities took $((($(date +%s%N) - t0) / 1000000)) ms"
grep -q "<path>$KLT_BIN</path>" "$KLT_DIR/domcaps.xml" || fail "domcapabilities does not name $KLT_BIN: $(head -n 20 "$KLT_DIR/domcaps.xml")"
grep -q '<domain>qemu</domain>' "$KLT_DIR/domcaps.xml" || fail "domcapabilities is not for virttype qemu"
grep -q "<machine>pc-i440fx-" "$KLT_DIR/domcaps.xml" || fail "no i440fx machine type in domcapabilities"
grep -q "<enum name='diskDevice'>" "$KLT_DIR/domcaps.xml" || fail "no disk devices in domcapabilities"
grep -q '<value>virtio</value>' "$KLT_DIR/domcaps.xml" || fail "no virtio bus in domcapabilities"

# The cache entry written for this emulator after the touch: libvirt did run the probe through kvm-launch.
cache=$(find "$capdir" -name '*.xml' -newer "$KLT_DIR/marker" -exec grep -l "<emulator>$KLT_BIN</emulator>" {} + 2>/dev/null |
	head -n1)
[ -n "$cache" ] || fail "libvirt wrote no fresh capabilities for $KLT_BIN in $capdir (did it probe?)"
grep -q '<flag name=' "$cache" || fail "the capabilities libvirt cached for $KLT_BIN have no QEMU flags"
echo "libvirt probed $KLT_BIN: $cache ($(grep -c '<flag name=' "$cache") capability flags)"

# Nothing of ours may remain: no state, no sockets, no agent, no QEMU left running kvm-launch's binary.
sleep 1
after=$(ls -A "$KLT_STATE")
[ "$after" = "$before" ] || fail "the probe changed the state directory: before '$before', after '$after'"
[ -z "$(find "$KLT_STATE" -name '*.json' -o -type s | head -n1)" ] || fail "state or sockets in $KLT_STATE: $(ls -la "$KLT_STATE")"
klt_no_agents
echo "no state, no socket, no agent after the probe"
echo PASS
