/*
 * echod: the server behind every peer in the tardy benchmarks.
 *
 * It listens on three ports, one behaviour each, so a client picks the
 * behaviour by the address it reaches and the bytes on the wire are the
 * same whichever proxy (or none) sits in between:
 *
 *   echo    writes back what it reads (ping-pong, connection rate, idle
 *           connections);
 *   sink    discards what it reads and, at EOF, answers with the number
 *           of bytes it received (8 bytes, big-endian), then closes
 *           (throughput, client to server);
 *   source  writes without end until the client goes (throughput, server
 *           to client).
 *
 * With -d MS the echo waits MS milliseconds before writing back, timed as
 * exactly as a dedicated process can: it sleeps until 1.5 ms before the
 * earliest answer is due, then polls without sleeping until it is. That
 * is the reference for tardyd's latency toxic: the error a perfect delay
 * still shows on this machine, from the client's own wake-up.
 *
 * One thread, level-triggered epoll, non-blocking sockets. An echo
 * connection whose peer stops reading is no longer read, so what echod
 * holds per connection stays bounded. When descriptors run out, accepting
 * pauses for 100 ms instead of spinning. echod exits on SIGTERM or SIGINT,
 * and in any case after -T seconds.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define ECHOD_BUFSIZE	(256 * 1024)
#define ECHOD_ACCEPTS	64		/* per wakeup, to stay fair */
#define ECHOD_PAUSE_NS	(100 * BENCH_NS_PER_MS)
#define ECHOD_EARLY_NS	(1500 * BENCH_NS_PER_US)

enum role { ROLE_ECHO, ROLE_SINK, ROLE_SOURCE, ROLE_COUNT };

static const char *const role_names[ROLE_COUNT] = { "echo", "sink", "source" };

struct conn {
	int	  fd;
	enum role role;
	int	  listening;
	uint64_t  received; /* sink: bytes so far */
	char	 *pend;	    /* echo: bytes the peer did not take */
	size_t	  pend_off;
	size_t	  pend_len;
};

/* -d: an answer waiting for its time; one queue, in order of time. */
struct delayed {
	struct delayed *next;
	struct conn    *c;
	uint64_t	due;
	size_t		len;
	char		data[];
};

struct server {
	int		 ep;
	uint64_t	 delay; /* -d, ns */
	struct delayed	*dq_head;
	struct delayed **dq_tail;
	struct conn	 listeners[ROLE_COUNT];
	uint64_t	 paused_until; /* accepting paused on EMFILE */
	size_t		 nconns;
	char		*buf; /* shared scratch buffer */
};

static volatile sig_atomic_t stopping;

static void
echod_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: echod [-e addr] [-s addr] [-S addr] [-d ms] "
	    "[-r ready-file] [-T seconds]\n"
	    "  -e, -s, -S  echo, sink and source listeners "
	    "(default 127.0.0.1:0 each)\n"
	    "  -d MS       echo: answer MS milliseconds after reading\n"
	    "  -r FILE     once listening, write the addresses to FILE as "
	    "JSON\n"
	    "  -T SECS     exit after SECS seconds (default 3600)\n");
	exit(2);
}

static void
conn_close(struct server *sv, struct conn *c)
{
	struct delayed **dp, *d;

	for (dp = &sv->dq_head; (d = *dp) != NULL;) {
		if (d->c == c) {
			*dp = d->next;
			free(d);
		} else
			dp = &d->next;
	}
	sv->dq_tail = &sv->dq_head;
	for (d = sv->dq_head; d != NULL; d = d->next)
		sv->dq_tail = &d->next;
	close(c->fd);
	free(c->pend);
	free(c);
	sv->nconns--;
}

/* Write back; keep what the peer cannot take yet. */
static void
echo_send(struct server *sv, struct conn *c, const char *data, ssize_t n)
{
	ssize_t w;

	w = send(c->fd, data, (size_t)n, MSG_NOSIGNAL);
	if (w == -1 && errno != EAGAIN) {
		conn_close(sv, c);
		return;
	}
	if (w == -1)
		w = 0;
	if (w == n)
		return;
	c->pend_len = (size_t)(n - w);
	c->pend_off = 0;
	if ((c->pend = malloc(c->pend_len)) == NULL) {
		conn_close(sv, c);
		return;
	}
	memcpy(c->pend, data + w, c->pend_len);
	/* Stop reading until the peer takes what it sent. */
	if (bench_epoll_mod(sv->ep, c->fd, EPOLLOUT, c) == -1)
		bench_fatal("epoll_ctl");
}

static void
echo_readable(struct server *sv, struct conn *c)
{
	struct delayed *d;
	ssize_t		n;

	n = recv(c->fd, sv->buf, ECHOD_BUFSIZE, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(sv, c);
		return;
	}
	if (sv->delay == 0) {
		echo_send(sv, c, sv->buf, n);
		return;
	}
	if ((d = malloc(sizeof(*d) + (size_t)n)) == NULL)
		bench_fatal("malloc");
	d->next = NULL;
	d->c = c;
	d->due = bench_now_ns() + sv->delay;
	d->len = (size_t)n;
	memcpy(d->data, sv->buf, (size_t)n);
	*sv->dq_tail = d;
	sv->dq_tail = &d->next;
}

/* -d: send the answers whose time has come. */
static void
echo_send_due(struct server *sv)
{
	struct delayed *d;

	while ((d = sv->dq_head) != NULL && bench_now_ns() >= d->due) {
		if ((sv->dq_head = d->next) == NULL)
			sv->dq_tail = &sv->dq_head;
		/* A previous answer still pending: this one waits behind. */
		if (d->c->pend == NULL)
			echo_send(sv, d->c, d->data, (ssize_t)d->len);
		else
			bench_warnx(
			    "echo: answer dropped behind a pending one");
		free(d);
	}
}

static void
echo_writable(struct server *sv, struct conn *c)
{
	ssize_t w;

	w = send(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off,
	    MSG_NOSIGNAL);
	if (w == -1 && errno == EAGAIN)
		return;
	if (w == -1) {
		conn_close(sv, c);
		return;
	}
	c->pend_off += (size_t)w;
	if (c->pend_off < c->pend_len)
		return;
	free(c->pend);
	c->pend = NULL;
	if (bench_epoll_mod(sv->ep, c->fd, EPOLLIN, c) == -1)
		bench_fatal("epoll_ctl");
}

static void
sink_readable(struct server *sv, struct conn *c)
{
	uint64_t count;
	ssize_t	 n;

	n = recv(c->fd, sv->buf, ECHOD_BUFSIZE, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		c->received += (size_t)n;
		return;
	}
	if (n == 0) {
		/* 8 bytes always fit an idle socket's send buffer. */
		count = htobe64(c->received);
		if (send(c->fd, &count, sizeof(count), MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(count))
			bench_warnx("sink: cannot send the byte count");
	}
	conn_close(sv, c);
}

static void
source_event(struct server *sv, struct conn *c, uint32_t events)
{
	ssize_t n;

	if (events & EPOLLIN) {
		/* Anything from the client is ignored; EOF ends the stream. */
		n = recv(c->fd, sv->buf, ECHOD_BUFSIZE, 0);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			conn_close(sv, c);
			return;
		}
	}
	if (events & EPOLLOUT) {
		n = send(c->fd, sv->buf, ECHOD_BUFSIZE, MSG_NOSIGNAL);
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			conn_close(sv, c);
	}
}

static void
listeners_enable(struct server *sv, int on)
{
	int i, op = on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL;

	for (i = 0; i < ROLE_COUNT; i++) {
		struct epoll_event ev = {
			.events = EPOLLIN,
			.data.ptr = &sv->listeners[i],
		};

		if (epoll_ctl(sv->ep, op, sv->listeners[i].fd, &ev) == -1)
			bench_fatal("epoll_ctl listener");
	}
}

static void
listener_readable(struct server *sv, struct conn *l)
{
	struct conn *c;
	uint32_t     events;
	int	     fd, i;

	for (i = 0; i < ECHOD_ACCEPTS; i++) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				bench_warnx("accept: %s: pausing 100 ms",
				    strerror(errno));
				listeners_enable(sv, 0);
				sv->paused_until = bench_now_ns() +
				    ECHOD_PAUSE_NS;
			}
			/* EAGAIN, or a connection that died in the queue. */
			return;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->role = l->role;
		bench_nodelay(fd);
		events = c->role == ROLE_SOURCE ? EPOLLIN | EPOLLOUT : EPOLLIN;
		if (bench_epoll_add(sv->ep, fd, events, c) == -1)
			bench_fatal("epoll_ctl");
		sv->nconns++;
	}
}

static void
conn_event(struct server *sv, struct conn *c, uint32_t events)
{
	if (c->listening) {
		listener_readable(sv, c);
		return;
	}
	switch (c->role) {
	case ROLE_ECHO:
		if (c->pend != NULL)
			echo_writable(sv, c);
		else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			echo_readable(sv, c);
		break;
	case ROLE_SINK:
		sink_readable(sv, c);
		break;
	case ROLE_SOURCE:
		if (events & (EPOLLHUP | EPOLLERR))
			conn_close(sv, c);
		else
			source_event(sv, c, events);
		break;
	case ROLE_COUNT:
		break;
	}
}

/* Written to a temporary name and renamed, so a reader never sees half. */
static void
write_ready_file(const struct server *sv, const char *path)
{
	char  tmp[4096], addr[128];
	FILE *fp;
	int   i;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		bench_fatalx("%s: path too long", path);
	if ((fp = fopen(tmp, "w")) == NULL)
		bench_fatal("%s", tmp);
	fputc('{', fp);
	for (i = 0; i < ROLE_COUNT; i++) {
		bench_addr_fmt(sv->listeners[i].fd, addr, sizeof(addr));
		fprintf(fp, "\"%s\":\"%s\",", role_names[i], addr);
	}
	fprintf(fp, "\"pid\":%ld}\n", (long)getpid());
	if (fclose(fp) == EOF)
		bench_fatal("%s", tmp);
	if (rename(tmp, path) == -1)
		bench_fatal("rename %s", tmp);
}

int
main(int argc, char **argv)
{
	struct epoll_event events[256];
	struct server	   sv;
	struct sigaction   sa;
	struct bench_addr  addr;
	const char *listen_at[ROLE_COUNT] = { "127.0.0.1:0", "127.0.0.1:0",
		"127.0.0.1:0" };
	const char *ready_file = NULL;
	uint64_t    now, deadline, lifetime = 3600 * BENCH_NS_PER_S;
	int	    ch, i, n, timeout;

	memset(&sv, 0, sizeof(sv));
	sv.dq_tail = &sv.dq_head;
	while ((ch = getopt(argc, argv, "e:s:S:d:r:T:")) != -1) {
		switch (ch) {
		case 'd':
			sv.delay = (uint64_t)bench_parse_num(optarg, 0, 3600000,
				       "-d") *
			    BENCH_NS_PER_MS;
			break;
		case 'e':
			listen_at[ROLE_ECHO] = optarg;
			break;
		case 's':
			listen_at[ROLE_SINK] = optarg;
			break;
		case 'S':
			listen_at[ROLE_SOURCE] = optarg;
			break;
		case 'r':
			ready_file = optarg;
			break;
		case 'T':
			lifetime = bench_parse_secs(optarg, "-T");
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = echod_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	bench_nofile_max();

	if ((sv.buf = malloc(ECHOD_BUFSIZE)) == NULL)
		bench_fatal("malloc");
	memset(sv.buf, 'x', ECHOD_BUFSIZE);
	if ((sv.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		bench_fatal("epoll_create1");
	for (i = 0; i < ROLE_COUNT; i++) {
		bench_addr_parse(listen_at[i], &addr);
		sv.listeners[i].fd = bench_listen(&addr);
		sv.listeners[i].role = (enum role)i;
		sv.listeners[i].listening = 1;
	}
	listeners_enable(&sv, 1);
	if (ready_file != NULL)
		write_ready_file(&sv, ready_file);

	deadline = bench_now_ns() + lifetime;
	while (!stopping) {
		now = bench_now_ns();
		if (now >= deadline)
			break;
		if (sv.paused_until != 0 && now >= sv.paused_until) {
			sv.paused_until = 0;
			listeners_enable(&sv, 1);
		}
		timeout = bench_epoll_timeout(now,
		    sv.paused_until != 0 ? sv.paused_until : deadline);
		if (sv.dq_head != NULL) {
			if (sv.dq_head->due <= now + ECHOD_EARLY_NS)
				timeout = 0;
			else if (bench_epoll_timeout(now,
				     sv.dq_head->due - ECHOD_EARLY_NS) <
			    timeout)
				timeout = bench_epoll_timeout(now,
				    sv.dq_head->due - ECHOD_EARLY_NS);
		}
		n = epoll_wait(sv.ep, events, 256, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			bench_fatal("epoll_wait");
		}
		for (i = 0; i < n; i++)
			conn_event(&sv, events[i].data.ptr, events[i].events);
		echo_send_due(&sv);
	}
	if (!stopping)
		bench_warnx("lifetime over with %zu connections open",
		    sv.nconns);
	for (i = 0; i < ROLE_COUNT; i++)
		close(sv.listeners[i].fd);
	close(sv.ep);
	free(sv.buf);
	return (0);
}
