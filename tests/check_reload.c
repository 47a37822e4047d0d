/*
 * check_reload.c - configuration: SIGHUP reloads and rejected files.
 *
 * A reload is observed from outside: which addresses accept, whether a
 * connection opened before the SIGHUP still carries bytes after it, what
 * the ready file says, and what the daemon printed on stderr.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

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

static void
expect_refused(const struct harness_addr *a, const char *what)
{
	int fd, err = harness_connect(a, 2000, &fd);

	if (err == 0)
		close(fd);
	ck_assert_msg(err == ECONNREFUSED,
	    "%s: connect %s: %s, want "
	    "ECONNREFUSED",
	    what, a->text, harness_strerror(err));
}

/* Reads what a GREET upstream says through the proxy. */
static const char *
greeting(const struct harness_addr *a)
{
	char   buf[64];
	size_t got = 0, n;
	int    fd = harness_connect_ok(a), err;

	while ((err = harness_recv_some(fd, buf + got, sizeof(buf) - 1 - got,
		    HARNESS_IO_TIMEOUT_MS, &n)) == 0 &&
	    got + n < sizeof(buf) - 1)
		got += n;
	close(fd);
	ck_assert_msg(err == HARNESS_EOF, "greeting via %s: %s", a->text,
	    harness_strerror(err));
	buf[got] = '\0';
	return (harness_printf(h, "%s", buf));
}

static void
reload_ok(struct harness_tardyd *t, long want_gen)
{
	const struct harness_ready *r;
	int err = harness_tardyd_reload(t, HARNESS_RELOAD_TIMEOUT_MS);

	ck_assert_msg(err == 0, "reload: %s (tardyd %s); stderr:\n%s",
	    harness_strerror(err),
	    harness_status_str(h, harness_tardyd_status(t)),
	    harness_tail(harness_tardyd_stderr(t), 1500));
	r = harness_tardyd_ready(t);
	ck_assert_int_eq(r->generation, want_gen);
	ck_assert_msg(strcmp(r->last_reload, "ok") == 0,
	    "last_reload \"%s\", want \"ok\"; stderr:\n%s", r->last_reload,
	    harness_tail(harness_tardyd_stderr(t), 1500));
}

static const char *
proxy_section(const char *name, const char *listen, const char *upstream)
{
	return (harness_printf(h, "[proxy %s]\nlisten = %s\nupstream = %s\n\n",
	    name, listen, upstream));
}

/* --- reloads that apply ------------------------------------------------ */

START_TEST(test_reload_adds_and_removes)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	const char *keep = proxy_section("keep", "127.0.0.1:0", up->addr.text);
	const char *conf = harness_write_file(h, "tardy.conf", "%s%s", keep,
	    proxy_section("gone", "127.0.0.1:0", up->addr.text));
	struct harness_tardyd *t = harness_tardyd_start(h, "-c", conf, NULL);
	const struct harness_ready *r = harness_tardyd_ready(t);
	struct harness_addr	    keep_a = harness_proxy_ok(t, "keep");
	struct harness_addr	    gone_a = harness_proxy_ok(t, "gone");
	struct harness_addr	    a;
	int			    fd, fd2;

	ck_assert_int_eq(r->generation, 0);
	ck_assert_str_eq(r->last_reload, "none");
	fd = harness_connect_ok(&keep_a);
	harness_echo_ok(fd, "before the reload", 4096, 1);

	harness_write_file(h, "tardy.conf", "%s%s", keep,
	    proxy_section("fresh", "127.0.0.1:0", up->addr.text));
	reload_ok(t, 1);

	/* Unchanged: same port (even though it says port 0), and the
	 * connection opened before the SIGHUP still carries bytes. */
	a = harness_proxy_ok(t, "keep");
	ck_assert_str_eq(a.text, keep_a.text);
	harness_echo_ok(fd, "connection opened before the reload", 65536, 2);
	fd2 = harness_connect_ok(&keep_a);
	harness_echo_ok(fd2, "new connection to the unchanged proxy", 4096, 3);
	close(fd2);

	/* Added. */
	a = harness_proxy_ok(t, "fresh");
	fd2 = harness_connect_ok(&a);
	harness_echo_ok(fd2, "added proxy", 4096, 4);
	close(fd2);

	/* Removed: gone from the ready file, and its port refuses. */
	ck_assert_int_eq(harness_tardyd_proxy(t, "gone", &a), ENOENT);
	expect_refused(&gone_a, "removed proxy");

	harness_echo_ok(fd, "old connection at the end", 4096, 5);
	close(fd);
}
END_TEST

START_TEST(test_reload_unchanged_keeps_port_and_connections)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	const char *body = harness_printf(h, "[tardy]\nlog_level = info\n\n%s",
	    proxy_section("p", "127.0.0.1:0", up->addr.text));
	const char *conf = harness_write_file(h, "tardy.conf", "%s", body);
	struct harness_tardyd *t = harness_tardyd_start(h, "-c", conf, NULL);
	struct harness_addr    a0 = harness_proxy_ok(t, "p"), a;
	int		       fd = harness_connect_ok(&a0);

	harness_echo_ok(fd, "before", 1000, 1);
	for (long gen = 1; gen <= 3; gen++) {
		/* Second round: same settings, different text and line
		 * numbers; a comment is not a change. */
		if (gen == 2)
			harness_write_file(h, "tardy.conf",
			    "; touched, not changed\n\n%s", body);
		reload_ok(t, gen);
		a = harness_proxy_ok(t, "p");
		ck_assert_msg(strcmp(a.text, a0.text) == 0,
		    "reload %ld moved "
		    "the unchanged proxy from %s to %s",
		    gen, a0.text, a.text);
		harness_echo_ok(fd,
		    harness_printf(h,
			"open connection after reload "
			"%ld",
			gen),
		    20000, (uint64_t)gen);
	}
	close(fd);
}
END_TEST

START_TEST(test_reload_changed_upstream_restarts)
{
	struct harness_upstream *ua = harness_upstream_start(h,
	    HARNESS_UPSTREAM_GREET, "127.0.0.1:0", "from-A\n", 7);
	struct harness_upstream *ub = harness_upstream_start(h,
	    HARNESS_UPSTREAM_GREET, "127.0.0.1:0", "from-B\n", 7);
	struct harness_upstream *echo = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	const char		*other = proxy_section("other", "127.0.0.1:0",
			 echo->addr.text);
	const char *conf = harness_write_file(h, "tardy.conf", "%s%s",
	    proxy_section("chg", "127.0.0.1:0", ua->addr.text), other);
	struct harness_tardyd *t = harness_tardyd_start(h, "-c", conf, NULL);
	struct harness_addr    chg = harness_proxy_ok(t, "chg");
	struct harness_addr    oth = harness_proxy_ok(t, "other");
	int		       fd = harness_connect_ok(&oth);

	harness_echo_ok(fd, "other, before", 1000, 1);
	ck_assert_str_eq(greeting(&chg), "from-A\n");

	harness_write_file(h, "tardy.conf", "%s%s",
	    proxy_section("chg", "127.0.0.1:0", ub->addr.text), other);
	reload_ok(t, 1);
	chg = harness_proxy_ok(t, "chg");
	ck_assert_str_eq(greeting(&chg), "from-B\n");

	/* A sibling's restart leaves the unchanged proxy alone. */
	ck_assert_str_eq(harness_proxy_ok(t, "other").text, oth.text);
	harness_echo_ok(fd, "other, after its sibling restarted", 1000, 2);
	close(fd);
}
END_TEST

START_TEST(test_reload_changed_listen_moves)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	const char		*sock = harness_path(h, "moved.sock");
	const char	      *conf = harness_write_file(h, "tardy.conf", "%s",
		       proxy_section("mv", "127.0.0.1:0", up->addr.text));
	struct harness_tardyd *t = harness_tardyd_start(h, "-c", conf, NULL);
	struct harness_addr    old = harness_proxy_ok(t, "mv"), a;
	int		       fd = harness_connect_ok(&old);

	harness_echo_ok(fd, "before the move", 1000, 1);
	close(fd);
	harness_write_file(h, "tardy.conf", "%s",
	    proxy_section("mv", harness_printf(h, "unix:%s", sock),
		up->addr.text));
	reload_ok(t, 1);
	a = harness_proxy_ok(t, "mv");
	ck_assert_str_eq(a.text, harness_printf(h, "unix:%s", sock));
	fd = harness_connect_ok(&a);
	harness_echo_ok(fd, "at the new address", 1000, 2);
	close(fd);
	expect_refused(&old, "old listen address of a moved proxy");
}
END_TEST

START_TEST(test_reload_keeps_command_line_proxies)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	const char	      *conf = harness_write_file(h, "tardy.conf", "%s",
		       proxy_section("file1", "127.0.0.1:0", up->addr.text));
	struct harness_tardyd *t = harness_tardyd_start(h, "-c", conf,
	    "--proxy", harness_printf(h, "cli=127.0.0.1:0=%s", up->addr.text),
	    NULL);
	struct harness_addr    cli = harness_proxy_ok(t, "cli"), a;
	struct harness_addr    file1 = harness_proxy_ok(t, "file1");
	int		       fd = harness_connect_ok(&cli);

	harness_echo_ok(fd, "command-line proxy before", 1000, 1);
	harness_write_file(h, "tardy.conf", "%s",
	    proxy_section("file2", "127.0.0.1:0", up->addr.text));
	reload_ok(t, 1);
	a = harness_proxy_ok(t, "cli");
	ck_assert_str_eq(a.text, cli.text);
	harness_echo_ok(fd, "command-line proxy's connection after reload",
	    1000, 2);
	a = harness_proxy_ok(t, "file2");
	close(fd);
	fd = harness_connect_ok(&a);
	harness_echo_ok(fd, "file2", 1000, 3);
	close(fd);
	expect_refused(&file1, "file1, removed from the file");
}
END_TEST

/* --- reloads that fail -------------------------------------------------- */

/* The stderr line carrying "PATH:LINE:", or NULL. */
static const char *
error_line(const char *err, const char *path, int line)
{
	const char *loc = harness_printf(h, "%s:%d:", path, line);
	const char *p = strstr(err, loc), *bol, *eol;

	if (p == NULL)
		return (NULL);
	for (bol = p; bol > err && bol[-1] != '\n'; bol--)
		;
	eol = strchr(p, '\n');
	if (eol == NULL)
		eol = bol + strlen(bol);
	return (harness_printf(h, "%.*s", (int)(eol - bol), bol));
}

START_TEST(test_reload_broken_config_keeps_old)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	const char *good = proxy_section("p", "127.0.0.1:0", up->addr.text);
	const char *conf = harness_write_file(h, "tardy.conf", "%s", good);
	struct harness_tardyd *t = harness_tardyd_start(h, "-c", conf, NULL);
	struct harness_addr    pa = harness_proxy_ok(t, "p"), a;
	const struct harness_ready *r;
	const char		   *line;
	int			    fd = harness_connect_ok(&pa), fd2, err;

	harness_echo_ok(fd, "before", 1000, 1);
	/* Line 4 is wrong; the new proxy on line 6 must not appear. */
	harness_write_file(h, "tardy.conf",
	    "[proxy p]\n"
	    "listen = 127.0.0.1:0\n"
	    "upstream = %s\n"
	    "bogus_key = 1\n"
	    "\n"
	    "[proxy q]\n"
	    "listen = 127.0.0.1:0\n"
	    "upstream = %s\n",
	    up->addr.text, up->addr.text);
	err = harness_tardyd_reload(t, HARNESS_RELOAD_TIMEOUT_MS);
	ck_assert_msg(err == 0, "reload: %s (tardyd %s); stderr:\n%s",
	    harness_strerror(err),
	    harness_status_str(h, harness_tardyd_status(t)),
	    harness_tail(harness_tardyd_stderr(t), 1500));
	r = harness_tardyd_ready(t);
	ck_assert_int_eq(r->generation, 1);
	ck_assert_str_eq(r->last_reload, "failed");
	line = error_line(harness_tardyd_stderr(t), conf, 4);
	ck_assert_msg(line != NULL && strstr(line, "bogus_key") != NULL,
	    "want \"%s:4:\" naming bogus_key on stderr:\n%s", conf,
	    harness_tail(harness_tardyd_stderr(t), 1500));

	/* The old configuration still runs, untouched. */
	a = harness_proxy_ok(t, "p");
	ck_assert_str_eq(a.text, pa.text);
	ck_assert_int_eq(harness_tardyd_proxy(t, "q", &a), ENOENT);
	harness_echo_ok(fd, "open connection after the failed reload", 1000, 2);
	fd2 = harness_connect_ok(&pa);
	harness_echo_ok(fd2, "new connection after the failed reload", 1000, 3);
	close(fd2);

	/* And a good file after a bad one applies normally. */
	harness_write_file(h, "tardy.conf", "%s%s", good,
	    proxy_section("q", "127.0.0.1:0", up->addr.text));
	reload_ok(t, 2);
	ck_assert_str_eq(harness_proxy_ok(t, "p").text, pa.text);
	a = harness_proxy_ok(t, "q");
	fd2 = harness_connect_ok(&a);
	harness_echo_ok(fd2, "q after the fixed reload", 1000, 4);
	close(fd2);
	harness_echo_ok(fd, "first connection at the end", 1000, 5);
	close(fd);
}
END_TEST

/* --- configurations rejected at start -------------------------------- */

START_TEST(test_bad_config_at_start)
{
	const char		 *conf = harness_write_file(h, "tardy.conf",
			  "[tardy]\n"
					"log_level = info\n"
					"\n"
					"[proxy p]\n"
					"listen = 127.0.0.1:0\n"
					"upstream = 127.0.0.1:9\n"
					"frobnicate = yes\n");
	const char		 *ready = harness_path(h, "ready.json");
	const struct harness_run *r = harness_tardyd_run(h, 5000, "-a",
	    "127.0.0.1:0", "--ready-file", ready, "-c", conf, NULL);
	const char		 *line;

	ck_assert_msg(!r->timed_out, "tardyd started with a bad config");
	ck_assert_msg(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 1,
	    "tardyd %s, want exit 1", harness_status_str(h, r->status));
	line = error_line(r->err, conf, 7);
	ck_assert_msg(line != NULL && strstr(line, "frobnicate") != NULL,
	    "want \"%s:7:\" naming frobnicate on stderr:\n%s", conf,
	    harness_tail(r->err, 1500));
	ck_assert_msg(access(ready, F_OK) == -1 && errno == ENOENT,
	    "ready file written although the daemon did not start");
}
END_TEST

/*
 * Each file has exactly one mistake.  Where the mistake is a whole section
 * (unknown, duplicate, incomplete) its header line is the one to name.
 * Any one of `words` must appear on the stderr line that names the place.
 */
struct bad_config {
	const char *what;
	const char *text;
	int	    line;
	const char *words[3];
};

#define UP "upstream = 127.0.0.1:9\n"
#define LISTEN "listen = 127.0.0.1:0\n"

/* clang-format off */
static const struct bad_config bad_configs[] = {
	{ "unknown key",
	  "[tardy]\nseed = 1\nbogus_key = 3\n",
	  3, { "bogus_key" } },
	{ "unknown key in a proxy",
	  "[proxy a]\n" LISTEN UP "colour = blue\n",
	  4, { "colour" } },
	{ "unknown section",
	  "[tardy]\nseed = 1\n\n[frobnicate]\nx = 1\n",
	  4, { "frobnicate" } },
	{ "bad address",
	  "[proxy a]\n" LISTEN "upstream = not-an-address\n",
	  3, { "upstream", "not-an-address" } },
	{ "address without a port",
	  "[proxy a]\n" LISTEN "upstream = 127.0.0.1\n",
	  3, { "upstream", "127.0.0.1" } },
	{ "bad port",
	  "[proxy a]\nlisten = 127.0.0.1:99999\n" UP,
	  2, { "listen", "99999" } },
	{ "bad IPv6 address",
	  "[proxy a]\nlisten = [::1:0\n" UP,
	  2, { "listen", "[::1:0" } },
	{ "unix path too long",
	  "[proxy a]\nlisten = unix:/tmp/"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  ".sock\n" UP,
	  2, { "listen", "unix" } },
	{ "missing upstream",
	  "[tardy]\nseed = 1\n\n[proxy lonely]\n" LISTEN "\n",
	  4, { "upstream" } },
	{ "duplicate proxy name",
	  "[proxy twin]\n" LISTEN UP "\n[proxy twin]\n" LISTEN UP,
	  5, { "twin" } },
	{ "duplicate key",
	  "[proxy a]\n" LISTEN UP UP,
	  4, { "upstream" } },
	{ "bad boolean",
	  "[proxy a]\n" LISTEN UP "enabled = maybe\n",
	  4, { "enabled", "maybe" } },
	{ "bad number for connect_timeout",
	  "[proxy a]\n" LISTEN UP "connect_timeout = 12abc\n",
	  4, { "connect_timeout", "12abc" } },
	{ "negative connect_timeout",
	  "[proxy a]\n" LISTEN UP "connect_timeout = -5\n",
	  4, { "connect_timeout", "-5" } },
	{ "bad log level",
	  "[tardy]\nlog_level = loud\n",
	  2, { "log_level", "loud" } },
	{ "bad seed",
	  "[tardy]\nseed = lots\n",
	  2, { "seed", "lots" } },
	{ "api address without a port",
	  "[tardy]\napi = 127.0.0.1:\n",
	  2, { "api", "127.0.0.1:" } },
	{ "key before any section",
	  "listen = 127.0.0.1:0\n[tardy]\nseed = 1\n",
	  1, { "listen" } },
};
/* clang-format on */

#define NBAD ((int)(sizeof(bad_configs) / sizeof(bad_configs[0])))

static void
check_rejection(const struct bad_config *b, const char *conf,
    const struct harness_run *r, const char *mode)
{
	const char *line;
	bool	    named = false;

	ck_assert_msg(!r->timed_out,
	    "%s (%s): tardyd still running after "
	    "5 s",
	    b->what, mode);
	ck_assert_msg(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 1,
	    "%s (%s): tardyd %s, want exit 1; stderr:\n%s", b->what, mode,
	    harness_status_str(h, r->status), harness_tail(r->err, 1000));
	line = error_line(r->err, conf, b->line);
	ck_assert_msg(line != NULL, "%s (%s): no \"%s:%d:\" on stderr:\n%s",
	    b->what, mode, conf, b->line, harness_tail(r->err, 1000));
	for (int i = 0; i < 3 && b->words[i] != NULL; i++)
		named = named || strstr(line, b->words[i]) != NULL;
	ck_assert_msg(named, "%s (%s): the error does not name \"%s\": %s",
	    b->what, mode, b->words[0], line);
	ck_assert_msg(strstr(r->out, "configuration OK") == NULL,
	    "%s (%s): says \"configuration OK\"", b->what, mode);
}

START_TEST(test_bad_config_table)
{
	const struct bad_config *b = &bad_configs[_i];
	const char *conf = harness_write_file(h, "bad.conf", "%s", b->text);
	const char *ready = harness_path(h, "ready.json");
	const struct harness_run *r;

	r = harness_tardyd_run(h, 5000, "-t", "-c", conf, NULL);
	check_rejection(b, conf, r, "-t");

	r = harness_tardyd_run(h, 5000, "-a", "127.0.0.1:0", "--ready-file",
	    ready, "-c", conf, NULL);
	check_rejection(b, conf, r, "start");
	ck_assert_msg(access(ready, F_OK) == -1,
	    "%s: ready file written by a daemon that did not start", b->what);
}
END_TEST

/* --- check mode -------------------------------------------------------- */

START_TEST(test_check_shipped_config)
{
	const char		 *conf = TOP_SRCDIR "/conf/tardy.conf";
	const struct harness_run *r = harness_tardyd_run(h, 5000, "-t", "-c",
	    conf, NULL);

	ck_assert_msg(!r->timed_out, "tardyd -t still running after 5 s");
	ck_assert_msg(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
	    "tardyd -t -c %s: %s; stderr:\n%s", conf,
	    harness_status_str(h, r->status), harness_tail(r->err, 1500));
	ck_assert_msg(strstr(r->out, "configuration OK") != NULL,
	    "stdout \"%s\" lacks \"configuration OK\"",
	    harness_tail(r->out, 500));
}
END_TEST

START_TEST(test_check_good_config_long_option)
{
	/* --check validates only: it must not create the unix listener. */
	const struct harness_addr *port = harness_closed_port(h, AF_INET);
	const char		  *conf = harness_write_file(h, "good.conf",
			   "[tardy]\n"
					  "api = 127.0.0.1:0\n"
					  "seed = 42\n"
					  "log_level = debug\n"
					  "\n"
					  "[proxy a]\n"
					  "listen = 127.0.0.1:0\n"
					  "upstream = 127.0.0.1:6379\n"
					  "enabled = no\n"
					  "connect_timeout = 2000\n"
					  "\n"
					  "[proxy b]\n"
					  "listen = [::1]:0\n"
					  "upstream = unix:/tmp/nowhere.sock\n"
					  "enabled = true\n"
					  "\n"
					  "[proxy c]\n"
					  "listen = unix:%s\n"
					  "upstream = %s\n",
			   harness_path(h, "c.sock"), port->text);
	const struct harness_run  *r = harness_tardyd_run(h, 5000, "--check",
	     "--config", conf, NULL);

	ck_assert_msg(!r->timed_out, "tardyd --check still running after 5 s");
	ck_assert_msg(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
	    "tardyd --check: %s; stderr:\n%s", harness_status_str(h, r->status),
	    harness_tail(r->err, 1500));
	ck_assert_msg(strstr(r->out, "configuration OK") != NULL,
	    "stdout \"%s\" lacks \"configuration OK\"",
	    harness_tail(r->out, 500));
	ck_assert_msg(access(harness_path(h, "c.sock"), F_OK) == -1,
	    "--check created the unix listener");
}
END_TEST

static Suite *
reload_suite(void)
{
	Suite *s = suite_create("reload");
	TCase *tc;

	tc = tcase_create("sighup");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_reload_adds_and_removes);
	tcase_add_test(tc, test_reload_unchanged_keeps_port_and_connections);
	tcase_add_test(tc, test_reload_changed_upstream_restarts);
	tcase_add_test(tc, test_reload_changed_listen_moves);
	tcase_add_test(tc, test_reload_keeps_command_line_proxies);
	suite_add_tcase(s, tc);

	tc = tcase_create("sighup_bad_config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_reload_broken_config_keeps_old);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad_config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_bad_config_at_start);
	tcase_add_loop_test(tc, test_bad_config_table, 0, NBAD);
	suite_add_tcase(s, tc);

	tc = tcase_create("check_mode");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_check_shipped_config);
	tcase_add_test(tc, test_check_good_config_long_option);
	suite_add_tcase(s, tc);

	return (s);
}

int
main(void)
{
	SRunner *sr = srunner_create(reload_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
