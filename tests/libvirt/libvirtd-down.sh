#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# libvirtd-down.sh — stop the libvirtd and virtlogd that libvirtd-up.sh started (and only those).
#
#   tests/libvirt/libvirtd-down.sh [--restore-config]
# Pids come from /run/kvm-launch-tests/{libvirtd,virtlogd}.pid; a pid whose process is gone or is no longer that
# program is ignored.  Daemons started by someone else are left alone.  --restore-config also puts back the
# /etc/libvirt/qemu.conf that libvirtd-up.sh saved (or removes the one it created).  Exit 0, or 1 if a daemon
# would not stop.
set -euo pipefail

state=/run/kvm-launch-tests
conf=/etc/libvirt/qemu.conf
rc=0

stop() { # $1 program name
    local f=$state/$1.pid pid
    [[ -s $f ]] || return 0
    pid=$(cat "$f")
    if [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) = "$1" ]]; then
        kill -TERM "$pid"
        for _ in $(seq 100); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        if [[ -d /proc/$pid ]]; then
            echo "libvirtd-down: $1 (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            [[ -d /proc/$pid ]] && rc=1
        fi
        echo "libvirtd-down: stopped $1 (pid $pid)" >&2
    fi
    rm -f "$f"
}

# libvirtd first: it holds connections to virtlogd.
stop libvirtd
stop virtlogd

if [[ ${1:-} = --restore-config ]]; then
    if [[ -e $conf.kvm-launch-tests.orig ]]; then
        mv -f "$conf.kvm-launch-tests.orig" "$conf"
        echo "libvirtd-down: restored $conf" >&2
    elif [[ -f $conf ]] && head -n1 "$conf" | grep -q 'written by kvm-launch'; then
        rm -f "$conf"
        echo "libvirtd-down: removed $conf (libvirtd-up.sh had created it)" >&2
    fi
fi
exit "$rc"
