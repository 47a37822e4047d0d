/*
 * connrate: connection set-up and tear-down rate against an echo server.
 *
 * Each of -P slots repeats: connect, send 1 byte, wait for it to come
 * back, close. -P 1 is the sequential case. After a warm-up (-w), it
 * counts the cycles completed in -t seconds. A connection that fails or
 * closes early counts as failed, and the slot starts over; more than
 * 1,000 failures end the run.
 *
 * Prints one line: parallel=P conns=N secs=S rate=R failed=F p50_us p99_us
 * (the time of one whole cycle, connect to echo received).
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

#define CR_MAX_SLOTS	1024
#define CR_MAX_FAILED	1000
#define CR_GRACE_NS	(5 * BENCH_NS_PER_S)

enum slot_state { SLOT_IDLE, SLOT_CONNECTING, SLOT_READING };

struct slot {
	int		fd;
	enum slot_state state;
	uint64_t	t_start;
};

struct run {
	int			 ep;
	const struct bench_addr *addr;
	struct slot		*slots;
	int			 nslots;
	uint64_t		 t_warm;
	uint64_t		 t_end;
	uint64_t		 done; /* counted cycles */
	uint64_t		 failed;
	int			 active;
	struct bench_samples	 cycle;
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: connrate -c addr [-P parallel] [-t seconds] "
	    "[-w seconds]\n"
	    "  -c ADDR   echo server, or a proxy to it\n"
	    "  -P N      connections in flight at once (default 1)\n"
	    "  -t SECS   measured time (default 2)\n"
	    "  -w SECS   warm-up before it (default 0.2)\n");
	exit(2);
}

static void slot_start(struct run *, struct slot *, uint64_t);

static void
slot_finish(struct run *r, struct slot *s, int ok, uint64_t now)
{
	close(s->fd);
	s->fd = -1;
	s->state = SLOT_IDLE;
	r->active--;
	if (!ok) {
		if (++r->failed > CR_MAX_FAILED)
			bench_fatalx("more than %d connections failed",
			    CR_MAX_FAILED);
	} else if (s->t_start >= r->t_warm && now < r->t_end) {
		r->done++;
		bench_samples_add(&r->cycle, now - s->t_start);
	}
	if (now < r->t_end)
		slot_start(r, s, now);
}

static void
slot_start(struct run *r, struct slot *s, uint64_t now)
{
	s->t_start = now;
	if ((s->fd = bench_connect(r->addr, 1)) == -1) {
		/* EADDRNOTAVAIL (ports in TIME_WAIT) and the like. */
		if (++r->failed > CR_MAX_FAILED)
			bench_fatal("connect");
		return;
	}
	if (bench_epoll_add(r->ep, s->fd, EPOLLOUT, s) == -1)
		bench_fatal("epoll_ctl");
	s->state = SLOT_CONNECTING;
	r->active++;
}

static void
slot_event(struct run *r, struct slot *s)
{
	char	c = 'c';
	ssize_t n;

	switch (s->state) {
	case SLOT_CONNECTING:
		if (bench_connect_result(s->fd) == -1 ||
		    send(s->fd, &c, 1, MSG_NOSIGNAL) != 1) {
			slot_finish(r, s, 0, bench_now_ns());
			return;
		}
		if (bench_epoll_mod(r->ep, s->fd, EPOLLIN, s) == -1)
			bench_fatal("epoll_ctl");
		s->state = SLOT_READING;
		break;
	case SLOT_READING:
		n = recv(s->fd, &c, 1, 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		slot_finish(r, s, n == 1, bench_now_ns());
		break;
	case SLOT_IDLE:
		break;
	}
}

int
main(int argc, char **argv)
{
	struct epoll_event events[CR_MAX_SLOTS];
	struct bench_addr  addr;
	struct run	   r;
	const char	  *target = NULL;
	uint64_t	   duration = 2 * BENCH_NS_PER_S;
	uint64_t	   warmup = 200 * BENCH_NS_PER_MS, now, give_up;
	int		   ch, i, n;

	memset(&r, 0, sizeof(r));
	r.nslots = 1;
	while ((ch = getopt(argc, argv, "c:P:t:w:")) != -1) {
		switch (ch) {
		case 'c':
			target = optarg;
			break;
		case 'P':
			r.nslots = (int)bench_parse_num(optarg, 1, CR_MAX_SLOTS,
			    "-P");
			break;
		case 't':
			duration = bench_parse_secs(optarg, "-t");
			break;
		case 'w':
			warmup = bench_parse_secs(optarg, "-w");
			break;
		default:
			usage();
		}
	}
	if (target == NULL || optind != argc)
		usage();
	bench_addr_parse(target, &addr);
	signal(SIGPIPE, SIG_IGN);

	r.addr = &addr;
	r.slots = bench_xcalloc((size_t)r.nslots, sizeof(*r.slots));
	bench_samples_init(&r.cycle, 64 * 1024 * 1024);
	if ((r.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		bench_fatal("epoll_create1");

	now = bench_now_ns();
	r.t_warm = now + warmup;
	r.t_end = r.t_warm + duration;
	give_up = r.t_end + CR_GRACE_NS;
	for (i = 0; i < r.nslots; i++)
		slot_start(&r, &r.slots[i], now);
	for (;;) {
		now = bench_now_ns();
		/* A slot whose connect failed at once is restarted here. */
		for (i = 0; i < r.nslots && now < r.t_end; i++)
			if (r.slots[i].state == SLOT_IDLE)
				slot_start(&r, &r.slots[i], now);
		if (now >= r.t_end && r.active == 0)
			break;
		if (now >= give_up)
			bench_fatalx("%d connections still open after the run",
			    r.active);
		n = epoll_wait(r.ep, events, r.nslots,
		    bench_epoll_timeout(now,
			now < r.t_end ? r.t_end : give_up));
		if (n == -1 && errno != EINTR)
			bench_fatal("epoll_wait");
		for (i = 0; i < n; i++)
			slot_event(&r, events[i].data.ptr);
	}

	bench_samples_sort(&r.cycle);
	printf("parallel=%d conns=%llu secs=%.3f rate=%.0f failed=%llu "
	       "p50_us=%.1f p99_us=%.1f\n",
	    r.nslots, (unsigned long long)r.done, (double)duration / 1e9,
	    (double)r.done * 1e9 / (double)duration,
	    (unsigned long long)r.failed, bench_samples_pct_us(&r.cycle, 50),
	    bench_samples_pct_us(&r.cycle, 99));
	bench_samples_free(&r.cycle);
	free(r.slots);
	return (0);
}
