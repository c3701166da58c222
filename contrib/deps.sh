#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Installs what kvm-launch needs from Debian's packages (run as root).
#   sh contrib/deps.sh           build + run + demo
#   sh contrib/deps.sh --tests   also everything `make check` uses
# Packages already installed are not touched; apt-get update runs only when
# something is missing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

pkgs="gcc make pkg-config libc6-dev libjson-c-dev liburing-dev libaio-dev libncurses-dev qemu-system-x86
      qemu-utils busybox-static cpio gzip util-linux"
# --tests: ansible-core for the role's test (t-ansible.sh), prometheus for its
# promtool (t-promtool.sh; Debian ships promtool only with the server), tmux
# for --top's test (t-top.sh).
if [ "${1:-}" = --tests ]; then
	pkgs="$pkgs libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients valgrind clang
	      libclang-rt-14-dev e2fsprogs btrfs-progs xfsprogs debhelper apparmor checkpolicy semodule-utils bash-completion groff-base
	      libfuse3-dev fuse3 strace systemd
	      ansible-core prometheus tmux qemu-system-arm procps build-essential"
	[ -f "$here/deps-tests.txt" ] && pkgs="$pkgs $(grep -v '^#' "$here/deps-tests.txt" | tr '\n' ' ')"
fi

missing=
for p in $pkgs; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $status in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
if [ -z "$missing" ]; then
	echo "deps: everything is installed"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$missing (run this script as root)" >&2
	exit 1
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
