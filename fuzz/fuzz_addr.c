/*
 * fuzz_addr: addr_parse() on arbitrary text, then what the daemon does
 * with a parsed address: format it, compare it, and parse the formatted
 * text again, which must give the same address and the same text (the
 * ready file and the API print addresses that clients parse back).
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return (0);
}

/* An error message must be a terminated string that fits its buffer. */
static void
check_err(const char *err, size_t errlen)
{
	FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
	FUZZ_CHECK(errlen < 2 || err[0] != '\0', "(empty message)");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr a, b;
	char	    err[256], small[8], buf[ADDR_STRLEN], buf2[ADDR_STRLEN];
	char	    tiny[6];
	char	   *s;
	int	    port, family;

	if (size > 4096)
		return (-1);
	s = fuzz_strndup(data, size);

	/* A short error buffer must truncate, never overflow. */
	memset(small, 'x', sizeof(small));
	if (addr_parse(s, &a, small, sizeof(small)) == -1)
		check_err(small, sizeof(small));

	memset(err, 'x', sizeof(err));
	if (addr_parse(s, &a, err, sizeof(err)) == -1) {
		check_err(err, sizeof(err));
		free(s);
		return (0);
	}

	family = addr_family(&a);
	FUZZ_CHECK(family == AF_INET || family == AF_INET6 || family == AF_UNIX,
	    "family %d", family);
	FUZZ_CHECK(a.len > 0 && a.len <= sizeof(a.ss));
	FUZZ_CHECK(addr_equal(&a, &a));
	port = addr_port(&a);
	FUZZ_CHECK(family == AF_UNIX ? port == -1 : port >= 0 && port <= 65535);
	FUZZ_CHECK((addr_unix_path(&a) != NULL) == (family == AF_UNIX));
	(void)addr_is_loopback(&a);

	/* Formatting: always terminated, truncated when short. */
	addr_fmt(&a, buf, sizeof(buf));
	FUZZ_CHECK(memchr(buf, '\0', sizeof(buf)) != NULL);
	addr_fmt(&a, tiny, sizeof(tiny));
	FUZZ_CHECK(strncmp(tiny, buf, sizeof(tiny) - 1) == 0);

	/* Round trip: what we print parses back to the same address. */
	memset(err, 'x', sizeof(err));
	if (addr_parse(buf, &b, err, sizeof(err)) == -1)
		fuzz_fail(__FILE__, __LINE__,
		    "\"%s\" parsed, formatted as "
		    "\"%s\", which does not parse: %s",
		    s, buf, err);
	if (!addr_equal(&a, &b))
		fuzz_fail(__FILE__, __LINE__,
		    "\"%s\" formatted as \"%s\" "
		    "parses to another address",
		    s, buf);
	addr_fmt(&b, buf2, sizeof(buf2));
	if (strcmp(buf, buf2) != 0)
		fuzz_fail(__FILE__, __LINE__,
		    "\"%s\" formats as \"%s\", then "
		    "as \"%s\"",
		    s, buf, buf2);
	FUZZ_CHECK(addr_is_loopback(&a) == addr_is_loopback(&b));

	/* A copy through addr_from_sockaddr() is the same address. */
	FUZZ_CHECK(addr_from_sockaddr(&b, addr_sa(&a), a.len) == 0);
	FUZZ_CHECK(addr_equal(&a, &b));

	/* Ports: setting one changes nothing else. */
	if (family != AF_UNIX) {
		b = a;
		addr_set_port(&b, (port + 1) & 0xffff);
		FUZZ_CHECK(addr_port(&b) == ((port + 1) & 0xffff));
		FUZZ_CHECK(!addr_equal(&a, &b));
		addr_set_port(&b, port);
		FUZZ_CHECK(addr_equal(&a, &b));
	}
	free(s);
	return (0);
}
