#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Malformed and odd -blockdev and -device arguments (JSON and dotted): cut
# short, wrongly typed, not an object, QEMU's own refusals (duplicate keys,
# \u0000, control characters, trailing garbage), deep nesting, huge
# documents.  Malformed: fail-open or refused as in t-drive.sh.  Valid but
# odd: the rewrite keeps every byte it does not change.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
bad_setup
IMG=$TMP/disk.img
truncate -s 1M "$IMG" || fail "truncate"
F='"driver":"file","filename":"'$IMG'"'
FMT=(-blockdev '{"node-name":"f0","driver":"raw","file":"s0"}')

# ---- malformed -blockdev ----
for j in \
	"{$F" "{$F," "{$F,\"node-name\":" "{$F,\"node-name\":\"s0\"" "{" "{\"" '{"driver"' '{"driver":"file' \
	"[1,2]" "[]" " {$F}" '"str"' "{$F}}" "{$F} x" "{$F}{}" "{$F},{}" \
	"{$F,\"driver\":\"file\"}" "{$F,\"node-name\":\"a\\u0000b\"}" "{$F,\"node-name\":\"a$(printf '\001')b\"}" \
	"{$F,\"node-name\":\"a"$'\n'"b\"}" "{$F,}" "{,$F}" "{$F,\"x\":[1,]}" "{$F,\"x\":01}" \
	"{$F,\"x\":tru}" "{$F,\"x\":nul}" "{$F,\"x\":\"\\q\"}" "{$F,\"x\":\"\\u12\"}" "{$F,\"x\":'a}" \
	"{$F,\"cache\":\"none\"}" "{$F,\"cache\":{\"direct\":\"maybe\"}}" "{$F,\"cache\":{\"no-flush\":1}}" \
	"{$F,\"read-only\":\"perhaps\"}" "{$F,\"aio\":\"fast\"}" "{$F,\"aio\":1}" "{$F,\"aio\":null}" \
	"{$F,\"node-name\":5}" "{$F,\"node-name\":\"\"}" "{\"driver\":5,\"filename\":\"$IMG\"}" \
	'{"driver":"raw","file":5}' '{"driver":"raw","file":{"driver":"file"},"file":"x"}' \
	'driver=file,filename' 'driver=file,=x' 'driver=file,a..b=1' 'driver=file,.a=1' 'driver=file,a.=1' \
	"driver=file,filename=$IMG,aio=fast" "driver=file,filename=$IMG,cache.direct=maybe"; do
	expect_malformed -name bad -blockdev "$j"
done
echo "malformed -blockdev: ok"

# ---- malformed -device (its disk must be understood) ----
B=(-blockdev "{$F,\"node-name\":\"s0\"}")
for j in \
	'{"driver":"virtio-blk-pci","drive":' '{"driver":"virtio-blk-pci","drive":"f0"' '{"driver":"virtio-blk-pci","drive":5}' \
	'{"driver":["virtio-blk-pci"],"drive":"f0"}' '{"drive":"f0"}' '{"driver":"virtio-blk-pci","drive":"f0","write-cache":true}' \
	'{"driver":"virtio-blk-pci","drive":"f0","write-cache":"sometimes"}' '{"driver":"virtio-blk-pci","drive":"f0","share-rw":"x"}' \
	'{"driver":"virtio-blk-pci","drive":"f0","id":"a","id":"b"}' '{"driver":"virtio-blk-pci","drive":"nosuch"}' \
	'virtio-blk-pci,drive=nosuch' 'virtio-blk-pci,drive=f0,write-cache=sometimes' ',drive=f0' 'virtio-blk-pci,=x'; do
	expect_malformed -name bad "${B[@]}" "${FMT[@]}" -device "$j"
done
echo "malformed -device: ok"

# ---- deep nesting: refused past the cap, without exhausting the stack ----
for depth in 65 1000 60000; do
	open=$(head -c $depth /dev/zero | tr '\0' '[')
	close=$(head -c $depth /dev/zero | tr '\0' ']')
	expect_malformed -name deep -blockdev "{$F,\"node-name\":\"s0\",\"x\":$open$close}"
	open=$(for i in $(seq $((depth < 2000 ? depth : 2000))); do printf '{"a":'; done)
	close=$(head -c $((depth < 2000 ? depth : 2000)) /dev/zero | tr '\0' '}')
	expect_malformed -name deep -blockdev "{$F,\"node-name\":\"s0\",\"x\":${open}1$close}"
done
# Unterminated nesting as deep as one argument can hold.
expect_malformed -name deep -blockdev "$(head -c 131000 /dev/zero | tr '\0' '[')"
expect_malformed -name deep -blockdev "{$(head -c 131000 /dev/zero | tr '\0' '{')"
echo "deep nesting: ok"

# ---- valid but odd: rewritten, every other byte kept ----
# QEMU's single quotes, number spellings json-c would change, escapes.
j="{'driver':'file','filename':'$IMG','node-name':'s0','x':-0,'y':18446744073709551616,'z':1E+2,'w':\"\\u00e9\\/\\ud83d\\ude00\"}"
expect_started -name odd -blockdev "$j" "${FMT[@]}"
[ "$(got_arg 4)" = "{'driver':'file','filename':'$IMG',\"aio\":\"io_uring\",'node-name':'s0',\"cache\":{\"direct\":true,\"no-flush\":false},'x':-0,'y':18446744073709551616,'z':1E+2,'w':\"\\u00e9\\/\\ud83d\\ude00\"}" ] ||
	fail "odd JSON: got $(got_arg 4)"
# Whitespace everywhere but before the '{' (QEMU takes JSON only when the
# argument starts with it).
j="{  \"driver\" : \"file\" ,
	\"filename\" : \"$IMG\" , \"node-name\":\"s0\" }  "
expect_started -name odd -blockdev "$j" "${FMT[@]}"
[ "$(got_arg 4)" = "{  \"driver\" : \"file\" ,
	\"filename\" : \"$IMG\",\"aio\":\"io_uring\" , \"node-name\":\"s0\",\"cache\":{\"direct\":true,\"no-flush\":false} }  " ] ||
	fail "whitespace: got $(got_arg 4)"
# Nesting just under the cap is fine.
open=$(for i in $(seq 60); do printf '{"a":'; done)
close=$(head -c 60 /dev/zero | tr '\0' '}')
expect_started -name odd -blockdev "{$F,\"node-name\":\"s0\",\"x\":${open}1$close}" "${FMT[@]}"
got_arg 4 | grep -q "\"x\":${open}1$close" || fail "deep but valid: not kept"
# Bytes that are not UTF-8 in a file name, in JSON: QEMU's JSON parser
# refuses them itself; the model takes them, and only the bytes it was
# asked to change change (QEMU then says what is wrong).
ODD=$TMP/$(printf 'n\377\376')
cp "$IMG" "$ODD"
expect_started -name odd -blockdev "{\"driver\":\"file\",\"filename\":\"$ODD\",\"node-name\":\"s0\"}" "${FMT[@]}"
got_arg 4 | grep -q '"aio":"io_uring"' || fail "non-UTF-8 file name: not rewritten"
# A -device that names a -blockdev node by dotted syntax.
expect_started -name odd -blockdev "driver=file,filename=$IMG,node-name=s0" \
	-blockdev 'driver=raw,node-name=f0,file=s0' -device 'virtio-blk-pci,drive=f0,id=vd0'
[ "$(got_arg 4)" = "driver=file,filename=$IMG,aio=io_uring,node-name=s0,cache.direct=on,cache.no-flush=off" ] ||
	fail "dotted: got $(got_arg 4)"
echo "odd -blockdev/-device: ok ($CASES launches)"
