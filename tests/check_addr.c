/*
 * Unit tests for address parsing and printing.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

struct good {
	const char *in;
	int	    family;
	const char *out;
};

/* clang-format off */
static const struct good goods[] = {
	{ "127.0.0.1:80",		AF_INET,	"127.0.0.1:80" },
	{ "127.0.0.1:0",		AF_INET,	"127.0.0.1:0" },
	{ "0.0.0.0:65535",		AF_INET,	"0.0.0.0:65535" },
	{ "[::1]:8474",			AF_INET6,	"[::1]:8474" },
	{ "[::]:1",			AF_INET6,	"[::]:1" },
	{ "[fe80::1]:22",		AF_INET6,	"[fe80::1]:22" },
	{ "localhost:6379",		-1,		NULL },
	{ "unix:/tmp/x.sock",		AF_UNIX,	"unix:/tmp/x.sock" },
	{ "unix:relative.sock",		AF_UNIX,	"unix:relative.sock" },
};
/* clang-format on */

START_TEST(test_parse_good)
{
	const struct good *g = &goods[_i];
	struct addr	   a;
	char		   err[256], buf[ADDR_STRLEN];

	ck_assert_msg(addr_parse(g->in, &a, err, sizeof(err)) == 0, "%s: %s",
	    g->in, err);
	if (g->family != -1)
		ck_assert_int_eq(addr_family(&a), g->family);
	if (g->out != NULL)
		ck_assert_str_eq(addr_fmt(&a, buf, sizeof(buf)), g->out);
	if (strncmp(g->in, "localhost", 9) == 0)
		ck_assert_int_eq(addr_port(&a), 6379);
}
END_TEST

struct bad {
	const char *in;
	const char *msg; /* a phrase the error must contain */
};

/*
 * No unresolvable host name here: resolving one would send a DNS query
 * off this machine. "localhost" above comes from /etc/hosts.
 */
/* clang-format off */
static const struct bad bads[] = {
	{ "",				"invalid address" },
	{ "127.0.0.1",			"expected host:port" },
	{ "127.0.0.1:",			"invalid port" },
	{ "127.0.0.1:65536",		"invalid port" },
	{ "127.0.0.1:-1",		"invalid port" },
	{ "127.0.0.1:80x",		"invalid port" },
	{ "127.0.0.1: 80",		"invalid port" },
	{ ":80",			"missing host" },
	{ "::1:80",			"[v6addr]:port" },
	{ "[::1]80",			"[v6addr]:port" },
	{ "[::1",			"[v6addr]:port" },
	{ "[]:80",			"invalid address" },
	{ "[127.0.0.1]:80",		"cannot resolve" },
	{ "unix:",			"empty unix socket path" },
};
/* clang-format on */

START_TEST(test_parse_bad)
{
	const struct bad *b = &bads[_i];
	struct addr	  a;
	char		  err[256] = "";

	ck_assert_msg(addr_parse(b->in, &a, err, sizeof(err)) == -1,
	    "\"%s\" parsed", b->in);
	ck_assert_msg(strstr(err, b->msg) != NULL,
	    "\"%s\": \"%s\" lacks \"%s\"", b->in, err, b->msg);
}
END_TEST

/*
 * Upstreams: a host name is only checked for form, never looked up, so
 * it may be one that resolves later (a service not started yet).
 */
struct lazy {
	const char *in;
	int	    ok;
	const char *name; /* the name addr_name() gives back */
	int	    port;
};

/* clang-format off */
static const struct lazy lazies[] = {
	{ "redis:6379",			1, "redis",		6379 },
	{ "db.tardy.invalid:5432",	1, "db.tardy.invalid",	5432 },
	{ "my_service-1.ns.svc.:80",	1, "my_service-1.ns.svc.", 80 },
	{ "127.0.0.1:80",		1, NULL,		0 },
	{ "[::1]:80",			1, NULL,		0 },
	{ "unix:/tmp/x",		1, NULL,		0 },
	{ "-redis:6379",		0, NULL,		0 },
	{ "redis-:6379",		0, NULL,		0 },
	{ "re dis:6379",		0, NULL,		0 },
	{ "a..b:80",			0, NULL,		0 },
	{ ".a:80",			0, NULL,		0 },
	{ "1.2.3.400:80",		0, NULL,		0 },
	{ "[redis]:80",			0, NULL,		0 },
	{ "redis:99999",		0, NULL,		0 },
	{ "redis",			0, NULL,		0 },
	{ "x.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1",
					0, NULL,		0 },
};
/* clang-format on */

START_TEST(test_parse_lazy)
{
	const struct lazy *l = &lazies[_i];
	struct addr	   a;
	char		   err[256] = "", host[256];
	int		   port = -1, rc;

	rc = addr_parse_lazy(l->in, &a, err, sizeof(err));
	ck_assert_msg((rc == 0) == l->ok, "\"%s\": %d (%s)", l->in, rc, err);
	if (!l->ok) {
		ck_assert_msg(err[0] != '\0', "\"%s\": no message", l->in);
		return;
	}
	ck_assert_int_eq(addr_name(l->in, host, sizeof(host), &port),
	    l->name != NULL);
	if (l->name != NULL) {
		ck_assert_int_eq(addr_family(&a), AF_UNSPEC);
		ck_assert_str_eq(host, l->name);
		ck_assert_int_eq(port, l->port);
	} else
		ck_assert_int_ne(addr_family(&a), AF_UNSPEC);
}
END_TEST

START_TEST(test_unix_too_long)
{
	struct addr a;
	char	    in[300], err[256];

	memset(in, 'x', sizeof(in));
	memcpy(in, "unix:/", 6);
	in[sizeof(in) - 1] = '\0';
	ck_assert_int_eq(addr_parse(in, &a, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
}
END_TEST

START_TEST(test_equal_and_loopback)
{
	struct addr a, b, c;
	char	    err[256];

	ck_assert_int_eq(addr_parse("127.0.0.1:80", &a, err, sizeof(err)), 0);
	ck_assert_int_eq(addr_parse("127.0.0.1:80", &b, err, sizeof(err)), 0);
	ck_assert_int_eq(addr_parse("127.0.0.1:81", &c, err, sizeof(err)), 0);
	ck_assert(addr_equal(&a, &b));
	ck_assert(!addr_equal(&a, &c));
	ck_assert(addr_is_loopback(&a));
	ck_assert_int_eq(addr_parse("127.9.9.9:1", &a, err, sizeof(err)), 0);
	ck_assert(addr_is_loopback(&a));
	ck_assert_int_eq(addr_parse("[::1]:1", &a, err, sizeof(err)), 0);
	ck_assert(addr_is_loopback(&a));
	ck_assert_int_eq(addr_parse("0.0.0.0:1", &a, err, sizeof(err)), 0);
	ck_assert(!addr_is_loopback(&a));
	ck_assert_int_eq(addr_parse("[::]:1", &a, err, sizeof(err)), 0);
	ck_assert(!addr_is_loopback(&a));
	ck_assert_int_eq(addr_parse("unix:/x", &a, err, sizeof(err)), 0);
	ck_assert(addr_is_loopback(&a));
	addr_set_port(&c, 0);
	ck_assert_int_eq(addr_port(&c), 0);
}
END_TEST

static Suite *
addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse_good, 0,
	    sizeof(goods) / sizeof(goods[0]));
	tcase_add_loop_test(tc, test_parse_bad, 0,
	    sizeof(bads) / sizeof(bads[0]));
	tcase_add_loop_test(tc, test_parse_lazy, 0,
	    sizeof(lazies) / sizeof(lazies[0]));
	tcase_add_test(tc, test_unix_too_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("compare");
	tcase_add_test(tc, test_equal_and_loopback);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner *sr = srunner_create(addr_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
