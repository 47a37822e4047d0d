/*
 * Unit tests for the configuration parser: the shipped example, a full
 * good file, and a table of bad files, each of which must produce the
 * right message at the right line.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[] = "/tmp/check_config.XXXXXX";

static struct config *
load(const char *text)
{
	struct config *conf;
	FILE	      *fp;
	int	       fd;

	strcpy(path, "/tmp/check_config.XXXXXX");
	if ((fd = mkstemp(path)) == -1 || (fp = fdopen(fd, "w")) == NULL)
		ck_abort_msg("mkstemp");
	fputs(text, fp);
	fclose(fp);
	conf = config_new();
	(void)config_load(conf, path);
	(void)config_finish(conf);
	unlink(path);
	return (conf);
}

START_TEST(test_shipped_example)
{
	struct config *conf = config_new();

	ck_assert_int_eq(config_load(conf, TOP_SRCDIR "/conf/tardy.conf"), 0);
	ck_assert_int_eq(config_finish(conf), 0);
	ck_assert_ptr_nonnull(config_find_proxy(conf, "example"));
	config_free(conf);
}
END_TEST

START_TEST(test_good)
{
	struct config	  *conf;
	struct proxy_conf *pc;
	struct toxic_conf *tc;

	conf = load("# comment\n"
		    "; another\n"
		    "[tardy]\n"
		    "api = unix:/tmp/x.sock\n"
		    "seed = 3735928559\n"
		    "log_level = debug ; inline comment\n"
		    "\n"
		    "[proxy db]\n"
		    "  listen = 127.0.0.1:0\n"
		    "upstream=[::1]:5432\n"
		    "enabled = no\n"
		    "connect_timeout = 0250\n"
		    "[proxy web]\n"
		    "listen = unix:/tmp/web.sock\n"
		    "upstream = localhost:80\n"
		    "[toxic db slow]\n"
		    "type = latency\n"
		    "stream = upstream\n"
		    "toxicity = 0.5\n"
		    "latency = 100\n"
		    "jitter = 10\n");
	ck_assert_msg(conf->nerrors == 0, "%s", conf->errors[0]);
	ck_assert_uint_eq(conf->seed, 0xdeadbeef);
	ck_assert_int_eq(conf->log_level, LOG_LEVEL_DEBUG);
	pc = config_find_proxy(conf, "db");
	ck_assert_ptr_nonnull(pc);
	ck_assert_int_eq(pc->enabled, 0);
	ck_assert_uint_eq(pc->connect_timeout, 250);
	ck_assert_str_eq(pc->upstream_str, "[::1]:5432");
	pc = config_find_proxy(conf, "web");
	ck_assert_ptr_nonnull(pc);
	ck_assert_int_eq(pc->enabled, 1);
	ck_assert_uint_eq(pc->connect_timeout, CONFIG_DEFAULT_CONNECT_TIMEOUT);
	tc = TAILQ_FIRST(&conf->toxics);
	ck_assert_ptr_nonnull(tc);
	ck_assert_str_eq(tc->type, "latency");
	ck_assert(tc->toxicity == 0.5);
	config_free(conf);
}
END_TEST

struct bad {
	const char *text;
	int	    line;
	const char *msg;
};

#define P "[proxy a]\nlisten = 127.0.0.1:0\nupstream = 127.0.0.1:1\n"
/* clang-format off */
static const struct bad bads[] = {
	{ "[tardy]\nbogus = 1\n", 2, "unknown key \"bogus\" in section [tardy]" },
	{ "[nope]\n", 1, "unknown section [nope]" },
	{ "[proxy]\n", 1, "expected [proxy NAME]" },
	{ "[proxy a b]\n", 1, "expected [proxy NAME]" },
	{ "[proxy a/b]\n", 1, "invalid proxy name \"a/b\"" },
	{ "[tardy\n", 1, "missing ']'" },
	{ "key = 1\n", 1, "outside any section" },
	{ "[tardy]\njust words\n", 2, "expected key = value" },
	{ "[tardy]\nkey: value\n", 2, "expected key = value" },
	{ "[tardy]\n= value\n", 2, "expected key = value" },
	{ "[tardy]\nseed = -1\n", 2, "seed: invalid value \"-1\"" },
	{ "[tardy]\nseed = 18446744073709551616\n", 2, "seed: invalid value" },
	{ "[tardy]\nlog_level = loud\n", 2, "log_level: invalid value \"loud\"" },
	{ "[tardy]\napi = 10.0.0.1:8474\n", 0, "api_token" },
	{ "[tardy]\napi = nowhere\n", 2, "api: invalid address \"nowhere\"" },
	{ "[tardy]\nseed = 1\nseed = 2\n", 3, "duplicate key \"seed\"" },
	{ "[tardy]\n[tardy]\n", 2, "duplicate section [tardy]" },
	{ P "bogus = 1\n", 4, "unknown key \"bogus\" in section [proxy a]" },
	{ P "enabled = maybe\n", 4, "enabled: invalid value \"maybe\"" },
	{ P "connect_timeout = 0\n", 4, "connect_timeout: invalid value \"0\"" },
	{ P "connect_timeout = 1.5\n", 4, "connect_timeout: invalid value" },
	{ P "listen = 127.0.0.1:1\n", 4, "duplicate key \"listen\"" },
	{ "[proxy a]\nlisten = 127.0.0.1:99999\n", 2,
	    "listen: invalid port \"99999\"" },
	{ "[proxy a]\nlisten = 127.0.0.1:0\n", 1, "missing key \"upstream\"" },
	{ "[proxy a]\nupstream = 127.0.0.1:1\n", 1, "missing key \"listen\"" },
	{ P P, 4, "duplicate proxy name \"a\"" },
	{ "[proxy a]\nlisten = 127.0.0.1:7\nupstream = 127.0.0.1:1\n"
	  "[proxy b]\nlisten = 127.0.0.1:7\nupstream = 127.0.0.1:1\n", 4,
	    "listen address 127.0.0.1:7 already used by proxy \"a\"" },
	{ P "[toxic a t]\nstream = upstream\n", 4, "missing key \"type\"" },
	{ P "[toxic b t]\ntype = noop\n", 4, "unknown proxy \"b\"" },
	{ P "[toxic a t]\ntype = nope\n", 5, "invalid toxic type" },
	{ P "[toxic a t]\ntype = noop\nstream = sideways\n", 6,
	    "stream was invalid" },
	{ P "[toxic a t]\ntype = latency\nlatency = -5\n", 6,
	    "attribute latency must be between 0" },
	{ P "[toxic a t]\ntype = latency\nlatency = 1.5\n", 6,
	    "attribute latency must be an integer" },
	{ P "[toxic a t]\ntype = latency\nlatncy = 5\n", 6,
	    "unknown key \"latncy\" for toxic type latency" },
	{ P "[toxic a t]\ntype = noop\ntoxicity = 2\n", 6,
	    "toxicity: invalid value \"2\"" },
	{ P "[toxic a t]\ntype = slicer\naverage_size = 0\n", 6,
	    "attribute average_size must be between 1" },
	{ P "[toxic a t]\ntype = bandwidth\nrate = -1\n", 6,
	    "attribute rate must be between 0" },
	{ P "[toxic a t]\ntype = refuse\nevery = 2\n", 6,
	    "does not apply to refuse" },
	/* Numbers are decimal and finite, or an error naming the line. */
	{ P "[toxic a t]\ntype = latency\nlatency = inf\n", 6,
	    "attribute latency must be an integer" },
	{ P "[toxic a t]\ntype = latency\nlatency = nan\n", 6,
	    "attribute latency must be an integer" },
	{ P "[toxic a t]\ntype = latency\nlatency = 0x10\n", 6,
	    "attribute latency must be an integer" },
	{ P "[toxic a t]\ntype = latency\nlatency = 1e999\n", 6,
	    "attribute latency must be an integer" },
	{ P "[toxic a t]\ntype = latency\nbogus = nan\n", 6,
	    "unknown key \"bogus\" for toxic type latency" },
	{ P "[toxic a t]\ntype = noop\ntoxicity = nan\n", 6,
	    "toxicity: invalid value \"nan\"" },
	{ P "[toxic a t]\ntype = noop\ntoxicity = 0x0.8\n", 6,
	    "toxicity: invalid value \"0x0.8\"" },
	{ "[tardy]\nseed = 0x10\n", 2, "seed: invalid value \"0x10\"" },
	{ P "connect_timeout = 0x100\n", 4, "connect_timeout: invalid value" },
};
/* clang-format on */

START_TEST(test_bad)
{
	const struct bad *b = &bads[_i];
	struct config	 *conf = load(b->text);
	char		  want[64];

	ck_assert_msg(conf->nerrors > 0, "no error for: %s", b->text);
	if (b->line > 0)
		snprintf(want, sizeof(want), "%s:%d: ", path, b->line);
	else
		snprintf(want, sizeof(want), "%s: ", path);
	ck_assert_msg(strncmp(conf->errors[0], want, strlen(want)) == 0,
	    "\"%s\" does not start with \"%s\"", conf->errors[0], want);
	ck_assert_msg(strstr(conf->errors[0], b->msg) != NULL,
	    "\"%s\" lacks \"%s\"", conf->errors[0], b->msg);
	config_free(conf);
}
END_TEST

START_TEST(test_all_errors_reported)
{
	struct config *conf = load("[tardy]\nbogus = 1\nseed = x\n[zz]\n");

	ck_assert_uint_eq(conf->nerrors, 3);
	config_free(conf);
}
END_TEST

START_TEST(test_missing_file)
{
	struct config *conf = config_new();

	ck_assert_int_eq(config_load(conf, "/nonexistent/tardy.conf"), -1);
	ck_assert_str_eq(conf->errors[0],
	    "/nonexistent/tardy.conf: No such file or directory");
	config_free(conf);
}
END_TEST

START_TEST(test_proxy_arg)
{
	struct config *conf = config_new();

	ck_assert_int_eq(config_add_proxy_arg(conf,
			     "x=127.0.0.1:0=unix:/tmp/u.sock"),
	    0);
	ck_assert_int_eq(config_add_proxy_arg(conf, "x=127.0.0.1:0=[::1]:1"),
	    -1);
	ck_assert_int_eq(config_add_proxy_arg(conf, "y=127.0.0.1:0"), -1);
	ck_assert_int_eq(config_add_proxy_arg(conf, "z=127.0.0.1=1:1"), -1);
	ck_assert_int_eq(config_finish(conf), 3);
	ck_assert_ptr_nonnull(strstr(conf->errors[0], "duplicate proxy name"));
	ck_assert_ptr_nonnull(strstr(conf->errors[1], "NAME=LISTEN=UPSTREAM"));
	ck_assert_ptr_nonnull(strstr(conf->errors[2], "expected host:port"));
	config_free(conf);
}
END_TEST

/* threads = auto in a container: its CPU limit, from cgroup v2 or v1. */
START_TEST(test_cpu_quota)
{
	ck_assert_uint_eq(config_cpu_quota("max 100000\n"), 0);
	ck_assert_uint_eq(config_cpu_quota("200000 100000\n"), 2);
	ck_assert_uint_eq(config_cpu_quota("50000 100000"), 1);	 /* 500m */
	ck_assert_uint_eq(config_cpu_quota("150000 100000"), 2); /* 1.5 */
	ck_assert_uint_eq(config_cpu_quota("-1 100000"), 0);	 /* v1: none */
	ck_assert_uint_eq(config_cpu_quota(""), 0);
	ck_assert_uint_eq(config_cpu_quota("100000 0"), 0);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("good");
	tcase_add_test(tc, test_shipped_example);
	tcase_add_test(tc, test_good);
	tcase_add_test(tc, test_proxy_arg);
	tcase_add_test(tc, test_cpu_quota);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bads) / sizeof(bads[0]));
	tcase_add_test(tc, test_all_errors_reported);
	tcase_add_test(tc, test_missing_file);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
