/*
 * harness.c - integration test harness for tardyd (see harness.h).
 *
 * Everything here runs in check's test process or in children forked from
 * it.  Children never return into check: they exec tardyd or serve until
 * they are killed, and leave through _exit().  They close every inherited
 * descriptor first, so a client socket a test closes is really closed and
 * not kept half-alive by an upstream server or the daemon.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "harness.h"

#ifndef TARDYD_PATH
#error "TARDYD_PATH must name the daemon binary"
#endif

#define HARNESS_MAX_CHILDREN 32
#define HARNESS_MAX_FDS 32
#define HARNESS_ARGS_MAX 64
#define HARNESS_POLL_MS 2

struct harness_tardyd {
	struct harness	    *h;
	pid_t		     pid;
	bool		     reaped;
	int		     status;
	const char	    *ready_path;
	const char	    *err_path;
	struct harness_ready ready;
};

struct harness {
	char			 dir[64];
	int			 nspawn;
	void		       **allocs;
	size_t			 nallocs, allocs_cap;
	int			 fds[HARNESS_MAX_FDS];
	int			 nfds;
	struct harness_upstream *upstreams[HARNESS_MAX_CHILDREN];
	int			 nupstreams;
	struct harness_tardyd	*daemons[HARNESS_MAX_CHILDREN];
	int			 ndaemons;
};

/* --- small utilities --------------------------------------------------- */

int64_t
harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

void
harness_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
remaining_ms(int64_t deadline)
{
	int64_t left = deadline - harness_now_ms();

	if (left < 0)
		return (0);
	return (left > INT_MAX ? INT_MAX : (int)left);
}

const char *
harness_strerror(int status)
{
	if (status == 0)
		return ("success");
	if (status == HARNESS_EOF)
		return ("end of stream (peer closed)");
	if (status == ETIMEDOUT)
		return ("deadline passed (ETIMEDOUT)");
	return (strerror(status));
}

/* Owned by the harness: freed in harness_free(). */
static void *
harness_keep(struct harness *h, void *p)
{
	if (p == NULL)
		ck_abort_msg("harness: out of memory");
	if (h->nallocs == h->allocs_cap) {
		size_t cap = h->allocs_cap ? h->allocs_cap * 2 : 32;
		void **n = realloc(h->allocs, cap * sizeof(*n));

		if (n == NULL)
			ck_abort_msg("harness: out of memory");
		h->allocs = n;
		h->allocs_cap = cap;
	}
	h->allocs[h->nallocs++] = p;
	return (p);
}

static const char *
harness_vprintf(struct harness *h, const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) == -1)
		ck_abort_msg("harness: out of memory");
	return (harness_keep(h, s));
}

const char *
harness_printf(struct harness *h, const char *fmt, ...)
{
	va_list	    ap;
	const char *s;

	va_start(ap, fmt);
	s = harness_vprintf(h, fmt, ap);
	va_end(ap);
	return (s);
}

const char *
harness_dir(const struct harness *h)
{
	return (h->dir);
}

const char *
harness_path(struct harness *h, const char *name)
{
	return (harness_printf(h, "%s/%s", h->dir, name));
}

const char *
harness_write_file(struct harness *h, const char *name, const char *fmt, ...)
{
	const char *path = harness_path(h, name);
	const char *tmp = harness_printf(h, "%s/.%s.tmp", h->dir, name);
	const char *text;
	va_list	    ap;
	FILE	   *f;

	va_start(ap, fmt);
	text = harness_vprintf(h, fmt, ap);
	va_end(ap);
	if ((f = fopen(tmp, "w")) == NULL)
		ck_abort_msg("harness: %s: %s", tmp, strerror(errno));
	if (fputs(text, f) == EOF || fclose(f) == EOF)
		ck_abort_msg("harness: writing %s: %s", tmp, strerror(errno));
	if (rename(tmp, path) == -1)
		ck_abort_msg("harness: rename %s: %s", path, strerror(errno));
	return (path);
}

static char *
read_file_raw(const char *path)
{
	char   *buf = NULL;
	size_t	len = 0, cap = 0;
	int	fd, saved;
	ssize_t n;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return (NULL);
	for (;;) {
		if (cap - len < 4096) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				close(fd);
				errno = ENOMEM;
				return (NULL);
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			free(buf);
			close(fd);
			errno = saved;
			return (NULL);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (buf);
}

const char *
harness_read_file(struct harness *h, const char *path)
{
	char *s = read_file_raw(path);

	return (s ? harness_keep(h, s) : NULL);
}

const char *
harness_status_str(struct harness *h, int status)
{
	if (status == -1)
		return ("not reaped");
	if (WIFEXITED(status))
		return (harness_printf(h, "exited %d", WEXITSTATUS(status)));
	if (WIFSIGNALED(status))
		return (harness_printf(h, "killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status))));
	return (harness_printf(h, "wait status 0x%x", (unsigned)status));
}

const char *
harness_tail(const char *s, size_t max)
{
	size_t len;

	if (s == NULL)
		return ("(null)");
	len = strlen(s);
	return (len > max ? s + len - max : s);
}

static uint64_t
splitmix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return (x ^ (x >> 31));
}

void
harness_pattern(void *buf, size_t len, uint64_t seed, uint64_t offset)
{
	unsigned char *p = buf;
	uint64_t       word = 0, block = UINT64_MAX;

	for (size_t i = 0; i < len; i++) {
		uint64_t pos = offset + i;

		if (pos >> 3 != block) {
			block = pos >> 3;
			word = splitmix64(splitmix64(seed) ^ block);
		}
		p[i] = (unsigned char)(word >> ((pos & 7) * 8));
	}
}

/* --- descriptors and children ------------------------------------------ */

/* In a forked child: close everything from lowfd up. */
static void
close_from(int lowfd)
{
	struct rlimit rl;
	long	      max = 65536;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0U) == 0)
		return;
#endif
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max)
		max = (long)rl.rlim_cur;
	for (long fd = lowfd; fd < max; fd++)
		close((int)fd);
}

/* In a forked child: die with the test process, start from clean signal
 * state (exec keeps ignored signals and the mask). */
static void
child_prepare(pid_t parent)
{
	sigset_t none;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	for (int sig = 1; sig < 65; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Reaps pid within timeout_ms: 0 and *status, or ETIMEDOUT. */
static int
reap(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return (0);
		if (r == -1 && errno != EINTR)
			return (errno);
		if (harness_now_ms() >= deadline)
			return (ETIMEDOUT);
		harness_sleep_ms(HARNESS_POLL_MS);
	}
}

static void
kill_and_reap(pid_t pid, int *status)
{
	int st;

	kill(pid, SIGKILL);
	if (reap(pid, 5000, &st) == 0 && status != NULL)
		*status = st;
}

/* --- lifetime ---------------------------------------------------------- */

struct harness *
harness_new(void)
{
	struct harness *h = calloc(1, sizeof(*h));

	if (h == NULL)
		ck_abort_msg("harness: out of memory");
	snprintf(h->dir, sizeof(h->dir), "/tmp/tardy-test.XXXXXX");
	if (mkdtemp(h->dir) == NULL)
		ck_abort_msg("harness: mkdtemp: %s", strerror(errno));
	return (h);
}

static void
remove_dir(const char *dir)
{
	DIR	      *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == -1 && errno == EISDIR)
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
	rmdir(dir);
}

void
harness_free(struct harness *h)
{
	if (h == NULL)
		return;
	for (int i = 0; i < h->ndaemons; i++) {
		struct harness_tardyd *t = h->daemons[i];
		int		       st;

		if (t->reaped)
			continue;
		/* Give the shutdown path a chance, but never hang on it. */
		kill(t->pid, SIGTERM);
		if (reap(t->pid, 2000, &st) != 0)
			kill_and_reap(t->pid, NULL);
		t->reaped = true;
	}
	for (int i = 0; i < h->nupstreams; i++) {
		if (h->upstreams[i]->pid > 0)
			kill_and_reap(h->upstreams[i]->pid, NULL);
		h->upstreams[i]->pid = -1;
	}
	for (int i = 0; i < h->nfds; i++)
		close(h->fds[i]);
	if (getenv("HARNESS_KEEP") != NULL)
		fprintf(stderr, "harness: keeping %s\n", h->dir);
	else
		remove_dir(h->dir);
	for (size_t i = 0; i < h->nallocs; i++)
		free(h->allocs[i]);
	free(h->allocs);
	free(h);
}

/* --- addresses ----------------------------------------------------------- */

static void
addr_format(struct harness_addr *a)
{
	char host[INET6_ADDRSTRLEN];

	switch (a->ss.ss_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const void *)&a->ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(a->text, sizeof(a->text), "%s:%u", host,
		    (unsigned)ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const void *)&a->ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(a->text, sizeof(a->text), "[%s]:%u", host,
		    (unsigned)ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *su = (const void *)&a->ss;

		snprintf(a->text, sizeof(a->text), "unix:%s", su->sun_path);
		break;
	}
	default:
		snprintf(a->text, sizeof(a->text), "?family%d",
		    a->ss.ss_family);
	}
}

static int
parse_port(const char *s)
{
	char *end;
	long  v;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
		return (-1);
	return ((int)v);
}

int
harness_addr_parse(const char *text, struct harness_addr *out)
{
	char	    host[HARNESS_ADDR_TEXT_MAX];
	const char *colon;
	int	    port;

	memset(out, 0, sizeof(*out));
	if (strlen(text) >= sizeof(host))
		return (EINVAL);
	if (strncmp(text, "unix:", 5) == 0) {
		struct sockaddr_un *su = (void *)&out->ss;
		const char	   *path = text + 5;

		if (*path == '\0' || strlen(path) >= sizeof(su->sun_path))
			return (EINVAL);
		su->sun_family = AF_UNIX;
		memcpy(su->sun_path, path, strlen(path) + 1);
		out->len = (socklen_t)sizeof(*su);
	} else if (text[0] == '[') {
		struct sockaddr_in6 *sin6 = (void *)&out->ss;
		const char	    *close_br = strchr(text, ']');
		size_t		     hl;

		if (close_br == NULL || close_br[1] != ':')
			return (EINVAL);
		hl = (size_t)(close_br - text - 1);
		memcpy(host, text + 1, hl);
		host[hl] = '\0';
		if ((port = parse_port(close_br + 2)) < 0)
			return (EINVAL);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return (EINVAL);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->len = (socklen_t)sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (void *)&out->ss;
		size_t		    hl;

		if ((colon = strrchr(text, ':')) == NULL)
			return (EINVAL);
		hl = (size_t)(colon - text);
		memcpy(host, text, hl);
		host[hl] = '\0';
		if ((port = parse_port(colon + 1)) < 0)
			return (EINVAL);
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return (EINVAL);
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->len = (socklen_t)sizeof(*sin);
	}
	addr_format(out);
	return (0);
}

int
harness_addr_port(const struct harness_addr *a)
{
	const struct sockaddr_in  *sin = (const void *)&a->ss;
	const struct sockaddr_in6 *sin6 = (const void *)&a->ss;

	if (a->ss.ss_family == AF_INET)
		return (ntohs(sin->sin_port));
	if (a->ss.ss_family == AF_INET6)
		return (ntohs(sin6->sin6_port));
	return (-1);
}

/* Binds a stream socket to `text` (port 0 allowed) and fills *bound with
 * the address actually bound.  Returns the socket or -1 with errno. */
static int
bind_text(const char *text, int backlog, struct harness_addr *bound)
{
	struct harness_addr want;
	int		    fd, saved, err;

	if ((err = harness_addr_parse(text, &want)) != 0) {
		errno = err;
		return (-1);
	}
	fd = socket(want.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (-1);
	if (bind(fd, (struct sockaddr *)&want.ss, want.len) == -1 ||
	    (backlog >= 0 && listen(fd, backlog) == -1))
		goto fail;
	*bound = want;
	bound->len = (socklen_t)sizeof(bound->ss);
	if (getsockname(fd, (struct sockaddr *)&bound->ss, &bound->len) == -1)
		goto fail;
	if (want.ss.ss_family == AF_UNIX)
		*bound = want; /* keep the full path and length */
	addr_format(bound);
	return (fd);
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return (-1);
}

static void
harness_hold_fd(struct harness *h, int fd)
{
	if (h->nfds == HARNESS_MAX_FDS)
		ck_abort_msg("harness: too many held sockets");
	h->fds[h->nfds++] = fd;
}

const struct harness_addr *
harness_closed_port(struct harness *h, int family)
{
	struct harness_addr *a = harness_keep(h, calloc(1, sizeof(*a)));
	const char *any = family == AF_INET6 ? "[::1]:0" : "127.0.0.1:0";
	int	    fd;

	/* Bound, so nobody else can take the port; not listening, so a
	 * SYN to it is answered with a reset. */
	if ((fd = bind_text(any, -1, a)) == -1)
		ck_abort_msg("harness: bind %s: %s", any, strerror(errno));
	harness_hold_fd(h, fd);
	return (a);
}

const struct harness_addr *
harness_blackhole(struct harness *h)
{
	struct harness_addr *a = harness_keep(h, calloc(1, sizeof(*a)));
	int		     lfd;

	/* With a backlog of 0 Linux queues one connection; once it is
	 * queued (and never accepted) further SYNs are dropped. */
	if ((lfd = bind_text("127.0.0.1:0", 0, a)) == -1)
		ck_abort_msg("harness: blackhole: %s", strerror(errno));
	harness_hold_fd(h, lfd);
	for (int i = 0; i < 8; i++) {
		int	      fd = socket(AF_INET,
			      SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct pollfd pfd;
		int	      r;

		if (fd == -1)
			ck_abort_msg("harness: socket: %s", strerror(errno));
		harness_hold_fd(h, fd);
		if (connect(fd, (struct sockaddr *)&a->ss, a->len) == 0)
			continue;
		if (errno != EINPROGRESS)
			ck_abort_msg("harness: blackhole fill: %s",
			    strerror(errno));
		pfd.fd = fd;
		pfd.events = POLLOUT;
		while ((r = poll(&pfd, 1, 200)) == -1 && errno == EINTR)
			;
		if (r == 0)
			return (a); /* this one hangs: the queue is full */
	}
	ck_abort_msg("harness: could not fill the blackhole's accept queue");
	return (NULL);
}

bool
harness_has_ipv6(void)
{
	struct harness_addr a;
	int		    fd = bind_text("[::1]:0", 1, &a);

	if (fd == -1)
		return (false);
	close(fd);
	return (true);
}

/* --- upstream servers ------------------------------------------------- */

#define UP_ECHO_CAP (256 * 1024)
#define UP_COLLECT_MAX (256u * 1024 * 1024)

struct up_conn {
	int	       fd;
	unsigned char *buf; /* pending output is buf[off, len) */
	size_t	       cap, len, off;
	uint64_t       in_total;
	uint64_t       src_queued;
	bool	       rd_eof;
	bool	       wr_done; /* shut down for writing (GREET, SOURCE) */
};

struct up_server {
	enum harness_upstream_mode mode;
	const unsigned char	  *data;
	size_t			   data_len;
	struct up_conn		  *conns;
	size_t			   nconns, cap;
};

static void
up_fatal(const char *what)
{
	dprintf(2, "harness upstream %ld: %s: %s\n", (long)getpid(), what,
	    strerror(errno));
	_exit(2);
}

static void
up_reserve(struct up_conn *c, size_t need)
{
	if (c->cap >= need)
		return;
	size_t cap = c->cap ? c->cap : 65536;
	while (cap < need)
		cap *= 2;
	if ((c->buf = realloc(c->buf, cap)) == NULL)
		up_fatal("realloc");
	c->cap = cap;
}

static void
up_accept(struct up_server *s, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct up_conn *c;

		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			up_fatal("accept");
		}
		if (s->nconns == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 64;
			s->conns = realloc(s->conns,
			    s->cap * sizeof(*s->conns));
			if (s->conns == NULL)
				up_fatal("realloc");
		}
		c = &s->conns[s->nconns++];
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		if (s->mode == HARNESS_UPSTREAM_GREET && s->data_len > 0) {
			up_reserve(c, s->data_len);
			memcpy(c->buf, s->data, s->data_len);
			c->len = s->data_len;
		}
	}
}

static bool
up_want_read(const struct up_server *s, const struct up_conn *c)
{
	if (c->rd_eof)
		return (false);
	if (s->mode == HARNESS_UPSTREAM_ECHO)
		return (c->len < UP_ECHO_CAP);
	return (true);
}

/* Queue the next slice of a SOURCE stream when the buffer ran dry. */
static void
up_refill(struct up_server *s, struct up_conn *c)
{
	if (s->mode != HARNESS_UPSTREAM_SOURCE || c->off < c->len)
		return;
	size_t n = s->data_len - c->src_queued;
	if (n > 65536)
		n = 65536;
	c->off = c->len = 0;
	if (n == 0)
		return;
	up_reserve(c, n);
	harness_pattern(c->buf, n, HARNESS_SOURCE_SEED, c->src_queued);
	c->len = n;
	c->src_queued += n;
}

/* Returns false when the connection is finished (closed). */
static bool
up_read(struct up_server *s, struct up_conn *c)
{
	unsigned char  scratch[65536];
	unsigned char *dst = scratch;
	size_t	       room = sizeof(scratch);
	ssize_t	       n;

	if (c->rd_eof)
		return (true);
	if (s->mode == HARNESS_UPSTREAM_ECHO) {
		if (c->off > 0 && c->off == c->len)
			c->off = c->len = 0;
		up_reserve(c, UP_ECHO_CAP);
		dst = c->buf + c->len;
		room = UP_ECHO_CAP - c->len;
		if (room == 0)
			return (true); /* backpressure: read once drained */
	} else if (s->mode == HARNESS_UPSTREAM_ECHO_AT_EOF) {
		if (c->len + 65536 > UP_COLLECT_MAX) {
			errno = EFBIG;
			up_fatal("echo-at-eof collection");
		}
		up_reserve(c, c->len + 65536);
		dst = c->buf + c->len;
		room = 65536;
	}
	n = recv(c->fd, dst, room, 0);
	if (n == -1)
		return (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR);
	if (n == 0) {
		c->rd_eof = true;
		if (s->mode == HARNESS_UPSTREAM_SINK) {
			char line[32];
			int  l = snprintf(line, sizeof(line), "%llu\n",
			     (unsigned long long)c->in_total);

			up_reserve(c, (size_t)l);
			memcpy(c->buf, line, (size_t)l);
			c->off = 0;
			c->len = (size_t)l;
		}
		return (true);
	}
	c->in_total += (uint64_t)n;
	if (s->mode == HARNESS_UPSTREAM_ECHO ||
	    s->mode == HARNESS_UPSTREAM_ECHO_AT_EOF)
		c->len += (size_t)n;
	return (true);
}

static bool
up_write(struct up_server *s, struct up_conn *c)
{
	bool collecting = s->mode == HARNESS_UPSTREAM_ECHO_AT_EOF && !c->rd_eof;
	ssize_t n;

	up_refill(s, c);
	if (collecting || c->off == c->len)
		return (true);
	n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
	if (n == -1)
		return (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR);
	c->off += (size_t)n;
	if (s->mode == HARNESS_UPSTREAM_ECHO && c->off == c->len)
		c->off = c->len = 0;
	up_refill(s, c);
	return (true);
}

/* Decides, after I/O, whether the connection is complete. */
static bool
up_progress(struct up_server *s, struct up_conn *c)
{
	bool flushed = c->off == c->len;

	switch (s->mode) {
	case HARNESS_UPSTREAM_ECHO:
	case HARNESS_UPSTREAM_ECHO_AT_EOF:
	case HARNESS_UPSTREAM_SINK:
		return (!(c->rd_eof && flushed));
	case HARNESS_UPSTREAM_GREET:
	case HARNESS_UPSTREAM_SOURCE:
		if (flushed && !c->wr_done &&
		    (s->mode == HARNESS_UPSTREAM_GREET ||
			c->src_queued == s->data_len)) {
			shutdown(c->fd, SHUT_WR);
			c->wr_done = true;
		}
		return (!(c->wr_done && c->rd_eof));
	}
	return (false);
}

static void
up_serve(int lfd, enum harness_upstream_mode mode, const void *data, size_t len)
{
	struct up_server s = { .mode = mode, .data = data, .data_len = len };
	struct pollfd	*pfds = NULL;
	size_t		 pcap = 0;

	for (;;) {
		size_t n = 0;

		if (pcap < s.nconns + 1) {
			pcap = (s.nconns + 1) * 2;
			pfds = realloc(pfds, pcap * sizeof(*pfds));
			if (pfds == NULL)
				up_fatal("realloc");
		}
		pfds[n].fd = lfd;
		pfds[n++].events = POLLIN;
		for (size_t i = 0; i < s.nconns; i++) {
			struct up_conn *c = &s.conns[i];
			bool		collecting = !c->rd_eof &&
			    mode == HARNESS_UPSTREAM_ECHO_AT_EOF;

			up_refill(&s, c);
			pfds[n].fd = c->fd;
			pfds[n].events = 0;
			if (up_want_read(&s, c))
				pfds[n].events |= POLLIN;
			if (!collecting && c->off < c->len)
				pfds[n].events |= POLLOUT;
			n++;
		}
		if (poll(pfds, (nfds_t)n, -1) == -1) {
			if (errno == EINTR)
				continue;
			up_fatal("poll");
		}
		/* Connections first: accepting may move the array. */
		for (size_t i = s.nconns; i-- > 0;) {
			struct up_conn *c = &s.conns[i];
			short		re = pfds[i + 1].revents;
			bool		alive = true;

			if (re & (POLLIN | POLLHUP | POLLERR))
				alive = up_read(&s, c);
			if (alive && (re & (POLLOUT | POLLERR)))
				alive = up_write(&s, c);
			if (alive)
				alive = up_progress(&s, c);
			if (!alive) {
				close(c->fd);
				free(c->buf);
				s.conns[i] = s.conns[--s.nconns];
			}
		}
		if (pfds[0].revents & POLLIN)
			up_accept(&s, lfd);
	}
}

struct harness_upstream *
harness_upstream_start(struct harness *h, enum harness_upstream_mode mode,
    const char *listen_text, const void *data, size_t len)
{
	struct harness_upstream *u;
	pid_t			 parent = getpid(), pid;
	int			 lfd;

	if (h->nupstreams == HARNESS_MAX_CHILDREN)
		ck_abort_msg("harness: too many upstreams");
	u = harness_keep(h, calloc(1, sizeof(*u)));
	if ((lfd = bind_text(listen_text, 1024, &u->addr)) == -1)
		ck_abort_msg("harness: upstream listen %s: %s", listen_text,
		    strerror(errno));
	if ((pid = fork()) == -1)
		ck_abort_msg("harness: fork: %s", strerror(errno));
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		child_prepare(parent);
		/* Keep stderr for diagnostics; fd 3 becomes the listener. */
		if (nul != -1)
			dup2(nul, 0);
		if (dup2(lfd, 3) == -1)
			up_fatal("dup2");
		close_from(4);
		if (fcntl(3, F_SETFL, O_NONBLOCK) == -1)
			up_fatal("fcntl");
		up_serve(3, mode, data, len);
		_exit(0);
	}
	close(lfd);
	u->pid = pid;
	h->upstreams[h->nupstreams++] = u;
	return (u);
}

void
harness_upstream_stop(struct harness *h, struct harness_upstream *u)
{
	(void)h;
	if (u->pid > 0)
		kill_and_reap(u->pid, NULL);
	u->pid = -1;
	if (u->addr.ss.ss_family == AF_UNIX)
		unlink(u->addr.text + 5);
}

/* --- the ready file ------------------------------------------------------ */

/*
 * Just enough JSON for the ready file: strings (with escapes), integers,
 * and skipping whatever else the daemon may add later.
 */
static void
js_ws(const char **p)
{
	while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
		(*p)++;
}

static bool
js_string(const char **pp, char *out, size_t outlen)
{
	const char *p = *pp;
	size_t	    n = 0;

	if (*p++ != '"')
		return (false);
	while (*p != '"') {
		char c = *p++;

		if (c == '\0')
			return (false);
		if (c == '\\') {
			c = *p++;
			switch (c) {
			case '\0':
				return (false);
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'u':
				for (int i = 0; i < 4; i++)
					if (*p++ == '\0')
						return (false);
				c = '?';
				break;
			default: /* \" \\ \/ and friends stand for themselves */
				break;
			}
		}
		if (out != NULL) {
			if (n + 1 >= outlen)
				return (false);
			out[n++] = c;
		}
	}
	if (out != NULL)
		out[n] = '\0';
	*pp = p + 1;
	return (true);
}

static bool
js_long(const char **pp, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(*pp, &end, 10);
	if (end == *pp || errno != 0)
		return (false);
	*pp = end;
	return (true);
}

static bool
js_skip(const char **pp)
{
	const char *p = *pp;
	int	    depth = 0;

	do {
		js_ws(&p);
		if (*p == '"') {
			if (!js_string(&p, NULL, 0))
				return (false);
		} else if (*p == '{' || *p == '[') {
			depth++;
			p++;
		} else if (*p == '}' || *p == ']') {
			if (depth-- == 0)
				return (false);
			p++;
		} else if (*p == ',' || *p == ':') {
			if (depth == 0)
				return (false);
			p++;
		} else if (*p == '\0') {
			return (false);
		} else {
			while (*p != '\0' &&
			    strchr(",:{}[]\" \t\r\n", *p) == NULL)
				p++;
		}
	} while (depth > 0);
	*pp = p;
	return (true);
}

static bool
js_proxies(const char **pp, struct harness_ready *r)
{
	const char *p = *pp;

	if (*p++ != '{')
		return (false);
	js_ws(&p);
	if (*p == '}') {
		*pp = p + 1;
		return (true);
	}
	for (;;) {
		if (r->nproxies == HARNESS_MAX_PROXIES)
			return (false);
		js_ws(&p);
		if (!js_string(&p, r->proxies[r->nproxies].name,
			sizeof(r->proxies[0].name)))
			return (false);
		js_ws(&p);
		if (*p++ != ':')
			return (false);
		js_ws(&p);
		if (!js_string(&p, r->proxies[r->nproxies].addr,
			sizeof(r->proxies[0].addr)))
			return (false);
		r->nproxies++;
		js_ws(&p);
		if (*p == '}') {
			*pp = p + 1;
			return (true);
		}
		if (*p++ != ',')
			return (false);
	}
}

/* All of api, proxies, pid, generation and last_reload are required. */
static bool
ready_parse(const char *s, struct harness_ready *r)
{
	const char *p = s;
	bool	    have_proxies = false;
	char	    key[64];

	memset(r, 0, sizeof(*r));
	r->pid = -1;
	r->generation = -1;
	js_ws(&p);
	if (*p++ != '{')
		return (false);
	for (;;) {
		bool ok;

		js_ws(&p);
		if (!js_string(&p, key, sizeof(key)))
			return (false);
		js_ws(&p);
		if (*p++ != ':')
			return (false);
		js_ws(&p);
		if (strcmp(key, "api") == 0)
			ok = js_string(&p, r->api, sizeof(r->api));
		else if (strcmp(key, "proxies") == 0)
			ok = have_proxies = js_proxies(&p, r);
		else if (strcmp(key, "pid") == 0)
			ok = js_long(&p, &r->pid);
		else if (strcmp(key, "generation") == 0)
			ok = js_long(&p, &r->generation);
		else if (strcmp(key, "last_reload") == 0)
			ok = js_string(&p, r->last_reload,
			    sizeof(r->last_reload));
		else
			ok = js_skip(&p);
		if (!ok)
			return (false);
		js_ws(&p);
		if (*p == '}')
			break;
		if (*p++ != ',')
			return (false);
	}
	return (r->api[0] != '\0' && have_proxies && r->pid > 0 &&
	    r->generation >= 0 && r->last_reload[0] != '\0');
}

/* --- the daemon ---------------------------------------------------------- */

static pid_t
spawn(const char *const *argv, const char *out_path, const char *err_path)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	if ((pid = fork()) == -1)
		ck_abort_msg("harness: fork: %s", strerror(errno));
	if (pid == 0) {
		int in, out, err;

		child_prepare(parent);
		in = open("/dev/null", O_RDONLY);
		out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (in == -1 || out == -1 || err == -1 || dup2(in, 0) == -1 ||
		    dup2(out, 1) == -1 || dup2(err, 2) == -1)
			_exit(126);
		close_from(3);
		execv(argv[0], (char *const *)argv);
		dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return (pid);
}

static size_t
build_argv(const char **argv, size_t at, const char *const *args)
{
	for (size_t i = 0; args[i] != NULL; i++) {
		if (at + 1 >= HARNESS_ARGS_MAX)
			ck_abort_msg("harness: too many tardyd arguments");
		argv[at++] = args[i];
	}
	argv[at] = NULL;
	return (at);
}

static size_t
collect_va(const char **args, va_list ap)
{
	size_t	    n = 0;
	const char *a;

	while ((a = va_arg(ap, const char *)) != NULL) {
		if (n + 1 >= HARNESS_ARGS_MAX)
			ck_abort_msg("harness: too many tardyd arguments");
		args[n++] = a;
	}
	args[n] = NULL;
	return (n);
}

bool
harness_tardyd_alive(struct harness_tardyd *t)
{
	pid_t r;

	if (t->reaped)
		return (false);
	while ((r = waitpid(t->pid, &t->status, WNOHANG)) == -1 &&
	    errno == EINTR)
		;
	if (r == 0)
		return (true);
	t->reaped = true;
	if (r == -1)
		t->status = -1;
	return (false);
}

int
harness_tardyd_status(const struct harness_tardyd *t)
{
	return (t->reaped ? t->status : -1);
}

int
harness_tardyd_refresh(struct harness_tardyd *t)
{
	struct harness_ready r;
	char		    *s = read_file_raw(t->ready_path);
	bool		     ok;

	if (s == NULL)
		return (errno);
	ok = ready_parse(s, &r);
	free(s);
	if (!ok)
		return (EINVAL);
	t->ready = r;
	return (0);
}

/* Waits for a ready file from this daemon with a generation of at least
 * min_gen: 0, ETIMEDOUT or ECHILD. */
static int
tardyd_wait_ready(struct harness_tardyd *t, long min_gen, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		if (harness_tardyd_refresh(t) == 0 &&
		    t->ready.pid == (long)t->pid &&
		    t->ready.generation >= min_gen)
			return (0);
		if (!harness_tardyd_alive(t))
			return (ECHILD);
		if (harness_now_ms() >= deadline)
			return (ETIMEDOUT);
		harness_sleep_ms(HARNESS_POLL_MS);
	}
}

struct harness_tardyd *
harness_tardyd_startv(struct harness *h, const char *const *args)
{
	const char	      *argv[HARNESS_ARGS_MAX];
	struct harness_tardyd *t;
	const char	      *out_path;
	int		       n = ++h->nspawn, err;
	size_t		       at = 0;

	if (h->ndaemons == HARNESS_MAX_CHILDREN)
		ck_abort_msg("harness: too many daemons");
	t = harness_keep(h, calloc(1, sizeof(*t)));
	t->h = h;
	t->status = -1;
	t->ready_path = harness_printf(h, "%s/ready-%d.json", h->dir, n);
	t->err_path = harness_printf(h, "%s/tardyd-%d.err", h->dir, n);
	out_path = harness_printf(h, "%s/tardyd-%d.out", h->dir, n);
	argv[at++] = TARDYD_PATH;
	argv[at++] = "-a";
	argv[at++] = "127.0.0.1:0";
	argv[at++] = "--ready-file";
	argv[at++] = t->ready_path;
	build_argv(argv, at, args);
	t->pid = spawn(argv, out_path, t->err_path);
	h->daemons[h->ndaemons++] = t;

	err = tardyd_wait_ready(t, 0, HARNESS_START_TIMEOUT_MS);
	if (err == ECHILD)
		ck_abort_msg("tardyd %s before it was ready; stderr:\n%s",
		    harness_status_str(h, t->status),
		    harness_tail(harness_tardyd_stderr(t), 1500));
	if (err != 0) {
		const char *ready = harness_read_file(h, t->ready_path);

		ck_abort_msg("tardyd not ready after %d ms (ready file: %s); "
			     "stderr:\n%s",
		    HARNESS_START_TIMEOUT_MS,
		    ready ? harness_tail(ready, 600) : strerror(errno),
		    harness_tail(harness_tardyd_stderr(t), 1500));
	}
	return (t);
}

struct harness_tardyd *
harness_tardyd_start(struct harness *h, ...)
{
	const char *args[HARNESS_ARGS_MAX];
	va_list	    ap;

	va_start(ap, h);
	collect_va(args, ap);
	va_end(ap);
	return (harness_tardyd_startv(h, args));
}

const struct harness_run *
harness_tardyd_runv(struct harness *h, int timeout_ms, const char *const *args)
{
	struct harness_run *r = harness_keep(h, calloc(1, sizeof(*r)));
	const char	   *argv[HARNESS_ARGS_MAX];
	int		    n = ++h->nspawn;
	const char *out_path = harness_printf(h, "%s/run-%d.out", h->dir, n);
	const char *err_path = harness_printf(h, "%s/run-%d.err", h->dir, n);
	int64_t	    t0 = harness_now_ms();
	pid_t	    pid;

	argv[0] = TARDYD_PATH;
	build_argv(argv, 1, args);
	pid = spawn(argv, out_path, err_path);
	if (reap(pid, timeout_ms, &r->status) != 0) {
		r->timed_out = true;
		kill_and_reap(pid, &r->status);
	}
	r->elapsed_ms = harness_now_ms() - t0;
	r->out = harness_read_file(h, out_path);
	r->err = harness_read_file(h, err_path);
	if (r->out == NULL)
		r->out = "";
	if (r->err == NULL)
		r->err = "";
	return (r);
}

const struct harness_run *
harness_tardyd_run(struct harness *h, int timeout_ms, ...)
{
	const char *args[HARNESS_ARGS_MAX];
	va_list	    ap;

	va_start(ap, timeout_ms);
	collect_va(args, ap);
	va_end(ap);
	return (harness_tardyd_runv(h, timeout_ms, args));
}

pid_t
harness_tardyd_pid(const struct harness_tardyd *t)
{
	return (t->pid);
}

const char *
harness_tardyd_ready_path(const struct harness_tardyd *t)
{
	return (t->ready_path);
}

const struct harness_ready *
harness_tardyd_ready(const struct harness_tardyd *t)
{
	return (&t->ready);
}

int
harness_tardyd_proxy(const struct harness_tardyd *t, const char *name,
    struct harness_addr *out)
{
	for (int i = 0; i < t->ready.nproxies; i++)
		if (strcmp(t->ready.proxies[i].name, name) == 0)
			return (harness_addr_parse(t->ready.proxies[i].addr,
			    out));
	return (ENOENT);
}

const char *
harness_tardyd_stderr(struct harness_tardyd *t)
{
	const char *s = harness_read_file(t->h, t->err_path);

	return (s ? s : "");
}

int
harness_tardyd_reload(struct harness_tardyd *t, int timeout_ms)
{
	long gen = t->ready.generation;

	if (!harness_tardyd_alive(t))
		return (ECHILD);
	if (kill(t->pid, SIGHUP) == -1)
		return (errno);
	return (tardyd_wait_ready(t, gen + 1, timeout_ms));
}

int
harness_tardyd_stop(struct harness_tardyd *t, int sig, int timeout_ms,
    int *status, int64_t *elapsed_ms)
{
	int64_t t0 = harness_now_ms();
	int	err = 0;

	if (!t->reaped) {
		kill(t->pid, sig);
		err = reap(t->pid, timeout_ms, &t->status);
		if (err == ETIMEDOUT)
			kill_and_reap(t->pid, &t->status);
		else if (err != 0)
			t->status = -1;
		t->reaped = true;
	}
	if (elapsed_ms != NULL)
		*elapsed_ms = harness_now_ms() - t0;
	if (status != NULL)
		*status = t->status;
	return (err);
}

/* --- client side ----------------------------------------------------- */

static int
poll_one(int fd, short events, int64_t deadline, short *revents)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int r = poll(&pfd, 1, remaining_ms(deadline));

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return (errno);
		if (r == 0)
			return (ETIMEDOUT);
		*revents = pfd.revents;
		return (0);
	}
}

int
harness_connect(const struct harness_addr *a, int timeout_ms, int *fdp)
{
	int64_t	  deadline = harness_now_ms() + timeout_ms;
	int	  fd, err = 0, flags;
	socklen_t elen = sizeof(err);
	short	  re;

	*fdp = -1;
	for (;;) {
		fd = socket(a->ss.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1)
			return (errno);
		if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
			break;
		err = errno;
		/* A unix listener with a full backlog says EAGAIN: retry. */
		if (err == EAGAIN && a->ss.ss_family == AF_UNIX &&
		    harness_now_ms() < deadline) {
			close(fd);
			harness_sleep_ms(HARNESS_POLL_MS);
			continue;
		}
		if (err != EINPROGRESS) {
			close(fd);
			return (err);
		}
		if ((err = poll_one(fd, POLLOUT, deadline, &re)) != 0) {
			close(fd);
			return (err);
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
			err = errno;
		if (err != 0) {
			close(fd);
			return (err);
		}
		break;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
		err = errno;
		close(fd);
		return (err);
	}
	*fdp = fd;
	return (0);
}

int
harness_exchange(int fd, const void *out, size_t outlen, void *in, size_t inlen,
    int timeout_ms, size_t *sentp, size_t *gotp)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	size_t	sent = 0, got = 0;
	int	err = 0;

	while (sent < outlen || got < inlen) {
		short ev = 0, re;

		if (sent < outlen)
			ev |= POLLOUT;
		if (got < inlen)
			ev |= POLLIN;
		if ((err = poll_one(fd, ev, deadline, &re)) != 0)
			break;
		if (got < inlen && (re & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = recv(fd, (char *)in + got, inlen - got,
			    MSG_DONTWAIT);

			if (n == 0) {
				err = HARNESS_EOF;
				break;
			}
			if (n > 0)
				got += (size_t)n;
			else if (errno != EAGAIN && errno != EINTR) {
				err = errno;
				break;
			}
		}
		if (sent < outlen && (re & (POLLOUT | POLLERR))) {
			ssize_t n = send(fd, (const char *)out + sent,
			    outlen - sent, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n > 0)
				sent += (size_t)n;
			else if (n == -1 && errno != EAGAIN && errno != EINTR) {
				err = errno;
				break;
			}
		}
		if ((re & POLLNVAL) != 0) {
			err = EBADF;
			break;
		}
	}
	if (sentp != NULL)
		*sentp = sent;
	if (gotp != NULL)
		*gotp = got;
	return (err);
}

int
harness_send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	return (harness_exchange(fd, buf, len, NULL, 0, timeout_ms, NULL,
	    NULL));
}

int
harness_recv_all(int fd, void *buf, size_t len, int timeout_ms, size_t *got)
{
	return (harness_exchange(fd, NULL, 0, buf, len, timeout_ms, NULL, got));
}

int
harness_recv_some(int fd, void *buf, size_t len, int timeout_ms, size_t *gotp)
{
	int64_t deadline = harness_now_ms() + timeout_ms;

	if (gotp != NULL)
		*gotp = 0;
	for (;;) {
		short	re;
		ssize_t n;
		int	err;

		if ((err = poll_one(fd, POLLIN, deadline, &re)) != 0)
			return (err);
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n == 0)
			return (HARNESS_EOF);
		if (n > 0) {
			if (gotp != NULL)
				*gotp = (size_t)n;
			return (0);
		}
		if (errno != EAGAIN && errno != EINTR)
			return (errno);
	}
}

int
harness_echo(int fd, const void *buf, size_t len, int timeout_ms)
{
	unsigned char *back = malloc(len ? len : 1);
	int	       err;

	if (back == NULL)
		return (ENOMEM);
	err = harness_exchange(fd, buf, len, back, len, timeout_ms, NULL, NULL);
	if (err == 0 && memcmp(buf, back, len) != 0)
		err = EBADMSG;
	free(back);
	return (err);
}

int
harness_wait_close(int fd, int timeout_ms, size_t *extra)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	char	buf[16384];
	size_t	total = 0, got;
	int	err;

	while ((err = harness_recv_some(fd, buf, sizeof(buf),
		    remaining_ms(deadline), &got)) == 0) {
		total += got;
		if (harness_now_ms() >= deadline) {
			err = ETIMEDOUT;
			break;
		}
	}
	if (extra != NULL)
		*extra = total;
	return (err == HARNESS_EOF ? 0 : err);
}

/*
 * Assertion wrappers shared by the test programs: each fails the test
 * with the reason instead of returning an error.
 */
struct harness_addr
harness_proxy_ok(struct harness_tardyd *t, const char *name)
{
	struct harness_addr a;
	int		    err = harness_tardyd_proxy(t, name, &a);

	ck_assert_msg(err == 0, "proxy \"%s\" in ready file: %s", name,
	    harness_strerror(err));
	return (a);
}

int
harness_connect_ok(const struct harness_addr *a)
{
	int fd, err = harness_connect(a, HARNESS_IO_TIMEOUT_MS, &fd);

	ck_assert_msg(err == 0, "connect %s: %s", a->text,
	    harness_strerror(err));
	return (fd);
}

void
harness_echo_ok(int fd, const char *what, size_t len, uint64_t seed)
{
	unsigned char *buf = malloc(len);
	int	       err;

	ck_assert_ptr_nonnull(buf);
	harness_pattern(buf, len, seed, 0);
	err = harness_echo(fd, buf, len, HARNESS_IO_TIMEOUT_MS);
	free(buf);
	ck_assert_msg(err == 0, "%s: echo of %zu bytes: %s", what, len,
	    harness_strerror(err));
}

/*
 * GET path from the daemon's API and return the JSON body of its 200.
 * HTTP/1.0: the reply ends when the daemon closes (evhttp shuts the
 * connection down, and closes its descriptor a moment later).
 */
json_t *
harness_api_get(struct harness *h, struct harness_tardyd *t, const char *path)
{
	const char	   *api = harness_tardyd_ready(t)->api;
	struct harness_addr a;
	json_error_t	    jerr;
	const char	   *req, *body;
	char		   *resp = NULL;
	size_t		    len = 0, cap = 0, got;
	json_t		   *j;
	int		    fd, err, status;

	ck_assert_msg(harness_addr_parse(api, &a) == 0, "API address %s", api);
	fd = harness_connect_ok(&a);
	req = harness_printf(h, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path,
	    a.text);
	err = harness_send_all(fd, req, strlen(req), HARNESS_IO_TIMEOUT_MS);
	ck_assert_msg(err == 0, "GET %s: %s", path, harness_strerror(err));
	for (;;) {
		if (cap - len < 65536) {
			cap = cap * 2 + 131072;
			resp = realloc(resp, cap);
			ck_assert_ptr_nonnull(resp);
		}
		err = harness_recv_some(fd, resp + len, cap - len - 1,
		    HARNESS_IO_TIMEOUT_MS, &got);
		if (err == HARNESS_EOF)
			break;
		ck_assert_msg(err == 0, "GET %s, after %zu bytes: %s", path,
		    len, harness_strerror(err));
		len += got;
	}
	close(fd);
	resp[len] = '\0';
	ck_assert_msg(sscanf(resp, "HTTP/1.%*d %d", &status) == 1 &&
		status == 200 && (body = strstr(resp, "\r\n\r\n")) != NULL,
	    "GET %s: %s", path, harness_tail(resp, 500));
	j = json_loads(body + 4, 0, &jerr);
	ck_assert_msg(j != NULL, "GET %s: %s: %s", path, jerr.text,
	    harness_tail(body + 4, 500));
	free(resp);
	return (j);
}
