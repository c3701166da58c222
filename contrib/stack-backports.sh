#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs the README's test command on the second tested stack, Debian 12 with QEMU and libvirt from
# bookworm-backports (QEMU 10.0, libvirt 11.3), inside a debootstrap'ed root, without touching this
# machine's own QEMU, libvirt or /run.
#
#   sh contrib/stack-backports.sh            build the root if needed, then run the suite in it
#   sh contrib/stack-backports.sh --build    only build (or reuse) the root
#   sh contrib/stack-backports.sh --shell    a shell in the root, mounted as for the run
#   sh contrib/stack-backports.sh -- CMD...  run CMD in the root instead of the suite
#
# The root lives in $KL_STACK_ROOT (default /var/lib/kvm-launch-stacks/bookworm-backports) and is
# rebuilt when its package list (this script's, contrib/deps.sh's or contrib/deps-tests.txt) or the
# mirror changes.  QEMU and libvirt are installed with `apt-get install -t bookworm-backports` before
# contrib/deps.sh runs, so every one of them comes from backports whatever apt would prefer; their
# versions are printed at each run.
#
# The run happens in new PID and mount namespaces: a fresh /proc for that PID namespace, /sys, /dev
# and /dev/pts bound from the host, a private tmpfs on /run, /dev/shm and a copy of the source tree
# (tracked and untracked files, not ignored ones) in /src.  Whatever the suite starts (libvirtd,
# virtlogd, QEMU, agents) lives in that PID namespace and dies with it; the mounts live in that mount
# namespace and go with it; loop devices backed by files in the root are detached.  A trap does all
# this on every exit, including Ctrl-C and SIGTERM.  The logs are copied back to
# tests/logs-backports/.  Exit status: the suite's.
# The whole script is one block, parsed before it runs: editing the file meanwhile cannot change a run.
{
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
root=${KL_STACK_ROOT:-/var/lib/kvm-launch-stacks/bookworm-backports}
suite=bookworm
# The packages that define the stack, pinned to backports.
bp_pkgs="qemu-system-x86 qemu-system-arm qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients"

log() { echo "stack-backports: $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, namespaces)"

# The Debian mirror this host's apt uses (one-line or deb822 sources), else deb.debian.org.
host_mirror() {
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		sed -n -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\/debian\)\/\{0,1\}[[:space:]]\{1,\}bookworm[[:space:]].*/\2/p' \
			-e 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\{0,1\}[[:space:]]*$/\1/p' "$f"
	done | head -n 1
}
mirror=${KL_STACK_MIRROR:-$(host_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
security=$(echo "$mirror" | sed 's|/debian$|/debian-security|')

stamp() {
	{
		echo "mirror=$mirror suite=$suite"
		echo "bp_pkgs=$bp_pkgs"
		cat "$here/contrib/deps.sh"
		cat "$here/contrib/deps-tests.txt" 2>/dev/null || true
	} | sha256sum | cut -d' ' -f1
}

# ---- cleanup: everything the run started ----
ns_pid=
build_mounts=
cleanup() {
	rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$ns_pid" ] && kill -0 "$ns_pid" 2>/dev/null; then
		# unshare blocks SIGINT and SIGTERM while it waits for its child, the namespace's init:
		# SIGKILL that one, and the kernel kills every process of the namespace with it.
		for c in $(cat "/proc/$ns_pid/task/$ns_pid/children" 2>/dev/null); do
			kill -KILL "$c" 2>/dev/null || true
		done
		wait "$ns_pid" 2>/dev/null || true
	fi
	for m in $build_mounts; do
		umount -l "$m" 2>/dev/null || true
	done
	# Mounts of the run lived in its own namespace; check that none leaked into ours.
	if grep -q " $root/" /proc/mounts 2>/dev/null; then
		grep " $root/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" || true; done
	fi
	detach_loops
	exit "$rc"
}
detach_loops() {
	for b in /sys/block/loop*/loop/backing_file; do
		[ -r "$b" ] || continue
		case $(cat "$b" 2>/dev/null) in
		"$root"/*)
			dev=/dev/$(basename "$(dirname "$(dirname "$b")")")
			log "detaching $dev ($(cat "$b"))"
			losetup -d "$dev" 2>/dev/null || true ;;
		esac
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- build (or reuse) the root ----
build_root() {
	want=$(stamp)
	if [ -f "$root/.kvm-launch-stack" ] && [ "$(cat "$root/.kvm-launch-stack")" = "$want" ]; then
		log "reusing $root"
		return 0
	fi
	t0=$(now)
	log "building $root from $mirror ($suite + $suite-backports)"
	command -v debootstrap >/dev/null || {
		log "installing debootstrap on the host"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
	}
	rm -rf "$root.new"
	mkdir -p "$(dirname "$root")"
	debootstrap --variant=minbase "$suite" "$root.new" "$mirror" >"$root.new.debootstrap.log" 2>&1 ||
		{ tail -n 20 "$root.new.debootstrap.log" >&2; die "debootstrap failed (log $root.new.debootstrap.log)"; }
	mv "$root.new.debootstrap.log" "$root.new/debootstrap.log"
	cat >"$root.new/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
deb $mirror $suite-backports main
EOF
	# No daemon starts inside the root while packages install.
	printf '#!/bin/sh\nexit 101\n' >"$root.new/usr/sbin/policy-rc.d"
	chmod 755 "$root.new/usr/sbin/policy-rc.d"
	for m in proc sys dev dev/pts; do
		mount --bind "/$m" "$root.new/$m"
		build_mounts="$root.new/$m $build_mounts"
	done
	mkdir -p "$root.new/src"
	copy_src "$root.new/src/kvm-launch"
	t1=$(now)
	chroot "$root.new" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive sh -eu -c "
		apt-get update -q
		apt-get install -y -q --no-install-recommends -t $suite-backports $bp_pkgs
		cd /src/kvm-launch && sh contrib/deps.sh --tests
		apt-get clean" >"$root.new/packages.log" 2>&1 ||
		{ tail -n 30 "$root.new/packages.log" >&2; die "installing the packages failed (log $root.new/packages.log)"; }
	for m in $build_mounts; do umount "$m"; done
	build_mounts=
	rm -rf "$root.new/src"
	echo "$want" >"$root.new/.kvm-launch-stack"
	rm -rf "$root.old"
	[ -d "$root" ] && mv "$root" "$root.old"
	mv "$root.new" "$root"
	rm -rf "$root.old"
	log "root built: debootstrap $((t1 - t0)) s, packages $(($(now) - t1)) s"
}

# The working tree as it is (tracked and untracked, not ignored), without build products.
copy_src() {
	rm -rf "$1"
	mkdir -p "$1"
	(cd "$here" && git ls-files -z -c -o --exclude-standard | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf -) | tar -xf - -C "$1"
}

# ---- run in new PID + mount namespaces ----
# The namespace's init: mounts, runs, and on any exit kills the rest of the namespace and detaches loops.
inner='
set -u
root=$1; shift
trap "kill -KILL -1 2>/dev/null; sleep 0.2
	for b in /sys/block/loop*/loop/backing_file; do
		[ -r \"\$b\" ] || continue
		case \$(cat \"\$b\") in \"\$root\"/*) losetup -d /dev/\$(basename \$(dirname \$(dirname \$b))) ;; esac
	done" EXIT
mount --make-rprivate /
# The root must be a mount point: libvirt makes "/" a slave mount for its private /dev of each QEMU
# ("Failed disable mount propagation out of the root filesystem" otherwise).
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --bind /sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mount --bind "$root/src" "$root/src"
chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" CI=true "$@"
'

run_in_root() {
	copy_src "$root/src/kvm-launch"
	unshare --pid --fork --mount --propagation private --kill-child -- sh -c "$inner" inner "$root" "$@" 8>&- &
	ns_pid=$!
	rc=0
	wait "$ns_pid" || rc=$?
	ns_pid=
	return "$rc"
}

# Prints the stack's versions; each must be a backports build (~bpo), or the run is not the stack it claims.
# libvirt's private /dev for each QEMU (qemu.conf namespaces, default ["mount"]) cannot be built inside a
# chroot: QEMU found an empty /dev ("Failed to open /dev/null", "Could not open '/dev/loop0'").  The root is
# not a whole system, so that feature is off there; everything else is libvirt's default.
root_config() {
	f=$root/etc/libvirt/qemu.conf
	grep -q '^namespaces *=' "$f" 2>/dev/null && return 0
	printf '%s\n' "# contrib/stack-backports.sh: no private /dev per QEMU inside this chroot" 'namespaces = [ ]' >>"$f"
}

versions() {
	v=$(chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' $bp_pkgs) || die "dpkg-query in $root failed"
	echo "$v" | sed 's/^/stack-backports:   /' >&2
	! echo "$v" | grep -v '~bpo' >&2 || die "the packages above are not from $suite-backports"
}

mode=run
case ${1:-} in
--build) mode=build ;;
--shell) mode=shell ;;
--) shift; mode=cmd ;;
"") ;;
*) die "usage: $0 [--build | --shell | -- CMD...]" ;;
esac

# One run at a time per root: they share its /src and /var/lib/kvm-launch-tests.
mkdir -p "$(dirname "$root")"
exec 8>"$root.lock"
flock -w 7200 8 || die "another run holds $root.lock"
t_start=$(now)
build_root
root_config
t_built=$(now)
log "stack (pinned to $suite-backports):"
versions
case $mode in
build) exit 0 ;;
shell) run_in_root /bin/bash; exit $? ;;
cmd) run_in_root "$@"; exit $? ;;
esac

rc=0
run_in_root sh -c 'cd /src/kvm-launch && sh contrib/deps.sh --tests && ./configure --enable-werror && make check' || rc=$?
t_end=$(now)
rm -rf "$here/tests/logs-backports"
[ -d "$root/src/kvm-launch/tests/logs" ] && cp -r "$root/src/kvm-launch/tests/logs" "$here/tests/logs-backports"
log "root: $((t_built - t_start)) s; suite: $((t_end - t_built)) s; total: $((t_end - t_start)) s; exit $rc"
exit "$rc"
}
