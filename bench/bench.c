/*
 * Helpers shared by the tardy load tools; see bench.h.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static void
bench_vlog(int errnum, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", program_invocation_short_name);
	vfprintf(stderr, fmt, ap);
	if (errnum != 0)
		fprintf(stderr, ": %s", strerror(errnum));
	fputc('\n', stderr);
}

void
bench_fatal(const char *fmt, ...)
{
	int	errnum = errno;
	va_list ap;

	va_start(ap, fmt);
	bench_vlog(errnum, fmt, ap);
	va_end(ap);
	exit(1);
}

void
bench_fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bench_vlog(0, fmt, ap);
	va_end(ap);
	exit(1);
}

void
bench_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bench_vlog(0, fmt, ap);
	va_end(ap);
}

void *
bench_xcalloc(size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n, size)) == NULL)
		bench_fatal("calloc");
	return (p);
}

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * BENCH_NS_PER_S + (uint64_t)ts.tv_nsec);
}

double
bench_parse_real(const char *s, double min, double max, const char *what)
{
	char  *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
		bench_fatalx("%s: %s: want a number in [%g, %g]", what, s, min,
		    max);
	return (v);
}

/* A duration in seconds, fractions allowed, up to an hour. */
uint64_t
bench_parse_secs(const char *s, const char *what)
{
	return ((uint64_t)llround(bench_parse_real(s, 1e-6, 3600, what) * 1e9));
}

long long
bench_parse_num(const char *s, long long min, long long max, const char *what)
{
	char	 *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		bench_fatalx("%s: %s: want a number in [%lld, %lld]", what, s,
		    min, max);
	return (v);
}

/* host:port or [v6]:port, numeric only: no resolver in a benchmark. */
void
bench_addr_parse(const char *s, struct bench_addr *a)
{
	struct addrinfo hints, *res;
	char		host[256];
	const char     *colon, *h = s;
	size_t		hlen;
	int		rc;

	if ((colon = strrchr(s, ':')) == NULL)
		bench_fatalx("%s: want host:port", s);
	hlen = (size_t)(colon - s);
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		h = s + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		bench_fatalx("%s: bad host", s);
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0)
		bench_fatalx("%s: %s", s, gai_strerror(rc));
	memset(a, 0, sizeof(*a));
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
}

/* The local address of a socket as host:port. */
void
bench_addr_fmt(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t		sslen = sizeof(ss);
	char			host[NI_MAXHOST], port[NI_MAXSERV];

	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1)
		bench_fatal("getsockname");
	if (getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host), port,
		sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		bench_fatalx("getnameinfo failed");
	if (ss.ss_family == AF_INET6)
		snprintf(buf, len, "[%s]:%s", host, port);
	else
		snprintf(buf, len, "%s:%s", host, port);
}

/* A non-blocking listening socket. */
int
bench_listen(const struct bench_addr *a)
{
	int fd, one = 1;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		bench_fatal("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		bench_fatal("SO_REUSEADDR");
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1)
		bench_fatal("bind");
	/* The kernel caps this at net.core.somaxconn. */
	if (listen(fd, 4096) == -1)
		bench_fatal("listen");
	return (fd);
}

void
bench_nodelay(int fd)
{
	int one = 1;

	/* Every message is written whole and answered: no coalescing. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void
bench_nonblock(int fd)
{
	int flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		bench_fatal("fcntl O_NONBLOCK");
}

/*
 * Start connecting a new socket. Non-blocking sockets usually return with
 * the connection in progress; call bench_connect_result() once writable.
 * Returns -1 with errno set if the connection failed at once.
 */
int
bench_connect(const struct bench_addr *a, int nonblock)
{
	int fd, saved;

	fd = socket(a->ss.ss_family,
	    SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd == -1)
		return (-1);
	bench_nodelay(fd);
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == -1 &&
	    !(nonblock && errno == EINPROGRESS)) {
		saved = errno;
		close(fd);
		errno = saved;
		return (-1);
	}
	return (fd);
}

/* 0 if a non-blocking connect succeeded, else -1 with errno set. */
int
bench_connect_result(int fd)
{
	int	  err;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		return (-1);
	if (err != 0) {
		errno = err;
		return (-1);
	}
	return (0);
}

/* Thousands of sockets need more than the usual 1024 descriptors. */
void
bench_nofile_max(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		bench_fatal("getrlimit");
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		bench_fatal("setrlimit");
}

int
bench_epoll_add(int ep, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	return (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
}

int
bench_epoll_mod(int ep, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	return (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev));
}

/* Milliseconds from now until a deadline, rounded up, for epoll_wait. */
int
bench_epoll_timeout(uint64_t now, uint64_t until)
{
	uint64_t ms;

	if (until <= now)
		return (0);
	ms = (until - now + BENCH_NS_PER_MS - 1) / BENCH_NS_PER_MS;
	return (ms > INT_MAX ? INT_MAX : (int)ms);
}

void
bench_samples_init(struct bench_samples *s, size_t limit)
{
	memset(s, 0, sizeof(*s));
	s->limit = limit;
}

void
bench_samples_add(struct bench_samples *s, uint64_t ns)
{
	uint64_t *v;
	size_t	  cap;

	if (s->n == s->cap) {
		if (s->n >= s->limit) {
			s->dropped++;
			return;
		}
		cap = s->cap == 0 ? 4096 : s->cap * 2;
		if (cap > s->limit)
			cap = s->limit;
		if ((v = realloc(s->v, cap * sizeof(*v))) == NULL)
			bench_fatal("realloc");
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
}

static int
bench_samples_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

void
bench_samples_sort(struct bench_samples *s)
{
	qsort(s->v, s->n, sizeof(*s->v), bench_samples_cmp);
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
double
bench_samples_pct_us(const struct bench_samples *s, double pct)
{
	double r;
	size_t rank;

	if (s->n == 0)
		return ((double)NAN);
	r = ceil(pct / 100.0 * (double)s->n);
	rank = (size_t)r;
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return ((double)s->v[rank - 1] / 1e3);
}

void
bench_samples_free(struct bench_samples *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}
