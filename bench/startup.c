/*
 * startup: how long a daemon takes from exec to ready, -n times.
 *
 * Ready is either a file appearing (-r PATH, watched with inotify from
 * before the spawn, for tardyd's --ready-file, which is renamed into
 * place) or a TCP port accepting (-p ADDR, probed with a blocking connect
 * every 100 µs, for daemons without a readiness signal: the port accepts
 * as soon as the daemon called listen(), before its event loop runs).
 * The clock starts just before posix_spawn(), so process creation and
 * dynamic loading are included. After each run the daemon gets SIGTERM
 * and is waited for (SIGKILL after 5 s).
 *
 * Prints one line: runs=N min_ms=.. p50_ms=.. max_ms=..
 */
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define SU_MAX_RUNS	1000
#define SU_PROBE_NS	(100 * BENCH_NS_PER_US)
#define SU_KILL_NS	(5 * BENCH_NS_PER_S)

extern char **environ;

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: startup (-r file | -p addr) [-n runs] [-T seconds] "
	    "-- command [arg...]\n"
	    "  -r FILE   ready when FILE appears (removed before each run)\n"
	    "  -p ADDR   ready when ADDR accepts a TCP connection\n"
	    "  -n N      runs (default 10)\n"
	    "  -T SECS   give up on a run after SECS (default 10)\n");
	exit(2);
}

/* A child that exits before it is ready ends the measurement. */
static void
check_alive(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, WNOHANG) != pid)
		return;
	if (WIFEXITED(status))
		bench_fatalx("the daemon exited with status %d before ready",
		    WEXITSTATUS(status));
	bench_fatalx("the daemon died of signal %d before ready",
	    WTERMSIG(status));
}

static void
wait_file(int in, const char *path, pid_t pid, uint64_t give_up)
{
	char buf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pfd = { .fd = in, .events = POLLIN };
	uint64_t      now;
	int	      timeout;

	for (;;) {
		/* Any event in the directory: look, then drain the queue. */
		if (access(path, F_OK) == 0)
			return;
		check_alive(pid);
		now = bench_now_ns();
		if (now >= give_up)
			bench_fatalx("%s did not appear in time", path);
		/* Wake now and then to notice a child that died. */
		timeout = bench_epoll_timeout(now, give_up);
		if (timeout > 10)
			timeout = 10;
		if (poll(&pfd, 1, timeout) == -1 && errno != EINTR)
			bench_fatal("poll");
		if (pfd.revents & POLLIN)
			while (read(in, buf, sizeof(buf)) > 0)
				continue;
	}
}

static void
wait_port(const struct bench_addr *addr, pid_t pid, uint64_t give_up)
{
	struct timespec ts = { 0, SU_PROBE_NS };
	int		fd;

	for (;;) {
		if ((fd = bench_connect(addr, 0)) != -1) {
			close(fd);
			return;
		}
		if (errno != ECONNREFUSED)
			bench_fatal("probe connect");
		check_alive(pid);
		if (bench_now_ns() >= give_up)
			bench_fatalx("the port did not accept in time");
		nanosleep(&ts, NULL);
	}
}

static void
stop(pid_t pid)
{
	struct timespec ts = { 0, BENCH_NS_PER_MS };
	uint64_t	give_up = bench_now_ns() + SU_KILL_NS;
	int		status;

	if (kill(pid, SIGTERM) == -1)
		bench_fatal("kill");
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (bench_now_ns() >= give_up) {
			bench_warnx("pid %ld ignored SIGTERM: SIGKILL",
			    (long)pid);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return;
		}
		nanosleep(&ts, NULL);
	}
}

int
main(int argc, char **argv)
{
	posix_spawn_file_actions_t fa;
	struct bench_samples	   s;
	struct bench_addr	   addr;
	const char		  *ready = NULL, *port = NULL;
	char			  *dir;
	uint64_t		   limit = 10 * BENCH_NS_PER_S, t0;
	pid_t			   pid;
	int			   ch, i, runs = 10, in = -1, rc;

	while ((ch = getopt(argc, argv, "+r:p:n:T:")) != -1) {
		switch (ch) {
		case 'r':
			ready = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 'n':
			runs = (int)bench_parse_num(optarg, 1, SU_MAX_RUNS,
			    "-n");
			break;
		case 'T':
			limit = bench_parse_secs(optarg, "-T");
			break;
		default:
			usage();
		}
	}
	argv += optind;
	argc -= optind;
	if (argc == 0 || (ready == NULL) == (port == NULL))
		usage();

	if (ready != NULL) {
		if ((dir = strdup(ready)) == NULL)
			bench_fatal("strdup");
		if ((in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1)
			bench_fatal("inotify_init1");
		if (inotify_add_watch(in, dirname(dir),
			IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) == -1)
			bench_fatal("inotify_add_watch %s", dir);
		free(dir);
	} else
		bench_addr_parse(port, &addr);

	/* The daemon's output is not ours to show; its errors are. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null",
	    O_WRONLY, 0);
	bench_samples_init(&s, SU_MAX_RUNS);
	for (i = 0; i < runs; i++) {
		if (ready != NULL && unlink(ready) == -1 && errno != ENOENT)
			bench_fatal("unlink %s", ready);
		t0 = bench_now_ns();
		if ((rc = posix_spawn(&pid, argv[0], &fa, NULL, argv,
			 environ)) != 0) {
			errno = rc;
			bench_fatal("posix_spawn %s", argv[0]);
		}
		if (ready != NULL)
			wait_file(in, ready, pid, t0 + limit);
		else
			wait_port(&addr, pid, t0 + limit);
		bench_samples_add(&s, bench_now_ns() - t0);
		stop(pid);
	}
	posix_spawn_file_actions_destroy(&fa);

	bench_samples_sort(&s);
	printf("runs=%d min_ms=%.3f p50_ms=%.3f max_ms=%.3f\n", runs,
	    bench_samples_pct_us(&s, 0) / 1e3,
	    bench_samples_pct_us(&s, 50) / 1e3,
	    bench_samples_pct_us(&s, 100) / 1e3);
	bench_samples_free(&s);
	return (0);
}
