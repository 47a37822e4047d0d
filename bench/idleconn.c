/*
 * idleconn: open N connections through a proxy and hold them idle, so a
 * driver can read the proxy's memory with N connections open.
 *
 * Each connection is checked end to end with a 1-byte echo, so the proxy
 * has connected upstream and forwarded both ways before it counts as
 * open; at most 64 are being opened at a time, which keeps the proxy's
 * accept queue short. Once all are open it prints "open=N secs=S" and
 * waits, at most -T seconds, for a line or EOF on standard input; then it
 * prints "lost=K" (connections the other side closed meanwhile), closes
 * everything and exits.
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

#define IC_MAX_CONNS	100000
#define IC_IN_FLIGHT	64

enum ic_state { IC_CONNECTING, IC_READING, IC_OPEN, IC_LOST };

struct ic_conn {
	int	      fd;
	enum ic_state state;
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: idleconn -c addr -n conns [-t seconds] [-T seconds]\n"
	    "  -c ADDR   echo server, or a proxy to it\n"
	    "  -n N      connections to open and hold\n"
	    "  -t SECS   give up opening after SECS (default 60)\n"
	    "  -T SECS   hold at most SECS (default 120)\n");
	exit(2);
}

/* Returns 1 when the connection is open, 0 while in progress. */
static int
ic_event(int ep, struct ic_conn *c)
{
	char	byte = 'i';
	ssize_t n;

	switch (c->state) {
	case IC_CONNECTING:
		if (bench_connect_result(c->fd) == -1)
			bench_fatal("connect");
		if (send(c->fd, &byte, 1, MSG_NOSIGNAL) != 1)
			bench_fatal("send");
		if (bench_epoll_mod(ep, c->fd, EPOLLIN, c) == -1)
			bench_fatal("epoll_ctl");
		c->state = IC_READING;
		return (0);
	case IC_READING:
		n = recv(c->fd, &byte, 1, 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return (0);
		if (n != 1)
			bench_fatalx("a connection closed before its echo");
		c->state = IC_OPEN;
		return (1);
	case IC_OPEN:
		/* Idle connections should stay quiet: note the loss. */
		c->state = IC_LOST;
		if (epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL) == -1)
			bench_fatal("epoll_ctl");
		return (0);
	case IC_LOST:
		break;
	}
	return (0);
}

int
main(int argc, char **argv)
{
	struct epoll_event events[IC_IN_FLIGHT + 1];
	struct bench_addr  addr;
	struct ic_conn	  *conns, *c;
	const char	  *target = NULL;
	uint64_t	   open_limit = 60 * BENCH_NS_PER_S;
	uint64_t	   hold_limit = 120 * BENCH_NS_PER_S;
	uint64_t	   t0, now, deadline;
	char		   line[64];
	int		   ch, ep, i, k, n = 0, started = 0, nopen = 0;
	int		   lost = 0, released = 0;

	while ((ch = getopt(argc, argv, "c:n:t:T:")) != -1) {
		switch (ch) {
		case 'c':
			target = optarg;
			break;
		case 'n':
			n = (int)bench_parse_num(optarg, 1, IC_MAX_CONNS, "-n");
			break;
		case 't':
			open_limit = bench_parse_secs(optarg, "-t");
			break;
		case 'T':
			hold_limit = bench_parse_secs(optarg, "-T");
			break;
		default:
			usage();
		}
	}
	if (target == NULL || n == 0 || optind != argc)
		usage();
	bench_addr_parse(target, &addr);
	signal(SIGPIPE, SIG_IGN);
	bench_nofile_max();

	conns = bench_xcalloc((size_t)n, sizeof(*conns));
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		bench_fatal("epoll_create1");
	t0 = bench_now_ns();
	deadline = t0 + open_limit;
	while (nopen < n) {
		for (; started < n && started - nopen < IC_IN_FLIGHT;
		    started++) {
			c = &conns[started];
			if ((c->fd = bench_connect(&addr, 1)) == -1)
				bench_fatal("connect (%d open)", nopen);
			if (bench_epoll_add(ep, c->fd, EPOLLOUT, c) == -1)
				bench_fatal("epoll_ctl (%d open)", nopen);
			c->state = IC_CONNECTING;
		}
		now = bench_now_ns();
		if (now >= deadline)
			bench_fatalx("only %d of %d connections open after "
				     "%.0f s",
			    nopen, n, (double)open_limit / 1e9);
		k = epoll_wait(ep, events, IC_IN_FLIGHT + 1,
		    bench_epoll_timeout(now, deadline));
		if (k == -1 && errno != EINTR)
			bench_fatal("epoll_wait");
		for (i = 0; i < k; i++)
			nopen += ic_event(ep, events[i].data.ptr);
	}
	printf("open=%d secs=%.3f\n", nopen,
	    (double)(bench_now_ns() - t0) / 1e9);
	fflush(stdout);

	/* Hold: wake on standard input, or on a connection going away. */
	if (bench_epoll_add(ep, STDIN_FILENO, EPOLLIN, NULL) == -1)
		bench_fatal("epoll_ctl stdin");
	deadline = bench_now_ns() + hold_limit;
	while (!released) {
		now = bench_now_ns();
		if (now >= deadline)
			break;
		k = epoll_wait(ep, events, IC_IN_FLIGHT + 1,
		    bench_epoll_timeout(now, deadline));
		if (k == -1 && errno != EINTR)
			bench_fatal("epoll_wait");
		for (i = 0; i < k; i++) {
			if (events[i].data.ptr == NULL) {
				/* A line or EOF: either way, let go. */
				if (read(STDIN_FILENO, line, sizeof(line)) ==
				    -1)
					bench_fatal("read stdin");
				released = 1;
			} else
				ic_event(ep, events[i].data.ptr);
		}
	}
	for (i = 0; i < n; i++) {
		if (conns[i].state == IC_LOST)
			lost++;
		close(conns[i].fd);
	}
	printf("lost=%d released=%s\n", lost, released ? "yes" : "timeout");
	free(conns);
	return (0);
}
