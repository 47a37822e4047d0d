/*
 * check_forward.c - forwarding through the real tardyd.
 *
 * Each test starts the daemon on port 0 in front of a forked upstream
 * server and checks what a client sees: the bytes, their order, how and
 * when the stream ends (EOF or reset), and how long that took.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "harness.h"

static struct harness *h;

static void
setup(void)
{
	h = harness_new();
}

static void
teardown(void)
{
	harness_free(h);
	h = NULL;
}

/* Starts tardyd with the single proxy NAME=LISTEN=UPSTREAM. */
static struct harness_tardyd *
start_proxy(const char *name, const char *listen,
    const struct harness_addr *upstream)
{
	return (harness_tardyd_start(h, "--proxy",
	    harness_printf(h, "%s=%s=%s", name, listen, upstream->text), NULL));
}

/* --- what the daemon holds ------------------------------------------ */

#define SETTLE_TIMEOUT_MS 5000

/*
 * Waits up to SETTLE_TIMEOUT_MS for proxy name to have want connections
 * in GET /proxies/NAME/connections, and fails with what it has if not.
 */
static void
wait_connections(struct harness_tardyd *t, const char *name, size_t want,
    const char *what)
{
	int64_t	    deadline = harness_now_ms() + SETTLE_TIMEOUT_MS;
	const char *path = harness_printf(h, "/proxies/%s/connections", name);
	json_t	   *j;
	char	   *dump;
	size_t	    n;

	for (;;) {
		j = harness_api_get(h, t, path);
		ck_assert_msg(json_is_array(j), "GET %s: not an array", path);
		n = json_array_size(j);
		if (n == want || harness_now_ms() >= deadline)
			break;
		json_decref(j);
		harness_sleep_ms(50);
	}
	dump = json_dumps(j, JSON_COMPACT);
	ck_assert_msg(n == want,
	    "%s: %zu connections after %d ms, want %zu: "
	    "%s",
	    what, n, SETTLE_TIMEOUT_MS, want,
	    harness_tail(dump != NULL ? dump : "?", 1500));
	free(dump);
	json_decref(j);
}

/* How many descriptors the daemon has open: /proc/PID/fd. */
static int
fd_count(struct harness_tardyd *t)
{
	const char    *dir = harness_printf(h, "/proc/%ld/fd",
	       (long)harness_tardyd_pid(t));
	struct dirent *de;
	DIR	      *d = opendir(dir);
	int	       n = 0;

	ck_assert_msg(d != NULL, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return (n);
}

/*
 * fd_count() once it no longer goes down: the daemon closes some
 * descriptors a moment after a client sees the effect (the ready file's,
 * after its rename; an API connection's, after the reply's end).
 */
static int
fd_count_steady(struct harness_tardyd *t)
{
	int n = fd_count(t), m;

	for (;;) {
		harness_sleep_ms(50);
		if ((m = fd_count(t)) >= n)
			return (n);
		n = m;
	}
}

/* What fd_count() says once down to want, or after SETTLE_TIMEOUT_MS. */
static int
fd_count_settled(struct harness_tardyd *t, int want)
{
	int64_t deadline = harness_now_ms() + SETTLE_TIMEOUT_MS;
	int	n;

	while ((n = fd_count(t)) > want && harness_now_ms() < deadline)
		harness_sleep_ms(50);
	return (n);
}

static size_t
first_difference(const unsigned char *a, const unsigned char *b, size_t len)
{
	size_t i = 0;

	while (i < len && a[i] == b[i])
		i++;
	return (i);
}

/* --- bulk -------------------------------------------------------------- */

#define BULK_LEN ((size_t)16 * 1024 * 1024)
#define BULK_TIMEOUT_MS 40000

START_TEST(test_bulk_16mib_both_ways)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	struct harness_tardyd	*t = start_proxy("bulk", "127.0.0.1:0",
	      &up->addr);
	struct harness_addr	 a = harness_proxy_ok(t, "bulk");
	unsigned char *out = malloc(BULK_LEN), *in = calloc(1, BULK_LEN);
	size_t	       sent, got, diff, extra;
	int	       fd, err;

	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(in);
	harness_pattern(out, BULK_LEN, 16, 0);
	fd = harness_connect_ok(&a);
	/* Sending and reading at once: 16 MiB is far more than all the
	 * socket buffers on the way, so a proxy that does not pump both
	 * directions independently stalls here. */
	err = harness_exchange(fd, out, BULK_LEN, in, BULK_LEN, BULK_TIMEOUT_MS,
	    &sent, &got);
	ck_assert_msg(err == 0, "after %zu bytes sent and %zu received: %s",
	    sent, got, harness_strerror(err));
	diff = first_difference(out, in, BULK_LEN);
	ck_assert_msg(diff == BULK_LEN, "stream corrupted at offset %zu", diff);

	shutdown(fd, SHUT_WR);
	err = harness_wait_close(fd, HARNESS_IO_TIMEOUT_MS, &extra);
	ck_assert_msg(err == 0, "end of stream: %s", harness_strerror(err));
	ck_assert_msg(extra == 0, "%zu unexpected bytes after the echo", extra);
	close(fd);
	free(out);
	free(in);
}
END_TEST

START_TEST(test_bulk_16mib_download)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_SOURCE, "127.0.0.1:0", NULL, BULK_LEN);
	struct harness_tardyd	*t = start_proxy("down", "127.0.0.1:0",
	      &up->addr);
	struct harness_addr	 a = harness_proxy_ok(t, "down");
	unsigned char *want = malloc(BULK_LEN), *in = calloc(1, BULK_LEN);
	size_t	       got, diff, extra;
	int	       fd, err;

	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(in);
	harness_pattern(want, BULK_LEN, HARNESS_SOURCE_SEED, 0);
	fd = harness_connect_ok(&a);
	err = harness_recv_all(fd, in, BULK_LEN, BULK_TIMEOUT_MS, &got);
	ck_assert_msg(err == 0, "after %zu bytes: %s", got,
	    harness_strerror(err));
	diff = first_difference(want, in, BULK_LEN);
	ck_assert_msg(diff == BULK_LEN, "stream corrupted at offset %zu", diff);
	/* The upstream half-closed after its last byte: so must we see. */
	shutdown(fd, SHUT_WR);
	err = harness_wait_close(fd, HARNESS_IO_TIMEOUT_MS, &extra);
	ck_assert_msg(err == 0 && extra == 0, "end of stream: %s, %zu extra",
	    harness_strerror(err), extra);
	close(fd);
	free(want);
	free(in);
}
END_TEST

START_TEST(test_bulk_16mib_upload)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_SINK, "127.0.0.1:0", NULL, 0);
	struct harness_tardyd *t = start_proxy("up", "127.0.0.1:0", &up->addr);
	struct harness_addr    a = harness_proxy_ok(t, "up");
	unsigned char	      *out = malloc(BULK_LEN);
	char		       reply[32], want[32];
	size_t		       got;
	int		       fd, err;

	ck_assert_ptr_nonnull(out);
	harness_pattern(out, BULK_LEN, 17, 0);
	fd = harness_connect_ok(&a);
	err = harness_send_all(fd, out, BULK_LEN, BULK_TIMEOUT_MS);
	ck_assert_msg(err == 0, "send: %s", harness_strerror(err));
	shutdown(fd, SHUT_WR);
	/* The sink answers its byte count only once it has seen our EOF. */
	snprintf(want, sizeof(want), "%zu\n", BULK_LEN);
	memset(reply, 0, sizeof(reply));
	err = harness_recv_all(fd, reply, strlen(want), HARNESS_IO_TIMEOUT_MS,
	    &got);
	ck_assert_msg(err == 0, "sink's count after %zu bytes: %s", got,
	    harness_strerror(err));
	ck_assert_str_eq(reply, want);
	err = harness_wait_close(fd, HARNESS_IO_TIMEOUT_MS, NULL);
	ck_assert_msg(err == 0, "end of stream: %s", harness_strerror(err));
	close(fd);
	free(out);
}
END_TEST

/* --- concurrency ------------------------------------------------------ */

#define NCONC 200

struct conc {
	int	       fd;
	unsigned char *out, *in;
	size_t	       len, sent, got;
};

START_TEST(test_200_concurrent_connections)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	struct harness_tardyd	*t = start_proxy("many", "127.0.0.1:0",
	      &up->addr);
	struct harness_addr	 a = harness_proxy_ok(t, "many");
	static struct conc	 c[NCONC];
	struct pollfd		 pfd[NCONC];
	int64_t			 deadline;
	int			 pending = NCONC;

	/* All connections open at once before any byte moves. */
	for (int i = 0; i < NCONC; i++) {
		c[i].len = 1000 + (size_t)i * 37;
		c[i].out = malloc(c[i].len);
		c[i].in = calloc(1, c[i].len);
		ck_assert(c[i].out != NULL && c[i].in != NULL);
		harness_pattern(c[i].out, c[i].len, 1000 + (uint64_t)i, 0);
		c[i].sent = c[i].got = 0;
		c[i].fd = harness_connect_ok(&a);
	}
	deadline = harness_now_ms() + 20000;
	while (pending > 0) {
		int64_t left = deadline - harness_now_ms();
		int	r;

		ck_assert_msg(left > 0,
		    "%d of %d connections unfinished "
		    "after 20 s",
		    pending, NCONC);
		for (int i = 0; i < NCONC; i++) {
			pfd[i].fd = c[i].got < c[i].len ? c[i].fd : -1;
			pfd[i].events = POLLIN;
			if (c[i].sent < c[i].len)
				pfd[i].events |= POLLOUT;
		}
		r = poll(pfd, NCONC, (int)left);
		ck_assert_msg(r >= 0 || errno == EINTR, "poll: %s",
		    strerror(errno));
		for (int i = 0; i < NCONC && r > 0; i++) {
			ssize_t n;

			if (pfd[i].revents & POLLOUT) {
				n = send(c[i].fd, c[i].out + c[i].sent,
				    c[i].len - c[i].sent,
				    MSG_DONTWAIT | MSG_NOSIGNAL);
				ck_assert_msg(n >= 0 || errno == EAGAIN,
				    "conn %d send: %s", i, strerror(errno));
				if (n > 0)
					c[i].sent += (size_t)n;
			}
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				n = recv(c[i].fd, c[i].in + c[i].got,
				    c[i].len - c[i].got, MSG_DONTWAIT);
				ck_assert_msg(n != 0,
				    "conn %d: EOF after %zu "
				    "of %zu bytes",
				    i, c[i].got, c[i].len);
				ck_assert_msg(n > 0 || errno == EAGAIN,
				    "conn %d recv: %s", i, strerror(errno));
				if (n > 0) {
					c[i].got += (size_t)n;
					if (c[i].got == c[i].len)
						pending--;
				}
			}
		}
	}
	for (int i = 0; i < NCONC; i++) {
		size_t diff = first_difference(c[i].out, c[i].in, c[i].len);

		ck_assert_msg(diff == c[i].len,
		    "conn %d: got another "
		    "connection's bytes or corruption at offset %zu",
		    i, diff);
		close(c[i].fd);
		free(c[i].out);
		free(c[i].in);
	}
	ck_assert_msg(harness_tardyd_alive(t), "tardyd died: %s",
	    harness_status_str(h, harness_tardyd_status(t)));
}
END_TEST

/*
 * A client that resets its connection mid-stream must not hurt others,
 * and leaves nothing behind: its session and both its descriptors go.
 */
START_TEST(test_client_abort_is_harmless)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	struct harness_tardyd	*t = start_proxy("p", "127.0.0.1:0", &up->addr);
	struct harness_addr	 a = harness_proxy_ok(t, "p");
	int			 keep, baseline, n;

	/* What the daemon holds with no client. */
	baseline = fd_count_steady(t);
	keep = harness_connect_ok(&a);
	harness_echo_ok(keep, "before", 1000, 1);
	for (int i = 0; i < 20; i++) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		unsigned char buf[65536];
		int	      fd = harness_connect_ok(&a);

		harness_pattern(buf, sizeof(buf), (uint64_t)i, 0);
		/* Whatever part of it fits: the echo is never read. */
		(void)send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg,
				     sizeof(lg)),
		    0);
		close(fd); /* RST */
	}
	harness_echo_ok(keep, "after 20 aborted clients", 100000, 2);
	/* The 20 sessions are gone; the one still open is not. */
	wait_connections(t, "p", 1, "after 20 aborted clients");
	close(keep);
	keep = harness_connect_ok(&a);
	harness_echo_ok(keep, "new connection", 1000, 3);
	close(keep);
	ck_assert_msg(harness_tardyd_alive(t), "tardyd died: %s",
	    harness_status_str(h, harness_tardyd_status(t)));

	/* All closed: no session, and the descriptors of none. */
	wait_connections(t, "p", 0, "after every client closed");
	n = fd_count_settled(t, baseline);
	ck_assert_msg(n == baseline,
	    "tardyd has %d descriptors open, %d "
	    "before the clients",
	    n, baseline);
}
END_TEST

/* --- half-close ---------------------------------------------------------- */

#define HALF_LEN ((size_t)1024 * 1024)

START_TEST(test_half_close)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO_AT_EOF, "127.0.0.1:0", NULL, 0);
	struct harness_tardyd	*t = start_proxy("half", "127.0.0.1:0",
	      &up->addr);
	struct harness_addr	 a = harness_proxy_ok(t, "half");
	unsigned char *out = malloc(HALF_LEN), *in = calloc(1, HALF_LEN);
	size_t	       got, extra, diff;
	int	       fd, err;

	ck_assert(out != NULL && in != NULL);
	harness_pattern(out, HALF_LEN, 5, 0);
	fd = harness_connect_ok(&a);
	err = harness_send_all(fd, out, HALF_LEN, HARNESS_IO_TIMEOUT_MS);
	ck_assert_msg(err == 0, "send: %s", harness_strerror(err));
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);

	/* The upstream answers only after it has read EOF: an answer proves
	 * our half-close reached it, and all of it proves the other direction
	 * kept flowing after we stopped writing. */
	err = harness_recv_all(fd, in, HALF_LEN, 10000, &got);
	ck_assert_msg(err == 0,
	    "reply after our SHUT_WR: %zu of %zu bytes, "
	    "%s%s",
	    got, HALF_LEN, harness_strerror(err),
	    got == 0 && err == ETIMEDOUT ? " (upstream never saw EOF?)" : "");
	diff = first_difference(out, in, HALF_LEN);
	ck_assert_msg(diff == HALF_LEN, "reply corrupted at offset %zu", diff);

	/* Then the upstream closed: the proxy closes us, in order. */
	err = harness_wait_close(fd, HARNESS_IO_TIMEOUT_MS, &extra);
	ck_assert_msg(err == 0, "after the reply: %s", harness_strerror(err));
	ck_assert_msg(extra == 0, "%zu unexpected bytes after the reply",
	    extra);
	close(fd);
	free(out);
	free(in);
}
END_TEST

/* --- upstream failures --------------------------------------------------- */

/*
 * Connects to a proxy and returns how long until the reset came.  A
 * reset quick enough to beat our own connect() completing is reported by
 * harness_connect() itself: either way the client saw ECONNRESET.
 */
static int64_t
expect_end(const struct harness_addr *a, int want, int within_ms,
    const char *what)
{
	char	buf[64];
	size_t	got;
	int64_t t0 = harness_now_ms(), elapsed;
	int	fd, err = harness_connect(a, within_ms, &fd);

	if (err == 0) {
		err = harness_recv_some(fd, buf, sizeof(buf), within_ms, &got);
		close(fd);
	}
	elapsed = harness_now_ms() - t0;
	ck_assert_msg(err == want,
	    "%s: expected %s within %d ms, got %s "
	    "after %lld ms",
	    what, harness_strerror(want), within_ms,
	    err == 0 ? "data" : harness_strerror(err), (long long)elapsed);
	return (elapsed);
}

/*
 * The client of a proxy whose upstream is down connects, then reads EOF,
 * as through Toxiproxy; with upstream_failure = reset it is reset.
 */
START_TEST(test_upstream_down_closes_client)
{
	const struct harness_addr *dead = harness_closed_port(h, AF_INET);
	struct harness_upstream	  *up = harness_upstream_start(h,
	      HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	const char		  *conf = harness_write_file(h, "tardy.conf",
			   "[proxy rst]\n"
					  "listen = 127.0.0.1:0\n"
					  "upstream = %s\n"
					  "upstream_failure = reset\n",
			   dead->text);
	struct harness_tardyd	  *t = harness_tardyd_start(h, "-c", conf,
		"--proxy", harness_printf(h, "dead=127.0.0.1:0=%s", dead->text),
		"--proxy", harness_printf(h, "live=127.0.0.1:0=%s", up->addr.text),
		NULL);
	struct harness_addr	   da = harness_proxy_ok(t, "dead");
	struct harness_addr	   ra = harness_proxy_ok(t, "rst");
	struct harness_addr	   la = harness_proxy_ok(t, "live");
	int			   live = harness_connect_ok(&la);

	harness_echo_ok(live, "live proxy before", 1000, 1);
	for (int i = 0; i < 3; i++) {
		int64_t ms = expect_end(&da, HARNESS_EOF, 3000,
		    "connection to dead upstream");

		ck_assert_msg(ms < 1000, "EOF took %lld ms (want < 1000)",
		    (long long)ms);
		ms = expect_end(&ra, ECONNRESET, 3000,
		    "connection to dead upstream, upstream_failure = reset");
		ck_assert_msg(ms < 1000, "reset took %lld ms (want < 1000)",
		    (long long)ms);
	}
	/* The daemon keeps serving: the open session and a new one. */
	harness_echo_ok(live, "live proxy, open connection", 1000, 2);
	close(live);
	live = harness_connect_ok(&la);
	harness_echo_ok(live, "live proxy, new connection", 1000, 3);
	close(live);
	ck_assert_msg(harness_tardyd_alive(t), "tardyd died: %s",
	    harness_status_str(h, harness_tardyd_status(t)));
}
END_TEST

START_TEST(test_connect_timeout_per_proxy)
{
	const struct harness_addr *bh = harness_blackhole(h);
	const char		  *conf = harness_write_file(h, "tardy.conf",
			   "[proxy fast]\n"
					  "listen = 127.0.0.1:0\n"
					  "upstream = %s\n"
					  "connect_timeout = 300\n"
					  "upstream_failure = reset\n"
					  "\n"
					  "[proxy slow]\n"
					  "listen = 127.0.0.1:0\n"
					  "upstream = %s\n"
					  "connect_timeout = 2000\n",
			   bh->text, bh->text);
	struct harness_tardyd *t = harness_tardyd_start(h, "-c", conf, NULL);
	struct harness_addr    fa = harness_proxy_ok(t, "fast");
	struct harness_addr    sa = harness_proxy_ok(t, "slow");
	int64_t		       t0, fast_ms, slow_ms;
	int fast = harness_connect_ok(&fa), slow = harness_connect_ok(&sa), err;
	char   buf[16];
	size_t got;

	t0 = harness_now_ms();
	err = harness_recv_some(fast, buf, sizeof(buf), 5000, &got);
	fast_ms = harness_now_ms() - t0;
	ck_assert_msg(err == ECONNRESET,
	    "fast: expected ECONNRESET, got %s "
	    "after %lld ms",
	    harness_strerror(err), (long long)fast_ms);
	ck_assert_msg(fast_ms >= 250 && fast_ms < 1500,
	    "connect_timeout = 300: reset after %lld ms, want [250, 1500)",
	    (long long)fast_ms);

	/* Same upstream, other proxy: its own timeout, not the first's. */
	err = harness_recv_some(slow, buf, sizeof(buf), 6000, &got);
	slow_ms = harness_now_ms() - t0;
	ck_assert_msg(err == HARNESS_EOF,
	    "slow: expected EOF, got %s "
	    "after %lld ms",
	    harness_strerror(err), (long long)slow_ms);
	ck_assert_msg(slow_ms >= 1800 && slow_ms < 3500,
	    "connect_timeout = 2000: EOF after %lld ms, want [1800, 3500)",
	    (long long)slow_ms);
	close(fast);
	close(slow);
	ck_assert(harness_tardyd_alive(t));
}
END_TEST

/* Without connect_timeout the documented default, 5000 ms, applies. */
START_TEST(test_connect_timeout_default)
{
	const struct harness_addr *bh = harness_blackhole(h);
	struct harness_tardyd	  *t = harness_tardyd_start(h, "--proxy",
		harness_printf(h, "dflt=127.0.0.1:0=%s", bh->text), NULL);
	struct harness_addr	   a = harness_proxy_ok(t, "dflt");
	int			   fd = harness_connect_ok(&a), err;
	int64_t			   t0 = harness_now_ms(), ms;
	char			   buf[16];
	size_t			   got;

	err = harness_recv_some(fd, buf, sizeof(buf), 10000, &got);
	ms = harness_now_ms() - t0;
	close(fd);
	ck_assert_msg(err == HARNESS_EOF,
	    "expected EOF, got %s after "
	    "%lld ms",
	    harness_strerror(err), (long long)ms);
	ck_assert_msg(ms >= 4800 && ms < 7000,
	    "default connect timeout: "
	    "EOF after %lld ms, want [4800, 7000)",
	    (long long)ms);
}
END_TEST

/* --- address families ------------------------------------------------ */

START_TEST(test_ipv6_loopback)
{
	struct harness_upstream *up;
	struct harness_tardyd	*t;
	struct harness_addr	 a;
	int			 fd;

	if (!harness_has_ipv6()) {
		fprintf(stderr, "SKIP test_ipv6_loopback: cannot bind [::1]\n");
		return;
	}
	up = harness_upstream_start(h, HARNESS_UPSTREAM_ECHO, "[::1]:0", NULL,
	    0);
	t = start_proxy("v6", "[::1]:0", &up->addr);
	a = harness_proxy_ok(t, "v6");
	ck_assert_int_eq(a.ss.ss_family, AF_INET6);
	ck_assert_msg(strncmp(a.text, "[::1]:", 6) == 0 &&
		harness_addr_port(&a) > 0,
	    "listen address %s", a.text);
	fd = harness_connect_ok(&a);
	harness_echo_ok(fd, "[::1] to [::1]", 200000, 6);
	close(fd);
}
END_TEST

START_TEST(test_unix_listen_tcp_upstream)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	const char		*path = harness_path(h, "listen.sock");
	struct harness_tardyd	*t = harness_tardyd_start(h, "--proxy",
	      harness_printf(h, "ux=unix:%s=%s", path, up->addr.text), NULL);
	struct harness_addr	 a = harness_proxy_ok(t, "ux");
	int			 fd;

	ck_assert_int_eq(a.ss.ss_family, AF_UNIX);
	ck_assert_str_eq(a.text, harness_printf(h, "unix:%s", path));
	fd = harness_connect_ok(&a);
	harness_echo_ok(fd, "unix to tcp", 200000, 7);
	shutdown(fd, SHUT_WR);
	ck_assert_int_eq(harness_wait_close(fd, HARNESS_IO_TIMEOUT_MS, NULL),
	    0);
	close(fd);
}
END_TEST

START_TEST(test_tcp_listen_unix_upstream)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO,
	    harness_printf(h, "unix:%s", harness_path(h, "upstream.sock")),
	    NULL, 0);
	struct harness_tardyd *t = start_proxy("tu", "127.0.0.1:0", &up->addr);
	struct harness_addr    a = harness_proxy_ok(t, "tu");
	int		       fd;

	ck_assert_int_eq(a.ss.ss_family, AF_INET);
	fd = harness_connect_ok(&a);
	harness_echo_ok(fd, "tcp to unix", 200000, 8);
	shutdown(fd, SHUT_WR);
	ck_assert_int_eq(harness_wait_close(fd, HARNESS_IO_TIMEOUT_MS, NULL),
	    0);
	close(fd);
}
END_TEST

/* --- signals and command line ----------------------------------------- */

static const int stop_signals[] = { SIGTERM, SIGINT };

START_TEST(test_stop_signal_exits_zero)
{
	int			 sig = stop_signals[_i];
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	struct harness_tardyd	*t = start_proxy("p", "127.0.0.1:0", &up->addr);
	struct harness_addr	 a = harness_proxy_ok(t, "p");
	int			 fd = harness_connect_ok(&a), status, err, lfd;
	int64_t			 ms;

	harness_echo_ok(fd, "before the signal", 1000, 9);
	err = harness_tardyd_stop(t, sig, 5000, &status, &ms);
	ck_assert_msg(err == 0, "%s: tardyd still running after 5 s",
	    strsignal(sig));
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "%s: tardyd %s, want exit 0; stderr:\n%s", strsignal(sig),
	    harness_status_str(h, status),
	    harness_tail(harness_tardyd_stderr(t), 1500));
	ck_assert_msg(ms < 1000, "%s: exit took %lld ms (want < 1000)",
	    strsignal(sig), (long long)ms);

	/* The client's connection is over (orderly or reset), at once. */
	err = harness_wait_close(fd, 1000, NULL);
	ck_assert_msg(err == 0 || err == ECONNRESET,
	    "client connection after exit: %s", harness_strerror(err));
	close(fd);
	err = harness_connect(&a, 1000, &lfd);
	ck_assert_msg(err == ECONNREFUSED, "connect after exit: %s",
	    harness_strerror(err));
}
END_TEST

START_TEST(test_version)
{
	static const char *const opts[] = { "-V", "--version" };

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct harness_run *r = harness_tardyd_run(h, 5000,
		    opts[i], NULL);

		ck_assert_msg(!r->timed_out, "%s: still running", opts[i]);
		ck_assert_msg(WIFEXITED(r->status) &&
			WEXITSTATUS(r->status) == 0,
		    "%s: %s; stderr: %s", opts[i],
		    harness_status_str(h, r->status),
		    harness_tail(r->err, 500));
		ck_assert_msg(strstr(r->out, PACKAGE_VERSION) != NULL,
		    "%s: stdout \"%s\" lacks the version " PACKAGE_VERSION,
		    opts[i], harness_tail(r->out, 500));
	}
}
END_TEST

START_TEST(test_help)
{
	static const char *const opts[] = { "-h", "--help" };

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct harness_run *r = harness_tardyd_run(h, 5000,
		    opts[i], NULL);

		ck_assert_msg(!r->timed_out, "%s: still running", opts[i]);
		ck_assert_msg(WIFEXITED(r->status) &&
			WEXITSTATUS(r->status) == 0,
		    "%s: %s; stderr: %s", opts[i],
		    harness_status_str(h, r->status),
		    harness_tail(r->err, 500));
		ck_assert_msg(strcasestr(r->out, "usage") != NULL ||
			strcasestr(r->err, "usage") != NULL,
		    "%s: no usage text; stdout \"%s\", stderr \"%s\"", opts[i],
		    harness_tail(r->out, 300), harness_tail(r->err, 300));
	}
}
END_TEST

static Suite *
forward_suite(void)
{
	Suite *s = suite_create("forward");
	TCase *tc;

	tc = tcase_create("bulk");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_bulk_16mib_both_ways);
	tcase_add_test(tc, test_bulk_16mib_download);
	tcase_add_test(tc, test_bulk_16mib_upload);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 45);
	tcase_add_test(tc, test_200_concurrent_connections);
	tcase_add_test(tc, test_client_abort_is_harmless);
	suite_add_tcase(s, tc);

	tc = tcase_create("half_close");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_half_close);
	suite_add_tcase(s, tc);

	tc = tcase_create("upstream_failure");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_upstream_down_closes_client);
	tcase_add_test(tc, test_connect_timeout_per_proxy);
	tcase_add_test(tc, test_connect_timeout_default);
	suite_add_tcase(s, tc);

	tc = tcase_create("address_families");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_ipv6_loopback);
	tcase_add_test(tc, test_unix_listen_tcp_upstream);
	tcase_add_test(tc, test_tcp_listen_unix_upstream);
	suite_add_tcase(s, tc);

	tc = tcase_create("signals");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_stop_signal_exits_zero, 0,
	    (int)(sizeof(stop_signals) / sizeof(stop_signals[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("command_line");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_help);
	suite_add_tcase(s, tc);

	return (s);
}

int
main(void)
{
	SRunner *sr = srunner_create(forward_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
