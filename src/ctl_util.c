/*
 * tardyctl's warnings and its allocation that cannot fail: a client
 * that runs one request has nothing to save when memory runs out, so it
 * says so and exits.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl_util.h"

void
ctl_util_vwarnx(const char *fmt, va_list ap)
{
	fputs("tardyctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
ctl_util_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_util_vwarnx(fmt, ap);
	va_end(ap);
}

/* asprintf(3) or exit 1 saying why. */
char *
ctl_util_printf(const char *fmt, ...)
{
	va_list ap;
	char   *s;
	int	rc;

	va_start(ap, fmt);
	rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rc == -1) {
		ctl_util_warnx("out of memory");
		exit(EXIT_FAIL);
	}
	return (s);
}

void *
ctl_util_alloc(size_t n)
{
	void *p;

	if ((p = calloc(1, n)) == NULL) {
		ctl_util_warnx("out of memory");
		exit(EXIT_FAIL);
	}
	return (p);
}
