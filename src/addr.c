/*
 * Parsing, resolving and printing socket addresses.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

/*
 * Whether host names may be looked up. Fuzzers and tests turn it off:
 * a name lookup may send a DNS query off the machine.
 */
static int addr_names = 1;

void
addr_numeric_only(int on)
{
	addr_names = !on;
}

static int
addr_parse_port(const char *s, int *port)
{
	char	     *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > 65535)
		return (-1);
	*port = (int)v;
	return (0);
}

static int
addr_parse_unix(const char *path, struct addr *a, char *err, size_t errlen)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;
	size_t		    n = strlen(path);

	if (n == 0) {
		snprintf(err, errlen, "empty unix socket path");
		return (-1);
	}
	if (n >= sizeof(sun->sun_path)) {
		snprintf(err, errlen,
		    "unix socket path too long (%zu bytes, "
		    "at most %zu)",
		    n, sizeof(sun->sun_path) - 1);
		return (-1);
	}
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n + 1);
	a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return (0);
}

/*
 * Split "host:port" or "[v6addr]:port" into host and port; *bracketed
 * says which form it was. On failure, err quotes the offending part.
 */
static int
addr_split(const char *s, char *host, size_t hostlen, int *port, int *bracketed,
    char *err, size_t errlen)
{
	const char *colon, *ps;
	size_t	    hlen;

	*bracketed = *s == '[';
	if (*bracketed) {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':') {
			snprintf(err, errlen,
			    "invalid address \"%s\": "
			    "expected [v6addr]:port",
			    s);
			return (-1);
		}
		hlen = (size_t)(rb - s - 1);
		if (hlen == 0 || hlen >= hostlen) {
			snprintf(err, errlen, "invalid address \"%s\"", s);
			return (-1);
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		ps = rb + 2;
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			snprintf(err, errlen,
			    "invalid address \"%s\": "
			    "expected host:port, [v6addr]:port or unix:/path",
			    s);
			return (-1);
		}
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen) != NULL) {
			snprintf(err, errlen,
			    "invalid address \"%s\": "
			    "write IPv6 addresses as [v6addr]:port",
			    s);
			return (-1);
		}
		if (hlen == 0 || hlen >= hostlen) {
			snprintf(err, errlen,
			    "invalid address \"%s\": "
			    "missing host",
			    s);
			return (-1);
		}
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		ps = colon + 1;
	}
	if (addr_parse_port(ps, port) == -1) {
		snprintf(err, errlen,
		    "invalid port \"%s\" in \"%s\" "
		    "(0 to 65535)",
		    ps, s);
		return (-1);
	}
	return (0);
}

/* A numeric host, as getaddrinfo(AI_NUMERICHOST) reads it, into a. */
static int
addr_numeric(const char *host, int v6, int port, struct addr *a)
{
	struct addrinfo hints, *res;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = v6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return (-1);
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	addr_set_port(a, port);
	return (0);
}

/*
 * Whether host is a well-formed DNS name (RFC 1123 labels, underscores
 * allowed as container and compose service names have them): labels of
 * 1 to 63 letters, digits, '-' and '_', not starting or ending with
 * '-', at most 253 bytes, one trailing dot allowed, and a last label
 * that is not all digits (that would be a malformed IPv4 address).
 */
int
addr_name_valid(const char *host)
{
	size_t	      len = strlen(host), label = 0, i;
	int	      digits = 1;
	unsigned char c, prev = '.';

	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return (0);
	for (i = 0; i < len; i++) {
		c = (unsigned char)host[i];
		if (c == '.') {
			if (label == 0 || prev == '-')
				return (0);
			label = 0;
			digits = 1;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' ||
		    (c == '-' && label > 0)) {
			if (++label > 63)
				return (0);
			if (c < '0' || c > '9')
				digits = 0;
		} else
			return (0);
		prev = c;
	}
	return (prev != '-' && !digits);
}

/*
 * Whether s is "name:port" with a host that is a name, not a numeric
 * address: then the name and port are returned, for a resolver to look
 * up. Anything else (numeric, [v6addr], unix:, malformed) returns 0.
 */
int
addr_name(const char *s, char *host, size_t hostlen, int *port)
{
	struct addr a;
	char	    err[8];
	int	    v6;

	if (strncmp(s, "unix:", 5) == 0 ||
	    addr_split(s, host, hostlen, port, &v6, err, sizeof(err)) == -1 ||
	    v6 || addr_numeric(host, 0, *port, &a) == 0)
		return (0);
	return (addr_name_valid(host));
}

/*
 * What addr_parse() and addr_parse_lazy() share: a unix path or a numeric
 * host fills a and returns 0; a host that is not numeric is left in host
 * (with port and v6, for the caller to resolve or check) and returns 1.
 */
static int
addr_parse_common(const char *s, struct addr *a, char *host, size_t hostlen,
    int *port, int *v6, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	if (strncmp(s, "unix:", 5) == 0)
		return (addr_parse_unix(s + 5, a, err, errlen));
	if (addr_split(s, host, hostlen, port, v6, err, errlen) == -1)
		return (-1);
	/* Numeric hosts first: they must never hit the resolver. */
	if (addr_numeric(host, *v6, *port, a) == 0)
		return (0);
	return (1);
}

/*
 * Parse and resolve s into a. On failure, err holds a message that quotes
 * the offending part.
 */
int
addr_parse(const char *s, struct addr *a, char *err, size_t errlen)
{
	char		host[NI_MAXHOST];
	struct addrinfo hints, *res, *ai;
	int		port, v6, rc;

	if ((rc = addr_parse_common(s, a, host, sizeof(host), &port, &v6, err,
		 errlen)) != 1)
		return (rc);
	rc = EAI_NONAME;
	if (!v6 && addr_names) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		if ((rc = getaddrinfo(host, NULL, &hints, &res)) == 0) {
			/* The first IPv4 address, as Go's Listen (and evdns). */
			for (ai = res; ai != NULL; ai = ai->ai_next) {
				if (ai->ai_family == AF_INET)
					break;
			}
			if (ai == NULL)
				ai = res;
			memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
			a->len = ai->ai_addrlen;
			freeaddrinfo(res);
			addr_set_port(a, port);
			return (0);
		}
	}
	snprintf(err, errlen, "cannot resolve \"%s\": %s", host,
	    gai_strerror(rc));
	return (-1);
}

/*
 * Parse s like addr_parse(), but leave a host name to be looked up when
 * it is needed: a is then AF_UNSPEC, and the name is only checked for
 * form (addr_name() gives it back).
 */
int
addr_parse_lazy(const char *s, struct addr *a, char *err, size_t errlen)
{
	char host[NI_MAXHOST];
	int  port, v6, rc;

	if ((rc = addr_parse_common(s, a, host, sizeof(host), &port, &v6, err,
		 errlen)) != 1)
		return (rc);
	if (v6 || !addr_name_valid(host)) {
		snprintf(err, errlen,
		    "invalid address \"%s\": \"%s\" is "
		    "neither a numeric address nor a host name",
		    s, host);
		return (-1);
	}
	return (0);
}

int
addr_from_sockaddr(struct addr *a, const struct sockaddr *sa, socklen_t len)
{
	memset(a, 0, sizeof(*a));
	if (len > sizeof(a->ss))
		return (-1);
	memcpy(&a->ss, sa, len);
	a->len = len;
	return (0);
}

int
addr_family(const struct addr *a)
{
	return (a->ss.ss_family);
}

int
addr_port(const struct addr *a)
{
	switch (a->ss.ss_family) {
	case AF_INET:
		return (ntohs(((const struct sockaddr_in *)&a->ss)->sin_port));
	case AF_INET6:
		return (
		    ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port));
	default:
		return (-1);
	}
}

void
addr_set_port(struct addr *a, int port)
{
	switch (a->ss.ss_family) {
	case AF_INET:
		((struct sockaddr_in *)&a->ss)->sin_port =
		    htons((uint16_t)port);
		break;
	case AF_INET6:
		((struct sockaddr_in6 *)&a->ss)->sin6_port =
		    htons((uint16_t)port);
		break;
	}
}

const char *
addr_unix_path(const struct addr *a)
{
	if (a->ss.ss_family != AF_UNIX)
		return (NULL);
	return (((const struct sockaddr_un *)&a->ss)->sun_path);
}

const char *
addr_fmt(const struct addr *a, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	switch (a->ss.ss_family) {
	case AF_INET:
		inet_ntop(AF_INET,
		    &((const struct sockaddr_in *)&a->ss)->sin_addr, host,
		    sizeof(host));
		snprintf(buf, len, "%s:%d", host, addr_port(a));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, host,
		    sizeof(host));
		/* The zone, numeric, so the text parses back to a. */
		if (((const struct sockaddr_in6 *)&a->ss)->sin6_scope_id != 0)
			snprintf(buf, len, "[%s%%%u]:%d", host,
			    ((const struct sockaddr_in6 *)&a->ss)
				->sin6_scope_id,
			    addr_port(a));
		else
			snprintf(buf, len, "[%s]:%d", host, addr_port(a));
		break;
	case AF_UNIX:
		if (a->len <= offsetof(struct sockaddr_un, sun_path))
			snprintf(buf, len, "unix:");
		else
			snprintf(buf, len, "unix:%s", addr_unix_path(a));
		break;
	default:
		snprintf(buf, len, "(unknown)");
		break;
	}
	return (buf);
}

int
addr_equal(const struct addr *a, const struct addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return (0);
	switch (a->ss.ss_family) {
	case AF_INET: {
		const struct sockaddr_in *x = (const void *)&a->ss;
		const struct sockaddr_in *y = (const void *)&b->ss;

		return (x->sin_port == y->sin_port &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr);
	}
	case AF_INET6: {
		const struct sockaddr_in6 *x = (const void *)&a->ss;
		const struct sockaddr_in6 *y = (const void *)&b->ss;

		return (x->sin6_port == y->sin6_port &&
		    x->sin6_scope_id == y->sin6_scope_id &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0);
	}
	case AF_UNIX:
		return (strcmp(addr_unix_path(a), addr_unix_path(b)) == 0);
	case AF_UNSPEC: /* a name, not looked up yet */
		return (1);
	}
	return (0);
}

/* Unix sockets are local by nature and count as loopback. */
int
addr_is_loopback(const struct addr *a)
{
	switch (a->ss.ss_family) {
	case AF_INET:
		return ((ntohl(((const struct sockaddr_in *)&a->ss)
				 ->sin_addr.s_addr) >>
			    24) == 127);
	case AF_INET6: {
		const struct in6_addr *in6 =
		    &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(in6))
			return (in6->s6_addr[12] == 127);
		return (IN6_IS_ADDR_LOOPBACK(in6));
	}
	case AF_UNIX:
		return (1);
	}
	return (0);
}
