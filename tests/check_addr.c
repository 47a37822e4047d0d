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
	const char	*in;
	int		 family;
	const char	*out;
};

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

START_TEST(test_parse_good)
{
	const struct good	*g = &goods[_i];
	struct addr		 a;
	char			 err[256], buf[ADDR_STRLEN];

	ck_assert_msg(addr_parse(g->in, &a, err, sizeof(err)) == 0,
	    "%s: %s", g->in, err);
	if (g->family != -1)
		ck_assert_int_eq(addr_family(&a), g->family);
	if (g->out != NULL)
		ck_assert_str_eq(addr_fmt(&a, buf, sizeof(buf)), g->out);
	if (strncmp(g->in, "localhost", 9) == 0)
		ck_assert_int_eq(addr_port(&a), 6379);
}
END_TEST

struct bad {
	const char	*in;
	const char	*msg;	/* a phrase the error must contain */
};

/*
 * No unresolvable host name here: resolving one would send a DNS query
 * off this machine. "localhost" above comes from /etc/hosts.
 */
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

START_TEST(test_parse_bad)
{
	const struct bad	*b = &bads[_i];
	struct addr		 a;
	char			 err[256] = "";

	ck_assert_msg(addr_parse(b->in, &a, err, sizeof(err)) == -1,
	    "\"%s\" parsed", b->in);
	ck_assert_msg(strstr(err, b->msg) != NULL,
	    "\"%s\": \"%s\" lacks \"%s\"", b->in, err, b->msg);
}
END_TEST

START_TEST(test_unix_too_long)
{
	struct addr	a;
	char		in[300], err[256];

	memset(in, 'x', sizeof(in));
	memcpy(in, "unix:/", 6);
	in[sizeof(in) - 1] = '\0';
	ck_assert_int_eq(addr_parse(in, &a, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
}
END_TEST

START_TEST(test_equal_and_loopback)
{
	struct addr	a, b, c;
	char		err[256];

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
	Suite	*s = suite_create("addr");
	TCase	*tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse_good, 0,
	    sizeof(goods) / sizeof(goods[0]));
	tcase_add_loop_test(tc, test_parse_bad, 0,
	    sizeof(bads) / sizeof(bads[0]));
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
	SRunner	*sr = srunner_create(addr_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
