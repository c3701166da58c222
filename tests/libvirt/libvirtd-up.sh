#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# libvirtd-up.sh — start a real system-mode libvirtd + virtlogd on this machine, without systemd (idempotent).
#
#   tests/libvirt/libvirtd-up.sh        then use `virsh -c qemu:///system ...`; stop with libvirtd-down.sh
#
# What it does (DESIGN.md section 3):
#   - groups kvm and libvirt-qemu, system user libvirt-qemu: libvirt resolves its built-in default QEMU user and
#     group before it reads qemu.conf, and its QEMU driver fails to start when they do not exist;
#   - the directories libvirtd expects (Debian puts them in libvirt-daemon-system, which we do not install);
#   - /etc/libvirt/qemu.conf: user = "root", group = "root", security_driver = "none", each only if the key is not
#     already set (the first change keeps a copy in qemu.conf.kvm-launch-tests.orig);
#   - virtlogd -d and libvirtd -d unless already running; the pids of what we started go to
#     /run/kvm-launch-tests/{virtlogd,libvirtd}.pid so libvirtd-down.sh stops only those;
#   - waits (20 s at most) for `virsh -c qemu:///system version` to answer.
# Exit 0 ready, 1 failure, 77 when not root or the binaries are missing.
set -euo pipefail

state=/run/kvm-launch-tests
conf=/etc/libvirt/qemu.conf

msg() { echo "libvirtd-up: $*" >&2; }
skip() { echo "libvirtd-up: SKIP: $*" >&2; exit 77; }
fail() { echo "libvirtd-up: FAIL: $*" >&2; exit 1; }

[[ $(id -u) = 0 ]] || skip "must run as root (system-mode libvirtd)"
PATH=$PATH:/usr/sbin:/sbin
for b in libvirtd virtlogd virsh; do
    command -v "$b" >/dev/null || skip "$b not found (apt-get install libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)"
done
[[ -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ]] ||
    ls /usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so >/dev/null 2>&1 ||
    skip "libvirt QEMU driver not installed (libvirt-daemon-driver-qemu)"

# A pid file names a live process of the expected program.
alive() { # $1 pidfile, $2 program name
    local pid
    [[ -s $1 ]] || return 1
    pid=$(cat "$1")
    [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) = "$2" ]]
}

# ---- users, groups, directories ----
# Debian's build defaults to user AND group libvirt-qemu (checked on 9.0: "Failed to parse group 'libvirt-qemu'"
# without the group), even though qemu.conf then overrides both.
getent group kvm >/dev/null || groupadd --system kvm
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
    useradd --system --gid libvirt-qemu --groups kvm --no-create-home --home-dir /var/lib/libvirt \
        --shell /usr/sbin/nologin libvirt-qemu
mkdir -p /etc/libvirt /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/lib/libvirt/images /var/cache/libvirt/qemu \
    /run/libvirt "$state"

# ---- qemu.conf ----
conf_changed=0
set_conf() { # $1 key, $2 value (already quoted)
    if [[ -f $conf ]] && grep -Eq "^[[:space:]]*$1[[:space:]]*=" "$conf"; then
        return 0
    fi
    if [[ $conf_changed = 0 && -f $conf && ! -e $conf.kvm-launch-tests.orig ]]; then
        cp -p "$conf" "$conf.kvm-launch-tests.orig"
    fi
    [[ -f $conf ]] || echo "# written by kvm-launch tests/libvirt/libvirtd-up.sh" >"$conf"
    echo "$1 = $2" >>"$conf"
    conf_changed=1
    msg "qemu.conf: set $1 = $2"
}
set_conf user '"root"'
set_conf group '"root"'
set_conf security_driver '"none"'

# ---- daemons ----
# In system mode virtlogd writes /run/virtlogd.pid and libvirtd /run/libvirtd.pid.
if [[ $conf_changed = 1 ]] && alive /run/libvirtd.pid libvirtd; then
    if alive "$state/libvirtd.pid" libvirtd; then
        msg "restarting our libvirtd to read the new qemu.conf"
        kill "$(cat "$state/libvirtd.pid")"
        for _ in $(seq 50); do alive /run/libvirtd.pid libvirtd || break; sleep 0.1; done
    else
        msg "warning: a libvirtd we did not start is running; it has not read the new qemu.conf"
    fi
fi

if ! alive /run/virtlogd.pid virtlogd; then
    virtlogd -d
    for _ in $(seq 50); do alive /run/virtlogd.pid virtlogd && break; sleep 0.1; done
    alive /run/virtlogd.pid virtlogd || fail "virtlogd did not start"
    cp /run/virtlogd.pid "$state/virtlogd.pid"
    msg "started virtlogd (pid $(cat /run/virtlogd.pid))"
fi

if ! alive /run/libvirtd.pid libvirtd; then
    libvirtd -d
    for _ in $(seq 50); do alive /run/libvirtd.pid libvirtd && break; sleep 0.1; done
    alive /run/libvirtd.pid libvirtd || fail "libvirtd did not start"
    cp /run/libvirtd.pid "$state/libvirtd.pid"
    msg "started libvirtd (pid $(cat /run/libvirtd.pid))"
fi

# The QEMU driver answers only after its capability probe of the emulator: allow it some time.
deadline=$((SECONDS + 20))
out=
while ((SECONDS < deadline)); do
    if out=$(timeout 5 virsh -c qemu:///system version 2>&1); then
        msg "ready: $(echo "$out" | grep -i 'running hypervisor' || echo "$out" | head -n1)"
        exit 0
    fi
    sleep 0.2
done
fail "virsh -c qemu:///system version did not answer within 20 s: $out"
