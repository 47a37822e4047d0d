/*
 * udpecho: the UDP server behind every peer in the tardy UDP benchmark.
 *
 * One UDP socket: every datagram it receives goes back, unchanged, to the
 * address it came from. A proxy that gives each client its own upstream
 * socket (tardyd, socat with fork) thus gets each answer on the socket
 * that asked. A datagram the kernel cannot take at once is dropped, as
 * any UDP server would; the client counts it as lost.
 *
 * One thread, level-triggered epoll, a non-blocking socket drained on
 * each wakeup (at most UE_BATCH datagrams, to stay fair to the timers).
 * udpecho exits on SIGTERM or SIGINT, and in any case after -T seconds.
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

#define UE_BUFSIZE	65536		/* the largest UDP payload */
#define UE_BATCH	256

static volatile sig_atomic_t stopping;

static void
udpecho_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: udpecho [-u addr] [-r ready-file] [-T seconds]\n"
	    "  -u ADDR   the UDP address to echo on (default 127.0.0.1:0)\n"
	    "  -r FILE   once bound, write the address to FILE as JSON\n"
	    "  -T SECS   exit after SECS seconds (default 3600)\n");
	exit(2);
}

static int
udp_bind(const struct bench_addr *a)
{
	int fd;

	fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		bench_fatal("socket");
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1)
		bench_fatal("bind");
	return (fd);
}

/* Echo what is queued, up to UE_BATCH datagrams. */
static void
udp_drain(int fd, char *buf, uint64_t *dropped)
{
	struct sockaddr_storage ss;
	socklen_t		sslen;
	ssize_t			n;
	size_t			i;

	for (i = 0; i < UE_BATCH; i++) {
		sslen = sizeof(ss);
		n = recvfrom(fd, buf, UE_BUFSIZE, 0, (struct sockaddr *)&ss,
		    &sslen);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n == -1) {
			/* An ICMP error from an earlier answer: not ours. */
			continue;
		}
		if (sendto(fd, buf, (size_t)n, MSG_NOSIGNAL,
			(struct sockaddr *)&ss, sslen) != n)
			(*dropped)++;
	}
}

/* Written to a temporary name and renamed, so a reader never sees half. */
static void
write_ready_file(int fd, const char *path)
{
	char  tmp[4096], addr[128];
	FILE *fp;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		bench_fatalx("%s: path too long", path);
	if ((fp = fopen(tmp, "w")) == NULL)
		bench_fatal("%s", tmp);
	bench_addr_fmt(fd, addr, sizeof(addr));
	fprintf(fp, "{\"udp\":\"%s\",\"pid\":%ld}\n", addr, (long)getpid());
	if (fclose(fp) == EOF)
		bench_fatal("%s", tmp);
	if (rename(tmp, path) == -1)
		bench_fatal("rename %s", tmp);
}

int
main(int argc, char **argv)
{
	struct epoll_event events[1];
	struct sigaction   sa;
	struct bench_addr  addr;
	const char	  *listen_at = "127.0.0.1:0";
	const char	  *ready_file = NULL;
	uint64_t	   now, deadline, lifetime = 3600 * BENCH_NS_PER_S;
	uint64_t	   dropped = 0;
	char		  *buf;
	int		   ch, ep, fd, n;

	while ((ch = getopt(argc, argv, "u:r:T:")) != -1) {
		switch (ch) {
		case 'u':
			listen_at = optarg;
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
	sa.sa_handler = udpecho_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if ((buf = malloc(UE_BUFSIZE)) == NULL)
		bench_fatal("malloc");
	bench_addr_parse(listen_at, &addr);
	fd = udp_bind(&addr);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		bench_fatal("epoll_create1");
	if (bench_epoll_add(ep, fd, EPOLLIN, NULL) == -1)
		bench_fatal("epoll_ctl");
	if (ready_file != NULL)
		write_ready_file(fd, ready_file);

	deadline = bench_now_ns() + lifetime;
	while (!stopping) {
		now = bench_now_ns();
		if (now >= deadline)
			break;
		n = epoll_wait(ep, events, 1,
		    bench_epoll_timeout(now, deadline));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			bench_fatal("epoll_wait");
		}
		if (n > 0)
			udp_drain(fd, buf, &dropped);
	}
	if (dropped > 0)
		bench_warnx("%llu answers dropped (send buffer full)",
		    (unsigned long long)dropped);
	close(fd);
	close(ep);
	free(buf);
	return (0);
}
