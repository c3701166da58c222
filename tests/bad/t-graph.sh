#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The -blockdev node graph and the references around it: unknown nodes
# (as file, backing, data-file, children, from -device drive= and -drive
# file=), reference cycles (self, two, three nodes, through backing, through
# inline children), duplicate node names (JSON, dotted, inline, across
# -drive node-name), nodes shared between disks.  Malformed: fail-open or
# refused.  Valid shapes QEMU takes: rewritten.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
bad_setup
IMG=$TMP/disk.img
truncate -s 1M "$IMG" "$TMP/b.img" || fail "truncate"
S() { printf '{"driver":"file","filename":"%s","node-name":"%s"}' "${2:-$IMG}" "$1"; }

# ---- unknown references ----
expect_malformed -name g -blockdev '{"driver":"qcow2","node-name":"f","file":"nosuch"}'
expect_malformed -name g -blockdev "$(S s)" -blockdev '{"driver":"qcow2","node-name":"f","file":"s","backing":"nosuch"}'
expect_malformed -name g -blockdev "$(S s)" -blockdev '{"driver":"qcow2","node-name":"f","file":"s","data-file":"nosuch"}'
expect_malformed -name g -blockdev "$(S s)" -blockdev '{"driver":"quorum","node-name":"q","vote-threshold":1,"children":["s","nosuch"]}'
expect_malformed -name g -blockdev "$(S s)" -blockdev 'driver=raw,node-name=f,file=nosuch'
expect_malformed -name g -blockdev "$(S s)" -device '{"driver":"virtio-blk-pci","drive":"nosuch"}'
expect_malformed -name g -blockdev "$(S s)" -device 'virtio-blk-pci,drive=S'          # names are case-sensitive
echo "unknown references: ok"

# ---- cycles ----
expect_malformed -name g -blockdev '{"driver":"raw","node-name":"a","file":"a"}'
expect_malformed -name g -blockdev '{"driver":"raw","node-name":"a","file":"b"}' -blockdev '{"driver":"raw","node-name":"b","file":"a"}'
expect_malformed -name g -blockdev '{"driver":"raw","node-name":"a","file":"b"}' -blockdev '{"driver":"raw","node-name":"b","file":"c"}' \
	-blockdev '{"driver":"raw","node-name":"c","file":"a"}'
expect_malformed -name g -blockdev "$(S s)" -blockdev '{"driver":"qcow2","node-name":"a","file":"s","backing":"b"}' \
	-blockdev "$(S s2 "$TMP/b.img")" -blockdev '{"driver":"qcow2","node-name":"b","file":"s2","backing":"a"}'
expect_malformed -name g -blockdev '{"driver":"raw","node-name":"a","file":{"driver":"raw","node-name":"i","file":"a"}}'
expect_malformed -name g -blockdev 'driver=raw,node-name=a,file=b' -blockdev 'driver=raw,node-name=b,file=a'
expect_malformed -name g -blockdev "$(S s)" -blockdev '{"driver":"qcow2","node-name":"a","file":"s","backing":"a"}'
# A long chain that closes on itself.
args=()
for i in $(seq 0 499); do
	args+=(-blockdev "{\"driver\":\"raw\",\"node-name\":\"n$i\",\"file\":\"n$(( (i + 1) % 500 ))\"}")
done
expect_malformed -name g "${args[@]}"
echo "cycles: ok"

# ---- duplicate node names ----
expect_malformed -name g -blockdev "$(S s)" -blockdev "$(S s "$TMP/b.img")"
expect_malformed -name g -blockdev "$(S s)" -blockdev "driver=file,filename=$TMP/b.img,node-name=s"
expect_malformed -name g -blockdev "{\"driver\":\"raw\",\"node-name\":\"s\",\"file\":$(S s)}"
expect_malformed -name g -blockdev "{\"driver\":\"qcow2\",\"node-name\":\"f\",\"file\":$(S s),\"backing\":{\"driver\":\"raw\",\"file\":$(S s "$TMP/b.img")}}"
expect_malformed -name g -blockdev "$(S d0)" -drive "file=$IMG,if=none,id=x,node-name=d0" -device virtio-blk-pci,drive=d0
echo "duplicate names: ok"

# ---- valid shapes: rewritten ----
# A backing chain by name: cache on every node, aio on the protocol nodes.
expect_started -name g -blockdev "$(S s1 "$TMP/b.img")" -blockdev '{"driver":"raw","node-name":"b","file":"s1","read-only":true}' \
	-blockdev "$(S s0)" -blockdev '{"driver":"qcow2","node-name":"f","file":"s0","backing":"b"}' \
	-device '{"driver":"virtio-blk-pci","drive":"f","id":"vd0"}'
for n in 4 6 8 10; do
	got_arg $n | grep -q '"cache":{"direct":true,"no-flush":false}' || fail "chain: no cache on argument $n: $(got_arg $n)"
done
# An inline child graph, three deep, through a filter.
expect_started -name g -blockdev "{\"driver\":\"throttle\",\"throttle-group\":\"tg\",\"node-name\":\"t\",\"file\":{\"driver\":\"raw\",\"file\":$(S s)}}" \
	-object '{"qom-type":"throttle-group","id":"tg"}' -device '{"driver":"virtio-blk-pci","drive":"t"}'
got_arg 4 | grep -q '"aio":"io_uring"' || fail "inline chain: no aio on the protocol node: $(got_arg 4)"
# A node no one references is a disk of its own (QEMU accepts it): decided too.
expect_started -name g -blockdev "$(S lonely)"
got_arg 4 | grep -q '"aio":"io_uring"' || fail "lonely node: not rewritten: $(got_arg 4)"
echo "valid graphs: ok ($CASES launches)"
