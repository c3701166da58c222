#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# NEWS: "whether the real QEMU has io_uring is asked once (its QAPI schema) and cached by the binary's identity
# under the cache directory".  A stand-in QEMU counts the capability queries (-qmp stdio): two launches ask once;
# the same binary changed (new mtime and size: an upgrade) is asked again; a fresh cache directory asks again.
. "$(dirname "$0")/../functions.sh"
requires "$KL"
kl_tmpdir
q=$TMP/qemu
write_fake() { # EXTRA-COMMENT: the stand-in; the comment changes its size
	cat > "$q" <<EOQ
#!/bin/sh
# $1
for a in "\$@"; do
	if [ "\$a" = stdio ]; then
		echo query >> "$TMP/queries"
		printf '%s\\r\\n' \\
			'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": []}}' \\
			'{"return": {}, "id": "kl-1"}' \\
			'{"return": [{"name": "BlockdevAioOptions", "meta-type": "enum", "values": ["threads", "native", "io_uring"]}], "id": "kl-2"}' \\
			'{"return": {}, "id": "kl-3"}'
		cat > /dev/null
		exit 0
	fi
done
exit 0
EOQ
	chmod 0755 "$q"
}
write_fake v1
truncate -s 16M "$TMP/d.img"
queries() { [ -f "$TMP/queries" ] && grep -c . "$TMP/queries" || echo 0; }
launch() { # CACHE-DIR
	printf 'cache-dir = %s\nstate-dir = %s/state\n' "$1" "$TMP" > "$TMP/p.conf"
	chmod 0644 "$TMP/p.conf"
	"$KL" --config "$TMP/p.conf" --qemu "$q" -- -name c -drive "file=$TMP/d.img,format=raw,if=virtio" 2>> "$TMP/err" ||
		fail "launch failed: $(cat "$TMP/err")"
}
launch "$TMP/cache"
[ "$(queries)" = 1 ] || fail "first launch: $(queries) capability queries, want 1"
launch "$TMP/cache"
[ "$(queries)" = 1 ] || fail "second launch asked again ($(queries) queries): not cached"
[ -n "$(ls -A "$TMP/cache")" ] || fail "nothing under the cache directory"
write_fake "v2, a longer comment: another build of QEMU"
touch -d '2001-01-01' "$q"
launch "$TMP/cache"
[ "$(queries)" = 2 ] || fail "a changed binary was not asked again ($(queries) queries)"
launch "$TMP/cache2"
[ "$(queries)" = 3 ] || fail "a fresh cache directory was not asked ($(queries) queries)"
echo "capability queries: 1 for two launches, again after the binary changed and with a new cache directory"
echo PASS
