#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A Proxmox-shaped VM through kvm-launch on the real QEMU (TCG), as `qm start`
# runs it: -daemonize, -pidfile, a server-mode QMP socket (-chardev path=,
# server=on + -mon mode=control) and a client-mode qmp-event chardev that
# connects out (reconnect=), plus a -qmp unix: monitor.  kvm-launch must
# return only once QEMU is up, leave QEMU's PID in the pidfile, list it in
# --status with its disks, relay Proxmox's socket (a blockdev-add + device_add
# hot-plug gets the policy: query-named-block-nodes and O_DIRECT in
# /proc/PID/fdinfo; so does PVE 8's HMP drive_add + device_add), leave the client-mode chardev alone (our own listener
# gets QEMU's events), and clean state, agent and relays when QEMU is killed.
# (Proxmox's own QEMU also takes -id VMID; the upstream QEMU here does not,
# so the real run leaves it out; tests/qemu/t-proxmox-goldens.sh has it.)
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
requires fallocate
fallocate -l 64M "$TMP/vm-100-disk-0.raw"
fallocate -l 64M "$TMP/vm-100-disk-1.raw"
fallocate -l 64M "$TMP/vm-100-disk-2.raw"
fallocate -l 64M "$TMP/vm-100-disk-3.raw"
# A Proxmox VE 9 disk: throttle filter -> raw -> file, asked as cache.direct=false, aio=threads.
nc='"cache":{"direct":false,"no-flush":false},"detect-zeroes":"on","discard":"ignore"'
pve9="{\"detect-zeroes\":\"on\",\"discard\":\"ignore\",\"driver\":\"throttle\",\"file\":{$nc,\"driver\":\"raw\",\"file\":{\"aio\":\"threads\",$nc,\"driver\":\"file\",\"filename\":\"$TMP/vm-100-disk-2.raw\",\"node-name\":\"e2\",\"read-only\":false},\"node-name\":\"f2\",\"read-only\":false},\"node-name\":\"drive-scsi2\",\"read-only\":false,\"throttle-group\":\"throttle-drive-scsi2\"}"
LISTENER_PID=
# qmeventd's stand-in: accepts QEMU's client-mode monitor, negotiates, logs events.
python3 - "$TMP/qmeventd.sock" "$TMP/events" <<'PY' &
import json, os, socket, sys
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1]); srv.listen(1)
c, _ = srv.accept()
f = c.makefile("rwb", buffering=0)
out = open(sys.argv[2], "a", buffering=1)
out.write("connected\n")
for line in f:
    msg = json.loads(line)
    if "QMP" in msg:
        c.sendall(b'{"execute":"qmp_capabilities"}\n')
    elif "event" in msg:
        out.write(msg["event"] + "\n")
PY
LISTENER_PID=$!
cleanup_fn "kill $LISTENER_PID 2>/dev/null"
wait_for 10 test -S "$TMP/qmeventd.sock" || fail "the qmeventd stand-in did not start"

cleanup_fn 'for p in $(relay_pids) $(pgrep -f -- "--agent $ST/") $(cat "$TMP/100.pid" 2>/dev/null); do kill -9 $p 2>/dev/null; done'
echo "+ kvm-launch ... -pidfile $TMP/100.pid -daemonize (Proxmox shape)"
start_ns=$(date +%s%N)
"$KL" --config "$TMP/p.conf" --qemu "$QEMU" -- \
	-chardev "socket,id=qmp,path=$TMP/100.qmp,server=on,wait=off" -mon chardev=qmp,mode=control \
	-chardev "socket,id=qmp-event,path=$TMP/qmeventd.sock,reconnect=5" -mon chardev=qmp-event,mode=control \
	-qmp "unix:$TMP/extra.qmp,server=on,wait=off" \
	-pidfile "$TMP/100.pid" -daemonize -name vm100,debug-threads=on -no-shutdown \
	-machine pc -accel tcg -nodefaults -display none -m 128 \
	-object iothread,id=iothread-virtioscsi0 \
	-device virtio-scsi-pci,id=virtioscsi0,iothread=iothread-virtioscsi0 \
	-drive "file=$TMP/vm-100-disk-0.raw,if=none,id=drive-scsi0,cache=writeback,aio=threads,format=raw,detect-zeroes=on" \
	-device scsi-hd,bus=virtioscsi0.0,channel=0,scsi-id=0,lun=0,drive=drive-scsi0,id=scsi0,bootindex=100 \
	-object '{"id":"throttle-drive-scsi2","limits":{"iops-total":1000},"qom-type":"throttle-group"}' \
	-blockdev "$pve9" -device scsi-hd,bus=virtioscsi0.0,channel=0,scsi-id=0,lun=2,drive=drive-scsi2,id=scsi2,write-cache=on \
	> "$TMP/launch.out" 2>&1
rc=$?
sed 's/^/  | /' "$TMP/launch.out"
[ $rc = 0 ] || fail "kvm-launch -daemonize exited $rc"

# It returned: QEMU must be up now, without waiting.
[ -s "$TMP/100.pid" ] || fail "no pidfile when kvm-launch returned"
QPID=$(cat "$TMP/100.pid")
[ "$(readlink "/proc/$QPID/exe")" = "$(readlink -f "$QEMU")" ] || fail "pidfile PID $QPID is not QEMU: $(readlink "/proc/$QPID/exe")"
tr '\0' ' ' < "/proc/$QPID/cmdline" | grep -q -- "-name vm100,debug-threads=on " || fail "PID $QPID is not vm100"
# What Proxmox checks (instance_running_locally): the process's own -pidfile is this file.
tr '\0' '\n' < "/proc/$QPID/cmdline" | grep -A1 -x -- -pidfile | tail -n 1 | grep -qx "$TMP/100.pid" ||
	fail "QEMU's -pidfile is not $TMP/100.pid"
printf '{"execute":"qmp_capabilities"}\n{"execute":"query-status","id":"s0"}\n' | session "$TMP/100.qmp" > "$TMP/s0"
grep -q '"status": "running"' "$TMP/s0" || fail "Proxmox's socket: no running status right after return: $(cat "$TMP/s0")"
echo "returned after $(( ($(date +%s%N) - start_ns) / 1000000 )) ms; pidfile $QPID = QEMU ($(readlink "/proc/$QPID/exe")); Proxmox's socket answers: running"
ps -o pid,ppid,comm -p "$QPID" | sed 's/^/  | /'

# The client-mode chardev reached our listener untouched.
tr '\0' '\n' < "/proc/$QPID/cmdline" | grep -qx "socket,id=qmp-event,path=$TMP/qmeventd.sock,reconnect=5" ||
	fail "the client-mode chardev was changed"
wait_for 10 grep -q connected "$TMP/events" || fail "QEMU did not connect to the qmp-event listener"
# Both server-mode monitors are relayed (QEMU got fd=N), two relays follow QEMU.
tr '\0' '\n' < "/proc/$QPID/cmdline" | grep -q '^socket,id=qmp,fd=[0-9]*,server=on,wait=off$' || fail "Proxmox's monitor is not relayed"
# Each relay is an active process with a standby (its child): 2 monitors, 4 processes, 2 of them standbys.
[ "$(relay_pids vm100 | wc -w)" = 4 ] || fail "want 2 relays with their standbys, have: $(relay_pids vm100)"
[ "$(relay_children vm100 | wc -w)" = 0 ] || fail "relay children that are not relays: $(relay_children vm100)"
actives=0
for p in $(relay_pids vm100); do relay_pids vm100 | grep -qx "$(ps -o ppid= -p "$p" | tr -d ' ')" || actives=$((actives + 1)); done
[ "$actives" = 2 ] || fail "want 2 active relays, have $actives"

# --status lists the VM with QEMU's PID and its disk.
"$KL" --config "$TMP/p.conf" --status vm100 | tee "$TMP/status" | sed 's/^/  | /'
"$KL" --config "$TMP/p.conf" --status --json vm100 > "$TMP/status.json"
python3 - "$TMP/status.json" "$QPID" <<'PY' || fail "--status --json: $(cat "$TMP/status.json")"
import json, sys
d = json.load(open(sys.argv[1]))
vm = d["vms"][0] if isinstance(d, dict) and "vms" in d else (d[0] if isinstance(d, list) else d)
assert vm["pid"] == int(sys.argv[2]), vm["pid"]
assert any(x.get("id") == "scsi0" or x.get("node") == "drive-scsi0" for x in vm["disks"]), vm["disks"]
# The throttle-topped disk: listed with the mode QEMU runs (the policy's O_DIRECT mode).
t = [x for x in vm["disks"] if x.get("id") == "scsi2"]
assert t, vm["disks"]
print("status: scsi2 (throttle-topped) %s" % {k: t[0].get(k) for k in ("node", "aio", "cache")})
assert t[0].get("cache") in ("none", "directsync"), t[0]
PY
agent=$(pgrep -f -- "--agent $ST/vm100.json")
[ -n "$agent" ] || fail "no agent for vm100"
# No kvm-launch process is the OOM killer's first choice: QEMU ranks above its agent and relays.
q_oom=$(cat "/proc/$QPID/oom_score_adj")
for p in $agent $(relay_pids); do
	[ "$(cat "/proc/$p/oom_score_adj")" -lt "$q_oom" ] || fail "pid $p has oom_score_adj $(cat "/proc/$p/oom_score_adj"), QEMU $q_oom"
done
echo "oom_score_adj: QEMU $q_oom, agent and relays below it"

# A hot-plug over Proxmox's socket gets the policy (as the command line would).
read -r e_aio e_cache e_rule <<< "$("$KL" --config "$TMP/p.conf" --qemu "$QEMU" --dry-run --json -- \
	-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/vm-100-disk-1.raw\",\"node-name\":\"s1\"}" |
	python3 -c 'import json,sys; d=json.load(sys.stdin)["disks"][0]; print(d["aio"], d["cache"], d["rule"])')"
session "$TMP/100.qmp" > "$TMP/hp" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"blockdev-add","arguments":{"driver":"file","filename":"$TMP/vm-100-disk-1.raw","node-name":"s1","aio":"threads","cache":{"direct":false}},"id":"a1"}
{"execute":"blockdev-add","arguments":{"node-name":"f1","driver":"raw","file":"s1"},"id":"a2"}
{"execute":"device_add","arguments":{"driver":"scsi-hd","bus":"virtioscsi0.0","drive":"f1","id":"scsi1"},"id":"d1"}
{"execute":"query-named-block-nodes","arguments":{"flat":true},"id":"n1"}
{"execute":"stop","id":"st"}
EOF
for id in a1 a2 d1 n1 st; do grep -q "\"id\": \"$id\"" "$TMP/hp" && ! grep -q "\"error\".*\"id\": \"$id\"" "$TMP/hp" ||
	fail "hot-plug: $id failed: $(cat "$TMP/hp")"; done
direct=$(python3 - "$TMP/hp" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("reply ") and '"node-name"' in line:
        for n in json.loads(line[6:]).get("return", []):
            if n.get("node-name") == "s1":
                print(str(n["cache"]["direct"]).lower())
PY
)
[ "$(direct_bit "$QPID" "$TMP/vm-100-disk-2.raw")" = 1 ] || fail "the throttle-topped disk has no O_DIRECT"
python3 - "$TMP/hp" <<'PY' || fail "throttle-topped disk: nodes in QEMU differ from the policy"
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("reply ") and '"node-name"' in line:
        nodes = {n["node-name"]: n for n in json.loads(line[6:])["return"]}
        for name in ("drive-scsi2", "f2", "e2"):
            print("  node %s driver=%s cache.direct=%s" % (name, nodes[name]["drv"], nodes[name]["cache"]["direct"]))
            assert nodes[name]["cache"]["direct"] is True
        assert nodes["drive-scsi2"]["drv"] == "throttle"
PY
bit=$(direct_bit "$QPID" "$TMP/vm-100-disk-1.raw")
echo "hot-plug scsi1: policy says aio=$e_aio cache=$e_cache ($e_rule); QEMU: cache.direct=$direct, fdinfo O_DIRECT=$bit (asked: threads, direct=false)"
case $e_cache in none | directsync) want=true ;; *) want=false ;; esac
[ "$direct" = "$want" ] || fail "hot-plugged node s1: direct=$direct, the policy's $e_cache wants $want"
[ "$bit" = "$([ $want = true ] && echo 1 || echo 0)" ] || fail "O_DIRECT bit $bit in fdinfo"
[ "$want" = true ] || fail "the policy picked no O_DIRECT mode for a preallocated raw file: the hot-plug proves nothing"

# Proxmox VE 8's hot-plug: HMP drive_add over QMP, then device_add; the
# relay gives drive_add's -drive options the policy too.
session "$TMP/100.qmp" > "$TMP/hmp" <<EOF
{"execute":"qmp_capabilities"}
{"execute":"human-monitor-command","arguments":{"command-line":"drive_add auto \"file=$TMP/vm-100-disk-3.raw,if=none,id=drive-scsi3,cache=writeback,aio=threads,format=raw,detect-zeroes=on\""},"id":"h1"}
{"execute":"device_add","arguments":{"driver":"scsi-hd","bus":"virtioscsi0.0","lun":3,"drive":"drive-scsi3","id":"scsi3"},"id":"h2"}
{"execute":"query-block","id":"h3"}
{"execute":"human-monitor-command","arguments":{"command-line":"drive_add auto \"x\\\\q\""},"id":"h4"}
EOF
grep -q '"return": "OK' "$TMP/hmp" || fail "drive_add failed: $(cat "$TMP/hmp")"
grep -q '"error".*"id": "h2"' "$TMP/hmp" && fail "device_add after drive_add failed: $(cat "$TMP/hmp")"
hbit=$(direct_bit "$QPID" "$TMP/vm-100-disk-3.raw")
echo "drive_add (PVE 8 hot-plug, asked cache=writeback,aio=threads): fdinfo O_DIRECT=$hbit; relay: $(grep 'relay: drive_add drive-scsi3:' "$ST/vm100.relay.log" | tail -n 1)"
grep -q 'relay: drive_add drive-scsi3: ' "$ST/vm100.relay.log" || fail "the relay did not rewrite drive_add"
[ "$hbit" = 1 ] || fail "drive_add: the policy's O_DIRECT mode was not applied"
# A drive_add the relay cannot read with certainty (an escape HMP refuses) goes as sent.
grep -q '"id": "h4"' "$TMP/hmp" && grep -q 'drive_add: not one address and one option string: forwarded as sent' "$ST/vm100.relay.log" ||
	fail "an unreadable drive_add was not forwarded as sent: $(tail -n 3 "$ST/vm100.relay.log")"
"$KL" --config "$TMP/p.conf" --status --json vm100 | python3 -c '
import json, sys
d = json.load(sys.stdin)
vm = d["vms"][0] if isinstance(d, dict) and "vms" in d else (d[0] if isinstance(d, list) else d)
t = [x for x in vm["disks"] if x.get("node") == "drive-scsi3" or x.get("id") == "scsi3"]
assert t and t[0].get("origin") == "hot-plug", vm["disks"]
print("status: drive_add disk %s" % {k: t[0].get(k) for k in ("id", "node", "aio", "cache", "origin")})' ||
	fail "--status does not list the drive_add disk as hot-plugged"

# QEMU's events reach the client-mode monitor (our qmeventd stand-in).
wait_for 10 grep -qx STOP "$TMP/events" || fail "qmp-event listener saw no STOP: $(cat "$TMP/events")"
echo "qmp-event listener got: $(tr '\n' ' ' < "$TMP/events")"
# The -qmp unix: monitor answers through its relay too.
printf '{"execute":"qmp_capabilities"}\n{"execute":"query-status","id":"q"}\n' | session "$TMP/extra.qmp" | grep -q '"status": "paused"' ||
	fail "-qmp unix: monitor does not answer"

# Killing QEMU cleans the state, the agent and the relays.
kill -9 "$QPID"
wait_for 20 sh -c "! test -e '$ST/vm100.json'" || fail "state file left after QEMU was killed"
wait_for 10 sh -c "! kill -0 $agent 2>/dev/null" || fail "agent $agent outlived QEMU"
wait_for 10 no_relay vm100 || fail "relays outlived QEMU: $(relay_pids vm100)"
left=$(ls "$ST" | grep -v '\.log$' || true)
[ -z "$left" ] || fail "left in the state directory: $left"
echo "QEMU killed: state entry, sockets, agent and relays gone"

# A hand-run start script: -daemonize without -pidfile.  kvm-launch gives QEMU a pidfile in the
# state directory (so the daemon is still confirmed by two sources), follows it, and the agent
# removes that file with the entry when QEMU ends.
cleanup_fn 'for p in $(relay_pids hand) $(pgrep -f -- "--agent $ST/hand") $(cat "$ST/hand.pid" 2>/dev/null); do kill -9 $p 2>/dev/null; done'
"$KL" --config "$TMP/p.conf" --qemu "$QEMU" -- -daemonize -name hand -machine pc -accel tcg -nodefaults -display none -m 64 \
	-qmp "unix:$TMP/hand.qmp,server=on,wait=off" \
	-drive "file=$TMP/vm-100-disk-0.raw,if=virtio,format=raw" > "$TMP/hand.out" 2>&1 || fail "hand-run -daemonize exited $?: $(cat "$TMP/hand.out")"
HPID=$(cat "$ST/hand.pid" 2>/dev/null) || fail "no pidfile for the hand-run VM: $(cat "$TMP/hand.out")"
[ "$(readlink "/proc/$HPID/exe")" = "$(readlink -f "$QEMU")" ] || fail "hand.pid names $HPID, not QEMU"
tr '\0' ' ' < "/proc/$HPID/cmdline" | grep -q -- "-pidfile $ST/hand.pid" || fail "QEMU was not given the state directory's pidfile"
"$KL" --config "$TMP/p.conf" --status --json hand > "$TMP/hand.json" || fail "--status hand failed"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=[x for x in d["vms"] if x["name"]=="hand"][0]; assert v["pid"]==int(sys.argv[2]), v["pid"]; assert v["disks"], "no disks"' \
	"$TMP/hand.json" "$HPID" || fail "--status does not list the hand-run VM with QEMU's PID: $(cat "$TMP/hand.json")"
printf '{"execute":"qmp_capabilities"}\n{"execute":"query-status","id":"h"}\n' | session "$TMP/hand.qmp" | grep -q '"status": "running"' ||
	fail "the hand-run VM's -qmp does not answer"
echo "hand-run -daemonize without -pidfile: followed, PID $HPID from $ST/hand.pid, confirmed by SO_PEERCRED; --status lists it"
kill -9 "$HPID"
wait_for 20 sh -c "! test -e '$ST/hand.json' && ! test -e '$ST/hand.pid'" || fail "entry or pidfile left after the hand-run QEMU was killed: $(ls "$ST")"
wait_for 10 no_relay hand || fail "relays outlived the hand-run QEMU"
echo "hand-run QEMU killed: entry, pidfile, agent and relays gone"
