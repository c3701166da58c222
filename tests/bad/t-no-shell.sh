#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Nothing runs through a shell: the sources of launcher/ (with launcher/top, --top's view), policy/, qmp/
# and common/ call no system(), popen(), wordexp(), no exec or spawn that
# searches PATH (execlp, execvp, execvpe, posix_spawnp), name no shell
# ("/bin/sh", "/bin/bash", "sh -c"), and every exec is execve()/execv()
# of an absolute path (QEMU's, /proc/self/exe) with an argv array.  The
# built binary imports none of those functions either.
. "$(dirname "$0")/../functions.sh"
requires grep
cd "$KL_TOP" || fail "cd $KL_TOP"
SRC=$(ls launcher/*.[ch] launcher/*/*.[ch] policy/*.[ch] policy/*/*.[ch] qmp/*.[ch] common/*.[ch])
[ -n "$SRC" ] || fail "no sources found"

# Calls, not mentions in comments: strip /* */ and // comments first
# (perl is in Debian's perl-base, which is essential).
requires perl
strip_comments() {
	perl -0777 -pe 's{/\*.*?\*/}{}gs; s{//[^\n]*}{}g' "$1"
}
TMPDIR_NS=$(mktemp -d)
cleanup_fn "rm -rf '$TMPDIR_NS'"
for f in $SRC; do
	mkdir -p "$TMPDIR_NS/s/${f%/*}"
	strip_comments "$f" > "$TMPDIR_NS/s/$f"
done
# The patterns below do catch what they are for.
CALLS='(^|[^_[:alnum:]])(system|popen|wordexp|execlp|execvp|execvpe|execl|execle|posix_spawnp?|vfork)[[:space:]]*\('
SHELLS='"/bin/(ba|da|z|k|c|tc)?sh"|"/usr/bin/(ba|da|z|k)?sh"|"sh"|"-c"|sh -c'
printf '%s\n' 'if (system("x")) {' 'f = popen (cmd, "r");' 'execvp(a[0], a);' '	execlp("qemu", "qemu", NULL);' |
	grep -cE "$CALLS" | grep -qx 4 || fail "the call pattern misses calls"
printf '%s\n' 'execl("/bin/sh", "sh", "-c", cmd, NULL);' 'char *a[] = { "/bin/bash" };' | grep -cE "$SHELLS" | grep -qx 2 ||
	fail "the shell pattern misses shells"
printf '%s\n' 'my_system(x); kl_popen_like(y); s->system = 1;' | grep -qE "$CALLS" && fail "the call pattern matches other names"
cd "$TMPDIR_NS/s" || fail "cd"
grep -nE "$CALLS" $SRC > "$TMPDIR_NS/hits"
grep -nE "$SHELLS" $SRC >> "$TMPDIR_NS/hits"
if [ -s "$TMPDIR_NS/hits" ]; then
	cat "$TMPDIR_NS/hits"
	fail "shell or PATH-searching calls found (above)"
fi

# Every exec names its program by an absolute path or a variable holding one.
grep -nE '(^|[^_[:alnum:]])exec(ve|v)[[:space:]]*\(' $SRC > "$TMPDIR_NS/execs"
cat "$TMPDIR_NS/execs"
[ -s "$TMPDIR_NS/execs" ] || fail "no execve at all? (the launcher must exec QEMU)"
while IFS= read -r l; do
	case $l in
	*'execve("/proc/self/exe", b->argv, environ)'* | *'execve(guard_argv[0], guard_argv, environ)'* | \
	*'execve(argv[0], argv, environ)'* | *'execv(qemu, args)'*) ;;
	# --top: kvm-launch-top beside /proc/self/exe's target, else in PKGLIBDIR
	# (launcher/top.c: kl_top_program), both absolute.
	*'execve(prog, strvec_terminate(&argv), environ)'*) ;;
	*) fail "an exec not reviewed here: $l (check it runs no shell, then add it to tests/bad/t-no-shell.sh)" ;;
	esac
done < "$TMPDIR_NS/execs"
cd "$KL_TOP" || fail "cd"

# The binary: no imports of shell-running or PATH-searching functions.
if command -v nm > /dev/null && [ -x "$KL" ]; then
	nm -D --undefined-only "$KL" | awk '{print $NF}' | sed 's/@.*//' > "$TMPDIR_NS/imports"
	[ -s "$TMPDIR_NS/imports" ] || fail "nm found no imports in $KL"
	if grep -xE 'system|popen|wordexp|execlp|execvp|execvpe|execl|execle|posix_spawnp?' "$TMPDIR_NS/imports"; then
		fail "$KL imports the functions above"
	fi
	grep -xE 'execve|execv' "$TMPDIR_NS/imports" || fail "$KL imports no execve?"
	echo "imports of $KL: no shell, no PATH search"
fi
echo "no shell: ok"
