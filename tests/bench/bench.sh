#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# bench.sh — "Prove the policy pays": boots the tiny TCG guest on every disk backend it can make here, under
# kvm-launch's built-in policy and under every safe cache x aio combination QEMU accepts, and measures inside the
# guest; adds qemu-img bench as a reference, and the resident memory of kvm-launch's agent.  (What a start costs:
# tests/bench/start-cost.sh.)
# Every boot runs in a memory cgroup of its own, so the host memory each VM costs (its page cache above all) is
# recorded beside its IOPS; the scenario "limited" caps that cgroup at guest RAM + 256 MiB over a larger image.
#
#   make bench                       (= sh tests/bench/bench.sh, after building kvm-launch)
#   make bench-quick                 (= BENCH_QUICK=1) smoke run: prealloc and a tiny limited scenario, one round (~2 min)
#   sh tests/bench/bench.sh --report DIR   re-render a finished run (after a change to report.awk or chart.awk)
#
# Environment (all optional):
#   BENCH_ROUNDS=3         rounds; each round boots every configuration once, round-robin, so that drifting load
#                          on the host spreads over all configurations alike (median and min-max over the rounds)
#   BENCH_QUICK=1          smoke run (BENCH_ROUNDS defaults to 1, backends prealloc and limited, few configurations)
#   BENCH_BACKENDS="prealloc sparse qcow2 loop tmpfs limited"  which backends (loop and tmpfs need root); limited
#                          is the memory scenario: a preallocated image larger than the VM's memory cgroup limit
#   BENCH_LIMITED_DISK_MIB=1024  the limited scenario's image
#   BENCH_LIMIT_EXTRA_MIB=256    its memory cgroup limit: guest RAM (256 MiB) + this
#   BENCH_LIMITED_CELLS="..."    its cells (default: BENCH_CELLS; quick: none/threads writeback/threads)
#   BENCH_MEMCG=1          0: no memory cgroups (no memory figures, no limited scenario)
#   BENCH_CELLS="none/threads none/native ..."  only these cache/aio cells of the matrix (kvm-launch always runs)
#   BENCH_SECS=2           seconds of each QD8 measurement in the guest
#   BENCH_SECS_SHORT=1     seconds of each QD1 and sequential measurement in the guest
#   BENCH_DISK_MIB=512     data disk size (BENCH_TMPFS_MIB=256 for the file on tmpfs)
#   BENCH_QEMU_IMG_SECS=0.25 target length of one qemu-img bench run (its count is calibrated once per cell)
#   BENCH_TARGET_PCT=90    target: the default policy reaches this % of the best safe combination
#   BENCH_OUT=DIR          where the outputs go (default tests/logs/bench/DATE-TIME); doc/bench/ holds a committed run
#   BENCH_TMPDIR=/var/tmp  where the images go (a real disk filesystem, not tmpfs)
#   BENCH_PREALLOC_FILL=1  write the preallocated images once after fallocate (0: keep fallocate's unwritten extents)
#   KL_GUEST_CACHE         the guest cache of tests/guest/build-guest.sh
#
# Outputs in BENCH_OUT: runs.csv (one row per measurement run), summary.csv (median, min, max, quartiles),
# chart.svg (grouped bars), results.md (tables, target checks, environment), meta.csv, bench.log (progress).
# The table and the target checks also go to stdout.  Exit 0 whatever the numbers; 1 only when the harness itself
# broke (no guest, no QEMU, no measurement at all).
#
# See tests/bench/README.md for what is measured and why.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail # no -e: a failed measurement is recorded and the run goes on

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
kl=${KL_LAUNCH:-$top/kvm-launch}

# render DIR: summary.csv, chart.svg and results.md (env.md + tables + checks) from DIR's meta.csv and runs.csv.
# Also reachable alone, to re-render a finished run after a change to report.awk or chart.awk:
#   sh tests/bench/bench.sh --report DIR
render() {
    local d=$1
    cp "$d/env.md" "$d/results.md" 2>/dev/null || echo "# kvm-launch benchmark" >"$d/results.md"
    awk -F, -v summary="$d/summary.csv" -v md="$d/results.md" -v target="${BENCH_TARGET_PCT:-90}" \
        -f "$here/report.awk" "$d/meta.csv" "$d/runs.csv" || return 1
    awk -F, -f "$here/marks.awk" -f "$here/chart.awk" "$d/meta.csv" "$d/summary.csv" >"$d/chart.svg" || return 1
    awk -F, -f "$here/marks.awk" -f "$here/memchart.awk" "$d/meta.csv" "$d/summary.csv" >"$d/memory.svg" || return 1
    {
        echo
        echo "Files: runs.csv (one row per measurement run), summary.csv, chart.svg, memory.svg, meta.csv (decisions, labels)."
        echo
        echo '![geomean of randread and randwrite QD8 IOPS](chart.svg)'
        echo
        echo '![IOPS against the peak host memory of each VM](memory.svg)'
    } >>"$d/results.md"
}
if [[ ${1:-} = --report ]]; then
    [[ -f ${2:-}/runs.csv && -f $2/meta.csv ]] || { echo "usage: bench.sh --report DIR (with runs.csv and meta.csv)" >&2; exit 2; }
    render "$2" || exit 1
    echo "bench: rendered $2/{results.md,summary.csv,chart.svg,memory.svg}" >&2
    exit 0
fi

quick=${BENCH_QUICK:-0}
if [[ $quick = 1 ]]; then
    rounds=${BENCH_ROUNDS:-1}
    backends_wanted=${BENCH_BACKENDS:-prealloc limited}
else
    rounds=${BENCH_ROUNDS:-3}
    backends_wanted=${BENCH_BACKENDS:-prealloc sparse qcow2 loop tmpfs limited}
fi
secs_long=${BENCH_SECS:-2}
secs_short=${BENCH_SECS_SHORT:-1}
disk_mib=${BENCH_DISK_MIB:-512}
tmpfs_mib=${BENCH_TMPFS_MIB:-256}
guest_mib=256 # -m of the measured guests
limited_mib=${BENCH_LIMITED_DISK_MIB:-1024}
limit_mib=$((guest_mib + ${BENCH_LIMIT_EXTRA_MIB:-256}))
use_memcg=${BENCH_MEMCG:-1}
qi_target=${BENCH_QEMU_IMG_SECS:-0.25}
prealloc_fill=${BENCH_PREALLOC_FILL:-1}
out=${BENCH_OUT:-$top/tests/logs/bench/$(date +%Y%m%d-%H%M%S)}
# qemu-img bench has no random pattern: a stride of 40507 blocks (a prime) visits every 4 KiB block of a
# power-of-two image in a scattered order, defeating read-ahead and locality.
qi_step=$((4096 * 40507))
boot_overhead_s=6 # measured here: ~2.6 s to guest userspace under TCG, 5-6 s per boot in all (loaded host); for the estimate

caches=(none writeback writethrough directsync)
aios=(threads native io_uring)
cells_filter=${BENCH_CELLS:-}
[[ $quick = 1 && -z $cells_filter ]] && cells_filter="none/threads none/io_uring none/native writeback/threads"
limited_cells=${BENCH_LIMITED_CELLS:-$cells_filter}
[[ $quick = 1 && -z ${BENCH_LIMITED_CELLS:-} ]] && limited_cells="none/threads writeback/threads"

msg() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$out/bench.log" >&2; }
die() {
    msg "ERROR: $*"
    exit 1
}

mkdir -p "$out" || { echo "bench: cannot create $out" >&2; exit 1; }
out=$(cd "$out" && pwd)
: >"$out/bench.log"

# ---------------------------------------------------------------- prerequisites
[[ -x $kl ]] || die "$kl not built (run make first)"
# The real QEMU, looked up again before every launch.  Other engineers' tests on a shared host may divert
# /usr/bin/qemu-system-x86_64 to a kvm-launch for a while (dpkg-divert; the real binary is then at .distrib); a copy
# elsewhere will not do, as Debian's QEMU finds its firmware and modules relative to its own path.  kvm-launch gets
# the same binary with --qemu, so it never execs somebody else's wrapper either.
find_qemu() {
    local c
    for c in "${BENCH_QEMU:-}" "$("$kl" --dry-run --json -- -name probe 2>/dev/null |
        sed -n 's/^ *"qemu":"\(.*\)",*$/\1/p' | head -n1)" "$(command -v qemu-system-x86_64)"; do
        c=${c%.distrib}
        [[ -n $c && ( -x $c || -x $c.distrib ) ]] && { printf '%s' "$c"; return 0; }
    done
    return 1
}
qemu_now() {
    if [[ -x $qemu_main.distrib ]]; then printf "%s" "$qemu_main.distrib"; else printf "%s" "$qemu_main"; fi
}
qemu_main=$(find_qemu) || die "no qemu-system-x86_64 found"
qemu=$(qemu_now)
qemu_img=$(command -v qemu-img || true)
[[ -n $qemu_img ]] || msg "qemu-img not found: no qemu-img bench reference"

rc=0
guest_env=$("$top/tests/guest/build-guest.sh") || rc=$?
[[ $rc = 0 ]] || die "tests/guest/build-guest.sh failed ($rc): no guest to boot"
eval "$guest_env"

is_root=0
[[ $(id -u) = 0 ]] && is_root=1

tmp=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/kl-bench.XXXXXX") || die "mktemp failed"
loopdev=
tmpfs_mounted=0
qpid=
vm_cg=
bench_cg=
mc=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local rc=$?
    if [[ -n $qpid ]]; then
        kill -KILL "$qpid" 2>/dev/null
        wait "$qpid" 2>/dev/null
    fi
    [[ -n $vm_cg ]] && "$mc" rm "$vm_cg" 5000 2>/dev/null
    [[ -n $bench_cg ]] && "$mc" rm "$bench_cg" 5000 2>/dev/null
    [[ -n $loopdev ]] && losetup -d "$loopdev" 2>/dev/null
    [[ $tmpfs_mounted = 1 ]] && umount "$tmp/tmpfs" 2>/dev/null
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Run a copy: the work tree (and ./kvm-launch) may be rebuilt by somebody else while the benchmark runs.
kl_sum=$(sha256sum "$kl" | cut -c1-12)
cp "$kl" "$tmp/kvm-launch" || die "cannot copy $kl"
kl=$tmp/kvm-launch

conf=$tmp/kl.conf
# Only where kvm-launch keeps its state and caches: everything else is the built-in policy.  A fresh cache-dir also
# means no stored calibration, so the decisions are the built-in ones.
printf 'state-dir = %s\ncache-dir = %s\n' "$tmp/state" "$tmp/cache" >"$conf"
mkdir -p "$tmp/state" "$tmp/cache"


# ---------------------------------------------------------------- memory cgroups
# Every guest boot runs in a memory cgroup of its own (a child of the benchmark's own: the host's accounting
# still sees it), made and read by tests/helpers/memcg-cli (launcher/vm/memcg.c): what the VM costs the host,
# its page cache above all, which is charged to the cgroup of the process that first reads or writes a page.
mem_ok=0
mem_why="BENCH_MEMCG=0"
if [[ $use_memcg = 1 ]]; then
    [[ -x $top/tests/helpers/memcg-cli ]] || make -s -C "$top" tests/helpers/memcg-cli >/dev/null 2>&1
    if cp "$top/tests/helpers/memcg-cli" "$tmp/memcg-cli" 2>/dev/null; then
        mc=$tmp/memcg-cli
        if bench_cg=$("$mc" create "kl-bench-$$" 2>"$tmp/memcg.err"); then
            mem_ok=1
            mem_why=
        else
            bench_cg=
            mem_why=$(cat "$tmp/memcg.err")
        fi
    else
        mem_why="tests/helpers/memcg-cli not built (make test-programs)"
    fi
fi
if [[ $mem_ok = 1 ]]; then msg "memory accounting: one cgroup per boot below $bench_cg"
else msg "no memory accounting: $mem_why"; fi

runs=$out/runs.csv
meta=$out/meta.csv
echo "round,seq,time,load1,backend,config,cache,aio,source,test,value,unit,status,note" >"$runs"
echo "kind,backend,a,b,c,d" >"$meta"

load1() { cut -d' ' -f1 /proc/loadavg; }
clean() { printf '%s' "$*" | tr ',"\n\r' ';   ' | cut -c1-300; }
row() {
    # round seq backend config cache aio source test value unit status note
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$1" "$2" "$(date +%s)" "$(load1)" "$3" "$4" "$5" "$6" "$7" \
        "$8" "$9" "${10}" "${11}" "$(clean "${12:-}")" >>"$runs"
}
metarow() { printf '%s,%s,%s,%s,%s,%s\n' "$1" "$2" "${3:-}" "${4:-}" "${5:-}" "$(clean "${6:-}")" >>"$meta"; }

fill() {
    # fill FILE MIB: preallocate, then (by default) write it once so that reads hit written extents
    fallocate -l "${2}M" "$1" || return 1
    if [[ $prealloc_fill = 1 ]]; then
        dd if=/dev/urandom of="$1" bs=1M count="$2" conv=notrunc,fsync status=none || return 1
    fi
}

# ---------------------------------------------------------------- backends
if [[ $mem_ok = 1 ]]; then
    metarow memcg "" "$("$mc" read "$bench_cg" | sed -n 's/^version=//p')" "$bench_cg" "" "one memory cgroup per boot"
else
    metarow memcg "" none "" "" "$mem_why"
fi

declare -A b_path b_fmt b_fresh b_limit
backends=()
add_backend() { # name path format fresh description
    backends+=("$1")
    b_path[$1]=$2
    b_fmt[$1]=$3
    b_fresh[$1]=$4
    b_limit[$1]=0
    metarow backend "$1" "$3" "$4" "" "$5"
}
skip_backend() {
    msg "backend $1 skipped: $2"
    metarow skip "$1" "" "" "" "$2"
}

fs_of() { findmnt -n -o FSTYPE -T "$1" 2>/dev/null || stat -f -c %T "$1" 2>/dev/null || echo '?'; }
msg "preparing images in $tmp ($(fs_of "$tmp"))"
for b in $backends_wanted; do
    case $b in
        prealloc)
            if fill "$tmp/prealloc.raw" "$disk_mib"; then
                add_backend prealloc "$tmp/prealloc.raw" raw 0 \
                    "preallocated raw file, ${disk_mib} MiB on $(fs_of "$tmp") (fallocate$([[ $prealloc_fill = 1 ]] && echo ', then written once'))"
            else skip_backend prealloc "cannot create the image"; fi
            ;;
        sparse)
            add_backend sparse "$tmp/sparse.raw" raw 1 \
                "sparse raw file, ${disk_mib} MiB on $(fs_of "$tmp") (truncate; a fresh one for every run)"
            ;;
        qcow2)
            if [[ -n $qemu_img ]]; then
                add_backend qcow2 "$tmp/disk.qcow2" qcow2 1 \
                    "qcow2, ${disk_mib} MiB on $(fs_of "$tmp") (qemu-img create, sparse; a fresh one for every run)"
            else skip_backend qcow2 "no qemu-img"; fi
            ;;
        loop)
            if [[ $is_root != 1 ]]; then skip_backend loop "needs root (losetup)"; continue; fi
            command -v losetup >/dev/null || { skip_backend loop "no losetup"; continue; }
            if fill "$tmp/loop-backing.raw" "$disk_mib" &&
                loopdev=$(losetup --find --show --direct-io=on "$tmp/loop-backing.raw"); then
                add_backend loop "$loopdev" raw 0 \
                    "loop block device (losetup --direct-io=on) over a preallocated ${disk_mib} MiB file on $(fs_of "$tmp")"
            else
                loopdev=
                skip_backend loop "losetup failed"
            fi
            ;;
        tmpfs)
            if [[ $is_root != 1 ]]; then skip_backend tmpfs "needs root (mount -t tmpfs)"; continue; fi
            mkdir -p "$tmp/tmpfs"
            if mount -t tmpfs -o "size=$((tmpfs_mib + 16))M,mode=0700" kl-bench "$tmp/tmpfs"; then
                tmpfs_mounted=1
                if fill "$tmp/tmpfs/disk.raw" "$tmpfs_mib"; then
                    add_backend tmpfs "$tmp/tmpfs/disk.raw" raw 0 "raw file, ${tmpfs_mib} MiB on tmpfs (written once)"
                else skip_backend tmpfs "cannot fill the file on tmpfs"; fi
            else skip_backend tmpfs "mount -t tmpfs failed"; fi
            ;;
        limited)
            if [[ $mem_ok != 1 ]]; then skip_backend limited "no memory cgroup: $mem_why"; continue; fi
            if fill "$tmp/limited.raw" "$limited_mib"; then
                add_backend limited "$tmp/limited.raw" raw 0 \
                    "preallocated raw file, ${limited_mib} MiB on $(fs_of "$tmp") (written once), the VM's memory cgroup limited to ${limit_mib} MiB (guest RAM ${guest_mib} MiB + $((limit_mib - guest_mib)) MiB)"
                b_limit[limited]=$limit_mib
                metarow limit limited "$limit_mib" "$guest_mib" "" "memory cgroup limit in MiB, guest RAM in MiB"
            else skip_backend limited "cannot create the image"; fi
            ;;
        *) msg "unknown backend '$b' ignored" ;;
    esac
done
((${#backends[@]} > 0)) || die "no backend could be made"

prepare() {
    # a fresh image for the backends that must start every run in the same (empty) state
    local b=$1
    [[ ${b_fresh[$b]} = 1 ]] || return 0
    rm -f "${b_path[$b]}"
    case ${b_fmt[$b]} in
        qcow2) "$qemu_img" create -q -f qcow2 "${b_path[$b]}" "${disk_mib}M" ;;
        *) truncate -s "${disk_mib}M" "${b_path[$b]}" ;;
    esac
}

drive() { # backend cache aio -> the -drive value
    local s="file=${b_path[$1]},format=${b_fmt[$1]},if=none,id=vd0"
    [[ -n $2 ]] && s+=",cache=$2"
    [[ -n $3 ]] && s+=",aio=$3"
    printf '%s' "$s"
}

# ---------------------------------------------------------------- what the default policy decides
declare -A d_cache d_aio d_rule
for b in "${backends[@]}"; do
    prepare "$b"
    json=$("$kl" --config "$conf" --qemu "$qemu" --dry-run --json -- -name "bench-$b" -accel tcg -m 256 -nodefaults \
        -drive "$(drive "$b" "" "")" -device virtio-blk-pci,drive=vd0 2>"$tmp/dry.err")
    d_cache[$b]=$(printf '%s\n' "$json" | sed -n 's/^ *"cache":"\([^"]*\)".*/\1/p' | head -n1)
    d_aio[$b]=$(printf '%s\n' "$json" | sed -n 's/^ *"aio":"\([^"]*\)".*/\1/p' | head -n1)
    d_rule[$b]=$(printf '%s\n' "$json" | sed -n 's/^ *"rule":"\([^"]*\)".*/\1/p' | head -n1)
    calib=$(printf '%s\n' "$json" | sed -n 's/^ *"calibration":\(.*\),*$/\1/p' | head -n1)
    reason=$(printf '%s\n' "$json" | awk '/"reasons":\[/ { r = 1; next } r && /\]/ { exit } r { gsub(/^ *"|",?$/, ""); printf "%s%s", s, $0; s = " / " }')
    if [[ -z ${d_cache[$b]} || -z ${d_aio[$b]} ]]; then
        msg "kvm-launch --dry-run gave no decision for $b: $(head -c 300 "$tmp/dry.err")"
        d_cache[$b]='?'
        d_aio[$b]='?'
    fi
    metarow decision "$b" "${d_cache[$b]}" "${d_aio[$b]}" "${d_rule[$b]}" "$reason (calibration: ${calib%,})"
    msg "kvm-launch decides for $b: cache=${d_cache[$b]} aio=${d_aio[$b]} (${d_rule[$b]})"
done

# ---------------------------------------------------------------- what other systems would set (labels only)
# libvirt without <driver cache= io=>: QEMU's defaults, cache=writeback aio=threads.
# nova (libvirt driver, imagebackend.py): disk_cachemode "none" when instances_path takes O_DIRECT (else writeback,
#   since bug 1818847; writethrough before); driver_io unset (QEMU: threads) for Flat/Qcow2 file images unless
#   preallocate_images=space (then native); "native" for Lvm images (unless sparse_logical_volumes) and for
#   block-device volumes (iSCSI, FC...).
# Proxmox VE (qemu-server, QemuServer.pm print_drive_commandline_full): cache=none unless set (not for btrfs without
#   nocow); aio=io_uring (QEMU >= 6.0, PVE 7+) except on 'lvm' and 'cifs' storages, and krbd without O_DIRECT,
#   which get native with O_DIRECT or threads without.
for b in "${backends[@]}"; do
    metarow label "$b" writeback threads "libvirt default" "no cache/io in the XML: QEMU defaults"
    if [[ $b = loop ]]; then
        metarow label "$b" none native "nova" "images_type=lvm or a block volume: cache none, io native"
        metarow label "$b" none io_uring "Proxmox" "block device path, LVM-thin, ZFS, iSCSI storage"
        metarow label "$b" none native "Proxmox LVM" "storage type lvm: no io_uring by default"
    else
        metarow label "$b" none threads "nova" "file image, preallocate_images=none: io unset"
        metarow label "$b" none io_uring "Proxmox" "directory storage"
    fi
done

# ---------------------------------------------------------------- which combinations QEMU accepts
declare -A cells_ok
n_cells=0
n_qi=0 # cells with a qemu-img reference (not the limited scenario)
for b in "${backends[@]}"; do
    cells_ok[$b]=
    for c in "${caches[@]}"; do
        for a in "${aios[@]}"; do
            f=$cells_filter
            [[ $b = limited ]] && f=$limited_cells
            [[ -n $f && " $f " != *" $c/$a "* ]] && continue
            prepare "$b"
            qemu=$(qemu_now)
            if printf '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n' |
                timeout 60 "$qemu" -accel tcg -m 64 -nodefaults -display none -S -qmp stdio \
                    -drive "$(drive "$b" "$c" "$a")" -device virtio-blk-pci,drive=vd0 >/dev/null 2>"$tmp/pre.err"; then
                cells_ok[$b]+=" $c/$a"
                n_cells=$((n_cells + 1))
                [[ ${b_limit[$b]} = 0 ]] && n_qi=$((n_qi + 1))
                row 0 0 "$b" matrix "$c" "$a" preflight accept 1 - ok ""
            else
                why=$(sed 's/^[^:]*qemu-system-x86_64[.a-z]*: //; s/^-drive [^ ]*: //' "$tmp/pre.err" | head -n1)
                row 0 0 "$b" matrix "$c" "$a" preflight accept 0 - refused "$why"
                msg "QEMU refuses $b cache=$c aio=$a: $why"
            fi
        done
    done
done
((n_cells > 0)) || die "QEMU accepted no configuration at all (see $runs)"

# ---------------------------------------------------------------- the job list, round-robin over configurations
# A job: backend|config|cache|aio, config = kvm-launch (built-in policy, launched through kvm-launch) or matrix.
jobs=()
max=0
for b in "${backends[@]}"; do
    read -r -a l <<<"${cells_ok[$b]}"
    ((${#l[@]} + 1 > max)) && max=$((${#l[@]} + 1))
done
for ((i = 0; i < max; i++)); do # configuration-major: consecutive boots use different backends
    for b in "${backends[@]}"; do
        read -r -a l <<<"${cells_ok[$b]}"
        if ((i == 0)); then
            jobs+=("$b|kvm-launch|${d_cache[$b]}|${d_aio[$b]}")
        elif ((i - 1 < ${#l[@]})); then
            c=${l[$((i - 1))]}
            jobs+=("$b|matrix|${c%/*}|${c#*/}")
        fi
    done
done
njobs=${#jobs[@]}

guest_secs=$((2 * secs_short + 2 * secs_long + secs_short))
cmd="randio:vda:1:$secs_short:r,randio:vda:8:$secs_long:r,seq:vda:$secs_short:r"
cmd+=",randio:vda:1:$secs_short:w,randio:vda:8:$secs_long:w"
est_guest=$((rounds * njobs * (boot_overhead_s + guest_secs)))
est_qi=0
[[ -n $qemu_img ]] && est_qi=$(awk -v n="$n_qi" -v r="$rounds" -v t="$qi_target" 'BEGIN { printf "%d", n * 4 * (r * (t + 0.15) + 0.2) }')
est=$((est_guest + est_qi + 15))
msg "$njobs configurations x $rounds rounds = $((njobs * rounds)) guest boots of ~$((boot_overhead_s + guest_secs)) s" \
    "(QD1 and seq ${secs_short} s, QD8 ${secs_long} s each), $n_qi qemu-img bench cells x 4 runs x $rounds rounds"
msg "expected total: about $(((est + 59) / 60)) minutes (guest $((est_guest / 60)) min, qemu-img $((est_qi / 60)) min; more on a loaded host)"
msg "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; outputs in $out"

# ---------------------------------------------------------------- one guest boot
agent_sample() { # name round seq backend cache aio
    local p f st=$tmp/state/$1.json
    for p in /proc/[0-9]*; do
        f=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
        [[ $f == *"--agent $st"* ]] || continue
        local vmrss rss pss
        vmrss=$(awk '/^VmRSS:/ { print $2 }' "$p/status" 2>/dev/null)
        rss=$(awk '/^Rss:/ { print $2 }' "$p/smaps_rollup" 2>/dev/null)
        pss=$(awk '/^Pss:/ { print $2 }' "$p/smaps_rollup" 2>/dev/null)
        row "$2" "$3" "$4" kvm-launch "$5" "$6" agent vmrss "${vmrss:-}" KiB "${vmrss:+ok}" "pid ${p#/proc/}"
        row "$2" "$3" "$4" kvm-launch "$5" "$6" agent rss "${rss:-}" KiB "${rss:+ok}" "smaps_rollup"
        row "$2" "$3" "$4" kvm-launch "$5" "$6" agent pss "${pss:-}" KiB "${pss:+ok}" "smaps_rollup"
        return 0
    done
    row "$2" "$3" "$4" kvm-launch "$5" "$6" agent vmrss "" KiB missing "no kvm-launch --agent process for $st"
}

# memcg_get OUTPUT KEY: a figure of memcg-cli read, in MiB with one decimal ("" when the kernel does not say).
memcg_get() {
    printf '%s\n' "$1" | awk -F= -v k="$2" '$1 == k && $2 >= 0 { printf "%.1f", $2 / 1048576 }'
}
memcg_count() { printf '%s\n' "$1" | awk -F= -v k="$2" '$1 == k && $2 >= 0 { print $2 }'; }
# memcg_rows round seq backend config cache aio SAMPLE_AT_END_OF_IO FINAL_SAMPLE STATUS
memcg_rows() {
    local t v st note
    for t in current file anon; do
        v=$(memcg_get "$7" "$t")
        st=ok
        [[ -n $v ]] || st=missing
        [[ $9 != ok ]] && st=$9
        note="at the end of the guest's I/O"
        [[ -z $7 ]] && note="no sample: the VM ended before its last measurement was seen"
        row "$1" "$2" "$3" "$4" "$5" "$6" memcg "${t}_mib" "$v" MiB "$st" "$note"
    done
    v=$(memcg_get "$8" peak)
    st=ok
    [[ -n $v ]] || st=missing
    row "$1" "$2" "$3" "$4" "$5" "$6" memcg peak_mib "$v" MiB "$st" "high-water mark of the VM's cgroup"
    for t in limit_hits oom_kills; do
        v=$(memcg_count "$8" "$t")
        row "$1" "$2" "$3" "$4" "$5" "$6" memcg "$t" "$v" count "$([[ -n $v ]] && echo ok || echo missing)" \
            "limit $(memcg_get "$8" limit) MiB"
    done
}

ok_boots=0
run_guest() { # round seq job
    local r=$1 s=$2 b c a config
    IFS='|' read -r b config c a <<<"$3"
    local log=$tmp/serial.log name="bench-$b-r$r-$s"
    prepare "$b"
    : >"$log"
    qemu=$(qemu_now)
    local pre=() m_end="" m_fin="" m_now m_done=0
    if [[ $mem_ok = 1 ]]; then
        # No page of the image in the host cache at the start (the fill or an earlier run would be charged
        # elsewhere): the VM's cgroup pays for every page it brings in.
        [[ ${b_fresh[$b]} = 1 ]] || "$mc" evict "${b_path[$b]}" 2>>"$tmp/memcg.err"
        if vm_cg=$("$mc" --parent "$bench_cg" create "vm-$s" "${b_limit[$b]}" 2>>"$tmp/memcg.err"); then
            pre=("$mc" exec "$vm_cg" --)
        else
            vm_cg=
            msg "  cannot make a memory cgroup for this boot: $(tail -n1 "$tmp/memcg.err")"
        fi
    fi
    local args=(-name "$name" -accel tcg -m "$guest_mib" -smp 1 -nographic -nodefaults -no-reboot -serial "file:$log"
        -kernel "$KL_GUEST_KERNEL" -initrd "$KL_GUEST_INITRD"
        -append "console=ttyS0 quiet panic=-1 kl.cmd=$cmd")
    if [[ $config = kvm-launch ]]; then
        args+=(-drive "$(drive "$b" "" "")" -device 'virtio-blk-pci,drive=vd0')
        "${pre[@]}" "$kl" --config "$conf" --qemu "$qemu" -- "${args[@]}" </dev/null >"$tmp/qemu.out" 2>"$tmp/qemu.err" &
    else
        args+=(-drive "$(drive "$b" "$c" "$a")" -device 'virtio-blk-pci,drive=vd0')
        "${pre[@]}" "$qemu" "${args[@]}" </dev/null >"$tmp/qemu.out" 2>"$tmp/qemu.err" &
    fi
    qpid=$!
    local t0=$SECONDS limit=$((4 * (boot_overhead_s + guest_secs) + 60)) sampled=0 status=ok
    while kill -0 "$qpid" 2>/dev/null; do
        if ((SECONDS - t0 > limit)); then
            status=timeout
            kill -KILL "$qpid" 2>/dev/null
            break
        fi
        # The agent's memory, once the VM is up and doing I/O (after the first measurement).
        if [[ $config = kvm-launch && $sampled = 0 ]] && grep -q '^KL randio dev=vda qd=1 mode=r' "$log"; then
            agent_sample "$name" "$r" "$s" "$b" "$c" "$a"
            sampled=1
        fi
        # The VM's memory once its last measurement (random writes QD8) is done: what its I/O left charged.
        # The guest powers off right after it, so the cgroup is read at every poll during the I/O and the last
        # reading kept: the one after the line, or failing that the last within 0.2 s of the end.
        # A reading counts only if QEMU still ran after it (not a zombie waiting for us): once it has exited its
        # memory is uncharged, and that reading would say nothing about the VM.
        if [[ -n $vm_cg && $m_done = 0 ]] && grep -q '^KL randio' "$log"; then
            grep -q '^KL randio dev=vda qd=8 mode=w' "$log" && m_done=1
            m_now=$("$mc" read "$vm_cg" 2>/dev/null) &&
                grep -q '^State:[[:space:]]*[RSDI]' "/proc/$qpid/status" 2>/dev/null && m_end=$m_now
        fi
        sleep 0.2
    done
    wait "$qpid" 2>/dev/null
    local qrc=$?
    qpid=
    if [[ -n $vm_cg ]]; then
        m_fin=$("$mc" read "$vm_cg" 2>>"$tmp/memcg.err")
        "$mc" rm "$vm_cg" 5000 2>>"$tmp/memcg.err" || msg "  cannot remove $vm_cg: $(tail -n1 "$tmp/memcg.err")"
        vm_cg=
    fi
    local note="" applied
    if [[ $config = kvm-launch ]]; then
        # What kvm-launch really applied (its log line), against what --dry-run said.
        applied=$(sed -n 's/.*disk vd0: aio=\([a-z_]*\) cache=\([a-z]*\).*/\2\/\1/p' "$tmp/qemu.err" | head -n1)
        note="applied ${applied:-?}"
        if [[ -n $applied && $applied != "$c/$a" ]]; then
            note+=" (dry-run said $c/$a)"
            c=${applied%/*}
            a=${applied#*/}
        fi
    fi
    [[ $status = ok ]] && ! grep -q '^KL done rc=0' "$log" && status=error
    if [[ $status != ok ]]; then
        note+=" qemu rc=$qrc: $(grep -h -m2 -e '^KL error' -e 'qemu-system' "$log" "$tmp/qemu.err" | tr '\n' ' ')"
        msg "  $b $config $c/$a: $status ($note)"
    fi
    local t v got=0
    for t in randread_qd1 randread_qd8 seqread randwrite_qd1 randwrite_qd8; do
        case $t in
            randread_qd1) v=$(sed -n 's/^KL randio dev=vda qd=1 mode=r iops=\([0-9]*\).*/\1/p' "$log") ;;
            randread_qd8) v=$(sed -n 's/^KL randio dev=vda qd=8 mode=r iops=\([0-9]*\).*/\1/p' "$log") ;;
            randwrite_qd1) v=$(sed -n 's/^KL randio dev=vda qd=1 mode=w iops=\([0-9]*\).*/\1/p' "$log") ;;
            randwrite_qd8) v=$(sed -n 's/^KL randio dev=vda qd=8 mode=w iops=\([0-9]*\).*/\1/p' "$log") ;;
            seqread) v=$(sed -n 's/^KL seq dev=vda mode=r mbps=\([0-9]*\).*/\1/p' "$log") ;;
        esac
        if [[ -n $v ]]; then
            row "$r" "$s" "$b" "$config" "$c" "$a" guest "$t" "$v" "$([[ $t = seqread ]] && echo MBps || echo iops)" ok "$note"
            got=1
        else
            row "$r" "$s" "$b" "$config" "$c" "$a" guest "$t" "" - "$status" "$note"
        fi
    done
    [[ $mem_ok = 1 ]] && memcg_rows "$r" "$s" "$b" "$config" "$c" "$a" "$m_end" "$m_fin" "$status"
    grep -q 'engine=threads' "$log" && msg "  note: the guest fell back to its thread engine ($b $c/$a)"
    ((got)) && ok_boots=$((ok_boots + 1))
    # Flush this image's dirty host pages (writeback runs) so that the next run starts clean.
    if [[ ${b_fresh[$b]} = 1 ]]; then rm -f "${b_path[$b]}"; else sync "${b_path[$b]}" 2>/dev/null; fi
    msg "  $b $config $c/$a: $(awk -F, -v r="$r" -v s="$s" '$1 == r && $2 == s && ($9 == "guest" || $9 == "memcg") { printf "%s=%s ", $10, $11 }' "$runs")"
}

# ---------------------------------------------------------------- one qemu-img bench cell (the reference)
declare -A qi_count
run_qemu_img() { # round seq backend cache aio
    local r=$1 s=$2 b=$3 c=$4 a=$5 t qd w key n secs res
    for t in read_qd1 read_qd8 write_qd1 write_qd8; do
        qd=${t##*qd}
        w=
        [[ $t = write* ]] && w=-w
        key="$b|$c|$a|$t"
        if [[ -z ${qi_count[$key]:-} ]]; then
            # Calibrate the count once, so that every run of this cell lasts about BENCH_QEMU_IMG_SECS.
            prepare "$b"
            res=$("$qemu_img" bench -f "${b_fmt[$b]}" -c 128 -d "$qd" -s 4096 -S "$qi_step" -i "$a" -t "$c" $w \
                "${b_path[$b]}" 2>&1)
            secs=$(printf '%s\n' "$res" | sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p')
            qi_count[$key]=$(awk -v s="${secs:-0}" -v t="$qi_target" \
                'BEGIN { n = (s > 0) ? int(128 * t / s) : 20000; if (n < 128) n = 128; if (n > 400000) n = 400000; print n }')
        fi
        n=${qi_count[$key]}
        prepare "$b"
        res=$("$qemu_img" bench -f "${b_fmt[$b]}" -c "$n" -d "$qd" -s 4096 -S "$qi_step" -i "$a" -t "$c" $w \
            "${b_path[$b]}" 2>&1)
        secs=$(printf '%s\n' "$res" | sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p')
        if [[ -n $secs ]] && awk -v s="$secs" 'BEGIN { exit !(s > 0) }'; then
            row "$r" "$s" "$b" matrix "$c" "$a" qemu-img "$t" "$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')" \
                iops ok "count $n in $secs s"
        else
            row "$r" "$s" "$b" matrix "$c" "$a" qemu-img "$t" "" iops error "$(printf '%s' "$res" | tail -n1)"
        fi
    done
    [[ ${b_fresh[$b]} = 1 ]] && rm -f "${b_path[$b]}"
}

# ---------------------------------------------------------------- the rounds
t_start=$SECONDS
seq_no=0
for ((r = 1; r <= rounds; r++)); do
    # Rotate the starting point each round, so no configuration always runs right after the same other one.
    off=$(((r - 1) * njobs / rounds))
    msg "round $r of $rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    for ((k = 0; k < njobs; k++)); do
        job=${jobs[$(((k + off) % njobs))]}
        seq_no=$((seq_no + 1))
        run_guest "$r" "$seq_no" "$job"
        IFS='|' read -r b config c a <<<"$job"
        if [[ $config = matrix && -n $qemu_img && ${b_limit[$b]} = 0 ]]; then
            run_qemu_img "$r" "$seq_no" "$b" "$c" "$a"
        fi
    done
    done_s=$((SECONDS - t_start))
    msg "round $r done after $((done_s / 60)) min $((done_s % 60)) s; about $(((done_s * (rounds - r) / r + 59) / 60)) min of guest boots left"
done
((ok_boots > 0)) || die "no guest boot produced a measurement (see $runs and $out/bench.log)"

# ---------------------------------------------------------------- report
{
    echo "# kvm-launch benchmark: does the policy pay?"
    echo
    echo "Run $(date -u "+%Y-%m-%d %H:%M UTC") by tests/bench/bench.sh (\`make bench\`)$(env | grep "^BENCH_" | grep -v "^BENCH_OUT=" | sort | sed "s/^/ /" | tr -d "\n" | sed "s/^ /, with /"); $rounds round(s)$([[ $quick = 1 ]] && echo ' (smoke run)')$([[ -n $cells_filter ]] && echo ", cells limited to $cells_filter")."
    echo
    echo "- Host: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); images on $(fs_of "$tmp") (${BENCH_TMPDIR:-/var/tmp})."
    echo "- $("$qemu" --version | head -n1); kvm-launch $(git -C "$top" describe --always --dirty 2>/dev/null || echo "?") (binary sha256 $kl_sum, built-in policy); guest kernel $(cut -d' ' -f2 "${KL_GUEST_KERNEL%/*}/kernel/version" 2>/dev/null || echo '?') under TCG (-m 256 -smp 1), virtio-blk."
    echo "- Load average at start $(awk -F, 'NR == 2 { print $4 }' "$runs"), at end $(cut -d' ' -f1 /proc/loadavg); the machine is shared with other engineers' tests, so expect noise: every figure is the median of the rounds with [min-max]."
    echo "- Guest: 4 KiB random O_DIRECT reads then writes at QD1 (${secs_short} s) and QD8 (${secs_long} s, io_uring in the guest), 1 MiB sequential reads (${secs_short} s), all in one boot per configuration; random writes issue no flushes."
    echo "- qemu-img bench: 4 KiB, strided (step 40507 blocks; it has no random mode), count calibrated to ~${qi_target} s per run; on the fresh sparse and qcow2 images reads hit holes."
    echo "- Whole run: $(((SECONDS + 59) / 60)) min."
} >"$out/env.md"
render "$out"
msg "done in $(((SECONDS + 59) / 60)) min: $out/{results.md,chart.svg,memory.svg,runs.csv,summary.csv}"
exit 0
