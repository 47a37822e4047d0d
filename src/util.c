/*
 * Helpers shared by the daemon's modules.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "log.h"
#include "util.h"

uint64_t
util_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec);
}

/* Strict unsigned decimal (or 0x hex): no sign, no space, no trailer. */
/* Decimal only: "0100" is 100, not 64, and "0x10" is an error. */
int
util_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char		  *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return (-1);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return (-1);
	*out = v;
	return (0);
}

int
util_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t			 i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return (0);
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return (0);
		}
	}
	return (-1);
}

/*
 * Names of proxies and toxics appear in URL paths, config section headers
 * and metrics labels: printable ASCII without '/', whitespace, quotes or
 * backslashes.
 */
int
util_name_valid(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++, n++) {
		if (*s <= ' ' || *s >= 0x7f || *s == '/' || *s == '"' ||
		    *s == '\\' || *s == '[' || *s == ']')
			return (0);
	}
	return (n > 0 && n <= NAME_MAX_LEN);
}

/* Make the next close() send RST instead of FIN. */
int
util_set_linger0(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	return (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)));
}

/*
 * Append src to dst, leaving src empty. evbuffer_add_buffer() moves src's
 * chains as they are and each chain takes at least 1 KiB, so a queue of
 * a slicer's one-byte pieces would cost a thousand times the bytes it
 * holds: small pieces are copied into dst's last chain instead. -1 when
 * out of memory (src is emptied all the same).
 */
int
util_evbuffer_append(struct evbuffer *dst, struct evbuffer *src)
{
	struct evbuffer_iovec v[4];
	size_t		      len = evbuffer_get_length(src);
	int		      i, n, rc = 0;

	if (len > 4096 || (n = evbuffer_peek(src, -1, NULL, v, 4)) > 4)
		return (evbuffer_add_buffer(dst, src));
	for (i = 0; i < n && rc == 0; i++)
		rc = evbuffer_add(dst, v[i].iov_base, v[i].iov_len);
	evbuffer_drain(src, len);
	return (rc);
}

void *
xcalloc(size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n, size)) == NULL)
		fatal("calloc");
	return (p);
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if ((p = reallocarray(p, n, size)) == NULL)
		fatal("reallocarray");
	return (p);
}

char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		fatal("strdup");
	return (p);
}

/*
 * A number as a user writes one in a file or on a command line, as JSON:
 * an integer, or a real with a fraction or an exponent, in decimal only.
 * Anything else -- hex, "inf", "nan", a value out of range -- is NULL, so
 * the caller reports it instead of taking a number nobody wrote.
 */
json_t *
util_json_number(const char *s)
{
	const char *p = s;
	char	   *end;
	int	    integer = 1, digits = 0;
	long long   ll;
	double	    d;

	if (*p == '-' || *p == '+')
		p++;
	for (; isdigit((unsigned char)*p); p++)
		digits++;
	if (*p == '.') {
		integer = 0;
		for (p++; isdigit((unsigned char)*p); p++)
			digits++;
	}
	if (digits == 0)
		return (NULL);
	if (*p == 'e' || *p == 'E') {
		integer = 0;
		if (*++p == '-' || *p == '+')
			p++;
		if (!isdigit((unsigned char)*p))
			return (NULL);
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p != '\0')
		return (NULL);
	errno = 0;
	if (integer) {
		ll = strtoll(s, &end, 10);
		return (errno == 0 ? json_integer(ll) : NULL);
	}
	d = strtod(s, &end);
	return (errno == 0 && isfinite(d) ? json_real(d) : NULL);
}
