/*
 * Helpers shared by the tardy load tools in bench/: addresses, the
 * monotonic clock, sockets, option parsing, latency samples and error
 * exits. The tools are separate small programs, not part of tardyd; they
 * use plain sockets and epoll so that the load generator does not share
 * code with the daemon it measures.
 */
#ifndef BENCH_H
#define BENCH_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#define BENCH_NS_PER_S	1000000000ULL
#define BENCH_NS_PER_MS	1000000ULL
#define BENCH_NS_PER_US	1000ULL

struct bench_addr {
	struct sockaddr_storage ss;
	socklen_t		len;
};

/* A growing array of latency samples in nanoseconds. */
struct bench_samples {
	uint64_t *v;
	size_t	  n;
	size_t	  cap;
	size_t	  limit;   /* keep at most this many */
	size_t	  dropped; /* samples past the limit */
};

void bench_fatal(const char *, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
void bench_fatalx(const char *, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
void  bench_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void *bench_xcalloc(size_t, size_t);

uint64_t  bench_now_ns(void);
double	  bench_parse_real(const char *, double, double, const char *);
uint64_t  bench_parse_secs(const char *, const char *);
long long bench_parse_num(const char *, long long, long long, const char *);

void bench_addr_parse(const char *, struct bench_addr *);
void bench_addr_fmt(int, char *, size_t);
int  bench_listen(const struct bench_addr *);
int  bench_connect(const struct bench_addr *, int);
int  bench_connect_result(int);
void bench_nodelay(int);
void bench_nonblock(int);
void bench_nofile_max(void);

int bench_epoll_add(int, int, uint32_t, void *);
int bench_epoll_mod(int, int, uint32_t, void *);
int bench_epoll_timeout(uint64_t, uint64_t);

void   bench_samples_init(struct bench_samples *, size_t);
void   bench_samples_add(struct bench_samples *, uint64_t);
void   bench_samples_sort(struct bench_samples *);
double bench_samples_pct_us(const struct bench_samples *, double);
void   bench_samples_free(struct bench_samples *);

#endif /* BENCH_H */
