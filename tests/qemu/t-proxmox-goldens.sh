#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Proxmox VE's command lines (tests/golden/proxmox, from qemu-server's own
# sources, PVE 8 -drive and PVE 9 -blockdev with throttle filters) through
# kvm-launch --dry-run, with the built-in rules and with a policy that forces
# cache=directsync,aio=threads: only disk arguments change (-drive, -blockdev,
# -device write-cache), -object throttle-group and the throttle filter node
# stay as they were but for the disk's cache flags, the protocol node under
# the filter gets the aio; a second pass changes nothing; a policy of
# "aio = keep, cache = keep" (doc/proxmox.md) changes nothing at all; and the real QEMU
# accepts the result (started with -daemonize as Proxmox does, then quit).
# The golden paths are mapped under a temporary root: LVM and zvol volumes
# become loop devices, qcow2/raw files real images.  For the upstream QEMU,
# Proxmox's own -id is dropped and its machine type +pveN becomes "pc".
. "$(dirname "$0")/../functions.sh"
requires_root
requires "$KL" "$QEMU" python3 losetup qemu-img fallocate
kl_tmpdir
G=$KL_TOP/tests/golden/proxmox
R=$TMP/root
printf 'state-dir = %s/st\ncache-dir = %s/cache\n' "$TMP" "$TMP" > "$TMP/builtin.conf"
printf 'state-dir = %s/st\ncache-dir = %s/cache\n[rule all]\ncache = directsync\naio = threads\n' "$TMP" "$TMP" > "$TMP/forced.conf"
printf 'state-dir = %s/st\ncache-dir = %s/cache\n[rule proxmox-decides]\naio = keep\ncache = keep\n' "$TMP" "$TMP" > "$TMP/keep.conf"
chmod 0644 "$TMP"/*.conf
ls "$G"/*.args > /dev/null 2>&1 || fail "no goldens in $G"

# The volumes the goldens name, under $R.
mkdir -p "$R/var/run/qemu-server" "$R/var/lib/vz/images/100" "$R/dev/pve" "$R/dev/zvol/rpool/data"
for v in pve/vm-100-disk-0 zvol/rpool/data/vm-100-disk-0 zvol/rpool/data/vm-100-disk-1; do
	fallocate -l 64M "$TMP/${v//\//_}.img"
	loop=$(losetup -f --show "$TMP/${v//\//_}.img") || fail "losetup"
	cleanup_fn "losetup -d $loop"
	ln -s "$loop" "$R/dev/$v"
done
qemu-img create -q -f qcow2 "$R/var/lib/vz/images/100/vm-100-disk-0.qcow2" 64M
fallocate -l 64M "$R/var/lib/vz/images/100/vm-100-disk-0.raw"

# compare GOLDEN-ARGS OUTPUT-ARGS: only disk arguments differ, as allowed.
compare() {
	python3 - "$1" "$2" <<'PY'
import json, sys
a = open(sys.argv[1]).read().splitlines()
b = open(sys.argv[2]).read().splitlines()
assert len(a) == len(b), "argument count %d -> %d" % (len(a), len(b))
def strip_json(n):
    if isinstance(n, dict):
        return {k: strip_json(v) for k, v in n.items() if k not in ("cache", "aio")}
    return n
def kv(s):
    return [p for p in s.split(",") if not p.split("=")[0] in ("cache", "aio", "cache.direct", "cache.no-flush", "cache.writeback")]
changed = 0
for i, (x, y) in enumerate(zip(a, b)):
    if x == y:
        continue
    opt = a[i - 1]
    changed += 1
    if opt == "-blockdev":
        jx, jy = json.loads(x), json.loads(y)
        assert strip_json(jx) == strip_json(jy), "-blockdev changed beyond cache/aio:\n%s\n%s" % (x, y)
        assert jy["driver"] == "throttle" and jy["throttle-group"] == jx["throttle-group"], "throttle node changed"
        proto = jy["file"]["file"]
        assert proto["driver"] in ("file", "host_device") and "aio" in proto, "no aio on the protocol node"
        assert "aio" not in jy and "aio" not in jy["file"], "aio on a filter or format node"
    elif opt == "-drive":
        assert kv(x) == kv(y), "-drive changed beyond cache/aio:\n%s\n%s" % (x, y)
    elif opt == "-device":
        assert [p for p in x.split(",") if not p.startswith("write-cache=")] == \
               [p for p in y.split(",") if not p.startswith("write-cache=")], "-device changed: %s -> %s" % (x, y)
    else:
        raise AssertionError("argument %d (%s %s) changed to %s" % (i, opt, x, y))
print(changed)
PY
}

n=0
for golden in "$G"/*.args; do
	name=$(basename "$golden" .args)
	[ -s "$G/$name.source" ] || fail "$name: no .source"
	sed -e "s|/var/run/|$R/var/run/|g" -e "s|/var/lib/vz/|$R/var/lib/vz/|g" -e "s|/dev/pve/|$R/dev/pve/|g" \
		-e "s|/dev/zvol/|$R/dev/zvol/|g" -e "s|/var/run/qmeventd.sock|$R/var/run/qmeventd.sock|" "$golden" > "$TMP/$name.in"
	mapfile -t in < "$TMP/$name.in"
	# doc/proxmox.md: "aio = keep, cache = keep" lets Proxmox decide: nothing changes.
	"$KL" --config "$TMP/keep.conf" --qemu "$QEMU" --dry-run -- "${in[@]:1}" 2> "$TMP/$name.keep.err" | sed "1s|.*|${in[0]}|" > "$TMP/$name.keep"
	cmp -s "$TMP/$name.in" "$TMP/$name.keep" || fail "$name: the keep policy changed: $(diff "$TMP/$name.in" "$TMP/$name.keep") $(cat "$TMP/$name.keep.err")"
	for pol in builtin forced; do
		"$KL" --config "$TMP/$pol.conf" --qemu "$QEMU" --dry-run -- "${in[@]:1}" > "$TMP/$name.$pol" 2> "$TMP/$name.$pol.err" ||
			fail "$name ($pol): --dry-run failed: $(cat "$TMP/$name.$pol.err")"
		grep -q 'could not handle' "$TMP/$name.$pol.err" && fail "$name ($pol): fail-open: $(cat "$TMP/$name.$pol.err")"
		sed -i "1s|.*|${in[0]}|" "$TMP/$name.$pol"
		changed=$(compare "$TMP/$name.in" "$TMP/$name.$pol") || fail "$name ($pol): $changed"
		mapfile -t out < "$TMP/$name.$pol"
		"$KL" --config "$TMP/$pol.conf" --qemu "$QEMU" --dry-run -- "${out[@]:1}" 2> /dev/null | sed "1s|.*|${in[0]}|" > "$TMP/$name.$pol.2"
		cmp -s "$TMP/$name.$pol" "$TMP/$name.$pol.2" || fail "$name ($pol): not idempotent: $(diff "$TMP/$name.$pol" "$TMP/$name.$pol.2")"
		[ "$pol" = builtin ] || [ "$changed" -gt 0 ] || fail "$name: the forced policy changed nothing: the case proves nothing"
		echo "$name ($pol): $changed disk argument(s) rewritten, idempotent ($(head -n 1 "$G/$name.source" | cut -d' ' -f1-3))"
		# The real QEMU accepts it.
		mapfile -t run < <(sed -n '2,$p' "$TMP/$name.$pol" | python3 -c '
import sys
a = sys.stdin.read().splitlines()
out = []
i = 0
while i < len(a):
    if a[i] == "-id":
        i += 2
        continue
    x = a[i]
    if i > 0 and a[i - 1] == "-machine" and "+pve" in x:
        x = "type=pc," + ",".join(p for p in x.split(",") if not p.startswith("type="))
    out.append(x.replace("reconnect-ms=5000", "reconnect=5"))
    i += 1
print("\n".join(out))')
		rm -f "$R/var/run/qemu-server/100.pid"
		"$QEMU" -display none "${run[@]}" > "$TMP/$name.qemu.err" 2>&1 || fail "$name ($pol): QEMU refused it: $(cat "$TMP/$name.qemu.err")"
		pid=$(cat "$R/var/run/qemu-server/100.pid")
		cleanup_fn "kill -9 $pid 2>/dev/null"
		kill "$pid"
		wait_for 10 sh -c "! kill -0 $pid 2>/dev/null" || fail "$name: QEMU $pid did not quit"
	done
	n=$((n + 1))
done
echo "$n Proxmox goldens: only disk arguments rewritten, idempotent, accepted by $("$QEMU" --version | head -n 1)"
