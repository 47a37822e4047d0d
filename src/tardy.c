/*
 * The daemon context: start-up, the reload of the configuration file
 * (its names looked up without blocking, then applied through the
 * control layer's plan, so a reload happens whole or not at all),
 * signals, systemd status and the ready file.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "api.h"
#include "config.h"
#include "control.h"
#include "events.h"
#include "log.h"
#include "notify.h"
#include "proxy.h"
#include "ptimer.h"
#include "resolver.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"
#include "worker.h"

static void tardy_signal_cb(evutil_socket_t, short, void *);
static void tardy_status_cb(evutil_socket_t, short, void *);
static void tardy_notify_status(struct tardy *, const char *);

#define TARDY_STATUS_INTERVAL	5	/* seconds between STATUS= updates */

/*
 * The configuration the options name. lazy: for a reload, host names in
 * listen and API addresses (and UDP upstreams) are left for the event
 * loop to look up (tardy_reload); at start-up and for -t they are looked
 * up here.
 */
struct config *
tardy_config_load(const struct tardy_options *opts, int lazy)
{
	struct config *conf = config_new();
	const char    *token, *resolv, *threads;
	size_t	       i;

	conf->lazy = lazy;
	if (opts->conf_path != NULL)
		(void)config_load(conf, opts->conf_path);
	for (i = 0; i < opts->nproxy_args; i++)
		(void)config_add_proxy_arg(conf, opts->proxy_args[i]);
	for (i = 0; i < opts->ntoxic_args; i++)
		(void)config_add_toxic_arg(conf, opts->toxic_args[i]);
	if (opts->api != NULL)
		(void)config_set_api(conf, opts->api);
	if ((token = getenv("TARDY_API_TOKEN")) != NULL && *token != '\0') {
		free(conf->api_token);
		conf->api_token = xstrdup(token);
	}
	if ((resolv = getenv("TARDY_RESOLV_CONF")) != NULL && *resolv != '\0') {
		free(conf->resolv_conf);
		conf->resolv_conf = xstrdup(resolv);
	}
	if (opts->api_open)
		conf->api_open = 1;
	if (opts->seed_set)
		conf->seed = opts->seed;
	/* For containers and test suites: the file's unless --threads. */
	if ((threads = getenv("TARDY_THREADS")) != NULL && *threads != '\0' &&
	    config_parse_threads(threads, &conf->threads) == -1)
		config_error(conf, -1,
		    "TARDY_THREADS: invalid value \"%s\" (auto, or 1 to %d)",
		    threads, CONFIG_MAX_THREADS);
	if (opts->threads_set)
		conf->threads = opts->threads;
	(void)config_finish(conf);
	return (conf);
}

void
tardy_config_print_errors(const struct config *conf)
{
	size_t i;

	for (i = 0; i < conf->nerrors; i++)
		log_error("%s", conf->errors[i]);
}

struct tardy *
tardy_new(const struct tardy_options *opts, struct config *conf)
{
	struct tardy *t;
	unsigned int  n;

	t = xcalloc(1, sizeof(*t));
	t->opts = *opts;
	t->conf = conf;
	t->seed = conf->seed;
	t->last_reload = "none";
	t->t_start = util_now_ns();

	TAILQ_INIT(&t->proxies);

	loop_init(&t->loop, 0, conf->resolv_conf);
	t->events = events_new(t);
	if ((n = config_threads(conf)) > 1)
		workers_start(t, n);
	t->sig_term = evsignal_new(t->loop.base, SIGTERM, tardy_signal_cb, t);
	t->sig_int = evsignal_new(t->loop.base, SIGINT, tardy_signal_cb, t);
	t->sig_hup = evsignal_new(t->loop.base, SIGHUP, tardy_signal_cb, t);
	if (t->sig_term == NULL || t->sig_int == NULL || t->sig_hup == NULL)
		fatalx("evsignal_new");
	evsignal_add(t->sig_term, NULL);
	evsignal_add(t->sig_int, NULL);
	evsignal_add(t->sig_hup, NULL);
	signal(SIGPIPE, SIG_IGN);
	return (t);
}

struct proxy *
tardy_find_proxy(struct tardy *t, const char *name)
{
	struct proxy *p;

	TAILQ_FOREACH(p, &t->proxies, entry) {
		if (strcmp(p->name, name) == 0)
			return (p);
	}
	return (NULL);
}

/*
 * Whether a reload leaves p alone: p was built from the configuration
 * being replaced, and its section there is the same as in the new one.
 * The file is compared with the file, never with live state: what the
 * API did to a proxy since (disabled it, moved it, gave it toxics) stays
 * until its section changes.
 */
static int
tardy_proxy_unchanged(struct tardy *t, const struct proxy *p,
    const struct proxy_conf *pc)
{
	const struct proxy_conf *old;

	if (t->conf == NULL ||
	    (old = config_find_proxy(t->conf, p->name)) == NULL ||
	    p->from_config != (old->line >= 0))
		return (0);
	return (config_proxy_equal(old, pc));
}

/*
 * Make the running proxies those of conf, through one plan (control.c):
 * a proxy whose section did not change is kept as it is; one that
 * changed becomes what its section says; one whose section is gone is
 * removed; proxies made through the API are not the file's to touch.
 * On failure (a listener cannot be bound) nothing has changed and err
 * says why.
 */
static int
tardy_apply(struct tardy *t, struct config *conf, char *err, size_t errlen)
{
	struct control_plan    pl;
	struct control_change *c;
	struct proxy_conf     *pc;
	struct proxy	      *p;
	struct config	      *old = t->conf != conf ? t->conf : NULL;
	char		       berr[256];
	size_t		       i;

	control_plan_init(&pl, t);
	TAILQ_FOREACH(p, &t->proxies, entry) {
		if (p->from_config && config_find_proxy(conf, p->name) == NULL)
			control_plan_remove(&pl, p);
	}
	TAILQ_FOREACH(pc, &conf->proxies, entry) {
		p = tardy_find_proxy(t, pc->name);
		(void)control_plan_set(&pl, pc,
		    p != NULL && tardy_proxy_unchanged(t, p, pc));
	}
	if (control_plan_bind(&pl, berr, sizeof(berr)) == -1) {
		snprintf(err, errlen, "proxy %s: %s", pl.failed->pc->name,
		    berr);
		control_plan_free(&pl);
		return (-1);
	}
	control_plan_commit(&pl);
	for (i = 0; i < pl.n; i++) {
		c = &pl.changes[i];
		if (c->result != NULL)
			control_conf_toxics(c->result,
			    c->op == CONTROL_ADD ? NULL : old, conf);
	}
	control_plan_free(&pl);
	return (0);
}

int
tardy_start(struct tardy *t)
{
	char err[512];

	log_set_level(t->opts.log_level >= 0 ?
		(enum log_level)t->opts.log_level :
		t->conf->log_level);
	if (tardy_apply(t, t->conf, err, sizeof(err)) == -1) {
		log_error("%s", err);
		return (-1);
	}
	if ((t->api = api_new(t, &t->conf->api, t->conf->api_token, err,
		 sizeof(err))) == NULL) {
		log_error("api: %s", err);
		return (-1);
	}
	if (tardy_write_ready(t) == -1)
		return (-1);
	log_info("ready: %zu prox%s, seed %llu", t->nproxies,
	    t->nproxies == 1 ? "y" : "ies", (unsigned long long)t->seed);
	if (notify_enabled()) {
		t->status_ev = event_new(t->loop.base, -1, EV_PERSIST,
		    tardy_status_cb, t);
		if (t->status_ev == NULL)
			fatalx("event_new");
		event_add(t->status_ev,
		    &(const struct timeval){ TARDY_STATUS_INTERVAL, 0 });
		tardy_notify_status(t, "READY=1\n");
	}
	return (0);
}

/* Tell systemd how we are: proxies and open connections. */
static void
tardy_notify_status(struct tardy *t, const char *prefix)
{
	struct proxy *p;
	size_t	      conns = 0;

	TAILQ_FOREACH(p, &t->proxies, entry)
		conns += proxy_nsessions(p);
	(void)notify_send("%sSTATUS=%zu prox%s, %zu connection%s open", prefix,
	    t->nproxies, t->nproxies == 1 ? "y" : "ies", conns,
	    conns == 1 ? "" : "s");
}

static void
tardy_status_cb(evutil_socket_t fd, short what, void *arg)
{
	tardy_notify_status(arg, "");
}

static void tardy_reload_done(struct tardy *, const char *, const char *);
static void tardy_reload_apply(struct tardy *, struct config *);

/*
 * A reload waiting for the host names of its configuration (listen
 * addresses, UDP upstreams): looked up on the event loop (resolver.c),
 * never with a blocking getaddrinfo() in the signal's callback, so the
 * proxies and the API carry on meanwhile; the configuration is applied
 * once every name is known. A SIGHUP meanwhile abandons that reload for
 * a new one of the file as it is then: only the last is answered (ready
 * file, --reload), so every answer is about the file as it was when its
 * signal was sent.
 */
static void
tardy_lookup_free(struct tardy *t)
{
	resolver_batch_free(t->lookup);
	config_free(t->lookup_conf);
	t->lookup = NULL;
	t->lookup_conf = NULL;
}

/* Put the answer for one of pc's addresses in place. */
static int
tardy_lookup_addr(struct resolver_batch *b, const struct proxy_conf *pc,
    const char *key, struct addr *a, const char *spec, char *msg, size_t len)
{
	char err[300];

	if (addr_family(a) != AF_UNSPEC ||
	    resolver_batch_get(b, spec, a, err, sizeof(err)) == 0)
		return (0);
	snprintf(msg, len, "proxy %s: %s: %s", pc->name, key, err);
	return (-1);
}

/* Every name of the reload's configuration is in: apply it, or fail. */
static void
tardy_lookup_done(void *arg)
{
	struct tardy	  *t = arg;
	struct config	  *conf = t->lookup_conf;
	struct proxy_conf *pc;
	char		   msg[512];

	msg[0] = '\0';
	TAILQ_FOREACH(pc, &conf->proxies, entry) {
		if (tardy_lookup_addr(t->lookup, pc, "listen", &pc->listen,
			pc->listen_str, msg, sizeof(msg)) == -1 ||
		    (pc->protocol == PROTO_UDP &&
			tardy_lookup_addr(t->lookup, pc, "upstream",
			    &pc->upstream, pc->upstream_str, msg,
			    sizeof(msg)) == -1))
			break;
	}
	t->lookup_conf = NULL; /* ours now */
	tardy_lookup_free(t);
	if (msg[0] != '\0') {
		log_error("reload failed: %s; keeping the running "
			  "configuration",
		    msg);
		tardy_reload_done(t, "failed", msg);
		config_free(conf);
	} else
		tardy_reload_apply(t, conf);
}

/*
 * A reload waits for the host names of its configuration (listen
 * addresses, UDP upstreams): looked up on the event loop (resolver.c),
 * never with a blocking getaddrinfo() in the signal's callback, so the
 * proxies and the API carry on meanwhile; the configuration is applied
 * once every name is known. A SIGHUP meanwhile abandons that reload for
 * a new one of the file as it is then: only the last is answered (ready
 * file, --reload), so every answer is about the file as it was when its
 * signal was sent.
 */
static void
tardy_lookup_start(struct tardy *t, struct config *conf)
{
	struct proxy_conf *pc;

	t->lookup = resolver_batch_new(t->loop.resolver, tardy_lookup_done, t);
	t->lookup_conf = conf;
	TAILQ_FOREACH(pc, &conf->proxies, entry) {
		if (addr_family(&pc->listen) == AF_UNSPEC)
			resolver_batch_add(t->lookup, pc->listen_str);
		if (pc->protocol == PROTO_UDP &&
		    addr_family(&pc->upstream) == AF_UNSPEC)
			resolver_batch_add(t->lookup, pc->upstream_str);
	}
	if (resolver_batch_start(t->lookup) == 0)
		tardy_lookup_done(t);
}

void
tardy_reload(struct tardy *t)
{
	struct config *conf;
	char	       err[512];

	if (t->lookup != NULL) {
		log_info("reload: abandoning the one still looking up names");
		tardy_lookup_free(t);
	}
	t->generation++;
	log_info("reloading configuration");
	(void)notify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)(util_now_ns() / 1000));
	conf = tardy_config_load(&t->opts, 1);
	if (conf->nerrors > 0) {
		tardy_config_print_errors(conf);
		log_error("reload failed: %zu error%s, keeping the running "
			  "configuration",
		    conf->nerrors, conf->nerrors == 1 ? "" : "s");
		snprintf(err, sizeof(err), "%s%s", conf->errors[0],
		    conf->nerrors > 1 ? " (and more: see the log)" : "");
		config_free(conf);
		tardy_reload_done(t, "failed", err);
		return;
	}
	tardy_lookup_start(t, conf);
}

/* The names of conf are known: make it the running configuration. */
static void
tardy_reload_apply(struct tardy *t, struct config *conf)
{
	char err[512];

	/* The API stays where it is until a restart, and so do the loops. */
	if (strcmp(conf->api_str, t->conf->api_str) != 0)
		log_warnx("api address changes take effect at restart");
	if (config_threads(conf) != config_threads(t->conf))
		log_warnx("threads changes take effect at restart");
	conf->api = t->conf->api;
	if (tardy_apply(t, conf, err, sizeof(err)) == -1) {
		log_error("reload failed: %s; keeping the running "
			  "configuration",
		    err);
		config_free(conf);
		tardy_reload_done(t, "failed", err);
		return;
	}
	/* A token is rotated by a reload: a leaked one must stop working. */
	if ((conf->api_token == NULL) != (t->conf->api_token == NULL) ||
	    (conf->api_token != NULL &&
		strcmp(conf->api_token, t->conf->api_token) != 0)) {
		api_set_token(t->api, conf->api_token);
		log_info("api: token %s",
		    conf->api_token != NULL ? "changed" : "removed");
	}
	config_free(t->conf);
	t->conf = conf;
	t->seed = conf->seed;
	if (t->opts.log_level < 0)
		log_set_level(conf->log_level);
	log_info("configuration reloaded: %zu prox%s", t->nproxies,
	    t->nproxies == 1 ? "y" : "ies");
	tardy_reload_done(t, "ok", "");
}

/* how: "ok" or "failed"; why: the first error, for tardyd --reload. */
static void
tardy_reload_done(struct tardy *t, const char *how, const char *why)
{
	t->last_reload = how;
	snprintf(t->reload_error, sizeof(t->reload_error), "%s", why);
	(void)tardy_write_ready(t);
	tardy_notify_status(t, "READY=1\n");
}

/*
 * Tell test suites where everything listens: a JSON object written to a
 * temporary file and renamed into place, so a reader never sees half.
 */
int
tardy_write_ready(struct tardy *t)
{
	json_t	     *root, *proxies;
	struct proxy *p;
	char	      buf[ADDR_STRLEN], *tmp;
	int	      fd, rc = -1;

	if (t->opts.ready_file == NULL)
		return (0);
	proxies = json_object();
	TAILQ_FOREACH(p, &t->proxies, entry)
		json_object_set_new(proxies, p->name,
		    json_string(addr_fmt(&p->bound, buf, sizeof(buf))));
	root = json_pack("{s:s?, s:o, s:I, s:I, s:s, s:s?}", "api",
	    t->api != NULL ? api_address(t->api, buf, sizeof(buf)) : NULL,
	    "proxies", proxies, "pid", (json_int_t)getpid(), "generation",
	    (json_int_t)t->generation, "last_reload", t->last_reload,
	    "reload_error",
	    t->reload_error[0] != '\0' ? t->reload_error : NULL);
	if (root == NULL)
		fatalx("json_pack");
	/*
	 * A temporary file of our own making (mkstemp: a new, unpredictable
	 * name, opened O_EXCL, so no symlink planted in the directory is
	 * followed), readable by the test that waits for it, then renamed.
	 */
	if (asprintf(&tmp, "%s.XXXXXX", t->opts.ready_file) == -1)
		fatal("asprintf");
	if ((fd = mkstemp(tmp)) == -1)
		log_warn("cannot create %s", tmp);
	else if (fchmod(fd, 0644) == -1 ||
	    json_dumpfd(root, fd, JSON_COMPACT) == -1) {
		log_warn("cannot write %s", tmp);
		(void)unlink(tmp);
	} else if (rename(tmp, t->opts.ready_file) == -1) {
		log_warn("cannot rename %s to %s", tmp, t->opts.ready_file);
		(void)unlink(tmp);
	} else
		rc = 0;
	if (fd != -1)
		close(fd);
	free(tmp);
	json_decref(root);
	return (rc);
}

static void
tardy_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct tardy *t = arg;

	switch (sig) {
	case SIGHUP:
		tardy_reload(t);
		break;
	case SIGTERM:
	case SIGINT:
		log_info("%s: shutting down", strsignal(sig));
		(void)notify_send("STOPPING=1");
		event_base_loopbreak(t->loop.base);
		break;
	}
}

void
tardy_free(struct tardy *t)
{
	struct proxy *p;

	tardy_lookup_free(t);
	while ((p = TAILQ_FIRST(&t->proxies)) != NULL)
		control_proxy_remove(t, p);
	api_free(t->api);
	workers_stop(t);
	events_free(t->events);
	event_free(t->sig_term);
	event_free(t->sig_int);
	event_free(t->sig_hup);
	if (t->status_ev != NULL)
		event_free(t->status_ev);
	config_free(t->conf);
	loop_free(&t->loop);
	free(t);
}
