/*
 * udpbench: UDP request/response latency against an echo server.
 *
 * Each of -n sockets, connected to the target (so the kernel drops what
 * comes from anywhere else), keeps one datagram of -s bytes in flight:
 * send it, wait for the echo, record the round trip, send the next. A
 * datagram not answered within -l seconds counts as lost and the socket
 * sends the next one; an answer that comes after that is late and is
 * discarded (every datagram carries a sequence number in its first 8
 * bytes, so a late answer is never taken for the current one).
 *
 * Before the run each socket, in turn, makes one round trip on its own
 * (not measured), so a proxy sets its flows up one client at a time.
 *
 * A run is -w seconds of warm-up, then -t seconds; only datagrams sent
 * inside the measured window count, and the rate is those answered over
 * the window. After the window no datagram is sent; those in flight get
 * their -l seconds, so the run ends at most -w + -t + -l seconds in.
 *
 * Prints one line: socks, rtts (answered), secs, rate (round trips/s),
 * lost and late, then min, p50, p99, p99.9 and max in microseconds
 * (nearest rank). Exits 1 if no datagram of the window was answered.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define UB_MAX_SOCKS	1024
#define UB_MIN_SIZE	8		/* room for the sequence number */
#define UB_MAX_SIZE	8192
#define UB_MAX_SAMPLES	(64 * 1024 * 1024)
#define UB_GRACE_NS	(5 * BENCH_NS_PER_S)
#define UB_OPEN_TRIES	5

struct usock {
	int	 fd;
	int	 in_flight;
	uint64_t seq; /* of the datagram in flight */
	uint64_t t_sent;
};

struct run {
	int		     ep;
	struct usock	    *socks;
	int		     nsocks;
	size_t		     size;
	char		    *msg;
	char		    *buf;
	uint64_t	     timeout; /* -l */
	uint64_t	     next_seq;
	uint64_t	     lost; /* in the window */
	uint64_t	     late;
	uint64_t	     t_warm;
	uint64_t	     t_end;
	struct bench_samples rtt;
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: udpbench -c addr [-n sockets] [-s bytes] [-t seconds] "
	    "[-w seconds]\n"
	    "                [-l seconds]\n"
	    "  -c ADDR   UDP echo server, or a proxy to it\n"
	    "  -n N      sockets, one datagram in flight each (default 1)\n"
	    "  -s BYTES  datagram size (default 64, at least %d)\n"
	    "  -t SECS   measured time (default 3)\n"
	    "  -w SECS   warm-up before it (default 0.2)\n"
	    "  -l SECS   a datagram unanswered after SECS is lost "
	    "(default 0.2)\n",
	    UB_MIN_SIZE);
	exit(2);
}

static int
in_window(const struct run *r, uint64_t t)
{
	return (t >= r->t_warm && t < r->t_end);
}

static void
usock_send(struct run *r, struct usock *c, uint64_t now)
{
	ssize_t w;

	c->seq = r->next_seq++;
	memcpy(r->msg, &c->seq, sizeof(c->seq));
	c->t_sent = now;
	c->in_flight = 1;
	w = send(c->fd, r->msg, r->size, MSG_NOSIGNAL);
	/*
	 * ECONNREFUSED: an ICMP error from an earlier datagram; ENOBUFS and
	 * EAGAIN: no room. Either way this one is lost and times out.
	 */
	if (w == -1 && errno != ECONNREFUSED && errno != ENOBUFS &&
	    errno != EAGAIN)
		bench_fatal("send");
}

static void
usock_readable(struct run *r, struct usock *c)
{
	uint64_t now, seq;
	ssize_t	 n;
	int	 i;

	/* A few datagrams per wakeup: late ones may be queued too. */
	for (i = 0; i < 16; i++) {
		n = recv(c->fd, r->buf, r->size + 1, 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n == -1 && errno == ECONNREFUSED)
			continue;
		if (n == -1)
			bench_fatal("recv");
		if ((size_t)n != r->size)
			bench_fatalx("answer of %zd bytes, want %zu", n,
			    r->size);
		memcpy(&seq, r->buf, sizeof(seq));
		if (!c->in_flight || seq != c->seq) {
			r->late++;
			continue;
		}
		now = bench_now_ns();
		c->in_flight = 0;
		if (in_window(r, c->t_sent))
			bench_samples_add(&r->rtt, now - c->t_sent);
		if (now < r->t_end)
			usock_send(r, c, now);
	}
}

/* Datagrams unanswered for too long are lost; the next deadline. */
static uint64_t
run_expire(struct run *r, uint64_t now, int *busy)
{
	struct usock *c;
	uint64_t      next = UINT64_MAX, due;
	int	      i;

	*busy = 0;
	for (i = 0; i < r->nsocks; i++) {
		c = &r->socks[i];
		if (!c->in_flight)
			continue;
		due = c->t_sent + r->timeout;
		if (due <= now) {
			c->in_flight = 0;
			if (in_window(r, c->t_sent))
				r->lost++;
			if (now >= r->t_end)
				continue;
			usock_send(r, c, now);
			due = now + r->timeout;
		}
		*busy = 1;
		if (due < next)
			next = due;
	}
	return (next);
}

/*
 * One round trip on a new socket, alone, before the next socket sends
 * anything: a proxy that sets a flow up per client address (tardyd, or
 * socat's fork) then sees one new client at a time, not a burst of them.
 * Not measured; returns 0 if no answer came in UB_OPEN_TRIES tries.
 */
static int
usock_open_flow(struct run *r, struct usock *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	uint64_t      now, until;
	ssize_t	      n;
	int	      try;

	for (try = 0; try < UB_OPEN_TRIES; try++) {
		now = bench_now_ns();
		usock_send(r, c, now);
		until = now + r->timeout;
		while ((now = bench_now_ns()) < until) {
			if (poll(&pfd, 1, bench_epoll_timeout(now, until)) < 1)
				continue;
			n = recv(c->fd, r->buf, r->size + 1, 0);
			if (n == (ssize_t)r->size &&
			    memcmp(r->buf, &c->seq, sizeof(c->seq)) == 0) {
				c->in_flight = 0;
				return (1);
			}
		}
	}
	c->in_flight = 0;
	return (0);
}

static void
run_open(struct run *r, const struct bench_addr *addr)
{
	struct usock *c;
	int	      i;

	r->socks = bench_xcalloc((size_t)r->nsocks, sizeof(*r->socks));
	for (i = 0; i < r->nsocks; i++) {
		c = &r->socks[i];
		c->fd = socket(addr->ss.ss_family,
		    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd == -1)
			bench_fatal("socket");
		if (connect(c->fd, (const struct sockaddr *)&addr->ss,
			addr->len) == -1)
			bench_fatal("connect");
		if (!usock_open_flow(r, c))
			bench_warnx("socket %d: no answer to %d datagrams", i,
			    UB_OPEN_TRIES);
		if (bench_epoll_add(r->ep, c->fd, EPOLLIN, c) == -1)
			bench_fatal("epoll_ctl");
	}
}

static void
run_loop(struct run *r, uint64_t give_up)
{
	struct epoll_event events[256];
	uint64_t	   now, wake;
	int		   busy, i, n;

	now = bench_now_ns();
	for (i = 0; i < r->nsocks; i++)
		usock_send(r, &r->socks[i], now);
	for (;;) {
		now = bench_now_ns();
		wake = run_expire(r, now, &busy);
		if (now >= r->t_end && !busy)
			break;
		if (now >= give_up)
			bench_fatalx("still waiting for answers at the end");
		if (now < r->t_end && r->t_end < wake)
			wake = r->t_end;
		if (give_up < wake)
			wake = give_up;
		n = epoll_wait(r->ep, events, 256,
		    bench_epoll_timeout(now, wake));
		if (n == -1 && errno != EINTR)
			bench_fatal("epoll_wait");
		for (i = 0; i < n; i++)
			usock_readable(r, events[i].data.ptr);
	}
}

int
main(int argc, char **argv)
{
	struct bench_addr addr;
	struct run	  r;
	const char	 *target = NULL;
	size_t		  answered;
	uint64_t	  duration = 3 * BENCH_NS_PER_S;
	uint64_t	  warmup = 200 * BENCH_NS_PER_MS;
	int		  ch, i;

	memset(&r, 0, sizeof(r));
	r.nsocks = 1;
	r.size = 64;
	r.timeout = 200 * BENCH_NS_PER_MS;
	while ((ch = getopt(argc, argv, "c:n:s:t:w:l:")) != -1) {
		switch (ch) {
		case 'c':
			target = optarg;
			break;
		case 'n':
			r.nsocks = (int)bench_parse_num(optarg, 1, UB_MAX_SOCKS,
			    "-n");
			break;
		case 's':
			r.size = (size_t)bench_parse_num(optarg, UB_MIN_SIZE,
			    UB_MAX_SIZE, "-s");
			break;
		case 't':
			duration = bench_parse_secs(optarg, "-t");
			break;
		case 'w':
			warmup = bench_parse_secs(optarg, "-w");
			break;
		case 'l':
			r.timeout = bench_parse_secs(optarg, "-l");
			break;
		default:
			usage();
		}
	}
	if (target == NULL || optind != argc)
		usage();
	bench_addr_parse(target, &addr);
	bench_nofile_max();

	r.msg = bench_xcalloc(1, r.size);
	r.buf = bench_xcalloc(1, r.size + 1);
	memset(r.msg, 'u', r.size);
	bench_samples_init(&r.rtt, UB_MAX_SAMPLES);
	if ((r.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		bench_fatal("epoll_create1");
	run_open(&r, &addr);

	r.t_warm = bench_now_ns() + warmup;
	r.t_end = r.t_warm + duration;
	run_loop(&r, r.t_end + r.timeout + UB_GRACE_NS);

	bench_samples_sort(&r.rtt);
	answered = r.rtt.n;
	printf("socks=%d rtts=%zu secs=%.3f rate=%.0f lost=%llu late=%llu "
	       "min_us=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f",
	    r.nsocks, r.rtt.n, (double)duration / 1e9,
	    (double)r.rtt.n * 1e9 / (double)duration,
	    (unsigned long long)r.lost, (unsigned long long)r.late,
	    bench_samples_pct_us(&r.rtt, 0), bench_samples_pct_us(&r.rtt, 50),
	    bench_samples_pct_us(&r.rtt, 99),
	    bench_samples_pct_us(&r.rtt, 99.9),
	    bench_samples_pct_us(&r.rtt, 100));
	printf("\n");
	if (r.rtt.dropped > 0)
		bench_warnx("%zu samples past the limit not kept",
		    r.rtt.dropped);
	for (i = 0; i < r.nsocks; i++)
		close(r.socks[i].fd);
	bench_samples_free(&r.rtt);
	free(r.socks);
	free(r.msg);
	free(r.buf);
	if (answered == 0)
		bench_fatalx("no datagram answered, %llu lost",
		    (unsigned long long)r.lost);
	return (0);
}
