#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Every source file carries the licence: "SPDX-License-Identifier:
# GPL-2.0-or-later" on its first line (C: /* ... */), or on the line after
# its shebang (#!).  Source files: *.c *.h *.sh *.awk, Makefile.in,
# configure, any file starting with #!, the files of contrib/ (but prose and
# examples) and debian's scripts.  Data (fuzz corpus, golden argv) and what a
# build writes (the .gitignore'd folders, config.h, Makefile) are not source.
# COPYING holds the licence text and debian/copyright says the same.
. "$(dirname "$0")/../functions.sh"
requires find grep head
cd "$KL_TOP" || fail "cd $KL_TOP"

SPDX='SPDX-License-Identifier: GPL-2.0-or-later'

# source_files DIR: the source files below DIR, one a line, relative to it.
source_files() {
	(cd "$1" && find . \( -path ./.git -o -path ./build-asan -o -path ./tests/logs -o -path ./tests/fuzz/out \
		-o -path ./tests/fuzz/corpus -o -path ./tests/fuzz/crashes -o -path ./tests/guest/out \
		-o -path ./debian/kvm-launch -o -path ./debian/.debhelper -o -path ./debian/tmp \) -prune \
		-o -type f -print | sed 's|^\./||' | sort | while IFS= read -r f; do
		case $f in
		config.h | Makefile) continue ;;
		*.c | *.h | *.sh | *.awk | Makefile.in | configure) echo "$f" ;;
		contrib/*README* | contrib/*.txt | contrib/*.example) ;;
		contrib/* | debian/rules | debian/postinst | debian/postrm | debian/prerm | debian/triggers) echo "$f" ;;
		*) [ "$(head -c 2 "$f")" = '#!' ] && echo "$f" ;;
		esac
	done)
}

# missing_spdx DIR: the source files of DIR without the line where it belongs.
missing_spdx() {
	source_files "$1" | while IFS= read -r f; do
		case $f in
		*.c | *.h) want="/* $SPDX */"; line=$(head -n 1 "$1/$f") ;;
		*.j2) want="{# $SPDX #}"; line=$(head -n 1 "$1/$f") ;; # a Jinja comment: not in what it renders
		*) want="# $SPDX"
		   if [ "$(head -c 2 "$1/$f")" = '#!' ]; then line=$(sed -n 2p "$1/$f"); else line=$(head -n 1 "$1/$f"); fi
		   line=${line#"${line%%[![:space:]]*}"} ;; # an indented snippet may indent it
		esac
		[ "$line" = "$want" ] || echo "$f"
	done
}

# The check can fail: a tree with a file lacking the line, one with the line
# on the wrong line, and one with everything right.
kl_tmpdir
mkdir -p "$TMP/t/sub" "$TMP/t/contrib"
printf '/* %s */\nint x;\n' "$SPDX" > "$TMP/t/good.c"
printf '#!/bin/sh\n# %s\necho\n' "$SPDX" > "$TMP/t/sub/good-script"
printf '# %s\n[Unit]\n' "$SPDX" > "$TMP/t/contrib/unit.service"
[ -z "$(missing_spdx "$TMP/t")" ] || fail "self-check: a correct tree is reported: $(missing_spdx "$TMP/t")"
printf '#include <stdio.h>\n/* %s */\n' "$SPDX" > "$TMP/t/sub/late.h"
printf '#!/bin/sh\necho\n' > "$TMP/t/sub/bare"
printf '[Unit]\n' > "$TMP/t/contrib/bare.timer"
got=$(missing_spdx "$TMP/t" | tr '\n' ' ')
[ "$got" = "contrib/bare.timer sub/bare sub/late.h " ] || fail "self-check: expected the three bad files, got '$got'"

n=$(source_files . | wc -l)
[ "$n" -gt 100 ] || fail "only $n source files found: the list is wrong"
missing=$(missing_spdx .)
if [ -n "$missing" ]; then
	echo "source files without '$SPDX' where it belongs:" >&2
	printf '  %s\n' $missing >&2
	fail "$(echo "$missing" | wc -l) of $n source files have no SPDX line"
fi

grep -q 'GNU GENERAL PUBLIC LICENSE' COPYING && grep -q 'Version 2, June 1991' COPYING ||
	fail "COPYING is not the GPL version 2 text"
grep -q '^License: GPL-2.0-or-later' debian/copyright || fail "debian/copyright does not say GPL-2.0-or-later"
if grep -q '^License: unspecified' debian/copyright; then fail "debian/copyright still says unspecified"; fi
echo "$n source files, each with its SPDX line"
