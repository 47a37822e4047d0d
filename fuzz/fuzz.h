/*
 * What the fuzz targets share: set-up (no name lookups, quiet logs, a
 * scratch directory) and the checks that turn a broken invariant into a
 * crash libFuzzer records.
 */
#ifndef TARDY_FUZZ_H
#define TARDY_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/*
 * Unix sockets the targets bind or connect live here; fuzz_guard.c
 * refuses any other path, and any address off the loopback.
 */
#define FUZZ_DIR	"/tmp/tardy-fuzz"

void fuzz_init(void);
void fuzz_fail(const char *, int, const char *, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond))							\
		fuzz_fail(__FILE__, __LINE__, "check failed: " #cond	\
		    " " __VA_ARGS__);					\
} while (0)

/*
 * For the targets that drive a real daemon: its context, built with no
 * configuration and its signals left to libFuzzer; and a listening unix
 * socket, FUZZ_DIR/NAME.PID, to stand for an upstream (its path is put
 * in path, of pathlen bytes; exits on failure).
 */
struct tardy;
struct tardy *fuzz_tardy(void);
int	      fuzz_unix_listener(const char *, char *, size_t);

/* A NUL-terminated copy of the input (free() it). */
char *fuzz_strndup(const uint8_t *, size_t);

#endif
