/*
 * check_notify.c - systemd's notification protocol (src/notify.c), with a
 * fake NOTIFY_SOCKET: a unix datagram socket the test binds, on a path or
 * in the abstract namespace ("@name"), from which it reads back each
 * datagram whole.
 *
 * The unit tests call notify_send() with the messages tardy.c sends and
 * compare the bytes; the daemon tests start the real tardyd with the
 * variable set and read what it says on start, reload and stop. Without
 * NOTIFY_SOCKET (or with one that is neither a path nor "@") nothing is
 * sent and nothing fails.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"
#include "notify.h"

#define QUIET_MS 200	/* waited to see that nothing comes */

static struct harness *h;

static void
setup(void)
{
	h = harness_new();
	unsetenv("NOTIFY_SOCKET");
}

static void
teardown(void)
{
	unsetenv("NOTIFY_SOCKET");
	harness_free(h);
	h = NULL;
}

/*
 * Binds a datagram socket where NOTIFY_SOCKET=name says to send: a path,
 * or "@name" for the abstract namespace (the name's bytes, no NUL).
 */
static int
fake_notify_socket(const char *name)
{
	struct sockaddr_un sun;
	size_t		   n = strlen(name);
	int		   fd;

	ck_assert_msg(n > 1 && n < sizeof(sun.sun_path), "name %s", name);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, name, n);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(fd != -1, "socket: %s", strerror(errno));
	ck_assert_msg(bind(fd, (struct sockaddr *)&sun,
			  (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			      n)) == 0,
	    "bind %s: %s", name, strerror(errno));
	return (fd);
}

/* A name in the abstract namespace no other test run uses. */
static const char *
abstract_name(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (harness_printf(h, "@tardy-check-notify/%ld/%ld.%09ld",
	    (long)getpid(), (long)ts.tv_sec, ts.tv_nsec));
}

/*
 * The next datagram, whole (owned by the harness), or NULL if none came
 * within timeout_ms.
 */
static const char *
recv_datagram(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char	      buf[4096];
	ssize_t	      n;
	int	      r;

	r = poll(&pfd, 1, timeout_ms);
	ck_assert_msg(r >= 0, "poll: %s", strerror(errno));
	if (r == 0)
		return (NULL);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_TRUNC | MSG_DONTWAIT);
	ck_assert_msg(n >= 0, "recv: %s", strerror(errno));
	ck_assert_msg((size_t)n < sizeof(buf) - 1, "a datagram of %zd bytes",
	    n);
	ck_assert_msg(memchr(buf, '\0', (size_t)n) == NULL,
	    "a datagram with a NUL: %zd bytes", n);
	buf[n] = '\0';
	return (harness_printf(h, "%s", buf));
}

static void
expect_nothing(int fd, const char *what)
{
	const char *got = recv_datagram(fd, QUIET_MS);

	ck_assert_msg(got == NULL, "%s: got \"%s\"", what,
	    got != NULL ? got : "");
}

static void
expect_datagram(int fd, const char *want, const char *what)
{
	const char *got = recv_datagram(fd, HARNESS_IO_TIMEOUT_MS);

	ck_assert_msg(got != NULL, "%s: nothing within %d ms, want \"%s\"",
	    what, HARNESS_IO_TIMEOUT_MS, want);
	ck_assert_msg(strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"",
	    what, got, want);
}

static uint64_t
monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}

/* --- notify_send() ----------------------------------------------------- */

/* What tardy.c sends, through the same formats. */
static void
send_all_and_check(int fd)
{
	ck_assert_int_eq(notify_enabled(), 1);
	ck_assert_int_eq(notify_send("%sSTATUS=%zu prox%s, %zu connection%s "
				     "open",
			     "READY=1\n", (size_t)2, "ies", (size_t)1, ""),
	    0);
	expect_datagram(fd, "READY=1\nSTATUS=2 proxies, 1 connection open",
	    "ready");
	ck_assert_int_eq(notify_send("%sSTATUS=%zu prox%s, %zu connection%s "
				     "open",
			     "", (size_t)1, "y", (size_t)0, "s"),
	    0);
	expect_datagram(fd, "STATUS=1 proxy, 0 connections open", "status");
	ck_assert_int_eq(notify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
			     18446744073709551615ULL),
	    0);
	expect_datagram(fd, "RELOADING=1\nMONOTONIC_USEC=18446744073709551615",
	    "reloading");
	ck_assert_int_eq(notify_send("STOPPING=1"), 0);
	expect_datagram(fd, "STOPPING=1", "stopping");
	expect_nothing(fd, "after the last message");
}

START_TEST(test_send_to_path)
{
	const char *path = harness_path(h, "notify.sock");
	int	    fd = fake_notify_socket(path);

	ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	send_all_and_check(fd);
	close(fd);
}
END_TEST

START_TEST(test_send_to_abstract)
{
	const char *name = abstract_name();
	int	    fd = fake_notify_socket(name);

	ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
	send_all_and_check(fd);
	close(fd);
}
END_TEST

/* Unset, empty or neither a path nor "@": off, and every call a no-op. */
START_TEST(test_unset_sends_nothing)
{
	static const char *const values[] = { NULL, "", "notify.sock",
		"./notify.sock" };
	const char		*path = harness_path(h, "notify.sock");
	int			 fd = fake_notify_socket(path);

	/* "notify.sock" names the fake socket from here: still off. */
	ck_assert_int_eq(chdir(harness_dir(h)), 0);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		const char *what = harness_printf(h, "NOTIFY_SOCKET %s%s%s",
		    values[i] != NULL ? "\"" : "unset",
		    values[i] != NULL ? values[i] : "",
		    values[i] != NULL ? "\"" : "");

		if (values[i] == NULL)
			ck_assert_int_eq(unsetenv("NOTIFY_SOCKET"), 0);
		else
			ck_assert_int_eq(setenv("NOTIFY_SOCKET", values[i], 1),
			    0);
		ck_assert_msg(notify_enabled() == 0, "%s: enabled", what);
		errno = 0;
		ck_assert_msg(notify_send("READY=1\nSTATUS=%s", "x") == 0 &&
			notify_send("RELOADING=1\nMONOTONIC_USEC=%llu", 1ULL) ==
			    0 &&
			notify_send("STOPPING=1") == 0,
		    "%s: notify_send failed", what);
		ck_assert_msg(errno == 0, "%s: errno %s", what,
		    strerror(errno));
		expect_nothing(fd, what);
	}
	ck_assert_int_eq(chdir("/"), 0);
	close(fd);
}
END_TEST

/* Where nobody listens, or a path too long for an address: -1. */
START_TEST(test_send_fails_without_listener)
{
	const char *gone = harness_path(h, "gone.sock");
	char	    longpath[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	int	    fd = fake_notify_socket(gone);

	close(fd); /* the file stays; nobody reads it */
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", gone, 1), 0);
	ck_assert_int_eq(notify_send("READY=1"), -1);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET",
			     harness_path(h, "missing.sock"), 1),
	    0);
	ck_assert_int_eq(notify_send("READY=1"), -1);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", abstract_name(), 1), 0);
	ck_assert_int_eq(notify_send("READY=1"), -1);
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", longpath, 1), 0);
	ck_assert_int_eq(notify_send("READY=1"), -1);
}
END_TEST

/* A message longer than notify.c's buffer goes out cut, in one piece. */
START_TEST(test_long_message_is_cut)
{
	const char *path = harness_path(h, "notify.sock");
	int	    fd = fake_notify_socket(path);
	char	    status[2048];
	const char *got;

	memset(status, 's', sizeof(status) - 1);
	status[sizeof(status) - 1] = '\0';
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	ck_assert_int_eq(notify_send("STATUS=%s", status), 0);
	got = recv_datagram(fd, HARNESS_IO_TIMEOUT_MS);
	ck_assert_ptr_nonnull(got);
	ck_assert_msg(strlen(got) >= 256 &&
		strncmp(got, "STATUS=sss", 10) == 0 &&
		strspn(got + 7, "s") == strlen(got) - 7,
	    "got %zu bytes: %.40s...", strlen(got), got);
	expect_nothing(fd, "after the cut message");
	close(fd);
}
END_TEST

/* --- the daemon ------------------------------------------------------ */

static void
daemon_notifies(const char *name)
{
	int			 fd = fake_notify_socket(name), c, status, err;
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	struct harness_tardyd	*t;
	struct harness_addr	 a;
	const char *reloading = "RELOADING=1\nMONOTONIC_USEC=", *got, *digits;
	uint64_t    before, after, usec;

	ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
	t = harness_tardyd_start(h, "--proxy",
	    harness_printf(h, "p=127.0.0.1:0=%s", up->addr.text), NULL);
	expect_datagram(fd, "READY=1\nSTATUS=1 proxy, 0 connections open",
	    "on start");
	a = harness_proxy_ok(t, "p");
	c = harness_connect_ok(&a);
	harness_echo_ok(c, "a connection", 100, 1);

	before = monotonic_usec();
	err = harness_tardyd_reload(t, HARNESS_RELOAD_TIMEOUT_MS);
	after = monotonic_usec();
	ck_assert_msg(err == 0 &&
		strcmp(harness_tardyd_ready(t)->last_reload, "ok") == 0,
	    "reload: %s, %s", harness_strerror(err),
	    harness_tardyd_ready(t)->last_reload);
	/* The periodic STATUS= may come between: not what is looked at. */
	do
		got = recv_datagram(fd, HARNESS_IO_TIMEOUT_MS);
	while (got != NULL && strncmp(got, "STATUS=", 7) == 0);
	ck_assert_msg(got != NULL &&
		strncmp(got, reloading, strlen(reloading)) == 0 &&
		(digits = got + strlen(reloading), *digits != '\0') &&
		strspn(digits, "0123456789") == strlen(digits),
	    "on reload: got \"%s\", want \"RELOADING=1\\nMONOTONIC_USEC=N\"",
	    got != NULL ? got : "nothing");
	usec = strtoull(digits, NULL, 10);
	ck_assert_msg(usec >= before && usec <= after,
	    "MONOTONIC_USEC=%" PRIu64 ", not within the reload's [%" PRIu64
	    ", %" PRIu64 "]",
	    usec, before, after);
	expect_datagram(fd, "READY=1\nSTATUS=1 proxy, 1 connection open",
	    "after the reload");

	err = harness_tardyd_stop(t, SIGTERM, 5000, &status, NULL);
	ck_assert_msg(err == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "SIGTERM: %s",
	    err != 0 ? harness_strerror(err) : harness_status_str(h, status));
	do
		got = recv_datagram(fd, HARNESS_IO_TIMEOUT_MS);
	while (got != NULL && strncmp(got, "STATUS=", 7) == 0);
	ck_assert_msg(got != NULL && strcmp(got, "STOPPING=1") == 0,
	    "on SIGTERM: got \"%s\", want \"STOPPING=1\"",
	    got != NULL ? got : "nothing");
	expect_nothing(fd, "after the exit");
	close(c);
	close(fd);
}

START_TEST(test_daemon_notifies_path)
{
	daemon_notifies(harness_path(h, "notify.sock"));
}
END_TEST

START_TEST(test_daemon_notifies_abstract)
{
	daemon_notifies(abstract_name());
}
END_TEST

/* Without NOTIFY_SOCKET the daemon starts, reloads and stops as well. */
START_TEST(test_daemon_without_notify_socket)
{
	struct harness_tardyd *t = harness_tardyd_start(h, "--proxy",
	    "p=127.0.0.1:0=127.0.0.1:9", NULL);
	int		       status, err;

	err = harness_tardyd_reload(t, HARNESS_RELOAD_TIMEOUT_MS);
	ck_assert_msg(err == 0 &&
		strcmp(harness_tardyd_ready(t)->last_reload, "ok") == 0,
	    "reload: %s, %s", harness_strerror(err),
	    harness_tardyd_ready(t)->last_reload);
	err = harness_tardyd_stop(t, SIGTERM, 5000, &status, NULL);
	ck_assert_msg(err == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "SIGTERM: %s; stderr:\n%s",
	    err != 0 ? harness_strerror(err) : harness_status_str(h, status),
	    harness_tail(harness_tardyd_stderr(t), 1500));
}
END_TEST

static Suite *
notify_suite(void)
{
	Suite *s = suite_create("notify");
	TCase *tc;

	tc = tcase_create("notify_send");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_send_to_path);
	tcase_add_test(tc, test_send_to_abstract);
	tcase_add_test(tc, test_unset_sends_nothing);
	tcase_add_test(tc, test_send_fails_without_listener);
	tcase_add_test(tc, test_long_message_is_cut);
	suite_add_tcase(s, tc);

	tc = tcase_create("daemon");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_daemon_notifies_path);
	tcase_add_test(tc, test_daemon_notifies_abstract);
	tcase_add_test(tc, test_daemon_without_notify_socket);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner *sr = srunner_create(notify_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
