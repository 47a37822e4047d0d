/*
 * Configuration file parsing.
 *
 * libinih does the INI syntax; a line reader of our own in front of it
 * counts lines (so every message names file:line), strips indentation (so
 * an indented key is never mistaken for a continuation line) and rejects
 * malformed lines itself. Every error is collected; nothing stops at the
 * first one, so `tardyd -t` reports them all.
 */
#include "autoconf.h"
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>
#include <jansson.h>

#include "addr.h"
#include "log.h"
#include "toxic.h"
#include "util.h"

enum section_kind {
	SECTION_NONE,
	SECTION_TARDY,
	SECTION_PROXY,
	SECTION_TOXIC,
	SECTION_BAD,
};

struct parse_ctx {
	struct config	  *conf;
	FILE		  *fp;
	int		   lineno;
	enum section_kind  kind;
	unsigned int	   tardy_seen;
	struct proxy_conf *proxy;
	struct toxic_conf *toxic;
};

/* Keys of [tardy] and [proxy NAME], with a bit each for duplicates. */
static const char *const tardy_keys[] = { "api", "api_token", "api_open",
	"seed", "log_level", "resolv_conf", "api_hosts", "api_group",
	"unix_dirs", "threads", NULL };
static const char *const proxy_keys[] = { "listen", "upstream", "enabled",
	"connect_timeout", "rcvbuf", "protocol", "flow_timeout", "max_flows",
	"upstream_failure", NULL };

/* "auto" (0: one per CPU) or a count of event loops. */
int
config_parse_threads(const char *s, unsigned int *threads)
{
	uint64_t v;

	if (strcmp(s, "auto") == 0) {
		*threads = 0;
		return (0);
	}
	if (util_parse_u64(s, CONFIG_MAX_THREADS, &v) == -1 || v == 0)
		return (-1);
	*threads = (unsigned int)v;
	return (0);
}

/*
 * The CPUs a cgroup CPU quota allows, rounded up, from cgroup v2's
 * cpu.max ("QUOTA PERIOD" or "max PERIOD") or v1's quota and period
 * written the same way (a quota of -1: none); 0 if it sets no limit.
 */
unsigned int
config_cpu_quota(const char *cpu_max)
{
	long long quota, period;

	if (sscanf(cpu_max, "%lld %lld", &quota, &period) != 2 || quota <= 0 ||
	    period <= 0)
		return (0); /* "max", -1 or unreadable: no limit */
	return ((unsigned int)((quota + period - 1) / period));
}

/* Read the first line of path into buf; -1 if there is none. */
static int
config_read_line(const char *path, char *buf, size_t len)
{
	FILE *fp;
	int   rc = -1;

	if ((fp = fopen(path, "re")) == NULL)
		return (-1);
	if (fgets(buf, (int)len, fp) != NULL)
		rc = 0;
	fclose(fp);
	return (rc);
}

/* cgroup v1's quota of the cpu controller ctl at dir; 0 if none. */
static unsigned int
config_cgroup_v1_cpus(const char *ctl, const char *dir)
{
	char path[1024], quota[32], period[32], both[64];

	snprintf(path, sizeof(path), "/sys/fs/cgroup/%s%s/cpu.cfs_quota_us",
	    ctl, dir);
	if (config_read_line(path, quota, sizeof(quota)) == -1)
		return (0);
	snprintf(path, sizeof(path), "/sys/fs/cgroup/%s%s/cpu.cfs_period_us",
	    ctl, dir);
	if (config_read_line(path, period, sizeof(period)) == -1)
		return (0);
	quota[strcspn(quota, "\n")] = '\0';
	snprintf(both, sizeof(both), "%s %s", quota, period);
	return (config_cpu_quota(both));
}

/*
 * The CPU quota of this process's cgroup, v2 or v1 (a container's CPU
 * limit, Kubernetes' limits.cpu); 0 if none is set or found.
 */
static unsigned int
config_cgroup_cpus(void)
{
	FILE	    *fp;
	char	     line[512], path[1024], buf[64], *cg, *ctl;
	const char  *dir;
	unsigned int n = 0;

	if ((fp = fopen("/proc/self/cgroup", "re")) == NULL)
		return (0);
	while (n == 0 && fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		/* "ID:CONTROLLERS:PATH"; v2's has no controllers. */
		if ((ctl = strchr(line, ':')) == NULL ||
		    (cg = strchr(++ctl, ':')) == NULL)
			continue;
		*cg++ = '\0';
		dir = strcmp(cg, "/") == 0 ? "" : cg;
		if (*ctl == '\0') {
			snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max",
			    dir);
			if (config_read_line(path, buf, sizeof(buf)) == 0)
				n = config_cpu_quota(buf);
		} else if (strcmp(ctl, "cpu") == 0 ||
		    strcmp(ctl, "cpu,cpuacct") == 0)
			n = config_cgroup_v1_cpus(ctl, dir);
	}
	fclose(fp);
	return (n);
}

/*
 * threads as configured; 0 is one per CPU this process may run on: its
 * affinity, capped by its cgroup's CPU quota, so a container limited to
 * 2 CPUs on a 64-CPU node runs 2 loops, not 64.
 */
unsigned int
config_threads(const struct config *conf)
{
	cpu_set_t    set;
	int	     n;
	unsigned int quota;

	if (conf->threads != 0)
		return (conf->threads);
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	else
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if ((quota = config_cgroup_cpus()) != 0 && quota < (unsigned int)n)
		n = (int)quota;
	if (n < 1)
		return (1);
	return (n > CONFIG_MAX_THREADS ? CONFIG_MAX_THREADS : (unsigned int)n);
}

struct config *
config_new(void)
{
	struct config *conf;
	char	       err[256];

	conf = xcalloc(1, sizeof(*conf));
	TAILQ_INIT(&conf->proxies);
	TAILQ_INIT(&conf->toxics);
	conf->seed = CONFIG_DEFAULT_SEED;
	conf->log_level = LOG_LEVEL_INFO;
	conf->api_str = xstrdup(CONFIG_DEFAULT_API);
	if (addr_parse(conf->api_str, &conf->api, err, sizeof(err)) == -1)
		fatalx("default api address: %s", err);
	return (conf);
}

static void
proxy_conf_free(struct proxy_conf *pc)
{
	free(pc->name);
	free(pc->listen_str);
	free(pc->upstream_str);
	free(pc);
}

static void
toxic_conf_free(struct toxic_conf *tc)
{
	free(tc->proxy);
	free(tc->name);
	free(tc->type);
	free(tc->stream);
	json_decref(tc->attributes);
	json_decref(tc->lines);
	free(tc);
}

static void
config_list_free(char **list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

void
config_free(struct config *conf)
{
	struct proxy_conf *pc;
	struct toxic_conf *tc;
	size_t		   i;

	if (conf == NULL)
		return;
	while ((pc = TAILQ_FIRST(&conf->proxies)) != NULL) {
		TAILQ_REMOVE(&conf->proxies, pc, entry);
		proxy_conf_free(pc);
	}
	while ((tc = TAILQ_FIRST(&conf->toxics)) != NULL) {
		TAILQ_REMOVE(&conf->toxics, tc, entry);
		toxic_conf_free(tc);
	}
	for (i = 0; i < conf->nerrors; i++)
		free(conf->errors[i]);
	free(conf->errors);
	free(conf->path);
	free(conf->api_str);
	free(conf->api_token);
	free(conf->resolv_conf);
	config_list_free(conf->api_hosts, conf->napi_hosts);
	free(conf->api_group);
	config_list_free(conf->unix_dirs, conf->nunix_dirs);
	free(conf);
}

/*
 * Record an error. line > 0 names file:line, line == 0 names the file,
 * line < 0 is for errors outside any file (command-line arguments).
 */
void
config_error(struct config *conf, int line, const char *fmt, ...)
{
	char	msg[512];
	char   *s, **errors;
	va_list ap;
	int	rc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (line > 0)
		rc = asprintf(&s, "%s:%d: %s", conf->path, line, msg);
	else if (line == 0 && conf->path != NULL)
		rc = asprintf(&s, "%s: %s", conf->path, msg);
	else
		rc = asprintf(&s, "%s", msg);
	if (rc == -1)
		fatal("asprintf");
	errors = reallocarray(conf->errors, conf->nerrors + 1, sizeof(*errors));
	if (errors == NULL)
		fatal("reallocarray");
	conf->errors = errors;
	conf->errors[conf->nerrors++] = s;
}

/*
 * Errors from index `from` on are about a command-line argument: make
 * each start with it, as those of a file start with file:line.
 */
static void __attribute__((format(printf, 3, 4)))
config_errors_origin(struct config *conf, size_t from, const char *fmt, ...)
{
	char   *origin, *s;
	va_list ap;
	int	rc;

	if (from >= conf->nerrors)
		return;
	va_start(ap, fmt);
	rc = vasprintf(&origin, fmt, ap);
	va_end(ap);
	if (rc == -1)
		fatal("vasprintf");
	for (; from < conf->nerrors; from++) {
		if (strncmp(conf->errors[from], "--", 2) == 0)
			continue;
		if (asprintf(&s, "%s: %s", origin, conf->errors[from]) == -1)
			fatal("asprintf");
		free(conf->errors[from]);
		conf->errors[from] = s;
	}
	free(origin);
}

struct proxy_conf *
config_find_proxy(struct config *conf, const char *name)
{
	struct proxy_conf *pc;

	TAILQ_FOREACH(pc, &conf->proxies, entry) {
		if (strcmp(pc->name, name) == 0)
			return (pc);
	}
	return (NULL);
}

/* Whether a running proxy built from a can be kept when b replaces it. */
int
config_proxy_equal(const struct proxy_conf *a, const struct proxy_conf *b)
{
	return (strcmp(a->name, b->name) == 0 &&
	    strcmp(a->listen_str, b->listen_str) == 0 &&
	    addr_equal(&a->listen, &b->listen) &&
	    strcmp(a->upstream_str, b->upstream_str) == 0 &&
	    addr_equal(&a->upstream, &b->upstream) &&
	    a->upstream_reset == b->upstream_reset &&
	    a->enabled == b->enabled &&
	    a->connect_timeout == b->connect_timeout &&
	    a->rcvbuf == b->rcvbuf && a->protocol == b->protocol &&
	    a->flow_timeout == b->flow_timeout && a->max_flows == b->max_flows);
}

struct toxic_conf *
config_find_toxic(struct config *conf, const char *proxy, const char *name)
{
	struct toxic_conf *tc;

	TAILQ_FOREACH(tc, &conf->toxics, entry) {
		if (strcmp(tc->proxy, proxy) == 0 &&
		    strcmp(tc->name, name) == 0)
			return (tc);
	}
	return (NULL);
}

static int
config_str_equal(const char *a, const char *b)
{
	return (a == b || (a != NULL && b != NULL && strcmp(a, b) == 0));
}

/* Whether two [toxic] sections say the same (their lines aside). */
int
config_toxic_equal(const struct toxic_conf *a, const struct toxic_conf *b)
{
	return (config_str_equal(a->proxy, b->proxy) &&
	    config_str_equal(a->name, b->name) &&
	    config_str_equal(a->type, b->type) &&
	    config_str_equal(a->stream, b->stream) &&
	    a->has_toxicity == b->has_toxicity &&
	    (!a->has_toxicity || a->toxicity == b->toxicity) &&
	    json_equal(a->attributes, b->attributes));
}

static struct proxy_conf *
config_new_proxy(struct config *conf, const char *name, int line)
{
	struct proxy_conf *pc;

	pc = xcalloc(1, sizeof(*pc));
	pc->name = xstrdup(name);
	pc->enabled = 1;
	pc->connect_timeout = CONFIG_DEFAULT_CONNECT_TIMEOUT;
	pc->flow_timeout = CONFIG_DEFAULT_FLOW_TIMEOUT;
	pc->max_flows = CONFIG_DEFAULT_MAX_FLOWS;
	pc->line = line;
	TAILQ_INSERT_TAIL(&conf->proxies, pc, entry);
	return (pc);
}

static int
key_index(const char *const *keys, const char *key)
{
	int i;

	for (i = 0; keys[i] != NULL; i++) {
		if (strcmp(keys[i], key) == 0)
			return (i);
	}
	return (-1);
}

/* Mark a key seen; complain and return -1 if it was seen already. */
static int
key_once(struct parse_ctx *ctx, unsigned int *seen, int idx, const char *key)
{
	if (*seen & (1U << idx)) {
		config_error(ctx->conf, ctx->lineno, "duplicate key \"%s\"",
		    key);
		return (-1);
	}
	*seen |= 1U << idx;
	return (0);
}

/*
 * A listen or API address: looked up now, or, in a configuration loaded
 * for a reload (conf->lazy), left as a name for the daemon to look up on
 * its event loop before it applies the configuration.
 */
static int
config_addr(struct config *conf, const char *s, struct addr *a, char *err,
    size_t errlen)
{
	if (conf->lazy)
		return (addr_parse_lazy(s, a, err, errlen));
	return (addr_parse(s, a, err, errlen));
}

static int
parse_addr_value(struct parse_ctx *ctx, const char *key, const char *value,
    struct addr *a)
{
	char err[256];

	if (config_addr(ctx->conf, value, a, err, sizeof(err)) == -1) {
		config_error(ctx->conf, ctx->lineno, "%s: %s", key, err);
		return (-1);
	}
	return (0);
}

/*
 * An api_hosts entry: a host name or an IP address, without a port,
 * stored as the Host check compares it: lower case, no brackets, no
 * final dot. Returns NULL if it is neither.
 */
static char *
parse_api_host(const char *word)
{
	struct in6_addr in6;
	char	       *s, *p;
	size_t		len;

	if (*word == '[') {
		len = strlen(word);
		if (len < 3 || word[len - 1] != ']')
			return (NULL);
		s = xstrdup(word + 1);
		s[len - 2] = '\0';
		if (inet_pton(AF_INET6, s, &in6) != 1) {
			free(s);
			return (NULL);
		}
	} else {
		s = xstrdup(word);
		if (inet_pton(AF_INET6, s, &in6) != 1 &&
		    inet_pton(AF_INET, s, &in6) != 1 && !addr_name_valid(s)) {
			free(s);
			return (NULL);
		}
	}
	for (p = s; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if (p > s && p[-1] == '.')
		p[-1] = '\0';
	return (s);
}

/*
 * A comma-separated list: each word, trimmed, checked by what (which
 * returns what to store, or NULL and sets *why). Errors name the word.
 */
static void
parse_list(struct parse_ctx *ctx, const char *key, const char *value,
    char *(*what)(const char *, const char **), char ***out, size_t *n)
{
	char	   *copy, *word, *next, *end, *v, **list = NULL;
	const char *why;
	size_t	    len = 0;

	copy = xstrdup(value);
	for (word = copy; word != NULL; word = next) {
		if ((next = strchr(word, ',')) != NULL)
			*next++ = '\0';
		while (isspace((unsigned char)*word))
			word++;
		end = word + strlen(word);
		while (end > word && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*word == '\0') {
			config_error(ctx->conf, ctx->lineno,
			    "%s: empty entry "
			    "(a comma-separated list)",
			    key);
			continue;
		}
		why = NULL;
		if ((v = what(word, &why)) == NULL) {
			config_error(ctx->conf, ctx->lineno, "%s: \"%s\": %s",
			    key, word, why);
			continue;
		}
		list = reallocarray(list, len + 1, sizeof(*list));
		if (list == NULL)
			fatal("reallocarray");
		list[len++] = v;
	}
	free(copy);
	config_list_free(*out, *n);
	*out = list;
	*n = len;
}

static char *
parse_api_hosts_word(const char *word, const char **why)
{
	char *s;

	if ((s = parse_api_host(word)) == NULL)
		*why = "not a host name or an IP address (no port)";
	return (s);
}

static char *
parse_unix_dirs_word(const char *word, const char **why)
{
	if (*word != '/') {
		*why = "not an absolute path";
		return (NULL);
	}
	return (xstrdup(word));
}

/* A group by name or number: who may drive a unix-socket API. */
static void
parse_api_group(struct parse_ctx *ctx, const char *value)
{
	struct config *conf = ctx->conf;
	struct group  *gr;
	uint64_t       gid;

	if ((gr = getgrnam(value)) != NULL)
		conf->api_gid = gr->gr_gid;
	else if (util_parse_u64(value, UINT32_MAX - 1, &gid) == 0)
		conf->api_gid = (gid_t)gid;
	else {
		config_error(conf, ctx->lineno, "api_group: no group \"%s\"",
		    value);
		return;
	}
	free(conf->api_group);
	conf->api_group = xstrdup(value);
}

static void
handle_tardy(struct parse_ctx *ctx, const char *key, const char *value)
{
	struct config *conf = ctx->conf;
	struct addr    a;
	enum log_level level;
	int	       idx;

	if ((idx = key_index(tardy_keys, key)) == -1) {
		config_error(conf, ctx->lineno,
		    "unknown key \"%s\" in section [tardy]", key);
		return;
	}
	if (key_once(ctx, &ctx->tardy_seen, idx, key) == -1)
		return;
	if (strcmp(key, "api") == 0) {
		if (parse_addr_value(ctx, key, value, &a) == 0) {
			conf->api = a;
			free(conf->api_str);
			conf->api_str = xstrdup(value);
		}
	} else if (strcmp(key, "api_token") == 0) {
		if (*value == '\0') {
			config_error(conf, ctx->lineno, "api_token is empty");
			return;
		}
		free(conf->api_token);
		conf->api_token = xstrdup(value);
	} else if (strcmp(key, "api_open") == 0) {
		if (util_parse_bool(value, &conf->api_open) == -1)
			config_error(conf, ctx->lineno,
			    "api_open: invalid "
			    "value \"%s\" (yes or no)",
			    value);
	} else if (strcmp(key, "api_hosts") == 0) {
		parse_list(ctx, key, value, parse_api_hosts_word,
		    &conf->api_hosts, &conf->napi_hosts);
	} else if (strcmp(key, "api_group") == 0) {
		parse_api_group(ctx, value);
	} else if (strcmp(key, "unix_dirs") == 0) {
		parse_list(ctx, key, value, parse_unix_dirs_word,
		    &conf->unix_dirs, &conf->nunix_dirs);
	} else if (strcmp(key, "resolv_conf") == 0) {
		if (access(value, R_OK) == -1) {
			config_error(conf, ctx->lineno, "resolv_conf: %s: %s",
			    value, strerror(errno));
			return;
		}
		free(conf->resolv_conf);
		conf->resolv_conf = xstrdup(value);
	} else if (strcmp(key, "seed") == 0) {
		if (util_parse_u64(value, UINT64_MAX, &conf->seed) == -1)
			config_error(conf, ctx->lineno,
			    "seed: invalid value "
			    "\"%s\" (an unsigned 64-bit integer)",
			    value);
	} else if (strcmp(key, "threads") == 0) {
		if (config_parse_threads(value, &conf->threads) == -1)
			config_error(conf, ctx->lineno,
			    "threads: invalid value \"%s\" (auto, or 1 to %d)",
			    value, CONFIG_MAX_THREADS);
	} else if (strcmp(key, "log_level") == 0) {
		if (log_level_parse(value, &level) == -1)
			config_error(conf, ctx->lineno,
			    "log_level: invalid "
			    "value \"%s\" (error, warn, info or debug)",
			    value);
		else
			conf->log_level = level;
	}
}

static void
handle_proxy(struct parse_ctx *ctx, const char *key, const char *value)
{
	struct proxy_conf *pc = ctx->proxy;
	uint64_t	   v;
	char		   err[256];
	int		   idx;

	if ((idx = key_index(proxy_keys, key)) == -1) {
		config_error(ctx->conf, ctx->lineno,
		    "unknown key \"%s\" in section [proxy %s]", key, pc->name);
		return;
	}
	if (key_once(ctx, &pc->seen, idx, key) == -1)
		return;
	if (strcmp(key, "listen") == 0) {
		if (parse_addr_value(ctx, key, value, &pc->listen) == 0)
			pc->listen_str = xstrdup(value);
	} else if (strcmp(key, "upstream") == 0) {
		/* A name is looked up when needed: see config_check_proxy(). */
		if (addr_parse_lazy(value, &pc->upstream, err, sizeof(err)) ==
		    -1)
			config_error(ctx->conf, ctx->lineno, "%s: %s", key,
			    err);
		else
			pc->upstream_str = xstrdup(value);
	} else if (strcmp(key, "upstream_failure") == 0) {
		if (strcmp(value, "close") == 0)
			pc->upstream_reset = 0;
		else if (strcmp(value, "reset") == 0)
			pc->upstream_reset = 1;
		else
			config_error(ctx->conf, ctx->lineno,
			    "upstream_failure: "
			    "invalid value \"%s\" (close or reset)",
			    value);
	} else if (strcmp(key, "enabled") == 0) {
		if (util_parse_bool(value, &pc->enabled) == -1)
			config_error(ctx->conf, ctx->lineno,
			    "enabled: invalid "
			    "value \"%s\" (yes or no)",
			    value);
	} else if (strcmp(key, "connect_timeout") == 0) {
		if (util_parse_u64(value, 3600000, &v) == -1 || v == 0)
			config_error(ctx->conf, ctx->lineno,
			    "connect_timeout: invalid value \"%s\" "
			    "(milliseconds, 1 to 3600000)",
			    value);
		else
			pc->connect_timeout = (unsigned int)v;
	} else if (strcmp(key, "rcvbuf") == 0) {
		if (util_parse_u64(value, CONFIG_MAX_RCVBUF, &v) == -1)
			config_error(ctx->conf, ctx->lineno,
			    "rcvbuf: invalid value \"%s\" (bytes, 0 to %d; "
			    "0 = kernel default)",
			    value, CONFIG_MAX_RCVBUF);
		else
			pc->rcvbuf = (unsigned int)v;
	} else if (strcmp(key, "protocol") == 0) {
		if (strcmp(value, "tcp") == 0)
			pc->protocol = PROTO_TCP;
		else if (strcmp(value, "udp") == 0)
			pc->protocol = PROTO_UDP;
		else
			config_error(ctx->conf, ctx->lineno,
			    "protocol: invalid "
			    "value \"%s\" (tcp or udp)",
			    value);
	} else if (strcmp(key, "flow_timeout") == 0) {
		if (util_parse_u64(value, 86400000, &v) == -1 || v == 0)
			config_error(ctx->conf, ctx->lineno,
			    "flow_timeout: invalid value \"%s\" "
			    "(milliseconds, 1 to 86400000)",
			    value);
		else
			pc->flow_timeout = (unsigned int)v;
	} else if (strcmp(key, "max_flows") == 0) {
		if (util_parse_u64(value, 1000000, &v) == -1 || v == 0)
			config_error(ctx->conf, ctx->lineno,
			    "max_flows: invalid value \"%s\" (1 to 1000000)",
			    value);
		else
			pc->max_flows = (unsigned int)v;
	}
}

/*
 * Toxic attributes are kept as JSON values so the same validation serves
 * the config file and the API: integers stay integers, anything with a
 * decimal point becomes a real, and the rest strings.
 */
static json_t *
config_json_value(const char *value)
{
	json_t *j;

	if ((j = util_json_number(value)) != NULL)
		return (j);
	return (json_string(value));
}

static void
handle_toxic(struct parse_ctx *ctx, const char *key, const char *value)
{
	struct toxic_conf *tc = ctx->toxic;
	char		 **field = NULL;

	if (json_object_get(tc->lines, key) != NULL) {
		config_error(ctx->conf, ctx->lineno, "duplicate key \"%s\"",
		    key);
		return;
	}
	json_object_set_new(tc->lines, key, json_integer(ctx->lineno));
	if (strcmp(key, "type") == 0)
		field = &tc->type;
	else if (strcmp(key, "stream") == 0)
		field = &tc->stream;
	if (field != NULL) {
		*field = xstrdup(value);
		return;
	}
	if (strcmp(key, "toxicity") == 0) {
		json_t *j = util_json_number(value);

		tc->toxicity = j != NULL ? json_number_value(j) : -1;
		json_decref(j);
		if (!(tc->toxicity >= 0.0 && tc->toxicity <= 1.0))
			config_error(ctx->conf, ctx->lineno,
			    "toxicity: "
			    "invalid value \"%s\" (0.0 to 1.0)",
			    value);
		tc->has_toxicity = 1;
		return;
	}
	json_object_set_new(tc->attributes, key, config_json_value(value));
}

static int
config_handler(void *user, const char *section, const char *key,
    const char *value)
{
	struct parse_ctx *ctx = user;

	(void)section;
	switch (ctx->kind) {
	case SECTION_NONE:
		config_error(ctx->conf, ctx->lineno,
		    "key \"%s\" outside any section", key);
		break;
	case SECTION_TARDY:
		handle_tardy(ctx, key, value);
		break;
	case SECTION_PROXY:
		handle_proxy(ctx, key, value);
		break;
	case SECTION_TOXIC:
		handle_toxic(ctx, key, value);
		break;
	case SECTION_BAD:
		/* Already reported at the section header. */
		break;
	}
	return (1);
}

static void
config_section(struct parse_ctx *ctx, char *hdr)
{
	struct config	  *conf = ctx->conf;
	struct toxic_conf *tc;
	char		  *words[4], *p, *save;
	int		   n = 0;

	for (p = strtok_r(hdr, " \t", &save); p != NULL && n < 4;
	    p = strtok_r(NULL, " \t", &save))
		words[n++] = p;

	ctx->kind = SECTION_BAD;
	ctx->proxy = NULL;
	ctx->toxic = NULL;
	if (n == 1 && strcmp(words[0], "tardy") == 0) {
		if (ctx->tardy_seen & (1U << 31)) {
			config_error(conf, ctx->lineno,
			    "duplicate section [tardy]");
			return;
		}
		ctx->tardy_seen |= 1U << 31;
		ctx->kind = SECTION_TARDY;
	} else if (n >= 1 && strcmp(words[0], "proxy") == 0) {
		if (n != 2) {
			config_error(conf, ctx->lineno,
			    "expected [proxy NAME]");
			return;
		}
		if (!util_name_valid(words[1])) {
			config_error(conf, ctx->lineno,
			    "invalid proxy name "
			    "\"%s\"",
			    words[1]);
			return;
		}
		if (config_find_proxy(conf, words[1]) != NULL) {
			config_error(conf, ctx->lineno,
			    "duplicate proxy "
			    "name \"%s\"",
			    words[1]);
			return;
		}
		ctx->proxy = config_new_proxy(conf, words[1], ctx->lineno);
		ctx->kind = SECTION_PROXY;
	} else if (n >= 1 && strcmp(words[0], "toxic") == 0) {
		if (n != 3) {
			config_error(conf, ctx->lineno,
			    "expected [toxic PROXY NAME]");
			return;
		}
		if (!util_name_valid(words[2])) {
			config_error(conf, ctx->lineno,
			    "invalid toxic name "
			    "\"%s\"",
			    words[2]);
			return;
		}
		tc = xcalloc(1, sizeof(*tc));
		tc->proxy = xstrdup(words[1]);
		tc->name = xstrdup(words[2]);
		tc->attributes = json_object();
		tc->lines = json_object();
		tc->line = ctx->lineno;
		TAILQ_INSERT_TAIL(&conf->toxics, tc, entry);
		ctx->toxic = tc;
		ctx->kind = SECTION_TOXIC;
	} else {
		config_error(conf, ctx->lineno, "unknown section [%s]%s",
		    n > 0 ? words[0] : "", n > 0 ? "" : " (empty)");
	}
}

/*
 * The line reader given to inih. Section headers are handled here, where
 * the line number is known even for a section with no keys; malformed
 * lines are reported and replaced by blank ones.
 */
static char *
config_reader(char *buf, int size, void *stream)
{
	struct parse_ctx *ctx = stream;
	char		  line[4096];
	char		 *p, *end, *eq;
	size_t		  n, len;

	memset(line, 0, sizeof(line));
	if (fgets(line, sizeof(line), ctx->fp) == NULL)
		return (NULL);
	ctx->lineno++;
	n = strlen(line);
	/* What fgets() read ends at its last byte that is not NUL. */
	for (len = sizeof(line) - 1; len > n && line[len - 1] == '\0'; len--)
		;
	if (len > n || (n > 0 && line[n - 1] != '\n' && !feof(ctx->fp))) {
		int c;

		/* A NUL byte would cut the line short, unseen. */
		config_error(ctx->conf, ctx->lineno,
		    len > n ? "NUL byte in line" : "line too long");
		if (line[len - 1] != '\n')
			while ((c = fgetc(ctx->fp)) != EOF && c != '\n')
				;
		goto blank;
	}
	for (p = line; *p == ' ' || *p == '\t'; p++)
		;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		*--end = '\0';
	if (*p == '\0' || *p == '#' || *p == ';')
		goto blank;
	if (*p == '[') {
		if ((end = strchr(p, ']')) == NULL) {
			config_error(ctx->conf, ctx->lineno,
			    "syntax error: missing ']' in section header");
			ctx->kind = SECTION_BAD;
			goto blank;
		}
		*end = '\0';
		config_section(ctx, p + 1);
		goto blank;
	}
	eq = strpbrk(p, "=:");
	if (eq == NULL || *eq != '=' || eq == p) {
		config_error(ctx->conf, ctx->lineno,
		    "syntax error: expected key = value");
		goto blank;
	}
	if ((size_t)(end - p) + 2 > (size_t)size) {
		config_error(ctx->conf, ctx->lineno, "line too long");
		goto blank;
	}
	/* Give inih one key; sections are tracked here, not by inih. */
	snprintf(buf, (size_t)size, "%s\n", p);
	return (buf);
blank:
	snprintf(buf, (size_t)size, "\n");
	return (buf);
}

/*
 * Whether a file is Toxiproxy's JSON config, an array of proxies: "["
 * then "{" or "]". A tardy.conf starts with "[section]" or a comment.
 */
static int
config_is_json(FILE *fp)
{
	int c, brackets = 0;

	while ((c = getc(fp)) != EOF) {
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '[' && brackets++ == 0)
			continue;
		break;
	}
	rewind(fp);
	return (brackets == 1 && (c == '{' || c == ']'));
}

/* A string field of a JSON entry; 0 if absent or null, -1 if not a string. */
static int
config_json_string(struct config *conf, json_t *obj, const char *key,
    const char *where, const char **out)
{
	json_t *j = json_object_get(obj, key);

	if (j == NULL || json_is_null(j))
		return (0);
	if (!json_is_string(j)) {
		config_error(conf, 0, "%s: %s must be a string", where, key);
		return (-1);
	}
	*out = json_string_value(j);
	return (1);
}

/* The toxics of a JSON entry (tardy's extension), as [toxic] sections. */
static void
config_json_toxics(struct config *conf, json_t *list, const char *proxy,
    const char *where)
{
	struct toxic_conf *tc;
	json_t		  *item, *j;
	const char	  *name, *type, *stream;
	char		   w[340], defname[NAME_MAX_LEN + 32];
	size_t		   i;

	if (list == NULL || json_is_null(list))
		return;
	if (!json_is_array(list)) {
		config_error(conf, 0, "%s: toxics must be an array", where);
		return;
	}
	json_array_foreach(list, i, item) {
		snprintf(w, sizeof(w), "%s: toxic %zu", where, i + 1);
		name = type = NULL;
		stream = "downstream";
		if (!json_is_object(item)) {
			config_error(conf, 0, "%s: expected an object", w);
			continue;
		}
		if (config_json_string(conf, item, "name", w, &name) == -1 ||
		    config_json_string(conf, item, "type", w, &type) == -1 ||
		    config_json_string(conf, item, "stream", w, &stream) == -1)
			continue;
		if (type == NULL) {
			config_error(conf, 0,
			    "%s: missing required field: type", w);
			continue;
		}
		if (name == NULL || *name == '\0') {
			snprintf(defname, sizeof(defname), "%s_%s", type,
			    stream);
			name = defname;
		}
		tc = xcalloc(1, sizeof(*tc));
		tc->proxy = xstrdup(proxy);
		tc->name = xstrdup(name);
		tc->type = xstrdup(type);
		tc->stream = xstrdup(stream);
		tc->lines = json_object();
		tc->line = 0;
		if ((j = json_object_get(item, "toxicity")) != NULL &&
		    !json_is_null(j)) {
			tc->toxicity = json_number_value(j);
			tc->has_toxicity = 1;
			if (!json_is_number(j) ||
			    !(tc->toxicity >= 0.0 && tc->toxicity <= 1.0))
				config_error(conf, 0,
				    "%s: toxicity must be a "
				    "number from 0 to 1",
				    w);
		}
		j = json_object_get(item, "attributes");
		if (j != NULL && !json_is_null(j) && !json_is_object(j))
			config_error(conf, 0,
			    "%s: attributes must be an "
			    "object",
			    w);
		tc->attributes = json_is_object(j) ? json_deep_copy(j) :
						     json_object();
		TAILQ_INSERT_TAIL(&conf->toxics, tc, entry);
	}
}

/*
 * Toxiproxy's config file (its -config, the /populate body): an array of
 * {"name", "listen", "upstream", "enabled"}, plus tardy's proxy keys and
 * "toxics". Fields Toxiproxy does not know of are ignored, as it does.
 * Errors name the file, the entry and the field.
 */
static void
config_load_json(struct config *conf, FILE *fp)
{
	struct proxy_conf *pc;
	json_error_t	   jerr;
	json_t		  *root, *item, *j;
	const char	  *name, *listen, *upstream, *s;
	char		   where[300], err[256];
	size_t		   i;

	if ((root = json_loadf(fp, 0, &jerr)) == NULL) {
		config_error(conf, jerr.line, "%s", jerr.text);
		return;
	}
	if (!json_is_array(root)) {
		config_error(conf, 0, "expected a JSON array of proxies");
		json_decref(root);
		return;
	}
	json_array_foreach(root, i, item) {
		snprintf(where, sizeof(where), "proxy %zu", i + 1);
		name = listen = upstream = NULL;
		if (!json_is_object(item)) {
			config_error(conf, 0, "%s: expected an object", where);
			continue;
		}
		if (config_json_string(conf, item, "name", where, &name) == -1)
			continue;
		if (name == NULL || *name == '\0') {
			config_error(conf, 0,
			    "%s: missing required field: name", where);
			continue;
		}
		snprintf(where, sizeof(where), "proxy %zu (\"%.128s\")", i + 1,
		    name);
		if (!util_name_valid(name)) {
			config_error(conf, 0, "%s: name: invalid proxy name",
			    where);
			continue;
		}
		if (config_find_proxy(conf, name) != NULL) {
			config_error(conf, 0, "%s: duplicate proxy name",
			    where);
			continue;
		}
		if (config_json_string(conf, item, "listen", where, &listen) ==
			-1 ||
		    config_json_string(conf, item, "upstream", where,
			&upstream) == -1)
			continue;
		if (upstream == NULL || *upstream == '\0') {
			config_error(conf, 0,
			    "%s: missing required field: "
			    "upstream",
			    where);
			continue;
		}
		if (listen == NULL || *listen == '\0')
			listen = "127.0.0.1:0";
		pc = config_new_proxy(conf, name, 0);
		pc->listen_str = xstrdup(listen);
		pc->upstream_str = xstrdup(upstream);
		if (config_addr(conf, listen, &pc->listen, err, sizeof(err)) ==
		    -1)
			config_error(conf, 0, "%s: listen: %s", where, err);
		if (addr_parse_lazy(upstream, &pc->upstream, err,
			sizeof(err)) == -1)
			config_error(conf, 0, "%s: upstream: %s", where, err);
		if ((j = json_object_get(item, "enabled")) != NULL &&
		    !json_is_null(j)) {
			if (!json_is_boolean(j))
				config_error(conf, 0,
				    "%s: enabled must be true "
				    "or false",
				    where);
			pc->enabled = json_is_true(j);
		}
		s = NULL;
		if (config_json_string(conf, item, "protocol", where, &s) ==
		    1) {
			if (strcmp(s, "udp") == 0)
				pc->protocol = PROTO_UDP;
			else if (strcmp(s, "tcp") != 0)
				config_error(conf, 0,
				    "%s: protocol: must be tcp "
				    "or udp",
				    where);
		}
		s = NULL;
		if (config_json_string(conf, item, "upstream_failure", where,
			&s) == 1) {
			if (strcmp(s, "reset") == 0)
				pc->upstream_reset = 1;
			else if (strcmp(s, "close") != 0)
				config_error(conf, 0,
				    "%s: upstream_failure: must "
				    "be close or reset",
				    where);
		}
		config_json_toxics(conf, json_object_get(item, "toxics"), name,
		    where);
	}
	json_decref(root);
}

int
config_load(struct config *conf, const char *path)
{
	struct parse_ctx ctx;

	free(conf->path);
	conf->path = xstrdup(path);
	memset(&ctx, 0, sizeof(ctx));
	ctx.conf = conf;
	if ((ctx.fp = fopen(path, "r")) == NULL) {
		config_error(conf, 0, "%s", strerror(errno));
		return (-1);
	}
	if (config_is_json(ctx.fp)) {
		config_load_json(conf, ctx.fp);
		fclose(ctx.fp);
		return (conf->nerrors == 0 ? 0 : -1);
	}
	ini_parse_stream(config_reader, &ctx, config_handler, &ctx);
	if (ferror(ctx.fp))
		config_error(conf, 0, "read error");
	fclose(ctx.fp);
	return (conf->nerrors == 0 ? 0 : -1);
}

/* --proxy NAME=LISTEN=UPSTREAM */
int
config_add_proxy_arg(struct config *conf, const char *arg)
{
	struct proxy_conf *pc;
	struct addr	   listen, upstream;
	char		  *copy, *name, *ls, *us;
	char		   err[256];
	int		   rc = -1;

	copy = xstrdup(arg);
	name = copy;
	if ((ls = strchr(name, '=')) == NULL ||
	    (us = strchr(ls + 1, '=')) == NULL) {
		config_error(conf, -1,
		    "--proxy %s: expected "
		    "NAME=LISTEN=UPSTREAM",
		    arg);
		goto out;
	}
	*ls++ = '\0';
	*us++ = '\0';
	if (!util_name_valid(name)) {
		config_error(conf, -1, "--proxy %s: invalid proxy name \"%s\"",
		    arg, name);
		goto out;
	}
	if (config_find_proxy(conf, name) != NULL) {
		config_error(conf, -1,
		    "--proxy %s: duplicate proxy name "
		    "\"%s\"",
		    arg, name);
		goto out;
	}
	if (config_addr(conf, ls, &listen, err, sizeof(err)) == -1 ||
	    addr_parse_lazy(us, &upstream, err, sizeof(err)) == -1) {
		config_error(conf, -1, "--proxy %s: %s", arg, err);
		goto out;
	}
	pc = config_new_proxy(conf, name, -1);
	pc->listen = listen;
	pc->upstream = upstream;
	pc->listen_str = xstrdup(ls);
	pc->upstream_str = xstrdup(us);
	rc = 0;
out:
	free(copy);
	return (rc);
}

/*
 * --toxic PROXY:TYPE[:KEY=VALUE[,KEY=VALUE...]], where the keys are those
 * of a [toxic PROXY NAME] section: name, stream, toxicity and the type's
 * attributes. The name defaults to TYPE_STREAM, as in the API.
 */
int
config_add_toxic_arg(struct config *conf, const char *arg)
{
	struct toxic_conf *tc = NULL;
	struct parse_ctx   ctx;
	char		  *copy, *type, *kvs, *kv, *eq, *save;
	size_t		   nerrors = conf->nerrors;
	int		   rc = -1;

	copy = xstrdup(arg);
	if ((type = strchr(copy, ':')) == NULL || type == copy ||
	    type[1] == '\0') {
		config_error(conf, -1,
		    "--toxic %s: expected "
		    "PROXY:TYPE[:KEY=VALUE,...]",
		    arg);
		goto out;
	}
	*type++ = '\0';
	if ((kvs = strchr(type, ':')) != NULL)
		*kvs++ = '\0';
	tc = xcalloc(1, sizeof(*tc));
	tc->proxy = xstrdup(copy);
	tc->type = xstrdup(type);
	tc->attributes = json_object();
	tc->lines = json_object();
	tc->line = -1;

	memset(&ctx, 0, sizeof(ctx));
	ctx.conf = conf;
	ctx.toxic = tc;
	ctx.lineno = -1;
	for (kv = kvs != NULL ? strtok_r(kvs, ",", &save) : NULL; kv != NULL;
	    kv = strtok_r(NULL, ",", &save)) {
		if ((eq = strchr(kv, '=')) == NULL || eq == kv) {
			config_error(conf, -1,
			    "--toxic %s: expected KEY=VALUE, "
			    "got \"%s\"",
			    arg, kv);
			goto out;
		}
		*eq++ = '\0';
		if (strcmp(kv, "name") == 0) {
			/* Empty: the default name, as in the API. */
			free(tc->name);
			tc->name = *eq != '\0' ? xstrdup(eq) : NULL;
		} else if (strcmp(kv, "type") == 0) {
			config_error(conf, -1,
			    "--toxic %s: give the type "
			    "before the attributes",
			    arg);
			goto out;
		} else
			handle_toxic(&ctx, kv, eq);
	}
	if (tc->name == NULL) {
		char name[NAME_MAX_LEN + 32];

		snprintf(name, sizeof(name), "%s_%s", tc->type,
		    tc->stream != NULL ? tc->stream : "downstream");
		tc->name = xstrdup(name);
	}
	/* Only a whole toxic is kept: config_finish() needs its name. */
	TAILQ_INSERT_TAIL(&conf->toxics, tc, entry);
	tc = NULL;
	rc = 0;
out:
	if (tc != NULL)
		toxic_conf_free(tc);
	config_errors_origin(conf, nerrors, "--toxic %s", arg);
	free(copy);
	return (rc);
}

int
config_set_api(struct config *conf, const char *s)
{
	struct addr a;
	char	    err[256];

	if (config_addr(conf, s, &a, err, sizeof(err)) == -1) {
		config_error(conf, -1, "--api: %s", err);
		return (-1);
	}
	conf->api = a;
	free(conf->api_str);
	conf->api_str = xstrdup(s);
	return (0);
}

static void
config_check_proxy(struct config *conf, struct proxy_conf *pc)
{
	struct proxy_conf *other;
	char		   buf[ADDR_STRLEN], err[256];
	size_t		   from;

	if (pc->line < 0)
		return; /* from the command line: complete */
	if (pc->listen_str == NULL && !(pc->seen & 1))
		config_error(conf, pc->line,
		    "proxy \"%s\": missing key "
		    "\"listen\"",
		    pc->name);
	if (pc->upstream_str == NULL && !(pc->seen & 2))
		config_error(conf, pc->line,
		    "proxy \"%s\": missing key "
		    "\"upstream\"",
		    pc->name);
	/*
	 * UDP flows start with a datagram: their upstream is looked up with
	 * the configuration (for a reload, by the daemon before it applies).
	 */
	if (pc->protocol == PROTO_UDP && pc->upstream_str != NULL &&
	    addr_family(&pc->upstream) == AF_UNSPEC && !conf->lazy &&
	    addr_parse(pc->upstream_str, &pc->upstream, err, sizeof(err)) == -1)
		config_error(conf, pc->line, "proxy \"%s\": upstream: %s",
		    pc->name, err);
	if (pc->protocol == PROTO_UDP &&
	    ((pc->listen_str != NULL && addr_family(&pc->listen) == AF_UNIX) ||
		(pc->upstream_str != NULL &&
		    addr_family(&pc->upstream) == AF_UNIX)))
		config_error(conf, pc->line,
		    "proxy \"%s\": protocol udp "
		    "needs host:port addresses (unix datagram sockets are not "
		    "supported)",
		    pc->name);
	if (pc->listen_str == NULL || addr_port(&pc->listen) == 0 ||
	    addr_family(&pc->listen) == AF_UNSPEC)
		return; /* a name: its bind says if it is in use */
	for (other = TAILQ_NEXT(pc, entry); other != NULL;
	    other = TAILQ_NEXT(other, entry)) {
		if (other->listen_str == NULL ||
		    !addr_equal(&pc->listen, &other->listen))
			continue;
		from = conf->nerrors;
		config_error(conf, other->line > 0 ? other->line : -1,
		    "proxy \"%s\": listen address %s already used by "
		    "proxy \"%s\"",
		    other->name, addr_fmt(&pc->listen, buf, sizeof(buf)),
		    pc->name);
		if (other->line < 0)
			config_errors_origin(conf, from, "--proxy %s=%s=%s",
			    other->name, other->listen_str,
			    other->upstream_str);
	}
}

/*
 * Checks that need the whole configuration: required keys, listen
 * addresses used twice, toxics that name unknown proxies. Returns the
 * number of errors recorded so far.
 */
int
config_finish(struct config *conf)
{
	struct proxy_conf *pc;
	struct toxic_conf *tc;

	TAILQ_FOREACH(pc, &conf->proxies, entry)
		config_check_proxy(conf, pc);
	TAILQ_FOREACH(tc, &conf->toxics, entry) {
		struct toxic_conf *other;
		size_t		   from;

		for (other = TAILQ_NEXT(tc, entry); other != NULL;
		    other = TAILQ_NEXT(other, entry)) {
			if (strcmp(tc->proxy, other->proxy) != 0 ||
			    strcmp(tc->name, other->name) != 0)
				continue;
			from = conf->nerrors;
			config_error(conf, other->line,
			    "duplicate toxic "
			    "\"%s\" on proxy \"%s\"",
			    other->name, other->proxy);
			if (other->line < 0)
				config_errors_origin(conf, from,
				    "--toxic %s:%s", other->proxy, other->type);
		}
		from = conf->nerrors;
		if (config_find_proxy(conf, tc->proxy) == NULL)
			config_error(conf, tc->line,
			    "toxic \"%s\": unknown "
			    "proxy \"%s\"",
			    tc->name, tc->proxy);
		toxic_conf_check(conf, tc);
		if (tc->line < 0)
			config_errors_origin(conf, from, "--toxic %s:%s",
			    tc->proxy, tc->type);
	}
	if (conf->api_token == NULL && !conf->api_open &&
	    addr_family(&conf->api) != AF_UNSPEC &&
	    !addr_is_loopback(&conf->api)) {
		/* Not the default, not from a file: from --api. */
		config_error(conf, conf->path != NULL ? 0 : -1,
		    "api %s is not "
		    "a loopback address: set api_token (or TARDY_API_TOKEN) so "
		    "the API is not open to the network, or api_open (--api-open) "
		    "to serve it without a token",
		    conf->api_str);
		if (conf->path == NULL)
			config_errors_origin(conf, conf->nerrors - 1,
			    "--api %s", conf->api_str);
	}
	if (conf->api_group != NULL && addr_family(&conf->api) != AF_UNIX) {
		/* Peer credentials exist on a unix socket only. */
		config_error(conf, conf->path != NULL ? 0 : -1,
		    "api_group "
		    "\"%s\" needs a unix: api (it names who may connect to "
		    "the API socket); api is %s",
		    conf->api_group, conf->api_str);
	}
	return ((int)conf->nerrors);
}
