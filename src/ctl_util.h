/*
 * What tardyctl's modules share: its exit status, and the way it
 * complains and gives up. It is not log.c: a command-line tool prints
 * "tardyctl: reason" on stderr whatever stderr is, and the lines are
 * never cut short.
 */
#ifndef TARDY_CTL_UTIL_H
#define TARDY_CTL_UTIL_H

#include <stdarg.h>
#include <stddef.h>

/* The exit status documented in tardyctl(1) and its usage. */
#define EXIT_FAIL	1
#define EXIT_USAGE	2

void ctl_util_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void ctl_util_vwarnx(const char *, va_list)
    __attribute__((format(printf, 1, 0)));
void *ctl_util_alloc(size_t);
char *ctl_util_printf(const char *, ...) __attribute__((format(printf, 1, 2)));

#endif
