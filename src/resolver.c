/*
 * Looking up host names without blocking the event loop.
 *
 * An upstream may be named by a host name that does not resolve yet (a
 * compose or Kubernetes service that starts after tardyd), so the name is
 * looked up when a connection needs it, as Toxiproxy does. Lookups of one
 * name are shared: while one is running, every connection that needs the
 * name waits for its answer, so a burst of connections costs one query.
 * An answer is kept for RESOLVER_TTL_MS; a failure is not kept, so a name
 * that starts to resolve is used by the next connection.
 *
 * The evdns base reads /etc/resolv.conf (and /etc/hosts), or the file the
 * configuration names, on first use; the API's lookups share it.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "log.h"
#include "resolver.h"
#include "util.h"

#define RESOLVER_TIMEOUT	"2"	/* seconds per attempt */
#define RESOLVER_ATTEMPTS	"2"

TAILQ_HEAD(resolver_wait_list, resolver_wait);

struct resolver_name {
	TAILQ_ENTRY(resolver_name)	  entry;
	struct resolver			 *r; /* NULL: orphaned */
	char				 *host;
	struct addr			  addr;
	uint64_t			  expires; /* ms; 0: none */
	struct evdns_getaddrinfo_request *req;
	int				  running;
	int				  launching;
	int				  answered; /* while launching */
	int				  result;
	struct resolver_wait_list	  waiting;
};
TAILQ_HEAD(resolver_name_list, resolver_name);

struct resolver {
	struct event_base	 *base;
	char			 *conf; /* resolv.conf, NULL: system's */
	struct evdns_base	 *dns;
	int			  dns_failed;
	struct resolver_name_list names;
};

struct resolver *
resolver_new(struct event_base *base, const char *conf)
{
	struct resolver *r;

	r = xcalloc(1, sizeof(*r));
	r->base = base;
	if (conf != NULL)
		r->conf = xstrdup(conf);
	TAILQ_INIT(&r->names);
	return (r);
}

static void
resolver_name_free(struct resolver_name *n)
{
	if (n->r != NULL)
		TAILQ_REMOVE(&n->r->names, n, entry);
	free(n->host);
	free(n);
}

void
resolver_free(struct resolver *r)
{
	struct resolver_name *n;
	struct resolver_wait *w;
	int		      cancelled = 0;

	if (r == NULL)
		return;
	while ((n = TAILQ_FIRST(&r->names)) != NULL) {
		while ((w = TAILQ_FIRST(&n->waiting)) != NULL) {
			TAILQ_REMOVE(&n->waiting, w, entry);
			w->name = NULL;
		}
		if (!n->running) {
			resolver_name_free(n);
			continue;
		}
		/* Its callback frees it, now or from the loop. */
		TAILQ_REMOVE(&r->names, n, entry);
		n->r = NULL;
		evdns_getaddrinfo_cancel(n->req);
		cancelled = 1;
	}
	/*
	 * evdns tells a cancelled lookup so from the loop (a deferred
	 * callback), which has stopped by now: one turn delivers it, and
	 * frees what the lookup held.
	 */
	if (cancelled)
		(void)event_base_loop(r->base, EVLOOP_NONBLOCK);
	if (r->dns != NULL)
		evdns_base_free(r->dns, 0);
	free(r->conf);
	free(r);
}

/* The evdns base, set up on first use; NULL if it cannot be. */
struct evdns_base *
resolver_dns(struct resolver *r)
{
	int rc;

	if (r->dns != NULL || r->dns_failed)
		return (r->dns);
	if (r->conf == NULL)
		r->dns = evdns_base_new(r->base,
		    EVDNS_BASE_INITIALIZE_NAMESERVERS);
	else if ((r->dns = evdns_base_new(r->base, 0)) != NULL) {
		/* 6: no nameserver in the file; evdns then asks 127.0.0.1. */
		rc = evdns_base_resolv_conf_parse(r->dns, DNS_OPTIONS_ALL,
		    r->conf);
		if (rc != 0 && rc != 6) {
			log_warnx("resolver: cannot read %s (evdns error %d)",
			    r->conf, rc);
			evdns_base_free(r->dns, 0);
			r->dns = NULL;
		}
	}
	if (r->dns == NULL) {
		log_warnx("resolver: cannot set up the resolver");
		r->dns_failed = 1;
		return (NULL);
	}
	(void)evdns_base_set_option(r->dns, "timeout:", RESOLVER_TIMEOUT);
	(void)evdns_base_set_option(r->dns, "attempts:", RESOLVER_ATTEMPTS);
	/*
	 * No 0x20 mixed-case queries: podman's aardvark-dns answers
	 * "ECHo.dNS.podmaN." with NXDOMAIN, so service names would never
	 * resolve in a container; glibc and Go do not mix case either.
	 */
	(void)evdns_base_set_option(r->dns, "randomize-case:", "0");
	return (r->dns);
}

/*
 * The address to use out of an answer: the first IPv4 one, else the
 * first IPv6 one. Services in test labs listen on 127.0.0.1 or 0.0.0.0
 * far more often than on ::1, and "localhost" has both.
 */
static const struct evutil_addrinfo *
resolver_pick(const struct evutil_addrinfo *res)
{
	const struct evutil_addrinfo *ai;

	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			return (ai);
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET6)
			return (ai);
	}
	return (NULL);
}

static const char *
resolver_strerror(int result)
{
	return (result == 0 ? "no address" : evutil_gai_strerror(result));
}

static void
resolver_lookup_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct resolver_name	     *n = arg;
	const struct evutil_addrinfo *ai;
	struct resolver_wait	     *w;
	char			      err[256];

	n->running = 0;
	n->req = NULL;
	if (n->r == NULL) { /* the resolver went away */
		if (res != NULL)
			evutil_freeaddrinfo(res);
		resolver_name_free(n);
		return;
	}
	ai = result == 0 ? resolver_pick(res) : NULL;
	if (ai != NULL &&
	    addr_from_sockaddr(&n->addr, ai->ai_addr,
		(socklen_t)ai->ai_addrlen) == 0)
		n->expires = util_now_ms() + RESOLVER_TTL_MS;
	else {
		n->expires = 0;
		if (result == 0)
			result = EVUTIL_EAI_FAIL;
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
	if (n->launching) { /* answered at once: resolver_get() */
		n->answered = 1;
		n->result = result;
		return;
	}
	if (result != 0) {
		snprintf(err, sizeof(err), "cannot resolve \"%s\": %s", n->host,
		    resolver_strerror(result));
		log_debug("resolver: %s", err);
	}
	/*
	 * A callback may close other connections, which cancel their waits,
	 * or ask for this name again: the list is taken one at a time.
	 */
	while ((w = TAILQ_FIRST(&n->waiting)) != NULL) {
		TAILQ_REMOVE(&n->waiting, w, entry);
		w->name = NULL;
		if (result == 0)
			w->cb(w, &n->addr, NULL);
		else
			w->cb(w, NULL, err);
	}
}

static struct resolver_name *
resolver_find(struct resolver *r, const char *host, uint64_t now)
{
	struct resolver_name *n, *next;

	for (n = TAILQ_FIRST(&r->names); n != NULL; n = next) {
		next = TAILQ_NEXT(n, entry);
		if (strcmp(n->host, host) == 0)
			return (n);
		/* Forget names nobody asked for in a while. */
		if (!n->running && n->expires <= now)
			resolver_name_free(n);
	}
	return (NULL);
}

/*
 * The address of host (port 0). Returns 0 with *out set when it is known
 * now, -1 with err set when the lookup failed at once, and 1 when w waits
 * for it: w->cb is then called from the event loop, never before this
 * returns, unless resolver_cancel(w) is called first.
 */
int
resolver_get(struct resolver *r, const char *host, struct resolver_wait *w,
    struct addr *out, char *err, size_t errlen)
{
	struct evutil_addrinfo hints;
	struct resolver_name  *n;
	struct evdns_base     *dns;
	uint64_t	       now = util_now_ms();

	if ((n = resolver_find(r, host, now)) == NULL) {
		n = xcalloc(1, sizeof(*n));
		n->r = r;
		n->host = xstrdup(host);
		TAILQ_INIT(&n->waiting);
		TAILQ_INSERT_TAIL(&r->names, n, entry);
	}
	if (n->expires > now) {
		*out = n->addr;
		return (0);
	}
	if (!n->running) {
		if ((dns = resolver_dns(r)) == NULL) {
			snprintf(err, errlen,
			    "cannot resolve \"%s\": no "
			    "resolver available",
			    host);
			return (-1);
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_protocol = IPPROTO_TCP;
		n->running = n->launching = 1;
		n->answered = 0;
		/* /etc/hosts and errors answer before it returns. */
		n->req = evdns_getaddrinfo(dns, host, NULL, &hints,
		    resolver_lookup_cb, n);
		n->launching = 0;
		if (!n->answered && n->req == NULL) {
			n->running = 0;
			n->answered = 1;
			n->result = EVUTIL_EAI_FAIL;
		}
		if (n->answered && n->result == 0) {
			*out = n->addr;
			return (0);
		}
		if (n->answered) {
			snprintf(err, errlen, "cannot resolve \"%s\": %s", host,
			    resolver_strerror(n->result));
			return (-1);
		}
	}
	w->name = n;
	TAILQ_INSERT_TAIL(&n->waiting, w, entry);
	return (1);
}

/* Stop waiting: w's callback will not be called. */
void
resolver_cancel(struct resolver_wait *w)
{
	if (w->name == NULL)
		return;
	TAILQ_REMOVE(&w->name->waiting, w, entry);
	w->name = NULL;
}

/*
 * A batch: the names one piece of work needs before it can go on (the
 * listen addresses of a reloaded file, the host names in an API request),
 * looked up together. Each is "host:port" as written; the callback runs
 * once every answer is in, never from resolver_batch_start().
 */
struct resolver_batch_name {
	struct resolver_wait   wait; /* first: see the callback */
	struct resolver_batch *batch;
	char		      *spec;
	struct addr	       addr; /* with the spec's port */
	char		      *err;  /* NULL: resolved */
};

struct resolver_batch {
	struct resolver		   *r;
	struct resolver_batch_name *names;
	size_t			    n;
	size_t			    waiting;
	void (*cb)(void *);
	void *arg;
};

struct resolver_batch *
resolver_batch_new(struct resolver *r, void (*cb)(void *), void *arg)
{
	struct resolver_batch *b;

	b = xcalloc(1, sizeof(*b));
	b->r = r;
	b->cb = cb;
	b->arg = arg;
	return (b);
}

void
resolver_batch_free(struct resolver_batch *b)
{
	size_t i;

	if (b == NULL)
		return;
	for (i = 0; i < b->n; i++) {
		resolver_cancel(&b->names[i].wait);
		free(b->names[i].spec);
		free(b->names[i].err);
	}
	free(b->names);
	free(b);
}

/* Add spec, "host:port", unless it is there already or is no name. */
void
resolver_batch_add(struct resolver_batch *b, const char *spec)
{
	struct resolver_batch_name *n;
	char			    host[256];
	size_t			    i;
	int			    port;

	if (!addr_name(spec, host, sizeof(host), &port))
		return;
	for (i = 0; i < b->n; i++) {
		if (strcmp(b->names[i].spec, spec) == 0)
			return;
	}
	b->names = xreallocarray(b->names, b->n + 1, sizeof(*b->names));
	n = &b->names[b->n++];
	memset(n, 0, sizeof(*n));
	n->batch = b;
	n->spec = xstrdup(spec);
}

static void
resolver_batch_answer(struct resolver_batch_name *n, const struct addr *a,
    const char *err)
{
	char host[256];
	int  port;

	if (a != NULL) {
		(void)addr_name(n->spec, host, sizeof(host), &port);
		n->addr = *a;
		addr_set_port(&n->addr, port);
	} else
		n->err = xstrdup(err);
}

static void
resolver_batch_cb(struct resolver_wait *w, const struct addr *a,
    const char *err)
{
	struct resolver_batch_name *n = (struct resolver_batch_name *)w;
	struct resolver_batch	   *b = n->batch;

	resolver_batch_answer(n, a, err);
	if (--b->waiting == 0)
		b->cb(b->arg);
}

/*
 * Look up every name of the batch. Returns 1 if some answers are still
 * to come (the callback runs when the last one is in), 0 if all are here.
 * The batch takes no names once started.
 */
int
resolver_batch_start(struct resolver_batch *b)
{
	struct resolver_batch_name *n;
	struct addr		    a;
	char			    host[256], err[300];
	size_t			    i;
	int			    port;

	b->waiting = 1; /* until every lookup is started */
	for (i = 0; i < b->n; i++) {
		n = &b->names[i];
		n->wait.cb = resolver_batch_cb;
		(void)addr_name(n->spec, host, sizeof(host), &port);
		switch (resolver_get(b->r, host, &n->wait, &a, err,
		    sizeof(err))) {
		case 0:
			resolver_batch_answer(n, &a, NULL);
			break;
		case -1:
			resolver_batch_answer(n, NULL, err);
			break;
		default:
			b->waiting++;
			break;
		}
	}
	return (--b->waiting > 0);
}

/*
 * The answer for spec: 0 and its address (with its port), or -1 and why
 * not in err (also for a name the batch did not have).
 */
int
resolver_batch_get(struct resolver_batch *b, const char *spec, struct addr *a,
    char *err, size_t errlen)
{
	char   host[256];
	size_t i;
	int    port;

	for (i = 0; b != NULL && i < b->n; i++) {
		if (strcmp(b->names[i].spec, spec) != 0)
			continue;
		if (b->names[i].err != NULL) {
			snprintf(err, errlen, "%s", b->names[i].err);
			return (-1);
		}
		*a = b->names[i].addr;
		return (0);
	}
	if (!addr_name(spec, host, sizeof(host), &port))
		snprintf(host, sizeof(host), "%.200s", spec);
	snprintf(err, errlen, "cannot resolve \"%s\"", host);
	return (-1);
}
