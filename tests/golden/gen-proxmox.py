#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""gen-proxmox.py: golden Proxmox VE command lines (tests/golden/proxmox/NAME.args,
one argument per line, the emulator first) and where each came from (NAME.source).

Each shape is what qemu-server's functions print for one VM configuration, followed
by hand from the revision named in its .source (no Proxmox code is copied; the rules
are restated):
  PVE 8 (qemu-server stable-bookworm): QemuServer.pm config_to_command (the -id,
    -name, QMP and qmp-event monitors, -pidfile, -daemonize, iothread objects,
    controllers), print_drive_commandline_full (-drive: cache, aio, format,
    detect-zeroes), print_drivedevice_full (-device), drive_uses_cache_direct,
    storage_allows_io_uring_default.
  PVE 9 (qemu-server master; machine >= 10.0): the same, and Blockdev.pm
    generate_drive_blockdev (one nested -blockdev: throttle filter -> format ->
    protocol node, node names from sha256 of the volume), generate_throttle_group
    (-object throttle-group), DriveDevice.pm print_drivedevice_full (write-cache,
    device_id); pve-storage qemu_blockdev_options (LVM and ZFS pool volumes:
    host_device, /dev/VG/LV and /dev/zvol/POOL/NAME).
Only the parts of the command line that these functions write are kept: the rest
of the VM's hardware (CPU flags, VGA, NICs, USB, SMBIOS, PCI bridges) is left out,
so controllers and virtio-blk sit on pci.0 instead of Proxmox's bridges.

Run from the top of the tree: python3 tests/golden/gen-proxmox.py; the output is
deterministic.  Rerun after a Proxmox release and review the diff."""
import hashlib
import json
import os

PVE8 = ("qemu-server", "stable-bookworm", "5ccd363e5908aa5a7b969797babdff1df5159475", "8.4.10")
PVE9 = ("qemu-server", "master", "e6352be67f70042a7433a3a3c712b36d02f9f7cb", "9.2.6")
STORAGE9 = ("pve-storage", "master", "0c56bad8b2a7d69e5ce2c243651fe830d6caa936", "9.1.7")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proxmox")

# Storages as Proxmox's storage.cfg defines them: type, how a volume maps to a path, format.
STORAGES = {
    "local-lvm": ("lvm", lambda v: "/dev/pve/" + v, "raw"),   # plain LVM (type lvm)
    "local-zfs": ("zfspool", lambda v: "/dev/zvol/rpool/data/" + v, "raw"),
    "local": ("dir", lambda v: "/var/lib/vz/images/100/" + v, None),  # format from the name
}


def volume(volid):
    sid, name = volid.split(":", 1)
    stype, path, fmt = STORAGES[sid]
    if fmt is None:
        fmt = name.rsplit(".", 1)[1]
        name = name
    return stype, path(name), fmt


def cache_direct(d, stype):  # drive_uses_cache_direct
    if d.get("cache"):
        return d["cache"] in ("off", "none", "directsync")
    return not (stype == "btrfs")


def io_uring_default(stype, direct):  # storage_allows_io_uring_default
    return stype not in ("lvm", "cifs")


def aio_of(d, stype, direct):  # aio_cmdline_option and the -drive branch
    if d.get("aio"):
        return d["aio"]
    if io_uring_default(stype, direct):
        return "io_uring"
    return "native" if direct else "threads"


def detect_zeroes(d):  # detect_zeroes_cmdline_option
    if "detect_zeroes" in d and not d["detect_zeroes"]:
        return "off"
    if d.get("discard"):
        return "unmap" if d["discard"] == "on" else "on"
    return "on"


def drive_pve8(d):  # print_drive_commandline_full (no live restore)
    stype, path, fmt = volume(d["file"])
    opts = ""
    for o in ("cache", "aio", "discard"):
        if d.get(o):
            opts += ",%s=%s" % (o, d[o])
    for key, qmp in (("", "-total"), ("_rd", "-read"), ("_wr", "-write")):
        if d.get("mbps" + key):
            opts += ",throttling.bps%s=%d" % (qmp, int(d["mbps" + key] * 1024 * 1024))
        if d.get("iops" + key):
            opts += ",throttling.iops%s=%d" % (qmp, d["iops" + key])
    opts += ",format=" + fmt
    direct = cache_direct(d, stype)
    if not d.get("cache") and direct:
        opts += ",cache=none"
    if not d.get("aio"):
        opts += ",aio=" + aio_of(d, stype, direct)
    opts += ",detect-zeroes=" + detect_zeroes(d)
    return "file=%s,if=none,id=drive-%s%s" % (path, d["id"], opts)


def node_name(prefix, drive_id, volid):  # Blockdev.pm get_node_name
    return prefix + hashlib.sha256(("drive=%s,volid=%s" % (drive_id, volid)).encode()).hexdigest()[:30]


def common(b, d):  # add_common_options
    b["discard"] = "unmap" if d.get("discard") == "on" else "ignore"
    b["detect-zeroes"] = detect_zeroes(d)
    b["read-only"] = bool(d.get("ro"))


def blockdev_pve9(d):  # generate_drive_blockdev
    stype, path, fmt = volume(d["file"])
    driver = "host_device" if path.startswith("/dev/") else "file"  # qemu_blockdev_options
    direct = cache_direct(d, stype)
    proto = {"driver": driver, "filename": path,
             "cache": {"direct": direct, "no-flush": d.get("cache") == "unsafe"}}
    proto["aio"] = aio_of(d, stype, direct)
    proto["node-name"] = node_name("e", d["id"], d["file"])
    common(proto, d)
    fmtnode = {"node-name": node_name("f", d["id"], d["file"]), "driver": fmt, "file": proto,
               "cache": proto["cache"]}
    common(fmtnode, d)
    top = {"driver": "throttle", "node-name": "drive-" + d["id"],
           "throttle-group": "throttle-drive-" + d["id"], "file": fmtnode}
    common(top, d)
    return json.dumps(top, sort_keys=True, separators=(",", ":"))


def throttle_group(d):  # generate_throttle_group
    limits = {}
    for key, qmp in (("", "-total"), ("_rd", "-read"), ("_wr", "-write")):
        if d.get("mbps" + key):
            limits["bps" + qmp] = int(d["mbps" + key] * 1024 * 1024)
        if d.get("iops" + key):
            limits["iops" + qmp] = int(d["iops" + key])
    return json.dumps({"id": "throttle-drive-" + d["id"], "limits": limits, "qom-type": "throttle-group"},
                      sort_keys=True, separators=(",", ":"))


def device(d, conf, pve9):  # print_drivedevice_full
    did = d["id"]
    if did.startswith("virtio"):
        dev = "virtio-blk-pci,drive=drive-%s,id=%s,bus=pci.0,addr=0xa" % (did, did)
        if d.get("iothread"):
            dev += ",iothread=iothread-" + did
    else:
        idx = int(did[4:])
        single = conf["scsihw"] == "virtio-scsi-single"
        ctl = ("virtioscsi%d" % idx) if single else "scsihw0"
        dev = "scsi-hd,bus=%s.0,channel=0,scsi-id=0,lun=%d,drive=drive-%s,id=%s" % (ctl, idx, did, did)
        if pve9:
            dev += ",device_id=drive-" + did
        if d.get("ssd"):
            dev += ",rotation_rate=1"
    if d.get("bootindex"):
        dev += ",bootindex=%d" % d["bootindex"]
    if pve9:
        wc = "off" if d.get("cache") in ("writethrough", "directsync") else "on"
        dev += ",write-cache=" + wc
    return dev


def command(conf, pve9):  # config_to_command, the parts kept
    a = ["/usr/bin/kvm", "-id", "100", "-name", "vm100,debug-threads=on", "-no-shutdown",
         "-chardev", "socket,id=qmp,path=/var/run/qemu-server/100.qmp,server=on,wait=off",
         "-mon", "chardev=qmp,mode=control",
         "-chardev", "socket,id=qmp-event,path=/var/run/qmeventd.sock,%s" % ("reconnect-ms=5000" if pve9 else "reconnect=5"),
         "-mon", "chardev=qmp-event,mode=control",
         "-pidfile", "/var/run/qemu-server/100.pid", "-daemonize",
         "-smp", "1,sockets=1,cores=1,maxcpus=1", "-nodefaults",
         "-boot", "menu=on,strict=on,reboot-timeout=1000", "-m", "128"]
    devices = []
    ctl_done = set()
    for d in conf["disks"]:
        did = d["id"]
        if did.startswith("virtio") and d.get("iothread"):
            a += ["-object", "iothread,id=iothread-" + did]
        if did.startswith("scsi"):
            idx = int(did[4:])
            single = conf["scsihw"] == "virtio-scsi-single"
            ctl = ("virtioscsi%d" % idx) if single else "scsihw0"
            it = ""
            if single and d.get("iothread"):
                it = ",iothread=iothread-" + ctl
                a += ["-object", "iothread,id=iothread-" + ctl]
            if ctl not in ctl_done:
                devices += ["-device", "virtio-scsi-pci,id=%s,bus=pci.0,addr=0x%x%s" % (ctl, 5 + len(ctl_done), it)]
                ctl_done.add(ctl)
        if pve9:
            a += ["-object", throttle_group(d)]
            devices += ["-blockdev", blockdev_pve9(d)]
        else:
            devices += ["-drive", drive_pve8(d)]
        devices += ["-device", device(d, conf, pve9)]
    machine = "pc-i440fx-10.0+pve0" if pve9 else "pc-i440fx-8.1+pve0"
    return a + devices + ["-machine", "type=%s,accel=tcg" % machine]


SHAPES = [
    ("pve8-scsi-lvm-native", PVE8, "LVM volume, virtio-scsi-single with iothread, discard=on, ssd; Proxmox's "
     "default for LVM: cache=none,aio=native (no io_uring on LVM)",
     {"scsihw": "virtio-scsi-single", "disks": [
         {"id": "scsi0", "file": "local-lvm:vm-100-disk-0", "iothread": 1, "discard": "on", "ssd": 1, "bootindex": 100}]}),
    ("pve8-scsi-zfs-iouring", PVE8, "ZFS zvol, virtio-scsi-pci, defaults: cache=none,aio=io_uring,detect-zeroes=on",
     {"scsihw": "virtio-scsi-pci", "disks": [
         {"id": "scsi0", "file": "local-zfs:vm-100-disk-0", "bootindex": 100},
         {"id": "scsi1", "file": "local-zfs:vm-100-disk-1", "aio": "threads", "cache": "writeback"}]}),
    ("pve8-virtio-dir-qcow2", PVE8, "qcow2 on a directory storage, virtio-blk with iothread, cache=writeback "
     "(aio=io_uring), detect_zeroes=0, mbps/iops limits (-drive throttling.*)",
     {"scsihw": "virtio-scsi-pci", "disks": [
         {"id": "virtio0", "file": "local:vm-100-disk-0.qcow2", "iothread": 1, "cache": "writeback",
          "detect_zeroes": 0, "mbps": 100, "iops": 500}]}),
    ("pve8-scsi-dir-raw-native", PVE8, "raw on a directory storage, explicit aio=native,cache=directsync",
     {"scsihw": "virtio-scsi-single", "disks": [
         {"id": "scsi0", "file": "local:vm-100-disk-0.raw", "aio": "native", "cache": "directsync"}]}),
    ("pve9-scsi-lvm-throttle", PVE9, "-blockdev: throttle -> raw -> host_device on LVM, aio=native (no io_uring "
     "on LVM), virtio-scsi-single with iothread, discard=on, -object throttle-group",
     {"scsihw": "virtio-scsi-single", "disks": [
         {"id": "scsi0", "file": "local-lvm:vm-100-disk-0", "iothread": 1, "discard": "on", "ssd": 1, "bootindex": 100}]}),
    ("pve9-scsi-zfs-throttle-limits", PVE9, "-blockdev: throttle -> raw -> host_device on a ZFS zvol, io_uring, "
     "throttle-group with bps/iops limits; a second disk cache=writethrough (write-cache=off)",
     {"scsihw": "virtio-scsi-pci", "disks": [
         {"id": "scsi0", "file": "local-zfs:vm-100-disk-0", "mbps": 100, "iops": 500, "bootindex": 100},
         {"id": "scsi1", "file": "local-zfs:vm-100-disk-1", "cache": "writethrough"}]}),
    ("pve9-virtio-dir-qcow2", PVE9, "-blockdev: throttle -> qcow2 -> file on a directory storage, virtio-blk "
     "with iothread, cache=writeback, aio=threads given",
     {"scsihw": "virtio-scsi-pci", "disks": [
         {"id": "virtio0", "file": "local:vm-100-disk-0.qcow2", "iothread": 1, "cache": "writeback", "aio": "threads"}]}),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, rev, what, conf in SHAPES:
        pve9 = rev is PVE9
        with open(os.path.join(OUT, name + ".args"), "w") as f:
            f.write("\n".join(command(conf, pve9)) + "\n")
        src = ["%s %s %s (Proxmox VE %s, branch %s)" % (rev[0], rev[2], rev[3], rev[3].split(".")[0], rev[1]),
               "files: src/PVE/QemuServer.pm, src/PVE/QemuServer/Drive.pm" +
               (", src/PVE/QemuServer/Blockdev.pm, src/PVE/QemuServer/DriveDevice.pm" if pve9 else "")]
        if pve9:
            src.append("%s %s %s (qemu_blockdev_options: LVMPlugin.pm, ZFSPoolPlugin.pm, Plugin.pm)" %
                       (STORAGE9[0], STORAGE9[2], STORAGE9[3]))
        src.append("shape: " + what)
        src.append("config: " + json.dumps(conf, sort_keys=True))
        with open(os.path.join(OUT, name + ".source"), "w") as f:
            f.write("\n".join(src) + "\n")


main()
