/*
 * tardyctl: drive a running tardyd (or Toxiproxy) through its HTTP
 * control API from a shell.
 *
 * Each command is one request (ctl_http.c) whose reply is printed as a
 * table (ctl_print.c) or, with --json, as the server sent it; "wait"
 * long-polls the server's events (ctl_wait.c). This file is the command
 * table, the commands and the option parsing.
 */
#include "autoconf.h"

#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "addr.h"
#include "ctl_http.h"
#include "ctl_print.h"
#include "ctl_util.h"
#include "ctl_wait.h"
#include "util.h"

#define CTL_DEFAULT_API		"127.0.0.1:8474"
#define CTL_TIMEOUT_MS		10000

/* Options, as bits, so each command says which it takes. */
#define O_LISTEN	0x001
#define O_UPSTREAM	0x002
#define O_DISABLED	0x004
#define O_TYPE		0x008
#define O_STREAM	0x010
#define O_TOXICITY	0x020
#define O_ATTR		0x040
#define O_NAME		0x080
#define O_PROTOCOL	0x100
#define O_UPFAIL	0x200
#define O_CLOSED_BY	0x400
#define O_COUNT		0x800
#define O_TIMEOUT	0x1000
#define O_SINCE		0x2000
#define O_LAST		O_SINCE

struct ctl {
	struct ctl_http http; /* the API and its token */
	int		json; /* --json: no tables, http echoes */

	/* Command options. */
	int	    given; /* O_* seen */
	const char *listen;
	const char *upstream;
	const char *type;
	const char *stream;
	const char *name;
	const char *protocol;
	const char *upstream_failure;
	double	    toxicity;
	json_t	   *attrs;

	struct ctl_wait wait; /* --closed-by, --count, --timeout, --since */
};

struct ctl_cmd {
	const char *name;
	const char *synopsis;
	int	    minargs;
	int	    maxargs;
	int	    opts;
	int (*run)(struct ctl *, char **);
	const char *help;
};

static const struct ctl_cmd *ctl_find_cmd(int, char **, int *);
static void		     ctl_cmd_usage(const struct ctl_cmd *, FILE *);
static int ctl_usage_error(const struct ctl_cmd *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Percent-encode a name for a URL path: everything but unreserved. */
static char *
ctl_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char		 *out, *o;

	o = out = ctl_util_alloc(strlen(s) * 3 + 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			*o++ = (char)c;
		else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return (out);
}

/* --- commands -------------------------------------------------------- */

/* /proxies/PROXY[/toxics[/TOXIC]], names percent-encoded. */
static int
ctl_path(char *buf, size_t len, const char *proxy, int toxics,
    const char *toxic)
{
	char *ep, *et;
	int   n;

	ep = ctl_escape(proxy);
	et = ctl_escape(toxic != NULL ? toxic : "");
	n = snprintf(buf, len, "/proxies/%s%s%s%s", ep, toxics ? "/toxics" : "",
	    toxic != NULL ? "/" : "", et);
	free(ep);
	free(et);
	if (n < 0 || (size_t)n >= len) {
		ctl_util_warnx("name too long");
		return (-1);
	}
	return (0);
}

static int
ctl_list(struct ctl *ctl, char **argv)
{
	json_t *j;

	if ((j = ctl_http_call(&ctl->http, "GET", "/proxies", NULL, 200)) ==
	    NULL)
		return (EXIT_FAIL);
	if (!ctl->json)
		ctl_print_proxies(j);
	json_decref(j);
	return (0);
}

static int
ctl_show(struct ctl *ctl, char **argv)
{
	char	path[2048];
	json_t *j;

	if (ctl_path(path, sizeof(path), argv[0], 0, NULL) == -1 ||
	    (j = ctl_http_call(&ctl->http, "GET", path, NULL, 200)) == NULL)
		return (EXIT_FAIL);
	if (!ctl->json)
		ctl_print_proxy(j);
	json_decref(j);
	return (0);
}

static int
ctl_create(struct ctl *ctl, char **argv)
{
	json_t *body, *j;

	body = json_pack("{s:s, s:s, s:b}", "name", argv[0], "upstream",
	    ctl->upstream, "enabled", !(ctl->given & O_DISABLED));
	if (body == NULL) {
		ctl_util_warnx("names and addresses must be valid UTF-8");
		return (EXIT_USAGE);
	}
	if (ctl->listen != NULL)
		json_object_set_new(body, "listen", json_string(ctl->listen));
	if (ctl->protocol != NULL)
		json_object_set_new(body, "protocol",
		    json_string(ctl->protocol));
	if (ctl->upstream_failure != NULL)
		json_object_set_new(body, "upstream_failure",
		    json_string(ctl->upstream_failure));
	j = ctl_http_call(&ctl->http, "POST", "/proxies", body, 201);
	json_decref(body);
	if (j == NULL)
		return (EXIT_FAIL);
	if (!ctl->json)
		ctl_print_proxy(j);
	json_decref(j);
	return (0);
}

static int
ctl_simple(struct ctl *ctl, const char *method, const char *path, json_t *body,
    int expect)
{
	json_t *j;

	j = ctl_http_call(&ctl->http, method, path, body, expect);
	json_decref(body);
	if (j == NULL)
		return (EXIT_FAIL);
	json_decref(j);
	return (0);
}

static int
ctl_delete(struct ctl *ctl, char **argv)
{
	char path[2048];

	if (ctl_path(path, sizeof(path), argv[0], 0, NULL) == -1)
		return (EXIT_FAIL);
	return (ctl_simple(ctl, "DELETE", path, NULL, 204));
}

static int
ctl_set_enabled(struct ctl *ctl, char **argv, int on)
{
	char path[2048];

	if (ctl_path(path, sizeof(path), argv[0], 0, NULL) == -1)
		return (EXIT_FAIL);
	return (ctl_simple(ctl, "PATCH", path,
	    json_pack("{s:b}", "enabled", on), 200));
}

static int
ctl_enable(struct ctl *ctl, char **argv)
{
	return (ctl_set_enabled(ctl, argv, 1));
}

static int
ctl_disable(struct ctl *ctl, char **argv)
{
	return (ctl_set_enabled(ctl, argv, 0));
}

static int
ctl_reset(struct ctl *ctl, char **argv)
{
	return (ctl_simple(ctl, "POST", "/reset", NULL, 204));
}

static int
ctl_version(struct ctl *ctl, char **argv)
{
	json_t *j;

	if ((j = ctl_http_call(&ctl->http, "GET", "/version", NULL, 200)) ==
	    NULL)
		return (EXIT_FAIL);
	if (!ctl->json) {
		printf("client: tardyctl %s\n", PACKAGE_VERSION);
		printf("server: %s\n", ctl_print_str(j, "version"));
	}
	json_decref(j);
	return (0);
}

static int
ctl_toxic_print(struct ctl *ctl, json_t *j)
{
	json_t *a;

	if (j == NULL)
		return (EXIT_FAIL);
	if (!ctl->json) {
		a = json_array();
		json_array_append(a, j);
		ctl_print_toxics(a, "");
		json_decref(a);
	}
	json_decref(j);
	return (0);
}

static int
ctl_toxic_add(struct ctl *ctl, char **argv)
{
	char	path[2048];
	json_t *body, *j;

	if (ctl_path(path, sizeof(path), argv[0], 1, NULL) == -1)
		return (EXIT_FAIL);
	body = json_object();
	json_object_set_new(body, "type", json_string(ctl->type));
	if (ctl->name != NULL)
		json_object_set_new(body, "name", json_string(ctl->name));
	if (ctl->stream != NULL)
		json_object_set_new(body, "stream", json_string(ctl->stream));
	if (ctl->given & O_TOXICITY)
		json_object_set_new(body, "toxicity", json_real(ctl->toxicity));
	json_object_set(body, "attributes", ctl->attrs);
	j = ctl_http_call(&ctl->http, "POST", path, body, 200);
	json_decref(body);
	return (ctl_toxic_print(ctl, j));
}

static int
ctl_toxic_update(struct ctl *ctl, char **argv)
{
	char	path[2048];
	json_t *body, *j;

	if (ctl_path(path, sizeof(path), argv[0], 1, argv[1]) == -1)
		return (EXIT_FAIL);
	body = json_object();
	if (ctl->given & O_TOXICITY)
		json_object_set_new(body, "toxicity", json_real(ctl->toxicity));
	if (json_object_size(ctl->attrs) > 0)
		json_object_set(body, "attributes", ctl->attrs);
	j = ctl_http_call(&ctl->http, "PATCH", path, body, 200);
	json_decref(body);
	return (ctl_toxic_print(ctl, j));
}

static int
ctl_toxic_remove(struct ctl *ctl, char **argv)
{
	char path[2048];

	if (ctl_path(path, sizeof(path), argv[0], 1, argv[1]) == -1)
		return (EXIT_FAIL);
	return (ctl_simple(ctl, "DELETE", path, NULL, 204));
}

static int
ctl_toxic_list(struct ctl *ctl, char **argv)
{
	char	path[2048];
	json_t *j;

	if (ctl_path(path, sizeof(path), argv[0], 1, NULL) == -1 ||
	    (j = ctl_http_call(&ctl->http, "GET", path, NULL, 200)) == NULL)
		return (EXIT_FAIL);
	if (!ctl->json)
		ctl_print_toxics(j, "");
	json_decref(j);
	return (0);
}

static int
ctl_wait(struct ctl *ctl, char **argv)
{
	char	path[2048];
	json_t *j;

	/* A misspelt proxy fails now, not at the timeout. */
	if (ctl_path(path, sizeof(path), argv[0], 0, NULL) == -1 ||
	    (j = ctl_http_call(&ctl->http, "GET", path, NULL, 200)) == NULL)
		return (EXIT_FAIL);
	json_decref(j);
	ctl->wait.proxy = argv[0];
	return (ctl_wait_closes(&ctl->http, &ctl->wait));
}

/* clang-format off */
static const struct ctl_cmd ctl_cmds[] = {
	{ "list", "", 0, 0, 0, ctl_list,
"List every proxy: its name, the address it listens on, its upstream,\n"
"whether it is enabled and the names of its toxics.\n" },
	{ "show", "NAME", 1, 1, 0, ctl_show,
"Show proxy NAME and a table of its toxics.\n" },
	{ "create", "NAME -u ADDRESS [-l ADDRESS] [--disabled] "
	    "[--protocol tcp|udp] [--upstream-failure close|reset]", 1, 1,
	    O_LISTEN | O_UPSTREAM | O_DISABLED | O_PROTOCOL | O_UPFAIL,
	    ctl_create,
"Create proxy NAME, forwarding connections to the upstream ADDRESS, and\n"
"show it. The address it listens on is printed resolved, so with the\n"
"default port 0 it shows the port the server picked.\n"
"\n"
"  -l, --listen ADDRESS     where to listen (default 127.0.0.1:0)\n"
"  -u, --upstream ADDRESS   where to forward connections (required)\n"
"      --disabled           create it without accepting connections\n"
"      --protocol PROTO     tcp (default) or udp: forward datagrams\n"
"      --upstream-failure close|reset\n"
"                           when the upstream cannot be reached, the\n"
"                           client reads EOF (close, the default, as with\n"
"                           Toxiproxy) or is reset\n"
"\n"
"Addresses are host:port, [v6addr]:port or unix:/path. An upstream host\n"
"name need not resolve yet: it is looked up when a connection needs it.\n" },
	{ "delete", "NAME", 1, 1, 0, ctl_delete,
"Delete proxy NAME: its listener and its connections are closed.\n" },
	{ "enable", "NAME", 1, 1, 0, ctl_enable,
"Let proxy NAME accept connections again.\n" },
	{ "disable", "NAME", 1, 1, 0, ctl_disable,
"Stop proxy NAME: new connections are refused (tardyd keeps the port)\n"
"and its open connections are closed.\n" },
	{ "toxic add", "PROXY -T TYPE [-s STREAM] [-n NAME] [--toxicity P] "
	    "[-A K=V]...", 1, 1,
	    O_TYPE | O_STREAM | O_TOXICITY | O_ATTR | O_NAME, ctl_toxic_add,
"Add a toxic to PROXY. It acts on open connections at once.\n"
"\n"
"  -T, --type TYPE          latency, bandwidth, slow_close, timeout,\n"
"                           reset_peer, slicer, limit_data, noop, and\n"
"                           tardy's drop_syn, refuse, blackhole, stall\n"
"  -s, --stream STREAM      upstream (client to server) or downstream\n"
"                           (server to client, the default)\n"
"  -n, --name NAME          its name (default TYPE_STREAM)\n"
"      --toxicity P         the probability, per connection, that it\n"
"                           acts there, from 0 to 1 (default 1)\n"
"  -A, --attr KEY=VALUE     an attribute, e.g. latency=100; integers are\n"
"                           sent as JSON integers (repeat for several)\n" },
	{ "toxic update", "PROXY NAME [--toxicity P] [-A K=V]...", 2, 2,
	    O_TOXICITY | O_ATTR, ctl_toxic_update,
"Change toxic NAME of PROXY: the attributes given replace those of the\n"
"same names, the others stay.\n"
"\n"
"      --toxicity P         the new toxicity, from 0 to 1\n"
"  -A, --attr KEY=VALUE     an attribute to change (repeat for several)\n" },
	{ "toxic remove", "PROXY NAME", 2, 2, 0, ctl_toxic_remove,
"Remove toxic NAME from PROXY; what it held back is passed on.\n" },
	{ "toxic list", "PROXY", 1, 1, 0, ctl_toxic_list,
"List the toxics of PROXY.\n" },
	{ "reset", "", 0, 0, 0, ctl_reset,
"Enable every proxy and remove every toxic.\n" },
	{ "wait", "PROXY [--closed-by client|upstream|tardy] [--count N] "
	    "[--timeout MS] [--since ID]", 1, 1,
	    O_CLOSED_BY | O_COUNT | O_TIMEOUT | O_SINCE, ctl_wait,
"Wait until N connections of PROXY have closed, and print the close\n"
"event of each (its verdict: who closed, how, fault_ms, ...) as a line of\n"
"JSON as it happens. Exits 0 once N are printed, 1 at the timeout.\n"
"\n"
"      --closed-by WHO      count only closes made first by WHO: client,\n"
"                           upstream, tardy, or a UDP flow's flow_timeout\n"
"                           (default: any)\n"
"      --count N            how many closes to wait for (default 1)\n"
"      --timeout MS         give up after MS milliseconds (default 10000,\n"
"                           at most 86400000; it cannot be 0)\n"
"      --since ID           count closes after the event ID (default: the\n"
"                           newest event when the command starts, so only\n"
"                           closes from then on count)\n"
"\n"
"To leave no window between a test's action and the wait, read the last\n"
"event's id first (GET /events) and pass it as --since.\n" },
	{ "version", "", 0, 0, 0, ctl_version,
"Print tardyctl's version and the server's.\n" },
};
/* clang-format on */
#define CTL_NCMDS	(sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static void
ctl_usage(FILE *fp)
{
	size_t i;

	fprintf(fp,
	    "usage: tardyctl [-jhV] [-a address] [-t token] command [argument ...]\n"
	    "\n"
	    "tardyctl drives a running tardyd, or Toxiproxy, through its HTTP\n"
	    "control API.\n"
	    "\n"
	    "Commands:\n");
	for (i = 0; i < CTL_NCMDS; i++)
		fprintf(fp, "  tardyctl %s%s%s\n", ctl_cmds[i].name,
		    *ctl_cmds[i].synopsis != '\0' ? " " : "",
		    ctl_cmds[i].synopsis);
	fprintf(fp,
	    "\n"
	    "Options:\n"
	    "  -a, --api ADDRESS   the API to talk to: host:port, [v6addr]:port or\n"
	    "                      unix:/path (default $TARDY_API, else %s)\n"
	    "  -t, --token TOKEN   send \"Authorization: Bearer TOKEN\" (default\n"
	    "                      $TARDY_API_TOKEN)\n"
	    "  -j, --json          print the server's JSON instead of tables\n"
	    "  -h, --help          print this help; \"tardyctl COMMAND -h\" prints a\n"
	    "                      command's\n"
	    "  -V, --version       print tardyctl's version and exit\n"
	    "\n"
	    "Exit status: 0 on success, 1 when the server refuses the request or\n"
	    "cannot be reached (the reason is printed on standard error), 2 for a\n"
	    "usage error.\n"
	    "\n"
	    "Examples:\n"
	    "  tardyctl create redis -l 127.0.0.1:26379 -u 127.0.0.1:6379\n"
	    "  tardyctl toxic add redis -T latency -A latency=300 -A jitter=50\n"
	    "  tardyctl disable redis\n"
	    "  tardyctl wait redis --closed-by client --timeout 2000\n"
	    "  tardyctl -a unix:/run/tardy/api.sock --json list\n",
	    CTL_DEFAULT_API);
}

static void
ctl_cmd_usage(const struct ctl_cmd *c, FILE *fp)
{
	fprintf(fp, "usage: tardyctl [options] %s%s%s\n", c->name,
	    *c->synopsis != '\0' ? " " : "", c->synopsis);
}

static void
ctl_cmd_help(const struct ctl_cmd *c)
{
	ctl_cmd_usage(c, stdout);
	printf("\n%s", c->help);
	printf("\nWith --json, the server's JSON reply is printed as it "
	       "is.\nSee \"tardyctl --help\" for the global options.\n");
}

/* The command named by the first one or two words of argv. */
static const struct ctl_cmd *
ctl_find_cmd(int argc, char **argv, int *words)
{
	size_t	    i;
	const char *sp;
	size_t	    n;

	for (i = 0; i < CTL_NCMDS; i++) {
		sp = strchr(ctl_cmds[i].name, ' ');
		if (sp == NULL) {
			if (argc >= 1 &&
			    strcmp(argv[0], ctl_cmds[i].name) == 0) {
				*words = 1;
				return (&ctl_cmds[i]);
			}
			continue;
		}
		n = (size_t)(sp - ctl_cmds[i].name);
		if (argc >= 2 && strlen(argv[0]) == n &&
		    strncmp(argv[0], ctl_cmds[i].name, n) == 0 &&
		    strcmp(argv[1], sp + 1) == 0) {
			*words = 2;
			return (&ctl_cmds[i]);
		}
	}
	return (NULL);
}

/* VALUE of --attr: an integer, a number, true/false or else a string. */
static json_t *
ctl_attr_value(const char *v)
{
	json_t *j;

	if ((j = util_json_number(v)) != NULL)
		return (j);
	if (strcmp(v, "true") == 0)
		return (json_true());
	if (strcmp(v, "false") == 0)
		return (json_false());
	return (json_string(v));
}

static const char *
ctl_opt_name(int bit)
{
	switch (bit) {
	case O_LISTEN:
		return ("--listen");
	case O_UPSTREAM:
		return ("--upstream");
	case O_DISABLED:
		return ("--disabled");
	case O_TYPE:
		return ("--type");
	case O_STREAM:
		return ("--stream");
	case O_TOXICITY:
		return ("--toxicity");
	case O_ATTR:
		return ("--attr");
	case O_NAME:
		return ("--name");
	case O_PROTOCOL:
		return ("--protocol");
	case O_UPFAIL:
		return ("--upstream-failure");
	case O_CLOSED_BY:
		return ("--closed-by");
	case O_COUNT:
		return ("--count");
	case O_TIMEOUT:
		return ("--timeout");
	case O_SINCE:
		return ("--since");
	}
	return ("?");
}

static int
ctl_usage_error(const struct ctl_cmd *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_util_vwarnx(fmt, ap);
	va_end(ap);
	if (c != NULL) {
		ctl_cmd_usage(c, stderr);
		fprintf(stderr, "Try \"tardyctl %s --help\".\n", c->name);
	} else
		fprintf(stderr, "Try \"tardyctl --help\".\n");
	return (EXIT_USAGE);
}

/* The API address: -a, else $TARDY_API, else the default. */
static int
ctl_set_api(struct ctl *ctl, const char *spec)
{
	char err[256], *s, *slash;
	int  rc;

	/* Accept a URL as Toxiproxy's tools take it: http://host:port/. */
	if (strncasecmp(spec, "http://", 7) == 0)
		spec += 7;
	if ((s = strdup(spec)) == NULL)
		return (-1);
	if (strncmp(s, "unix:", 5) != 0 && (slash = strchr(s, '/')) != NULL &&
	    slash[1] == '\0')
		*slash = '\0';
	rc = addr_parse(s, &ctl->http.api, err, sizeof(err));
	free(s);
	if (rc == -1) {
		ctl_util_warnx("API address: %s", err);
		return (-1);
	}
	addr_fmt(&ctl->http.api, ctl->http.api_str, sizeof(ctl->http.api_str));
	return (0);
}

/* Everything main() does, so it has one place to free what it made. */
static int
ctl_main(struct ctl *ctl, int argc, char **argv)
{
	/* clang-format off */
	static const struct option longopts[] = {
		{ "api",	required_argument,	NULL, 'a' },
		{ "token",	required_argument,	NULL, 't' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
		{ "listen",	required_argument,	NULL, 'l' },
		{ "upstream",	required_argument,	NULL, 'u' },
		{ "disabled",	no_argument,		NULL, 'D' },
		{ "type",	required_argument,	NULL, 'T' },
		{ "stream",	required_argument,	NULL, 's' },
		{ "toxicity",	required_argument,	NULL, 'X' },
		{ "attr",	required_argument,	NULL, 'A' },
		{ "name",	required_argument,	NULL, 'n' },
		{ "protocol",	required_argument,	NULL, 'P' },
		{ "upstream-failure", required_argument, NULL, 'F' },
		{ "closed-by",	required_argument,	NULL, 'B' },
		{ "count",	required_argument,	NULL, 'N' },
		{ "timeout",	required_argument,	NULL, 'W' },
		{ "since",	required_argument,	NULL, 'S' },
		{ NULL,		0,			NULL, 0 }
	};
	/* clang-format on */
	const struct ctl_cmd *cmd;
	json_t		     *num;
	const char	     *api = NULL, *eq;
	char		     *key;
	int		      ch, help = 0, words, nargs, bit;

	ctl->http.token = getenv("TARDY_API_TOKEN");
	if (ctl->http.token != NULL && *ctl->http.token == '\0')
		ctl->http.token = NULL;

	/* Options may come anywhere; the words left are the command. */
	while ((ch = getopt_long(argc, argv, "a:t:jhVl:u:T:s:A:n:", longopts,
		    NULL)) != -1) {
		bit = 0;
		switch (ch) {
		case 'a':
			api = optarg;
			break;
		case 't':
			ctl->http.token = optarg;
			break;
		case 'j':
			ctl->json = 1;
			ctl->http.echo = 1;
			break;
		case 'h':
			help = 1;
			break;
		case 'V':
			printf("tardyctl %s\n", PACKAGE_VERSION);
			return (0);
		case 'l':
			ctl->listen = optarg;
			bit = O_LISTEN;
			break;
		case 'u':
			ctl->upstream = optarg;
			bit = O_UPSTREAM;
			break;
		case 'D':
			bit = O_DISABLED;
			break;
		case 'T':
			ctl->type = optarg;
			bit = O_TYPE;
			break;
		case 's':
			ctl->stream = optarg;
			bit = O_STREAM;
			break;
		case 'X':
			if ((num = util_json_number(optarg)) == NULL)
				return (ctl_usage_error(NULL,
				    "--toxicity: "
				    "not a number: \"%s\"",
				    optarg));
			ctl->toxicity = json_number_value(num);
			json_decref(num);
			bit = O_TOXICITY;
			break;
		case 'A':
			if ((eq = strchr(optarg, '=')) == NULL || eq == optarg)
				return (ctl_usage_error(NULL,
				    "--attr: "
				    "expected KEY=VALUE, got \"%s\"",
				    optarg));
			if ((key = strndup(optarg, (size_t)(eq - optarg))) ==
			    NULL)
				return (EXIT_FAIL);
			json_object_set_new(ctl->attrs, key,
			    ctl_attr_value(eq + 1));
			free(key);
			bit = O_ATTR;
			break;
		case 'n':
			ctl->name = optarg;
			bit = O_NAME;
			break;
		case 'P':
			ctl->protocol = optarg;
			bit = O_PROTOCOL;
			break;
		case 'F':
			ctl->upstream_failure = optarg;
			bit = O_UPFAIL;
			break;
		case 'B':
			if (strcmp(optarg, "client") != 0 &&
			    strcmp(optarg, "upstream") != 0 &&
			    strcmp(optarg, "tardy") != 0 &&
			    strcmp(optarg, "flow_timeout") != 0)
				return (ctl_usage_error(NULL,
				    "--closed-by: expected client, upstream, "
				    "tardy or flow_timeout, got \"%s\"",
				    optarg));
			ctl->wait.closed_by = optarg;
			bit = O_CLOSED_BY;
			break;
		case 'N':
			if (util_parse_u64(optarg, UINT32_MAX,
				&ctl->wait.count) == -1 ||
			    ctl->wait.count == 0)
				return (ctl_usage_error(NULL,
				    "--count: expected a positive integer, "
				    "got \"%s\"",
				    optarg));
			bit = O_COUNT;
			break;
		case 'W':
			if (util_parse_u64(optarg, CTL_WAIT_MAX_MS,
				&ctl->wait.timeout_ms) == -1 ||
			    ctl->wait.timeout_ms == 0)
				return (ctl_usage_error(NULL,
				    "--timeout: expected milliseconds from 1 "
				    "to %d (a wait must end), got \"%s\"",
				    CTL_WAIT_MAX_MS, optarg));
			bit = O_TIMEOUT;
			break;
		case 'S':
			if (util_parse_u64(optarg, UINT64_MAX,
				&ctl->wait.since) == -1)
				return (ctl_usage_error(NULL,
				    "--since: expected an event id, got "
				    "\"%s\"",
				    optarg));
			ctl->wait.since_set = 1;
			bit = O_SINCE;
			break;
		default:
			return (ctl_usage_error(NULL, "unknown option"));
		}
		ctl->given |= bit;
	}
	argc -= optind;
	argv += optind;

	if (argc == 0) {
		if (help) {
			ctl_usage(stdout);
			return (0);
		}
		return (ctl_usage_error(NULL, "no command given"));
	}
	if (strcmp(argv[0], "help") == 0) {
		if (argc > 1 &&
		    (cmd = ctl_find_cmd(argc - 1, argv + 1, &words)) != NULL)
			ctl_cmd_help(cmd);
		else
			ctl_usage(stdout);
		return (0);
	}
	if ((cmd = ctl_find_cmd(argc, argv, &words)) == NULL)
		return (ctl_usage_error(NULL, "unknown command \"%s%s%s\"",
		    argv[0],
		    argc > 1 && strcmp(argv[0], "toxic") == 0 ? " " : "",
		    argc > 1 && strcmp(argv[0], "toxic") == 0 ? argv[1] : ""));
	if (help) {
		ctl_cmd_help(cmd);
		return (0);
	}
	nargs = argc - words;
	if (nargs < cmd->minargs || nargs > cmd->maxargs)
		return (ctl_usage_error(cmd,
		    "%s: expected %d argument%s, "
		    "got %d",
		    cmd->name, cmd->maxargs, cmd->maxargs == 1 ? "" : "s",
		    nargs));
	for (bit = 1; bit <= O_LAST; bit <<= 1) {
		if ((ctl->given & bit) && !(cmd->opts & bit))
			return (ctl_usage_error(cmd, "%s: %s does not apply",
			    cmd->name, ctl_opt_name(bit)));
	}
	if (strcmp(cmd->name, "create") == 0 && ctl->upstream == NULL)
		return (ctl_usage_error(cmd, "create: --upstream is required"));
	if (strcmp(cmd->name, "toxic add") == 0 && ctl->type == NULL)
		return (ctl_usage_error(cmd, "toxic add: --type is required"));

	if (ctl->http.token != NULL && strpbrk(ctl->http.token, "\r\n") != NULL)
		return (ctl_usage_error(NULL,
		    "the token cannot hold a line "
		    "break"));
	if (api == NULL && (api = getenv("TARDY_API")) != NULL && *api == '\0')
		api = NULL;
	if (ctl_set_api(ctl, api != NULL ? api : CTL_DEFAULT_API) == -1)
		return (EXIT_USAGE);
	return (cmd->run(ctl, argv + words));
}

int
main(int argc, char **argv)
{
	struct ctl ctl;
	int	   rc;

	memset(&ctl, 0, sizeof(ctl));
	ctl.http.timeout_ms = CTL_TIMEOUT_MS;
	ctl.wait.count = 1;
	ctl.wait.timeout_ms = CTL_TIMEOUT_MS;
	if ((ctl.attrs = json_object()) == NULL)
		return (EXIT_FAIL);
	rc = ctl_main(&ctl, argc, argv);
	json_decref(ctl.attrs);
	return (rc);
}
