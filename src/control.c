/*
 * The control layer: every change to the daemon's proxies goes through
 * here, whoever asks for it: the API (create, PATCH, DELETE, /populate,
 * /reset), a reload of the configuration file, the command line at
 * start-up. The API's handlers only read a request and print the result.
 *
 * A change is planned first. Each proxy named is kept, updated in place,
 * replaced, added or removed (control_plan_set, control_plan_remove),
 * then every listener the plan needs is bound, or borrowed from a proxy
 * that is going away or moving (control_plan_bind): if one cannot be,
 * nothing has changed. Then the plan is committed, which cannot fail.
 *
 * One rule says what a change keeps, whatever asked for it:
 *  - an update in place (enabled, upstream_failure, connect_timeout)
 *    keeps everything; disabling closes the proxy's connections;
 *  - a replacement (listen address, upstream, protocol, rcvbuf or the
 *    UDP settings changed) keeps the listener if the listen address
 *    stays, so the port is never released; the toxics, with their
 *    attributes and schedules; the counters; the connection numbering;
 *    the place in the list; and whether the proxy came from the file.
 *    Its open connections are closed, as Toxiproxy's restart closes
 *    them. A reload then makes the toxics of its [toxic] sections agree
 *    with the file (control_conf_toxics).
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "control.h"
#include "history.h"
#include "log.h"
#include "proxy.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"

const char *
control_op_name(enum control_op op)
{
	switch (op) {
	case CONTROL_KEEP:
		return ("kept");
	case CONTROL_UPDATE:
		return ("updated");
	case CONTROL_REPLACE:
		return ("changed, restarting");
	case CONTROL_ADD:
		return ("added");
	case CONTROL_REMOVE:
		return ("removed");
	}
	return ("unknown");
}

/* Whether p already listens where listen says: as asked, or as bound. */
int
control_same_listen(const struct proxy *p, const struct addr *listen)
{
	return (addr_equal(listen, &p->bound) ||
	    addr_equal(listen, &p->listen));
}

/* Describe p as a configuration, to change some of it. pc borrows. */
void
control_proxy_conf(const struct proxy *p, struct proxy_conf *pc)
{
	memset(pc, 0, sizeof(*pc));
	pc->name = p->name;
	pc->listen_str = p->listen_str;
	pc->upstream_str = p->upstream_str;
	pc->listen = p->listen;
	pc->upstream = p->upstream;
	pc->upstream_reset = p->upstream_reset;
	pc->enabled = p->enabled;
	pc->connect_timeout = p->connect_timeout;
	pc->rcvbuf = p->rcvbuf;
	pc->protocol = p->protocol;
	pc->flow_timeout = p->flow_timeout;
	pc->max_flows = p->max_flows;
	pc->line = p->from_config ? 0 : -1;
}

/* What it takes to make p what pc describes. */
static enum control_op
control_classify(const struct proxy *p, const struct proxy_conf *pc)
{
	unsigned int flow_timeout, max_flows;

	flow_timeout = pc->flow_timeout != 0 ? pc->flow_timeout :
					       CONFIG_DEFAULT_FLOW_TIMEOUT;
	max_flows = pc->max_flows != 0 ? pc->max_flows :
					 CONFIG_DEFAULT_MAX_FLOWS;
	if (p->protocol != pc->protocol ||
	    !control_same_listen(p, &pc->listen) ||
	    strcmp(p->upstream_str, pc->upstream_str) != 0 ||
	    !addr_equal(&p->upstream, &pc->upstream) ||
	    p->rcvbuf != pc->rcvbuf || p->flow_timeout != flow_timeout ||
	    p->max_flows != max_flows)
		return (CONTROL_REPLACE);
	if (p->enabled != !!pc->enabled ||
	    p->upstream_reset != pc->upstream_reset ||
	    p->connect_timeout != pc->connect_timeout)
		return (CONTROL_UPDATE);
	return (CONTROL_KEEP);
}

void
control_plan_init(struct control_plan *pl, struct tardy *t)
{
	memset(pl, 0, sizeof(*pl));
	pl->tardy = t;
}

static struct control_change *
control_plan_next(struct control_plan *pl)
{
	struct control_change *c;

	if (pl->n == pl->size) {
		pl->size = pl->size == 0 ? 8 : pl->size * 2;
		pl->changes = xreallocarray(pl->changes, pl->size,
		    sizeof(*pl->changes));
	}
	c = &pl->changes[pl->n++];
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	return (c);
}

/*
 * Plan for the proxy named by pc to be as pc describes: added if there
 * is none, otherwise whatever the difference takes. keep: leave it as it
 * is whatever the difference (a reload's proxy whose section did not
 * change). pc must outlive the plan.
 */
struct control_change *
control_plan_set(struct control_plan *pl, const struct proxy_conf *pc, int keep)
{
	struct control_change *c;

	c = control_plan_next(pl);
	c->pc = pc;
	c->old = tardy_find_proxy(pl->tardy, pc->name);
	if (c->old == NULL)
		c->op = CONTROL_ADD;
	else if (keep)
		c->op = CONTROL_KEEP;
	else
		c->op = control_classify(c->old, pc);
	return (c);
}

void
control_plan_remove(struct control_plan *pl, struct proxy *p)
{
	struct control_change *c;

	c = control_plan_next(pl);
	c->op = CONTROL_REMOVE;
	c->old = p;
}

/*
 * A listener a proxy of the plan gives up (it is removed, or replaced by
 * one listening elsewhere) goes to a proxy that wants that address, so a
 * port moving between proxies is never released. A request for port 0
 * asks for a fresh port: only its own proxy's listener would do.
 */
static struct proxy *
control_find_donor(struct control_plan *pl, const struct control_change *c)
{
	struct control_change *d;
	size_t		       i, j;

	if (addr_port(&c->pc->listen) == 0 &&
	    addr_family(&c->pc->listen) != AF_UNIX)
		return (NULL);
	for (i = 0; i < pl->n; i++) {
		d = &pl->changes[i];
		if (d == c ||
		    (d->op != CONTROL_REMOVE &&
			(d->op != CONTROL_REPLACE ||
			    control_same_listen(d->old, &d->pc->listen))))
			continue;
		if (d->old->protocol != c->pc->protocol ||
		    !control_same_listen(d->old, &c->pc->listen))
			continue;
		for (j = 0; j < pl->n; j++) {
			if (pl->changes[j].donor == d->old)
				break;
		}
		if (j == pl->n)
			return (d->old);
	}
	return (NULL);
}

/*
 * Get every listener the plan needs: a proxy replaced at the same
 * address keeps its own, one moving to an address another proxy gives up
 * takes that one, the rest are bound now. Returns 0, or -1 with nothing
 * changed, pl->failed the change that could not bind and err why.
 */
int
control_plan_bind(struct control_plan *pl, char *err, size_t errlen)
{
	struct control_change	*c;
	const struct proxy_conf *pc;
	size_t			 i;

	for (i = 0; i < pl->n; i++) {
		c = &pl->changes[i];
		if (c->op != CONTROL_ADD && c->op != CONTROL_REPLACE)
			continue;
		pc = c->pc;
		if (c->op == CONTROL_REPLACE &&
		    control_same_listen(c->old, &pc->listen)) {
			c->donor = c->old;
			continue;
		}
		if ((c->donor = control_find_donor(pl, c)) != NULL)
			continue;
		c->fd = proxy_bind_type(pl->tardy, &pc->listen,
		    pc->protocol == PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM,
		    &c->bound, err, errlen);
		if (c->fd == -1) {
			pl->failed = c;
			goto rollback;
		}
	}
	return (0);

rollback:
	for (i = 0; i < pl->n; i++) {
		c = &pl->changes[i];
		if (c->fd != -1)
			proxy_unbind(c->fd, &c->bound);
		c->fd = -1;
		c->donor = NULL;
	}
	return (-1);
}

static void
control_insert(struct tardy *t, struct proxy *p, struct proxy *after)
{
	if (after != NULL)
		TAILQ_INSERT_AFTER(&t->proxies, after, p, entry);
	else
		TAILQ_INSERT_TAIL(&t->proxies, p, entry);
	t->nproxies++;
}

static void
control_update(struct proxy *p, const struct proxy_conf *pc)
{
	p->upstream_reset = pc->upstream_reset;
	if (p->connect_timeout != pc->connect_timeout)
		proxy_set_connect_timeout(p, pc->connect_timeout);
	proxy_shards_update(p);
	proxy_set_enabled(p, pc->enabled);
}

/* A new proxy in old's place, with what the rule above says it keeps. */
static struct proxy *
control_replace(struct tardy *t, struct proxy *old, const struct proxy_conf *pc,
    int fd, const struct addr *bound)
{
	struct proxy *p;
	struct toxic *tx;

	p = proxy_new(t, pc, fd, bound);
	control_insert(t, p, old);
	p->from_config |= old->from_config;
	p->started |= old->started;
	p->next_id = old->next_id;
	/*
	 * The counters and the history go with the name, as the numbering
	 * does, with the closes of the connections the replacement ends.
	 */
	proxy_close_sessions(old, "proxy replaced");
	p->own_stats = old->own_stats;
	history_free(p->history);
	p->history = old->history;
	old->history = history_new();
	proxy_shards_update(p);
	TAILQ_FOREACH(tx, &old->toxics, entry)
		proxy_add_toxic(p, toxic_copy(tx));
	control_proxy_remove(t, old);
	return (p);
}

/* Make the plan so. Listeners change hands before their owners go. */
void
control_plan_commit(struct control_plan *pl)
{
	struct tardy	      *t = pl->tardy;
	struct control_change *c;
	size_t		       i;

	for (i = 0; i < pl->n; i++) {
		c = &pl->changes[i];
		if (c->donor != NULL)
			c->fd = proxy_take_listener(c->donor, &c->bound);
	}
	for (i = 0; i < pl->n; i++) {
		c = &pl->changes[i];
		if (c->op != CONTROL_KEEP && c->op != CONTROL_ADD)
			log_info("proxy %s: %s", c->old->name,
			    control_op_name(c->op));
		switch (c->op) {
		case CONTROL_KEEP:
			c->result = c->old;
			break;
		case CONTROL_UPDATE:
			control_update(c->old, c->pc);
			c->result = c->old;
			break;
		case CONTROL_REPLACE:
			c->result = control_replace(t, c->old, c->pc, c->fd,
			    &c->bound);
			break;
		case CONTROL_ADD:
			c->result = proxy_new(t, c->pc, c->fd, &c->bound);
			control_insert(t, c->result, NULL);
			break;
		case CONTROL_REMOVE:
			control_proxy_remove(t, c->old);
			break;
		}
		/* A proxy the file names is the file's from now on. */
		if (c->result != NULL && c->pc->line >= 0)
			c->result->from_config = 1;
		c->fd = -1;
		c->donor = NULL;
	}
}

void
control_plan_free(struct control_plan *pl)
{
	free(pl->changes);
	memset(pl, 0, sizeof(*pl));
}

/*
 * Create a proxy. Returns 0, or an HTTP status with err saying why: 409
 * for a name in use, 500 for a listener that cannot be bound.
 */
int
control_proxy_add(struct tardy *t, const struct proxy_conf *pc,
    struct proxy **out, char *err, size_t errlen)
{
	*out = NULL;
	if (tardy_find_proxy(t, pc->name) != NULL) {
		snprintf(err, errlen, "proxy already exists");
		return (409);
	}
	return (control_proxy_set(t, pc, out, err, errlen));
}

/* Make one proxy as pc describes, creating it if need be. As above. */
int
control_proxy_set(struct tardy *t, const struct proxy_conf *pc,
    struct proxy **out, char *err, size_t errlen)
{
	struct control_plan pl;

	*out = NULL;
	control_plan_init(&pl, t);
	(void)control_plan_set(&pl, pc, 0);
	if (control_plan_bind(&pl, err, errlen) == -1) {
		control_plan_free(&pl);
		return (500);
	}
	control_plan_commit(&pl);
	*out = pl.changes[0].result;
	control_plan_free(&pl);
	(void)tardy_write_ready(t);
	return (0);
}

void
control_proxy_remove(struct tardy *t, struct proxy *p)
{
	TAILQ_REMOVE(&t->proxies, p, entry);
	t->nproxies--;
	proxy_free(p);
}

/* POST /reset: every proxy enabled and without toxics. */
void
control_reset(struct tardy *t)
{
	struct proxy *p;
	struct toxic *tx;

	TAILQ_FOREACH(p, &t->proxies, entry) {
		proxy_set_enabled(p, 1);
		while ((tx = TAILQ_FIRST(&p->toxics)) != NULL)
			proxy_remove_toxic(p, tx);
	}
}

static void
control_conf_toxic(struct proxy *p, const struct toxic_conf *tc)
{
	struct toxic *tx;
	char	      err[256];
	int	      status;

	tx = toxic_new(p, tc->name, tc->type, tc->stream,
	    tc->has_toxicity ? tc->toxicity : 1.0, tc->attributes, err,
	    sizeof(err), &status);
	if (tx == NULL) {
		log_warnx("proxy %s: toxic %s: %s", p->name, tc->name, err);
		return;
	}
	tx->from_config = 1;
	proxy_add_toxic(p, tx);
}

/*
 * Make p's toxics agree with the [toxic] sections of conf, which
 * replaces old (NULL: p is new, and gets them all). As proxies do, a
 * section that did not change leaves its toxic as it is (with its
 * decisions on open connections, and whatever the API did to it); a
 * changed or new one is (re)made, replacing an API toxic of that name;
 * a section removed removes its toxic.
 */
void
control_conf_toxics(struct proxy *p, struct config *old, struct config *conf)
{
	struct toxic_conf *tc, *otc;
	struct toxic	  *tx, *next;

	for (tx = TAILQ_FIRST(&p->toxics); tx != NULL; tx = next) {
		next = TAILQ_NEXT(tx, entry);
		if (tx->from_config &&
		    config_find_toxic(conf, p->name, tx->name) == NULL)
			proxy_remove_toxic(p, tx);
	}
	TAILQ_FOREACH(tc, &conf->toxics, entry) {
		if (strcmp(tc->proxy, p->name) != 0)
			continue;
		if (old != NULL &&
		    (otc = config_find_toxic(old, p->name, tc->name)) != NULL &&
		    config_toxic_equal(otc, tc))
			continue; /* its section did not change */
		if ((tx = proxy_find_toxic(p, tc->name)) != NULL) {
			if (!tx->from_config)
				log_warnx(
				    "proxy %s: toxic %s from the "
				    "configuration replaces the one added "
				    "through the API",
				    p->name, tc->name);
			proxy_remove_toxic(p, tx);
		}
		control_conf_toxic(p, tc);
	}
}
