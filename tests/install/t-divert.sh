#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# kvm-launch-divert against the real system QEMU and a real libvirtd (root only;
# it changes /usr/bin for a few seconds and always undoes that in its cleanup).
#
# A dedicated build of this tree, installed under /var/lib/kvm-launch-tests/divert
# (its own policy, state and cache paths), is made the system QEMU.  Then a
# transient domain with the default emulator /usr/bin/qemu-system-x86_64 and one
# raw file disk (no kernel: it sits in the BIOS, which is enough) must run the
# real QEMU with the policy's cache/aio and kvm-launch's monitors, and libvirt
# must have probed the emulator again without a restart.  After undo the same
# domain runs plain QEMU, the binary is back byte for byte, and the policy file
# is as it was.  Install and undo act on every installed target: a second one,
# /usr/bin/qemu-system-aarch64 (Debian's qemu-system-arm), must be diverted too,
# run its own real binary (not x86_64's), and come back byte for byte.  A second
# round without a policy file checks that install creates it and undo removes it.
. "$(dirname "$0")/../functions.sh"
requires_root
PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C
Q=/usr/bin/qemu-system-x86_64
Q2=/usr/bin/qemu-system-aarch64
requires dpkg-divert virsh libvirtd virtlogd sha256sum make tar "$Q" "$Q2"
VIRSH=(virsh -q -c qemu:///system)
NAME=kl-divert-test
base=/var/lib/kvm-launch-tests/divert
log() { echo "t-divert: $*"; }

# ---- no stale state from an earlier run, or from anyone ----
for q in /usr/bin/qemu-system-*; do
	q=${q%.distrib}
	[ -L "$q" ] && [ -z "$(dpkg-divert --listpackage "$q")" ] && continue # an alias link (below)
	if [ -n "$(dpkg-divert --listpackage "$q")" ]; then
		fail "$q is already diverted ($(dpkg-divert --listpackage "$q") -> $(dpkg-divert --truename "$q")): undo it first (kvm-launch-divert undo)"
	fi
	[ ! -e "$q.distrib" ] || fail "$q.distrib exists without a diversion: a leftover? move it away first"
	[ -f "$q" ] && [ ! -L "$q" ] || fail "$q is not a regular file"
done
"$Q" --version 2>/dev/null | grep -q '^kvm-launch' && fail "$Q is kvm-launch without a diversion"

# Other tests' QEMUs would be started through kvm-launch while the diversion
# lasts: outside CI, wait for them to finish.
if [ "${CI:-}" != true ]; then
	for i in $(seq 120); do
		busy=$(pgrep -x qemu-system-x86 || pgrep -f "^$Q " || true)
		[ -z "$busy" ] && break
		[ "$i" = 120 ] && { echo "SKIP: $0: other QEMUs keep running (pids $busy): not diverting under them"; exit 77; }
		sleep 1
	done
fi

sum_before=$(sha256sum < "$Q")
stat_before=$(stat -c '%a %U %G %s %Y' "$Q")
log "$Q: $stat_before sha256 ${sum_before%% *}"
sum2_before=$(sha256sum < "$Q2")
stat2_before=$(stat -c '%a %U %G %s %Y' "$Q2")
log "$Q2: $stat2_before sha256 ${sum2_before%% *}"

# ---- the dedicated installation ----
mkdir -p "$base"
exec 9>"$base/lock"
flock -w 600 9 || fail "another t-divert.sh holds $base/lock"
rm -rf "${base:?}/src" "${base:?}/prefix" "${base:?}/etc" "${base:?}/run" "${base:?}/var" "${base:?}/img"
mkdir -p "$base/src" "$base/img" /var/log/kvm-launch-tests
(cd "$KL_TOP" && tar cf - --exclude=./.git --exclude='*.o' --exclude='*.a' --exclude=./kvm-launch \
	--exclude=./tests/logs --exclude=./build-asan --exclude=./debian --exclude=./tests/fuzz/out --exclude=./tests/guest/out . ) | tar xf - -C "$base/src"
(cd "$base/src" && ./configure --prefix="$base/prefix" --sysconfdir="$base/etc" --runstatedir="$base/run" \
	--localstatedir="$base/var" --with-qemu="$Q" && make -j"$(nproc)" kvm-launch && make install) \
	> "$base/build.log" 2>&1 || { tail -20 "$base/build.log"; fail "build of the test installation failed"; }
KLB=$base/prefix/bin/kvm-launch
DIV=$base/prefix/sbin/kvm-launch-divert
POL=$base/etc/kvm-launch/kvm-launch.conf
STATE=$base/run/kvm-launch
log "test installation: $KLB (policy $POL, state $STATE)"

# ---- libvirtd (stopped at the end only if this test started it) ----
running=0
if [ -s /run/libvirtd.pid ] && [ "$(cat "/proc/$(cat /run/libvirtd.pid)/comm" 2>/dev/null)" = libvirtd ]; then
	running=1
fi
rc=0
# (without our lock fd: a daemon started here must not hold it)
"$KL_TOP/tests/libvirt/libvirtd-up.sh" 9>&- || rc=$?
[ "$rc" = 77 ] && { echo "SKIP: $0: libvirtd cannot run here"; exit 77; }
[ "$rc" = 0 ] || fail "libvirtd-up.sh failed"
[ "$running" = 1 ] || cleanup_fn "'$KL_TOP/tests/libvirt/libvirtd-down.sh' --restore-config 9>&-"

undo_if_ours() {
	if [ "$(dpkg-divert --listpackage "$Q")" = LOCAL ] || [ "$(dpkg-divert --listpackage "$Q2")" = LOCAL ]; then
		"$DIV" undo --kvm-launch "$KLB" --config "$POL" || true
	fi
	if [ "$(sha256sum < "$Q")" != "$sum_before" ]; then
		echo "t-divert: WARNING: $Q differs from before the test" >&2
	fi
}
cleanup_fn "${VIRSH[*]} destroy $NAME >/dev/null 2>&1; undo_if_ours"

"${VIRSH[@]}" destroy "$NAME" >/dev/null 2>&1 || true

img=$base/img/disk.raw
truncate -s 64M "$img"
"$KL_TOP/tests/libvirt/make-domain.sh" ${KL_SUITE_ID:+--env "KL_SUITE_ID=$KL_SUITE_ID"} --name "$NAME" --emulator "$Q" --serial-log "/var/log/kvm-launch-tests/$NAME.serial" \
	"file:$img:raw:bus=virtio" | sed -e '/<kernel>/d' -e '/<initrd>/d' -e '/<cmdline>/d' > "$base/dom.xml"

# libvirt's capability cache entry for $Q: its <qemuctime>.
qemuctime() {
	local f
	f=$(grep -l -x "  <emulator>$Q</emulator>" /var/cache/libvirt/qemu/capabilities/*.xml 2>/dev/null | head -n 1)
	[ -n "$f" ] && sed -n 's|.*<qemuctime>\(.*\)</qemuctime>.*|\1|p' "$f"
}

# Starts the domain, prints its QEMU's PID.
start_domain() {
	"${VIRSH[@]}" create "$base/dom.xml" >/dev/null || fail "virsh create failed (see /var/log/libvirt/qemu/$NAME.log)"
	local pid
	pid=$(cat "/run/libvirt/qemu/$NAME.pid")
	[ -d "/proc/$pid" ] || fail "no QEMU process $pid"
	echo "$pid"
}
stop_domain() { "${VIRSH[@]}" destroy "$NAME" >/dev/null; }
cmdline() { tr '\0' '\n' < "/proc/$1/cmdline"; }

# A plain start first: libvirt has probed the plain QEMU.
pid=$(start_domain)
stop_domain
ctime_plain=$(qemuctime)

# ---- round 1: an existing policy ----
mkdir -p "$(dirname "$POL")"
cat > "$POL" <<'EOF'
# kvm-launch policy of t-divert.sh
[rule divert-test]
backend = file
format = raw
cache = none
aio = io_uring, threads
EOF
chmod 0644 "$POL"
pol_before=$(sha256sum < "$POL")

log "\$ kvm-launch-divert install"
"$DIV" install --kvm-launch "$KLB" --config "$POL" | sed 's/^/  /'
[ "$(dpkg-divert --listpackage "$Q")" = LOCAL ] || fail "no local diversion"
[ "$(dpkg-divert --truename "$Q")" = "$Q.distrib" ] || fail "diverted to $(dpkg-divert --truename "$Q")"
[ "$(readlink "$Q")" = "$KLB" ] || fail "$Q is not a link to $KLB"
[ "$(sha256sum < "$Q.distrib")" = "$sum_before" ] || fail "$Q.distrib is not the original binary"
# The second target: diverted as well, and kvm-launch under its name runs its own real binary.
[ "$(dpkg-divert --truename "$Q2")" = "$Q2.distrib" ] || fail "$Q2 diverted to $(dpkg-divert --truename "$Q2")"
[ "$(readlink "$Q2")" = "$KLB" ] || fail "$Q2 is not a link to $KLB"
[ "$(sha256sum < "$Q2.distrib")" = "$sum2_before" ] || fail "$Q2.distrib is not the original binary"
real2=$("$Q2" --dry-run -- -name x -machine virt | head -n 1)
[ "$real2" = "$Q2.distrib" ] || fail "kvm-launch at $Q2 would run '$real2', not $Q2.distrib"
log "$Q2: diverted too; kvm-launch under that name runs $real2"
# Debian 13's packaging (QEMU 10 here) adds alias links such as qemu-system-amd64 -> qemu-system-x86_64; they are
# not diverted and reach the diverted binary, and kvm-launch reads them as the target they point to.
aliases=0
for a in /usr/bin/qemu-system-*; do
	[ -L "$a" ] && [ "$a" != "$Q" ] && [ "$a" != "$Q2" ] || continue
	t=$(readlink "$a")
	case $t in qemu-system-* | /usr/bin/qemu-system-*) ;; *) continue ;; esac
	[ -z "$(dpkg-divert --listpackage "$a")" ] || fail "the alias $a was diverted"
	real=$("$a" --dry-run -- -name x | head -n 1)
	[ "$real" = "/usr/bin/${t##*/}.distrib" ] || fail "kvm-launch reached through the alias $a -> $t would run '$real'"
	log "alias $a -> $t: runs $real"
	aliases=$((aliases + 1))
done
[ "$aliases" -gt 0 ] || log "no qemu-system-* alias links here (Debian 12's QEMU 7.2 packaging has none)"
[ "$(sed -n 2p "$POL")" = "qemu = $Q.distrib" ] || { cat "$POL"; fail "policy: no qemu line at the top"; }
[ "$(sed 1,3d "$POL" | sha256sum)" = "$pol_before" ] || fail "policy: the rest of the file changed"
"$DIV" status --kvm-launch "$KLB" --config "$POL" | sed 's/^/  /' || fail "status: not installed"
log "\$ kvm-launch-divert install   (again)"
"$DIV" install --kvm-launch "$KLB" --config "$POL" | sed 's/^/  /'
[ "$(grep -c '^qemu = ' "$POL")" = 1 ] || fail "a second install added the qemu line again"

pid=$(start_domain)
ctime_diverted=$(qemuctime)
log "domain $NAME: QEMU pid $pid, exe $(readlink "/proc/$pid/exe")"
cmdline "$pid" > "$base/cmdline.diverted"
[ "$(readlink "/proc/$pid/exe")" = "$Q.distrib" ] || fail "the domain does not run the real QEMU ($(readlink "/proc/$pid/exe"))"
grep -q 'kvmlaunch-agent' "$base/cmdline.diverted" || fail "no kvm-launch monitor on the command line"
disk=$(grep -F "\"filename\":\"$img\"" "$base/cmdline.diverted") || fail "no -blockdev for the disk"
log "  $disk"
# libvirt's default (no cache=, no io= in the XML) is writeback and the
# thread pool, written as no cache and no aio keys: these come from the policy.
grep -q '"cache":{"direct":true,"no-flush":false}' <<<"$disk" || fail "the policy's cache=none is not on the disk"
if "$KLB" --status --json | grep -q '"io_uring":true'; then
	grep -q '"aio":"io_uring"' <<<"$disk" || fail "the policy's aio=io_uring is not on the disk"
fi
grep -q 'kvmlaunch-query' "$base/cmdline.diverted" && log "  ... -chardev socket,id=kvmlaunch-agent ... -chardev socket,id=kvmlaunch-query ..."
"$KLB" --status "$NAME" | sed 's/^/  /'
"$KLB" --status "$NAME" --json | grep -q "\"pid\":$pid" || fail "--status does not show pid $pid"
log "libvirt capability cache for $Q: qemuctime $ctime_plain (plain) -> $ctime_diverted (diverted): probed again, no restart"
[ -n "$ctime_diverted" ] && [ "$ctime_diverted" != "$ctime_plain" ] || fail "libvirt did not probe the emulator again"
stop_domain

log "\$ kvm-launch-divert undo"
"$DIV" undo --kvm-launch "$KLB" --config "$POL" | sed 's/^/  /'
[ -z "$(dpkg-divert --listpackage "$Q")" ] || fail "the diversion is still there"
[ -f "$Q" ] && [ ! -L "$Q" ] || fail "$Q is not a regular file after undo"
[ ! -e "$Q.distrib" ] || fail "$Q.distrib still exists"
[ "$(sha256sum < "$Q")" = "$sum_before" ] || fail "$Q is not the original binary after undo"
[ "$(stat -c '%a %U %G %s %Y' "$Q")" = "$stat_before" ] || fail "$Q: mode, owner, size or mtime changed"
[ "$(sha256sum < "$POL")" = "$pol_before" ] || fail "policy differs after undo"
log "$Q: $(stat -c '%a %U %G %s %Y' "$Q") sha256 $(sha256sum < "$Q" | cut -c1-64): as before"
[ -z "$(dpkg-divert --listpackage "$Q2")" ] || fail "the diversion of $Q2 is still there"
[ -f "$Q2" ] && [ ! -L "$Q2" ] && [ ! -e "$Q2.distrib" ] || fail "$Q2 is not a regular file again, or $Q2.distrib is left"
[ "$(sha256sum < "$Q2")" = "$sum2_before" ] || fail "$Q2 is not the original binary after undo"
[ "$(stat -c '%a %U %G %s %Y' "$Q2")" = "$stat2_before" ] || fail "$Q2: mode, owner, size or mtime changed"
log "$Q2: $(stat -c '%a %U %G %s %Y' "$Q2") sha256 $(sha256sum < "$Q2" | cut -c1-64): as before"
for q in /usr/bin/qemu-system-*; do
	[ -z "$(dpkg-divert --listpackage "${q%.distrib}")" ] || fail "${q%.distrib} is still diverted after undo"
done

pid=$(start_domain)
cmdline "$pid" > "$base/cmdline.plain"
[ "$(readlink "/proc/$pid/exe")" = "$Q" ] || fail "after undo the domain runs $(readlink "/proc/$pid/exe")"
! grep -q kvmlaunch "$base/cmdline.plain" || fail "after undo the command line still has kvm-launch's monitors"
! grep -F "\"filename\":\"$img\"" "$base/cmdline.plain" | grep -q '"aio"' || fail "after undo the disk still has an aio"
log "after undo: domain $NAME runs $(readlink "/proc/$pid/exe"), no kvmlaunch monitor, disk as libvirt wrote it"
stop_domain

# ---- round 2: no policy file ----
rm -rf "${base:?}/etc"
log "\$ kvm-launch-divert install   (no policy file)"
"$DIV" install --kvm-launch "$KLB" --config "$POL" | sed 's/^/  /'
[ "$(grep -v '^#' "$POL")" = "qemu = $Q.distrib" ] || { cat "$POL"; fail "created policy"; }
"$KLB" --check-policy "$POL" >/dev/null || fail "the created policy is not valid"
[ "$("$Q" --dry-run -- -name x | head -n 1)" = "$Q.distrib" ] || fail "kvm-launch at $Q would not run $Q.distrib"
log "\$ kvm-launch-divert undo"
"$DIV" undo --kvm-launch "$KLB" --config "$POL" | sed 's/^/  /'
[ ! -e "$POL" ] && [ ! -e "$base/etc/kvm-launch" ] || fail "undo left the policy it created"
[ "$(sha256sum < "$Q")" = "$sum_before" ] || fail "$Q is not the original binary"
if dpkg -S "$Q" >/dev/null 2>&1; then
	pkg=$(dpkg -S "$Q" | cut -d: -f1)
	! dpkg --verify "$pkg" 2>&1 | grep -F " $Q" || fail "dpkg --verify $pkg complains about $Q"
	log "dpkg --verify $pkg: $Q unchanged"
fi
echo "PASS: kvm-launch-divert install/undo with a real libvirtd"
