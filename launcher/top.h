/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kvm-launch --top: exec kvm-launch-top, the ncurses view, so that the
 * launcher itself never links the terminal library. */
#ifndef KL_LAUNCHER_TOP_H
#define KL_LAUNCHER_TOP_H

/* The program: kvm-launch-top beside this executable (a build tree), else
 * in PKGLIBDIR.  Caller frees. */
char *kl_top_program(void);
/* execve() it with --interval and --state-dir when given (NULL: its
 * default).  Returns only on failure: the exit code. */
int kl_top_main(const char *state_dir, const char *interval);

#endif
