/*
 * tardyd --reload PID: signal a running tardyd to reload and wait for
 * what it did, so the exit status says whether the new configuration is
 * in force (see reload_wait.c).
 */
#ifndef TARDY_RELOAD_WAIT_H
#define TARDY_RELOAD_WAIT_H

#include <sys/types.h>

#define RELOAD_WAIT_TIMEOUT_MS	10000

int reload_wait_parse_pid(const char *, pid_t *);
int reload_wait_run(const char *, pid_t, int, int);

#endif
