/*
 * tput: bulk throughput over N parallel TCP streams.
 *
 * up (the default): tput is the source and echod's sink the receiver.
 * Every stream writes for -t seconds, then shuts its write side; the sink
 * answers that EOF with the number of bytes it received. The rate is the
 * sum of those counts over the time from the first write to the last
 * answer, so bytes still queued in socket buffers (or in a proxy) when
 * writing stopped count only once they arrived.
 *
 * down: echod's source sends and tput is the sink; the rate is what
 * arrived between the end of a warm-up (-w) and the end of the run.
 *
 * Prints one line: streams=N bytes=B secs=S gbps=G.
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

#define TPUT_MAX_STREAMS	256
#define TPUT_ANSWER_NS		(30 * BENCH_NS_PER_S)

enum stream_state { STREAM_WRITING, STREAM_WAITING, STREAM_DONE };

struct stream {
	int		  fd;
	enum stream_state state;
	unsigned char	  answer[8];
	size_t		  answer_len;
	uint64_t	  received; /* as the receiver counted */
	uint64_t	  t_done;
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: tput -c addr [-d up|down] [-n streams] [-t seconds] "
	    "[-w seconds] [-b bytes]\n"
	    "  -c ADDR   echod's sink (up) or source (down), or a proxy to it\n"
	    "  -d DIR    up: tput writes (default); down: tput reads\n"
	    "  -n N      parallel streams (default 1)\n"
	    "  -t SECS   how long to send (default 3)\n"
	    "  -w SECS   down: warm-up not counted (default 0.2)\n"
	    "  -b BYTES  bytes per send()/recv() call (default 131072)\n");
	exit(2);
}

static struct stream *
streams_open(const struct bench_addr *addr, int n)
{
	struct stream *st;
	int	       i;

	st = bench_xcalloc((size_t)n, sizeof(*st));
	for (i = 0; i < n; i++) {
		/* A blocking connect keeps this simple; then non-blocking. */
		if ((st[i].fd = bench_connect(addr, 0)) == -1)
			bench_fatal("connect");
		bench_nonblock(st[i].fd);
	}
	return (st);
}

/* Read the sink's 8-byte answer after EOF was sent. */
static void
stream_answer(struct stream *s, char *buf, size_t bufsize)
{
	ssize_t n;
	size_t	want = sizeof(s->answer) - s->answer_len;

	n = recv(s->fd, buf, bufsize, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == -1)
		bench_fatal("recv answer");
	if (n == 0)
		bench_fatalx("connection closed before the sink answered "
			     "(is -c the sink?)");
	if ((size_t)n > want)
		bench_fatalx("unexpected data from the sink");
	memcpy(s->answer + s->answer_len, buf, (size_t)n);
	s->answer_len += (size_t)n;
	if (s->answer_len < sizeof(s->answer))
		return;
	memcpy(&s->received, s->answer, sizeof(s->received));
	s->received = be64toh(s->received);
	s->t_done = bench_now_ns();
	s->state = STREAM_DONE;
}

static void
run_up(int ep, struct stream *st, int n, char *buf, size_t bufsize,
    uint64_t duration, uint64_t *bytes, uint64_t *secs_ns)
{
	struct epoll_event events[TPUT_MAX_STREAMS];
	struct stream	  *s;
	uint64_t	   t_start, t_end, now, last = 0;
	ssize_t		   w;
	int		   i, k, nev, done = 0;

	for (i = 0; i < n; i++)
		if (bench_epoll_add(ep, st[i].fd, EPOLLOUT, &st[i]) == -1)
			bench_fatal("epoll_ctl");
	t_start = bench_now_ns();
	t_end = t_start + duration;
	while (done < n) {
		now = bench_now_ns();
		if (now >= t_end) {
			for (i = 0; i < n; i++) {
				if (st[i].state != STREAM_WRITING)
					continue;
				if (shutdown(st[i].fd, SHUT_WR) == -1)
					bench_fatal("shutdown");
				if (bench_epoll_mod(ep, st[i].fd, EPOLLIN,
					&st[i]) == -1)
					bench_fatal("epoll_ctl");
				st[i].state = STREAM_WAITING;
			}
			if (now >= t_end + TPUT_ANSWER_NS)
				bench_fatalx("%d of %d streams got no answer "
					     "from the sink",
				    n - done, n);
		}
		nev = epoll_wait(ep, events, n,
		    bench_epoll_timeout(now,
			now < t_end ? t_end : t_end + TPUT_ANSWER_NS));
		if (nev == -1 && errno != EINTR)
			bench_fatal("epoll_wait");
		for (k = 0; k < nev; k++) {
			s = events[k].data.ptr;
			if (s->state == STREAM_WRITING) {
				w = send(s->fd, buf, bufsize, MSG_NOSIGNAL);
				if (w == -1 && errno != EAGAIN &&
				    errno != EINTR)
					bench_fatal("send");
			} else if (s->state == STREAM_WAITING) {
				stream_answer(s, buf, bufsize);
				if (s->state == STREAM_DONE) {
					/* Its EOF would wake every wait. */
					if (epoll_ctl(ep, EPOLL_CTL_DEL, s->fd,
						NULL) == -1)
						bench_fatal("epoll_ctl");
					done++;
					if (s->t_done > last)
						last = s->t_done;
				}
			}
		}
	}
	*bytes = 0;
	for (i = 0; i < n; i++)
		*bytes += st[i].received;
	*secs_ns = last - t_start;
}

static void
run_down(int ep, struct stream *st, int n, char *buf, size_t bufsize,
    uint64_t duration, uint64_t warmup, uint64_t *bytes, uint64_t *secs_ns)
{
	struct epoll_event events[TPUT_MAX_STREAMS];
	struct stream	  *s;
	uint64_t	   t_warm, t_end, now;
	ssize_t		   r;
	int		   i, k, nev;

	for (i = 0; i < n; i++)
		if (bench_epoll_add(ep, st[i].fd, EPOLLIN, &st[i]) == -1)
			bench_fatal("epoll_ctl");
	t_warm = bench_now_ns() + warmup;
	t_end = t_warm + duration;
	*bytes = 0;
	for (now = bench_now_ns(); now < t_end; now = bench_now_ns()) {
		nev = epoll_wait(ep, events, n,
		    bench_epoll_timeout(now, t_end));
		if (nev == -1 && errno != EINTR)
			bench_fatal("epoll_wait");
		for (k = 0; k < nev; k++) {
			s = events[k].data.ptr;
			r = recv(s->fd, buf, bufsize, 0);
			if (r == 0)
				bench_fatalx("the source closed a stream "
					     "(is -c the source?)");
			if (r == -1 && errno != EAGAIN && errno != EINTR)
				bench_fatal("recv");
			if (r > 0 && bench_now_ns() >= t_warm)
				*bytes += (uint64_t)r;
		}
	}
	*secs_ns = duration;
}

int
main(int argc, char **argv)
{
	struct bench_addr addr;
	struct stream	 *st;
	const char	 *target = NULL;
	char		 *buf;
	size_t		  bufsize = 128 * 1024;
	uint64_t	  duration = 3 * BENCH_NS_PER_S;
	uint64_t	  warmup = 200 * BENCH_NS_PER_MS;
	uint64_t	  bytes, secs_ns;
	int		  ch, n = 1, up = 1, ep, i;

	while ((ch = getopt(argc, argv, "c:d:n:t:w:b:")) != -1) {
		switch (ch) {
		case 'c':
			target = optarg;
			break;
		case 'd':
			if (strcmp(optarg, "up") == 0)
				up = 1;
			else if (strcmp(optarg, "down") == 0)
				up = 0;
			else
				usage();
			break;
		case 'n':
			n = (int)bench_parse_num(optarg, 1, TPUT_MAX_STREAMS,
			    "-n");
			break;
		case 't':
			duration = bench_parse_secs(optarg, "-t");
			break;
		case 'w':
			warmup = bench_parse_secs(optarg, "-w");
			break;
		case 'b':
			bufsize = (size_t)bench_parse_num(optarg, 1,
			    16 * 1024 * 1024, "-b");
			break;
		default:
			usage();
		}
	}
	if (target == NULL || optind != argc)
		usage();
	bench_addr_parse(target, &addr);
	signal(SIGPIPE, SIG_IGN);

	if ((buf = malloc(bufsize)) == NULL)
		bench_fatal("malloc");
	memset(buf, 'x', bufsize);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		bench_fatal("epoll_create1");
	st = streams_open(&addr, n);
	if (up)
		run_up(ep, st, n, buf, bufsize, duration, &bytes, &secs_ns);
	else
		run_down(ep, st, n, buf, bufsize, duration, warmup, &bytes,
		    &secs_ns);
	for (i = 0; i < n; i++)
		close(st[i].fd);
	printf("streams=%d bytes=%llu secs=%.3f gbps=%.3f\n", n,
	    (unsigned long long)bytes, (double)secs_ns / 1e9,
	    (double)bytes * 8 / (double)secs_ns);
	free(st);
	free(buf);
	return (0);
}
