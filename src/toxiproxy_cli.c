/*
 * The command line of Toxiproxy's server, for tardyd started under the
 * name toxiproxy-server: suites, scripts and container images that start
 * Toxiproxy start tardyd unchanged.
 *
 * The flags are Toxiproxy 2.12's (cmd/server/server.go) in the syntax of
 * Go's flag package: "-flag", "--flag", "-flag=value" and "-flag value"
 * (the last one not for booleans); parsing stops at the first argument
 * that is not a flag, or after "--", and what follows is ignored, as
 * toxiproxy-server ignores it. Errors and -help behave as flag.Parse()
 * with ExitOnError: exit 2 and 0.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "tardy.h"
#include "toxiproxy_cli.h"
#include "util.h"

enum toxiproxy_flag_kind {
	FLAG_STRING,
	FLAG_INT64,
	FLAG_BOOL,
};

struct toxiproxy_flag {
	const char		*name;
	enum toxiproxy_flag_kind kind;
	const char		*usage;
	const char		*def; /* shown in the usage */
};

/* In the order Go's usage lists them: sorted by name. */
/* clang-format off */
static const struct toxiproxy_flag toxiproxy_flags[] = {
	{ "config", FLAG_STRING,
	    "JSON file containing proxies to create on startup", NULL },
	{ "host", FLAG_STRING,
	    "Host for toxiproxy's API to listen on", "localhost" },
	{ "port", FLAG_STRING,
	    "Port for toxiproxy's API to listen on", "8474" },
	{ "proxy-metrics", FLAG_BOOL,
	    "enable toxiproxy-specific prometheus metrics (default \"false\"; "
	    "tardyd's are always on)", NULL },
	{ "runtime-metrics", FLAG_BOOL,
	    "enable runtime-related prometheus metrics (default \"false\"; "
	    "accepted, no effect)", NULL },
	{ "seed", FLAG_INT64,
	    "Seed for randomizing toxics with (tardyd's default: 1, so runs "
	    "repeat)", NULL },
	{ "version", FLAG_BOOL,
	    "print the version (default \"false\")", NULL },
};
/* clang-format on */
#define TOXIPROXY_NFLAGS (sizeof(toxiproxy_flags) / sizeof(toxiproxy_flags[0]))

static void
toxiproxy_cli_usage(FILE *fp)
{
	const struct toxiproxy_flag *f;
	size_t			     i;

	fprintf(fp,
	    "Usage of toxiproxy-server (tardyd %s, Toxiproxy's "
	    "flags):\n",
	    PACKAGE_VERSION);
	for (i = 0; i < TOXIPROXY_NFLAGS; i++) {
		f = &toxiproxy_flags[i];
		fprintf(fp, "  -%s%s\n    \t%s", f->name,
		    f->kind == FLAG_STRING    ? " string" :
			f->kind == FLAG_INT64 ? " int" :
						"",
		    f->usage);
		if (f->def != NULL)
			fprintf(fp, " (default \"%s\")", f->def);
		fputc('\n', fp);
	}
	fprintf(fp,
	    "Environment: LOG_LEVEL (trace, debug, info, warn, "
	    "error).\nSee tardyd(8) for tardyd's own options.\n");
}

static void __attribute__((noreturn, format(printf, 1, 2)))
toxiproxy_cli_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	toxiproxy_cli_usage(stderr);
	exit(2);
}

/* strconv.ParseBool */
static int
toxiproxy_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true",
		"True", NULL };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false",
		"False", NULL };
	size_t			 i;

	for (i = 0; yes[i] != NULL; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = 1;
			return (0);
		}
	}
	for (i = 0; no[i] != NULL; i++) {
		if (strcmp(s, no[i]) == 0) {
			*out = 0;
			return (0);
		}
	}
	return (-1);
}

/* strconv.ParseInt(s, 0, 64): decimal, 0x, 0o, 0b and _ as Go has them. */
static int
toxiproxy_parse_int64(const char *s, int64_t *out)
{
	char	   *end;
	long long   v;
	int	    base = 10;
	const char *p = s;

	if (*p == '+' || *p == '-')
		p++;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		base = 16;
	else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
		base = 8;
	else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
		base = 2;
	if (*p == '\0' || strchr(s, '_') != NULL)
		return (-1);
	if (base != 10) {
		char buf[80];

		/* strtoll takes 0x itself, not 0o or 0b. */
		if (strlen(s) >= sizeof(buf))
			return (-1);
		snprintf(buf, sizeof(buf), "%.*s%s", (int)(p - s), s, p + 2);
		if (buf[p - s] == '\0' || buf[p - s] == '+' ||
		    buf[p - s] == '-')
			return (-1);
		errno = 0;
		v = strtoll(buf, &end, base);
	} else {
		errno = 0;
		v = strtoll(s, &end, 10);
	}
	if (errno != 0 || *end != '\0')
		return (-1);
	*out = v;
	return (0);
}

/* zerolog.ParseLevel's names, onto ours. */
static void
toxiproxy_cli_log_level(struct toxiproxy_cli *cli)
{
	struct tardy_options *opts = cli->opts;
	const char	     *v = getenv("LOG_LEVEL");

	if (v == NULL)
		return;
	if (strcasecmp(v, "trace") == 0 || strcasecmp(v, "debug") == 0)
		opts->log_level = LOG_LEVEL_DEBUG;
	else if (strcasecmp(v, "info") == 0 || *v == '\0')
		opts->log_level = LOG_LEVEL_INFO;
	else if (strcasecmp(v, "warn") == 0)
		opts->log_level = LOG_LEVEL_WARN;
	else if (strcasecmp(v, "error") == 0 || strcasecmp(v, "fatal") == 0 ||
	    strcasecmp(v, "panic") == 0 || strcasecmp(v, "disabled") == 0)
		opts->log_level = LOG_LEVEL_ERROR;
	else
		cli->warning = "unknown LOG_LEVEL value, using info";
}

static void
toxiproxy_cli_set(struct toxiproxy_cli *cli, const struct toxiproxy_flag *f,
    const char *value)
{
	int64_t v;
	int	b;

	switch (f->kind) {
	case FLAG_BOOL:
		if (toxiproxy_parse_bool(value, &b) == -1)
			toxiproxy_cli_fail("invalid boolean value \"%s\" for "
					   "-%s: parse error",
			    value, f->name);
		if (strcmp(f->name, "version") == 0)
			cli->version = b;
		/* -proxy-metrics, -runtime-metrics: nothing to switch. */
		return;
	case FLAG_INT64:
		if (toxiproxy_parse_int64(value, &v) == -1)
			toxiproxy_cli_fail("invalid value \"%s\" for flag -%s: "
					   "parse error",
			    value, f->name);
		cli->opts->seed = (uint64_t)v;
		cli->opts->seed_set = 1;
		return;
	case FLAG_STRING:
		if (strcmp(f->name, "host") == 0)
			cli->host = value;
		else if (strcmp(f->name, "port") == 0)
			cli->port = value;
		else
			cli->opts->conf_path = value;
		return;
	}
}

/*
 * Fill opts from Toxiproxy's flags. Exits as Go's flag package would on
 * an error or -help; cli->version says -version was given.
 */
void
toxiproxy_cli_parse(struct toxiproxy_cli *cli, int argc, char **argv)
{
	const struct toxiproxy_flag *f;
	const char		    *arg, *name, *eq;
	size_t			     i, len;
	int			     k;

	cli->host = "localhost";
	cli->port = "8474";
	toxiproxy_cli_log_level(cli);
	for (k = 1; k < argc; k++) {
		arg = argv[k];
		if (arg[0] != '-' || arg[1] == '\0')
			break; /* the first non-flag ends them */
		name = arg + 1;
		if (*name == '-') {
			name++;
			if (*name == '\0') { /* "--" */
				k++;
				break;
			}
		}
		if (*name == '-' || *name == '=')
			toxiproxy_cli_fail("bad flag syntax: %s", arg);
		eq = strchr(name, '=');
		len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		if ((len == 1 && *name == 'h') ||
		    (len == 4 && strncmp(name, "help", 4) == 0)) {
			toxiproxy_cli_usage(stdout);
			exit(0);
		}
		for (i = 0; i < TOXIPROXY_NFLAGS; i++) {
			f = &toxiproxy_flags[i];
			if (strlen(f->name) == len &&
			    strncmp(f->name, name, len) == 0)
				break;
		}
		if (i == TOXIPROXY_NFLAGS) {
			toxiproxy_cli_fail("flag provided but not defined: "
					   "-%.*s",
			    (int)len, name);
		}
		if (eq != NULL)
			toxiproxy_cli_set(cli, f, eq + 1);
		else if (f->kind == FLAG_BOOL)
			toxiproxy_cli_set(cli, f, "true");
		else if (k + 1 < argc)
			toxiproxy_cli_set(cli, f, argv[++k]);
		else
			toxiproxy_cli_fail("flag needs an argument: -%s",
			    f->name);
	}

	/*
	 * net.JoinHostPort(host, port). Go listens on the first IPv4
	 * address of a name, which for "localhost" is 127.0.0.1.
	 */
	if (strcmp(cli->host, "localhost") == 0)
		cli->host = "127.0.0.1";
	if (asprintf(&cli->api,
		strchr(cli->host, ':') != NULL ? "[%s]:%s" : "%s:%s", cli->host,
		cli->port) == -1)
		fatal("asprintf");
	cli->opts->api = cli->api;
	/* Toxiproxy serves any -host without a token, and so do we. */
	cli->opts->api_open = 1;
}

/* Whether argv[0] asks for Toxiproxy's command line. */
int
toxiproxy_cli_wanted(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	base = base != NULL ? base + 1 : argv0;
	return (strcmp(base, "toxiproxy-server") == 0);
}
