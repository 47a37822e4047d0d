/*
 * pingpong: request/response latency against an echo server.
 *
 * Each of -n connections keeps one message of -s bytes in flight: send
 * it, wait until all of it came back, record the round trip, send the
 * next. Two ways to bound a run:
 *
 *   time (default): run for -w seconds of warm-up, then -t seconds; only
 *     round trips started inside the measured window count, and the rate
 *     is those round trips over the window;
 *   count (-N): exactly N round trips in all, spread over the
 *     connections; every one counts. Used for the delay-accuracy
 *     workload, where each round trip takes at least the injected delay.
 *
 * With -i, a connection waits that long after each answer before sending
 * again, so every round trip starts from an idle machine, as it does
 * behind a delay: that separates wake-up latency from the delay's error.
 *
 * With -S, the connections send their first message spread evenly over
 * that many seconds instead of all at once: behind a delay of that length
 * they then stay out of step, like independent clients, instead of
 * arriving as one burst every round.
 *
 * Prints one line: conns, rtts, secs, rate (round trips/s) and min, p50,
 * p99, p99.9 and max in microseconds (nearest rank). With -o FILE it also
 * writes every round trip counted, in nanoseconds, one a line, in the
 * order they completed.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define PP_MAX_CONNS	10000
#define PP_MAX_SIZE	16384	/* always fits an idle send buffer */
#define PP_MAX_SAMPLES	(64 * 1024 * 1024)
#define PP_GRACE_NS	(5 * BENCH_NS_PER_S)

struct pconn {
	int	 fd;
	int	 in_flight;
	size_t	 got;
	uint64_t t_sent;
	uint64_t t_next; /* -i: when to send again, or 0 */
};

struct run {
	int		     ep;
	struct pconn	    *conns;
	int		     nconns;
	size_t		     size;
	char		    *msg;
	char		    *buf;
	uint64_t	     count;   /* 0: time mode */
	uint64_t	     gap;     /* -i, or 0 */
	uint64_t	     stagger; /* -S, or 0 */
	uint64_t	     issued;
	uint64_t	     completed;
	uint64_t	     t_warm; /* time mode: window */
	uint64_t	     t_end;
	uint64_t	     t_first; /* count mode: first send */
	uint64_t	     t_last;  /* count mode: last answer */
	struct bench_samples rtt;
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: pingpong -c addr [-n conns] [-s bytes] "
	    "[-t seconds] [-w seconds] [-N count] [-T seconds] [-i seconds]\n"
	    "                [-S seconds] [-o file]\n"
	    "  -c ADDR   echo server, or a proxy to it\n"
	    "  -n N      concurrent connections, one message each "
	    "(default 1)\n"
	    "  -s BYTES  message size (default 64)\n"
	    "  -t SECS   measured time (default 3)\n"
	    "  -w SECS   warm-up before it (default 0.2)\n"
	    "  -N COUNT  instead: exactly COUNT round trips\n"
	    "  -T SECS   count mode: give up after SECS (default 300)\n"
	    "  -i SECS   wait SECS after each answer before sending again\n"
	    "  -S SECS   start the connections spread over SECS\n"
	    "  -o FILE   write every round trip (ns) to FILE\n");
	exit(2);
}

static int
run_wants_more(const struct run *r, uint64_t now)
{
	if (r->count > 0)
		return (r->issued < r->count);
	return (now < r->t_end);
}

static void
pconn_send(struct run *r, struct pconn *c, uint64_t now)
{
	ssize_t w;

	c->t_sent = now;
	c->got = 0;
	w = send(c->fd, r->msg, r->size, MSG_NOSIGNAL);
	if (w == -1)
		bench_fatal("send");
	/* The previous answer was read whole, so the send buffer is empty. */
	if ((size_t)w != r->size)
		bench_fatalx("short send: %zd of %zu bytes", w, r->size);
	c->in_flight = 1;
	if (r->issued++ == 0)
		r->t_first = now;
}

static void
pconn_readable(struct run *r, struct pconn *c)
{
	uint64_t now;
	ssize_t	 n;

	n = recv(c->fd, r->buf, r->size - c->got, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == -1)
		bench_fatal("recv");
	if (n == 0)
		bench_fatalx("connection closed by the peer");
	if (!c->in_flight)
		bench_fatalx("unexpected data from the peer");
	c->got += (size_t)n;
	if (c->got < r->size)
		return;

	now = bench_now_ns();
	c->in_flight = 0;
	r->completed++;
	if (r->count > 0 || (c->t_sent >= r->t_warm && c->t_sent < r->t_end))
		bench_samples_add(&r->rtt, now - c->t_sent);
	r->t_last = now;
	if (r->gap > 0)
		c->t_next = now + r->gap;
	else if (run_wants_more(r, now))
		pconn_send(r, c, now);
}

/* -i: send on the connections whose gap is over; the next one due. */
static uint64_t
run_send_due(struct run *r, uint64_t now)
{
	struct pconn *c;
	uint64_t      next = UINT64_MAX;
	int	      i;

	for (i = 0; i < r->nconns; i++) {
		c = &r->conns[i];
		if (c->t_next == 0)
			continue;
		if (c->t_next <= now) {
			c->t_next = 0;
			if (run_wants_more(r, now))
				pconn_send(r, c, now);
		} else if (c->t_next < next)
			next = c->t_next;
	}
	return (next);
}

static void
run_open(struct run *r, const struct bench_addr *addr)
{
	int i;

	r->conns = bench_xcalloc((size_t)r->nconns, sizeof(*r->conns));
	for (i = 0; i < r->nconns; i++) {
		if ((r->conns[i].fd = bench_connect(addr, 0)) == -1)
			bench_fatal("connect");
		bench_nonblock(r->conns[i].fd);
		if (bench_epoll_add(r->ep, r->conns[i].fd, EPOLLIN,
			&r->conns[i]) == -1)
			bench_fatal("epoll_ctl");
	}
}

static void
run_loop(struct run *r, uint64_t give_up)
{
	struct epoll_event events[256];
	uint64_t	   now, wake, due = UINT64_MAX;
	int		   i, n;

	now = bench_now_ns();
	for (i = 0; i < r->nconns; i++) {
		if (r->stagger > 0)
			r->conns[i].t_next = now +
			    r->stagger * (uint64_t)i / (uint64_t)r->nconns;
		else if (run_wants_more(r, now))
			pconn_send(r, &r->conns[i], now);
	}
	for (;;) {
		now = bench_now_ns();
		if (r->gap > 0 || r->stagger > 0)
			due = run_send_due(r, now);
		if (!run_wants_more(r, now) && r->completed == r->issued)
			break;
		if (now >= give_up)
			bench_fatalx("%llu of %llu round trips unanswered",
			    (unsigned long long)(r->issued - r->completed),
			    (unsigned long long)r->issued);
		/* Time mode wakes at t_end too, though nothing waits on it. */
		wake = r->count == 0 && now < r->t_end ? r->t_end : give_up;
		if (due < wake)
			wake = due;
		n = epoll_wait(r->ep, events, 256,
		    bench_epoll_timeout(now, wake));
		if (n == -1 && errno != EINTR)
			bench_fatal("epoll_wait");
		for (i = 0; i < n; i++)
			pconn_readable(r, events[i].data.ptr);
	}
}

static void
write_raw(const struct bench_samples *s, const char *path)
{
	FILE  *fp;
	size_t i;

	if ((fp = fopen(path, "w")) == NULL)
		bench_fatal("%s", path);
	for (i = 0; i < s->n; i++)
		fprintf(fp, "%llu\n", (unsigned long long)s->v[i]);
	if (fclose(fp) == EOF)
		bench_fatal("%s", path);
}

int
main(int argc, char **argv)
{
	struct bench_addr addr;
	struct run	  r;
	const char	 *target = NULL;
	uint64_t	  duration = 3 * BENCH_NS_PER_S;
	uint64_t	  warmup = 200 * BENCH_NS_PER_MS;
	uint64_t	  limit = 300 * BENCH_NS_PER_S, give_up, secs_ns;
	const char	 *raw = NULL;
	int		  ch, i;

	memset(&r, 0, sizeof(r));
	r.nconns = 1;
	r.size = 64;
	while ((ch = getopt(argc, argv, "c:n:s:t:w:N:T:i:S:o:")) != -1) {
		switch (ch) {
		case 'c':
			target = optarg;
			break;
		case 'n':
			r.nconns = (int)bench_parse_num(optarg, 1, PP_MAX_CONNS,
			    "-n");
			break;
		case 's':
			r.size = (size_t)bench_parse_num(optarg, 1, PP_MAX_SIZE,
			    "-s");
			break;
		case 't':
			duration = bench_parse_secs(optarg, "-t");
			break;
		case 'w':
			warmup = bench_parse_secs(optarg, "-w");
			break;
		case 'N':
			r.count = (uint64_t)bench_parse_num(optarg, 1,
			    PP_MAX_SAMPLES, "-N");
			break;
		case 'T':
			limit = bench_parse_secs(optarg, "-T");
			break;
		case 'i':
			r.gap = bench_parse_secs(optarg, "-i");
			break;
		case 'S':
			r.stagger = bench_parse_secs(optarg, "-S");
			break;
		case 'o':
			raw = optarg;
			break;
		default:
			usage();
		}
	}
	if (target == NULL || optind != argc)
		usage();
	bench_addr_parse(target, &addr);
	signal(SIGPIPE, SIG_IGN);
	bench_nofile_max();

	r.msg = bench_xcalloc(1, r.size);
	r.buf = bench_xcalloc(1, r.size);
	memset(r.msg, 'p', r.size);
	bench_samples_init(&r.rtt, PP_MAX_SAMPLES);
	if ((r.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		bench_fatal("epoll_create1");
	run_open(&r, &addr);

	if (r.count > 0) {
		give_up = bench_now_ns() + limit;
	} else {
		r.t_warm = bench_now_ns() + warmup;
		r.t_end = r.t_warm + duration;
		give_up = r.t_end + PP_GRACE_NS;
	}
	run_loop(&r, give_up);
	secs_ns = r.count > 0 ? r.t_last - r.t_first : duration;

	if (raw != NULL)
		write_raw(&r.rtt, raw);
	bench_samples_sort(&r.rtt);
	printf("conns=%d rtts=%zu secs=%.3f rate=%.0f min_us=%.1f "
	       "p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f",
	    r.nconns, r.rtt.n, (double)secs_ns / 1e9,
	    (double)r.rtt.n * 1e9 / (double)secs_ns,
	    bench_samples_pct_us(&r.rtt, 0), bench_samples_pct_us(&r.rtt, 50),
	    bench_samples_pct_us(&r.rtt, 99),
	    bench_samples_pct_us(&r.rtt, 99.9),
	    bench_samples_pct_us(&r.rtt, 100));
	printf("\n");
	if (r.rtt.dropped > 0)
		bench_warnx("%zu samples past the limit not kept",
		    r.rtt.dropped);
	for (i = 0; i < r.nconns; i++)
		close(r.conns[i].fd);
	bench_samples_free(&r.rtt);
	free(r.conns);
	free(r.msg);
	free(r.buf);
	return (0);
}
