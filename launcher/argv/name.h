/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The VM name of a command line the model could not parse (fail-open):
 * only -name is read, so the state file of a VM that runs without the
 * policy still says which VM it is.  Pure, no I/O. */
#ifndef KL_LAUNCHER_ARGV_NAME_H
#define KL_LAUNCHER_ARGV_NAME_H

/* The guest name of the last -name/--name (`-name guest=X,...` or
 * `-name X,...`, ",," unescaped), or NULL.  Caller frees. */
char *kl_argv_guess_name(int argc, char *const *argv);

#endif
