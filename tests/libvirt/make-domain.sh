#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make-domain.sh — print a libvirt domain XML for kvm-launch tests: type='qemu' (TCG), direct kernel boot of the
# tiny guest (tests/guest/build-guest.sh), serial console to a file, no network, 256 MiB.
#
#   tests/libvirt/make-domain.sh [OPTIONS] DISK... > dom.xml
#
# OPTIONS
#   --name NAME            domain name (default kl-test)
#   --uuid UUID            default: derived from the name, so the same arguments always give the same XML
#   --emulator PATH        <emulator> (default /usr/bin/qemu-system-x86_64; use the kvm-launch wrapper to test it)
#   --memory MIB           default 256
#   --vcpus N              default 1
#   --iothreads N          add <iothreads>N</iothreads> (for a disk's iothread=K)
#   --kernel PATH          default $KL_GUEST_CACHE/vmlinuz (KL_GUEST_CACHE defaults to /var/cache/kvm-launch-tests/guest)
#   --initrd PATH          default $KL_GUEST_CACHE/initrd.gz
#   --guest-cmd CMDS       the guest's kl.cmd= value, e.g. report,randio:vda:8:3 (see tests/guest/init)
#   --serial-log PATH      serial console file (default /var/log/kvm-launch-tests/NAME.serial)
#   --machine TYPE         <type machine=...> (default pc; q35 also works)
#   --scsi-model MODEL     add <controller type='scsi' model=MODEL> (e.g. virtio-scsi; libvirt's default on pc is lsi)
#   --arch ARCH            <type arch=...> (default x86_64; e.g. aarch64 with --machine virt)
#   --env NAME=VALUE       an environment variable for the emulator (<qemu:commandline><qemu:env>); repeatable.
#                          tests/run-tests.sh's KL_SUITE_ID goes this way, as libvirt resets the environment
#
# DISK: colon-separated fields.  The first field says the kind, the next ones are positional, then options.
#   file:PATH[:FORMAT][:OPT...]                 <disk type='file'>, FORMAT default raw
#   block:PATH[:FORMAT][:OPT...]                <disk type='block'>
#   cdrom:PATH[:OPT...]                         file-backed CD-ROM (readonly; bus default ide on pc, sata on q35)
#   network:PROTO:HOST:PORT:NAME[:OPT...]       <disk type='network'> PROTO nbd|rbd|iscsi|gluster|http|https|...
#                                               HOST starting with '/' means a unix socket (nbd); NAME is the
#                                               export / pool/image / iqn/lun / volume/path / URL path
#   A field may hold '%3A' for ':' and '%25' for '%' (iSCSI names contain colons).
# OPT:
#   cache=MODE io=MODE discard=unmap|ignore detect_zeroes=on|off|unmap copy_on_read=on|off
#   format=FMT (same as the positional FORMAT)  bus=virtio|sata|scsi|ide|usb  target=vdX|sdX|hdX
#   device=disk|cdrom|lun  shareable  readonly  serial=S  iothread=N  queues=N
#   backing=PATH[@FORMAT]   a <backingStore> level (FORMAT default raw); repeat for a deeper chain, top first
#   iotune.KEY=VALUE        an <iotune> element, e.g. iotune.total_iops_sec=500 iotune.read_bytes_sec=1048576
#   Omitting cache= or io= leaves the attribute out (libvirt's "default").
#
# Example:
#   make-domain.sh --name t1 --guest-cmd report file:/var/lib/x.raw:raw:cache=none:io=native:bus=virtio:target=vda
set -euo pipefail

name=kl-test
uuid=
emulator=/usr/bin/qemu-system-x86_64
memory=256
vcpus=1
iothreads=0
guest=${KL_GUEST_CACHE:-/var/cache/kvm-launch-tests/guest}
kernel=$guest/vmlinuz
initrd=$guest/initrd.gz
guest_cmd=
serial_log=
machine=pc
scsi_model=
arch=x86_64
envs=()

die() { echo "make-domain: $*" >&2; exit 2; }

while (($#)); do
    case $1 in
        --name) name=$2; shift 2 ;;
        --uuid) uuid=$2; shift 2 ;;
        --emulator) emulator=$2; shift 2 ;;
        --memory) memory=$2; shift 2 ;;
        --vcpus) vcpus=$2; shift 2 ;;
        --iothreads) iothreads=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        --initrd) initrd=$2; shift 2 ;;
        --guest-cmd) guest_cmd=$2; shift 2 ;;
        --serial-log) serial_log=$2; shift 2 ;;
        --machine) machine=$2; shift 2 ;;
        --scsi-model) scsi_model=$2; shift 2 ;;
        --arch) arch=$2; shift 2 ;;
        --env) [[ $2 == [A-Za-z_]*=* ]] || die "--env wants NAME=VALUE"; envs+=("$2"); shift 2 ;;
        --help | -h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done
(($#)) || die "no disk given (see --help)"
[[ -n $serial_log ]] || serial_log=/var/log/kvm-launch-tests/$name.serial
if [[ -z $uuid ]]; then
    h=$(printf '%s' "$name" | md5sum | cut -c1-32)
    uuid=${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}
fi

xml_escape() {
    local s=$1
    s=${s//&/&amp;}
    s=${s//</&lt;}
    s=${s//>/&gt;}
    s=${s//\'/&apos;}
    s=${s//\"/&quot;}
    printf '%s' "$s"
}
unpct() { # %3A -> :, %25 -> %
    local s=${1//%3A/:}
    s=${s//%3a/:}
    printf '%s' "${s//%25/%}"
}

# Next free target name per prefix (vd, sd, hd), skipping names given explicitly with target=.
declare -A used_target=()
for spec in "$@"; do
    [[ $spec =~ (^|:)target=([a-z]+) ]] && used_target[${BASH_REMATCH[2]}]=1
done
next_target() { # $1 prefix; sets $target (no subshell: the table of used names must persist)
    local l
    for l in {a..z}; do
        if [[ -z ${used_target[$1$l]:-} ]]; then
            used_target[$1$l]=1
            target=$1$l
            return
        fi
    done
    die "out of target names for $1"
}

# backingStore chain, innermost last: $@ are PATH[@FORMAT] from top to bottom.
backing_xml() {
    local indent=$1
    shift
    if (($# == 0)); then
        return
    fi
    local b=$1 fmt=raw path
    shift
    path=${b%@*}
    [[ $b == *@* ]] && fmt=${b##*@}
    local btype=file
    [[ $path == /dev/* ]] && btype=block
    local attr=file
    [[ $btype = block ]] && attr=dev
    printf '%s<backingStore type=%s>\n' "$indent" "'$btype'"
    printf '%s  <format type=%s/>\n' "$indent" "'$(xml_escape "$fmt")'"
    printf '%s  <source %s=%s/>\n' "$indent" "$attr" "'$(xml_escape "$path")'"
    backing_xml "$indent  " "$@"
    printf '%s</backingStore>\n' "$indent"
}

disk_xml() {
    local spec=$1
    local -a f
    IFS=: read -r -a f <<<"$spec"
    local kind=${f[0]} i=1
    local dtype device=disk src_xml fmt=raw proto='' host='' port='' nm=''
    case $kind in
        file | block | cdrom)
            [[ -n ${f[1]:-} ]] || die "$spec: no path"
            local path
            path=$(unpct "${f[1]}")
            i=2
            if [[ $kind != cdrom && -n ${f[2]:-} && ${f[2]} != *=* && ${f[2]} != shareable && ${f[2]} != readonly ]]; then
                fmt=${f[2]}
                i=3
            fi
            dtype=$kind
            if [[ $kind = cdrom ]]; then
                dtype='file'
                device=cdrom
                [[ $path == /dev/* ]] && dtype=block
            fi
            if [[ $dtype = block ]]; then
                src_xml="<source dev='$(xml_escape "$path")'/>"
            else
                src_xml="<source file='$(xml_escape "$path")'/>"
            fi
            ;;
        network)
            proto=${f[1]:-}
            host=$(unpct "${f[2]:-}")
            port=${f[3]:-}
            nm=$(unpct "${f[4]:-}")
            [[ -n $proto && -n $host ]] || die "$spec: want network:PROTO:HOST:PORT:NAME"
            i=5
            dtype=network
            local h
            if [[ $host == /* ]]; then
                h="<host transport='unix' socket='$(xml_escape "$host")'/>"
            elif [[ -n $port ]]; then
                h="<host name='$(xml_escape "$host")' port='$(xml_escape "$port")'/>"
            else
                h="<host name='$(xml_escape "$host")'/>"
            fi
            if [[ -n $nm ]]; then
                src_xml="<source protocol='$(xml_escape "$proto")' name='$(xml_escape "$nm")'>$h</source>"
            else
                src_xml="<source protocol='$(xml_escape "$proto")'>$h</source>"
            fi
            ;;
        *) die "$spec: unknown disk kind '$kind' (file, block, cdrom, network)" ;;
    esac

    local cache='' io='' discard='' dz='' cor='' bus='' target='' shareable=0 readonly=0 serial='' iothread='' queues=''
    local -a backing=() iotune=()
    for ((; i < ${#f[@]}; i++)); do
        local o=${f[$i]}
        case $o in
            cache=*) cache=${o#*=} ;;
            io=*) io=${o#*=} ;;
            discard=*) discard=${o#*=} ;;
            detect_zeroes=*) dz=${o#*=} ;;
            copy_on_read=*) cor=${o#*=} ;;
            format=*) fmt=${o#*=} ;;
            bus=*) bus=${o#*=} ;;
            target=*) target=${o#*=} ;;
            device=*) device=${o#*=} ;;
            serial=*) serial=$(unpct "${o#*=}") ;;
            iothread=*) iothread=${o#*=} ;;
            queues=*) queues=${o#*=} ;;
            backing=*) backing+=("$(unpct "${o#*=}")") ;;
            iotune.*=*) o=${o#iotune.}; iotune+=("${o%%=*}" "${o#*=}") ;;
            shareable) shareable=1 ;;
            readonly) readonly=1 ;;
            '') ;;
            *) die "$spec: unknown option '$o'" ;;
        esac
    done
    [[ $device = cdrom ]] && readonly=1
    if [[ -z $bus ]]; then
        if [[ $device = cdrom ]]; then
            if [[ $machine == *q35* ]]; then bus=sata; else bus=ide; fi
        else
            bus=virtio
        fi
    fi
    if [[ -z $target ]]; then
        case $bus in
            virtio) next_target vd ;;
            ide) next_target hd ;;
            *) next_target sd ;;
        esac
    fi

    local drv
    drv="<driver name='qemu' type='$(xml_escape "$fmt")'"
    [[ -n $cache ]] && drv+=" cache='$cache'"
    [[ -n $io ]] && drv+=" io='$io'"
    [[ -n $discard ]] && drv+=" discard='$discard'"
    [[ -n $dz ]] && drv+=" detect_zeroes='$dz'"
    [[ -n $cor ]] && drv+=" copy_on_read='$cor'"
    [[ -n $iothread ]] && drv+=" iothread='$iothread'"
    [[ -n $queues ]] && drv+=" queues='$queues'"
    drv+="/>"

    echo "    <disk type='$dtype' device='$(xml_escape "$device")'>"
    echo "      $drv"
    echo "      $src_xml"
    # An explicit backingStore (even empty) stops libvirt from probing image headers itself.
    if ((${#backing[@]})); then
        backing_xml "      " "${backing[@]}"
    elif [[ $dtype != network ]]; then
        echo "      <backingStore/>"
    fi
    echo "      <target dev='$(xml_escape "$target")' bus='$(xml_escape "$bus")'/>"
    if ((${#iotune[@]})); then
        echo "      <iotune>"
        for ((j = 0; j < ${#iotune[@]}; j += 2)); do
            echo "        <${iotune[j]}>$(xml_escape "${iotune[j + 1]}")</${iotune[j]}>"
        done
        echo "      </iotune>"
    fi
    ((readonly)) && echo "      <readonly/>"
    ((shareable)) && echo "      <shareable/>"
    [[ -n $serial ]] && echo "      <serial>$(xml_escape "$serial")</serial>"
    echo "    </disk>"
}

# Build the whole document first: a bad disk spec must not leave half an XML on stdout.
emit() {
cmdline="console=ttyS0 quiet panic=-1"
[[ -n $guest_cmd ]] && cmdline+=" kl.cmd=$guest_cmd"

cat <<EOF
<domain type='qemu'$( ((${#envs[@]})) && echo " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'")>
  <name>$(xml_escape "$name")</name>
  <uuid>$uuid</uuid>
  <memory unit='MiB'>$memory</memory>
  <vcpu>$vcpus</vcpu>
EOF
((iothreads > 0)) && echo "  <iothreads>$iothreads</iothreads>"
cat <<EOF
  <os>
    <type arch='$(xml_escape "$arch")' machine='$(xml_escape "$machine")'>hvm</type>
    <kernel>$(xml_escape "$kernel")</kernel>
    <initrd>$(xml_escape "$initrd")</initrd>
    <cmdline>$(xml_escape "$cmdline")</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(xml_escape "$emulator")</emulator>
EOF
for spec in "$@"; do
    disk_xml "$spec"
done
[[ -n $scsi_model ]] && echo "    <controller type='scsi' index='0' model='$(xml_escape "$scsi_model")'/>"
cat <<EOF
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='$(xml_escape "$serial_log")'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$(xml_escape "$serial_log")'/>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
EOF
if ((${#envs[@]})); then
    echo "  <qemu:commandline>"
    for e in "${envs[@]}"; do
        echo "    <qemu:env name='$(xml_escape "${e%%=*}")' value='$(xml_escape "${e#*=}")'/>"
    done
    echo "  </qemu:commandline>"
fi
echo "</domain>"
}
xml=$(emit "$@")
printf '%s\n' "$xml"
