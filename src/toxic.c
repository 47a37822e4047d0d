/*
 * The toxic engine: what every toxic type shares.
 *
 * A toxic is validated once (attributes are integers in the type's
 * ranges, the scheduling attributes, toxicity) whether it comes from the
 * API or the config file. On each connection it gets a link that decides,
 * from the connection's own seeded generator, whether it acts there at
 * all; then it waits for after_ms and after_bytes, acts through its type's
 * hooks, and after duration_ms passes data untouched again. The types
 * only ever see data while their link is active.
 */
#include "autoconf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "events.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "toxic_types.h"
#include "util.h"

static const struct toxic_type *const toxic_types[] = {
	&toxic_noop,
	&toxic_latency,
	&toxic_bandwidth,
	&toxic_slow_close,
	&toxic_timeout,
	&toxic_reset_peer,
	&toxic_slicer,
	&toxic_limit_data,
	&toxic_blackhole,
	&toxic_stall,
	&toxic_refuse,
	&toxic_drop_syn,
	&toxic_loss,
	&toxic_duplicate,
};

/* Scheduling attributes every type accepts (ext). */
#define DAY_MS		(24ULL * 3600 * 1000)
/* clang-format off */
static const struct toxic_attr sched_attrs[] = {
	{ "after_bytes",	0, INT64_MAX,	0, 0 },
	{ "after_ms",		0, DAY_MS,	0, 0 },
	{ "duration_ms",	0, DAY_MS,	0, 0 },
	{ "every",		1, INT64_MAX,	1, 0 },
	{ "first",		0, INT64_MAX,	0, 0 },
	{ NULL,			0, 0,		0, 0 },
};
/* clang-format on */

static void link_sched_cb(void *);
static void toxic_listener_cb(void *);

const struct toxic_type *
toxic_type_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(toxic_types) / sizeof(toxic_types[0]); i++) {
		if (strcmp(toxic_types[i]->name, name) == 0)
			return (toxic_types[i]);
	}
	return (NULL);
}

const char *
toxic_stream_name(enum toxic_stream stream)
{
	return (stream == TOXIC_UPSTREAM ? "upstream" : "downstream");
}

int
toxic_stream_parse(const char *s, enum toxic_stream *stream)
{
	if (strcmp(s, "upstream") == 0)
		*stream = TOXIC_UPSTREAM;
	else if (strcmp(s, "downstream") == 0)
		*stream = TOXIC_DOWNSTREAM;
	else
		return (-1);
	return (0);
}

/*
 * Read one integer attribute. Absent: the current value stays (the
 * default for a new toxic). Reals are refused even when integral, as
 * Toxiproxy's Go decoder does; a probability is any number from 0 to 1.
 */
static int
toxic_read_attr(json_t *attrs, const struct toxic_attr *a, int64_t *v,
    int isnew, char *err, size_t errlen)
{
	json_t	  *j = attrs != NULL ? json_object_get(attrs, a->name) : NULL;
	json_int_t x;
	double	   d;

	if (j == NULL || json_is_null(j)) {
		if (isnew && (a->flags & TOXIC_A_REQUIRED)) {
			snprintf(err, errlen, "attribute %s is required",
			    a->name);
			return (-1);
		}
		return (0);
	}
	if (a->flags & TOXIC_A_UNIT) {
		if (!json_is_number(j)) {
			snprintf(err, errlen,
			    "attribute %s must be a number "
			    "from 0 to 1",
			    a->name);
			return (-1);
		}
		d = json_number_value(j);
		if (!(d >= 0.0 && d <= 1.0)) {
			snprintf(err, errlen,
			    "attribute %s must be between 0 "
			    "and 1 (got %g)",
			    a->name, d);
			return (-1);
		}
		*v = llround(d * (double)a->max);
		return (0);
	}
	if (!json_is_integer(j)) {
		snprintf(err, errlen, "attribute %s must be an integer",
		    a->name);
		return (-1);
	}
	x = json_integer_value(j);
	if (x < a->min || x > a->max) {
		snprintf(err, errlen,
		    "attribute %s must be between %lld and "
		    "%lld (got %lld)",
		    a->name, (long long)a->min, (long long)a->max,
		    (long long)x);
		return (-1);
	}
	*v = x;
	return (0);
}

/*
 * Read an attribute whose alias is the row after it: from whichever is
 * given, the alias scaled from its parts to the attribute's. Both in one
 * request is refused even when they agree, as neither would be ignored.
 */
static int
toxic_read_aliased(json_t *attrs, const struct toxic_attr *a, int64_t *v,
    int isnew, char *err, size_t errlen)
{
	const struct toxic_attr *alias = a + 1;
	json_t			*j;
	int64_t			 x;

	j = attrs != NULL ? json_object_get(attrs, alias->name) : NULL;
	if (j == NULL || json_is_null(j))
		return (toxic_read_attr(attrs, a, v, isnew, err, errlen));
	j = json_object_get(attrs, a->name);
	if (j != NULL && !json_is_null(j)) {
		snprintf(err, errlen,
		    "attributes %s and %s are one setting: "
		    "give one of them",
		    a->name, alias->name);
		return (-1);
	}
	if (toxic_read_attr(attrs, alias, &x, isnew, err, errlen) == -1)
		return (-1);
	*v = x * (a->max / alias->max);
	return (0);
}

/*
 * Validate attributes into a scratch copy of the toxic, so a failed
 * update leaves the original untouched.
 */
static int
toxic_parse_attrs(struct toxic *t, json_t *attrs, int isnew, char *err,
    size_t errlen)
{
	const struct toxic_attr *a;
	uint64_t *sched[] = { &t->after_bytes, &t->after_ms, &t->duration_ms,
		&t->every, &t->first };
	int64_t	  v;
	size_t	  i;

	if (attrs != NULL && !json_is_object(attrs) && !json_is_null(attrs)) {
		snprintf(err, errlen, "attributes must be an object");
		return (-1);
	}
	for (i = 0, a = t->type->attrs; a != NULL && a->name != NULL;
	    a++, i++) {
		if (isnew)
			t->attr[i] = a->def;
		if (a->flags & TOXIC_A_ALIAS)
			continue; /* read with the row before */
		if (a[1].name != NULL && (a[1].flags & TOXIC_A_ALIAS)) {
			if (toxic_read_aliased(attrs, a, &t->attr[i], isnew,
				err, errlen) == -1)
				return (-1);
		} else if (toxic_read_attr(attrs, a, &t->attr[i], isnew, err,
			       errlen) == -1)
			return (-1);
	}
	for (i = 0, a = sched_attrs; a->name != NULL; a++, i++) {
		v = isnew ? a->def : (int64_t)*sched[i];
		if (toxic_read_attr(attrs, a, &v, isnew, err, errlen) == -1)
			return (-1);
		*sched[i] = (uint64_t)v;
	}
	if (t->type->validate != NULL &&
	    t->type->validate(t->attr, err, errlen) == -1)
		return (-1);
	if ((t->type->flags & TOXIC_F_LISTENER) &&
	    (t->after_bytes != 0 || t->every != 1 || t->first != 0)) {
		snprintf(err, errlen,
		    "attribute %s does not apply to %s, "
		    "which acts on the listener, not on connections",
		    t->after_bytes != 0 ? "after_bytes" :
			t->every != 1	? "every" :
					  "first",
		    t->type->name);
		return (-1);
	}
	return (0);
}

static int
toxic_check_toxicity(const struct toxic_type *type, double toxicity, char *err,
    size_t errlen)
{
	if (!(toxicity >= 0.0 && toxicity <= 1.0)) {
		snprintf(err, errlen, "toxicity must be between 0 and 1");
		return (-1);
	}
	if ((type->flags & TOXIC_F_LISTENER) && toxicity != 1.0) {
		snprintf(err, errlen,
		    "toxicity must be 1 for %s, which acts "
		    "on the listener, not on connections",
		    type->name);
		return (-1);
	}
	return (0);
}

/*
 * A new toxic, not yet on its proxy (proxy_add_toxic does that). On error
 * returns NULL with a message and *status the HTTP status to answer.
 */
struct toxic *
toxic_new(struct proxy *p, const char *name, const char *type,
    const char *stream, double toxicity, json_t *attrs, char *err,
    size_t errlen, int *status)
{
	struct toxic		*t;
	const struct toxic_type *tt;
	enum toxic_stream	 st = TOXIC_DOWNSTREAM;
	char			 defname[NAME_MAX_LEN + 32];

	*status = 400;
	if (type == NULL || (tt = toxic_type_find(type)) == NULL) {
		snprintf(err, errlen, "invalid toxic type");
		return (NULL);
	}
	if (stream != NULL && *stream != '\0' &&
	    toxic_stream_parse(stream, &st) == -1) {
		snprintf(err, errlen,
		    "stream was invalid, can be either "
		    "upstream or downstream");
		return (NULL);
	}
	if (name == NULL || *name == '\0') {
		snprintf(defname, sizeof(defname), "%s_%s", tt->name,
		    toxic_stream_name(st));
		name = defname;
	}
	if (!util_name_valid(name)) {
		snprintf(err, errlen,
		    "name: invalid toxic name (1 to %d "
		    "printable characters, no '/', space or quote)",
		    NAME_MAX_LEN);
		return (NULL);
	}
	if (p != NULL &&
	    toxic_check_protocol(tt, p->protocol == PROTO_UDP, err, errlen) ==
		-1)
		return (NULL);
	if (p != NULL && proxy_find_toxic(p, name) != NULL) {
		snprintf(err, errlen, "toxic already exists");
		*status = 409;
		return (NULL);
	}
	if (toxic_check_toxicity(tt, toxicity, err, errlen) == -1)
		return (NULL);

	t = xcalloc(1, sizeof(*t));
	t->type = tt;
	t->stream = st;
	t->toxicity = toxicity;
	if (toxic_parse_attrs(t, attrs, 1, err, errlen) == -1) {
		free(t);
		return (NULL);
	}
	t->proxy = p;
	t->name = xstrdup(name);
	t->t_added = util_now_ns();
	return (t);
}

/* What an update changes: attributes, schedule, toxicity. */
static void
toxic_copy_values(struct toxic *t, const struct toxic *src)
{
	memcpy(t->attr, src->attr, sizeof(t->attr));
	t->after_bytes = src->after_bytes;
	t->after_ms = src->after_ms;
	t->duration_ms = src->duration_ms;
	t->every = src->every;
	t->first = src->first;
	t->toxicity = src->toxicity;
}

/*
 * A toxic like t, for a proxy that replaces t's: the same settings,
 * origin and counts of connections (every, first), copied as data.
 * proxy_add_toxic() then puts it to work.
 */
struct toxic *
toxic_copy(const struct toxic *t)
{
	struct toxic *n;

	n = xcalloc(1, sizeof(*n));
	n->name = xstrdup(t->name);
	n->type = t->type;
	n->stream = t->stream;
	toxic_copy_values(n, t);
	n->from_config = t->from_config;
	n->nconns = t->nconns;
	n->applied = t->applied;
	n->t_added = t->t_added;
	return (n);
}

/* Same type, stream, toxicity and attributes (names aside). */
int
toxic_equal(const struct toxic *a, const struct toxic *b)
{
	return (a->type == b->type && a->stream == b->stream &&
	    a->toxicity == b->toxicity &&
	    memcmp(a->attr, b->attr, sizeof(a->attr)) == 0 &&
	    a->after_bytes == b->after_bytes && a->after_ms == b->after_ms &&
	    a->duration_ms == b->duration_ms && a->every == b->every &&
	    a->first == b->first);
}

void
toxic_free(struct toxic *t)
{
	if (ptimer_pending(&t->listener_timer))
		ptimer_cancel(t->proxy->loop->timers, &t->listener_timer);
	free(t->name);
	free(t);
}

/*
 * Whether a type can act on a proxy of that protocol (udp: datagrams).
 * On a UDP proxy there is no connection to refuse, reset, close slowly
 * or stall, and no stream to slice; on TCP, no datagram to lose.
 */
int
toxic_check_protocol(const struct toxic_type *tt, int udp, char *err,
    size_t errlen)
{
	if (udp && tt->no_udp != NULL) {
		snprintf(err, errlen,
		    "toxic type %s cannot act on a udp "
		    "proxy: %s",
		    tt->name, tt->no_udp);
		return (-1);
	}
	if (!udp && (tt->flags & TOXIC_F_UDP_ONLY)) {
		snprintf(err, errlen,
		    "toxic type %s acts on datagrams: udp "
		    "proxies only",
		    tt->name);
		return (-1);
	}
	return (0);
}

/* Check a [toxic PROXY NAME] section; errors name its lines. */
int
toxic_conf_check(struct config *conf, struct toxic_conf *tc)
{
	struct proxy_conf *pc;
	struct toxic	  *t;
	json_t		  *line;
	const char	  *key;
	char		   err[256];
	int		   status, at;

	if (tc->type == NULL) {
		config_error(conf, tc->line,
		    "toxic \"%s\": missing key "
		    "\"type\"",
		    tc->name);
		return (-1);
	}
	t = toxic_new(NULL, tc->name, tc->type, tc->stream,
	    tc->has_toxicity ? tc->toxicity : 1.0, tc->attributes, err,
	    sizeof(err), &status);
	if (t != NULL && (pc = config_find_proxy(conf, tc->proxy)) != NULL &&
	    toxic_check_protocol(t->type, pc->protocol == PROTO_UDP, err,
		sizeof(err)) == -1) {
		toxic_free(t);
		at = tc->line;
		if ((line = json_object_get(tc->lines, "type")) != NULL)
			at = (int)json_integer_value(line);
		config_error(conf, at, "toxic \"%s\": %s", tc->name, err);
		return (-1);
	}
	if (t != NULL) {
		toxic_free(t);
		/* Every key must mean something to the type. */
		json_object_foreach(tc->attributes, key, line) {
			if (toxic_attr_index(toxic_type_find(tc->type), key) <
			    0) {
				at = (int)json_integer_value(
				    json_object_get(tc->lines, key));
				config_error(conf, at,
				    "unknown key \"%s\" for "
				    "toxic type %s",
				    key, tc->type);
			}
		}
		return (0);
	}
	/* Point at the line of the attribute the message names. */
	at = tc->line;
	json_object_foreach(tc->lines, key, line) {
		char pat[NAME_MAX_LEN + 16];

		snprintf(pat, sizeof(pat), "%s ", key);
		if (strncmp(err, "attribute ", 10) == 0 &&
		    strncmp(err + 10, pat, strlen(pat)) == 0)
			at = (int)json_integer_value(line);
		else if (strcmp(key, "type") == 0 &&
		    strcmp(err, "invalid toxic type") == 0)
			at = (int)json_integer_value(line);
		else if (strcmp(key, "stream") == 0 &&
		    strncmp(err, "stream ", 7) == 0)
			at = (int)json_integer_value(line);
	}
	config_error(conf, at, "toxic \"%s\": %s", tc->name, err);
	return (-1);
}

/* Index of a type attribute or scheduling attribute, -1 if unknown. */
int
toxic_attr_index(const struct toxic_type *tt, const char *name)
{
	const struct toxic_attr *a;
	int			 i;

	for (i = 0, a = tt->attrs; a != NULL && a->name != NULL; a++, i++) {
		if (strcmp(a->name, name) == 0)
			return (i);
	}
	for (a = sched_attrs; a->name != NULL; a++, i++) {
		if (strcmp(a->name, name) == 0)
			return (i);
	}
	return (-1);
}

int64_t
toxic_attr(const struct toxic *t, const char *name)
{
	const struct toxic_attr *a;
	int			 i;

	for (i = 0, a = t->type->attrs; a != NULL && a->name != NULL;
	    a++, i++) {
		if (strcmp(a->name, name) == 0)
			return (t->attr[i]);
	}
	return (0);
}

/*
 * A number as Go's encoder writes a float: 1, not 1.0, so replies read
 * the same as Toxiproxy's.
 */
static json_t *
toxic_json_number(double v)
{
	if (v == (double)(json_int_t)v)
		return (json_integer((json_int_t)v));
	return (json_real(v));
}

json_t *
toxic_json(const struct toxic *t)
{
	const struct toxic_attr *a;
	json_t			*attrs;
	const uint64_t sched[] = { t->after_bytes, t->after_ms, t->duration_ms,
		t->every, t->first };
	int	       i;

	attrs = json_object();
	for (i = 0, a = t->type->attrs; a != NULL && a->name != NULL;
	    a++, i++) {
		if (a->flags & TOXIC_A_ALIAS)
			continue;
		if (a->flags & TOXIC_A_UNIT)
			json_object_set_new(attrs, a->name,
			    toxic_json_number((double)t->attr[i] /
				(double)a->max));
		else
			json_object_set_new(attrs, a->name,
			    json_integer(t->attr[i]));
	}
	/* Scheduling attributes only when set: Toxiproxy clients never are. */
	for (i = 0, a = sched_attrs; a->name != NULL; a++, i++) {
		if ((int64_t)sched[i] != a->def)
			json_object_set_new(attrs, a->name,
			    json_integer((json_int_t)sched[i]));
	}
	return (json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", t->name, "type",
	    t->type->name, "stream", toxic_stream_name(t->stream), "toxicity",
	    toxic_json_number(t->toxicity), "attributes", attrs));
}

/* --- links ----------------------------------------------------------- */

uint64_t
link_random(struct link *l)
{
	return (prng_next(&l->rng));
}

uint64_t
link_random_range(struct link *l, uint64_t n)
{
	return (prng_range(&l->rng, n));
}

double
link_random_unit(struct link *l)
{
	return (prng_unit(&l->rng));
}

/*
 * Whether the link's direction carries datagrams (UDP): each buffer a
 * type is given is one datagram, to be passed on whole or not at all.
 */
int
link_dgram(const struct link *l)
{
	return (l->dir->dgram);
}

static struct ptimers *
link_timers(struct link *l)
{
	return (l->dir->session->proxy->loop->timers);
}

/* A type's timers (ptimer.h): exact, never early. cb gets the link. */
void
link_timer_set(struct link *l, struct ptimer *t, void (*cb)(void *))
{
	ptimer_set(t, cb, l);
}

void
link_timer_at(struct link *l, struct ptimer *t, uint64_t when_ns)
{
	ptimer_at(link_timers(l), t, when_ns);
}

void
link_timer_in_ms(struct link *l, struct ptimer *t, uint64_t ms)
{
	ptimer_in_ms(link_timers(l), t, ms);
}

void
link_timer_cancel(struct link *l, struct ptimer *t)
{
	ptimer_cancel(link_timers(l), t);
}

static void
link_activate(struct link *l)
{
	struct toxic *t = l->toxic;

	l->state = LINK_ACTIVE;
	l->t_active = util_now_ns();
	session_fault(l->dir->session, t);
	t->applied++;
	COUNT_ADD(t->proxy->stats->toxics_applied, 1);
	if (t->duration_ms > 0)
		link_timer_in_ms(l, &l->sched, t->duration_ms);
	if (t->type->start != NULL)
		t->type->start(l);
}

/* Active once after_ms has passed since accept and after_bytes were seen. */
static void
link_try_activate(struct link *l)
{
	struct toxic *t = l->toxic;
	uint64_t      age_ms;

	if (l->state != LINK_PENDING || l->bytes < t->after_bytes)
		return;
	age_ms = (util_now_ns() - l->dir->session->t_accept) / 1000000;
	if (age_ms < t->after_ms) {
		if (!ptimer_pending(&l->sched))
			link_timer_in_ms(l, &l->sched, t->after_ms - age_ms);
		return;
	}
	link_timer_cancel(l, &l->sched);
	link_activate(l);
}

static void
link_deactivate(struct link *l)
{
	if (l->state != LINK_ACTIVE)
		return;
	l->state = LINK_DONE;
	if (l->toxic->type->stop != NULL)
		l->toxic->type->stop(l);
	if (l->stalling)
		link_stall(l, 0);
}

/*
 * A toxic's after_ms, after_bytes or duration_ms changed: a waiting link
 * is tried again under them, an active one ends on the new schedule
 * (duration_ms counts from when it went active; 0 is forever).
 */
static void
link_reschedule(struct link *l)
{
	struct toxic *t = l->toxic;
	uint64_t      end;

	if (l->state == LINK_PENDING) {
		link_timer_cancel(l, &l->sched);
		link_try_activate(l);
		return;
	}
	if (l->state != LINK_ACTIVE)
		return;
	link_timer_cancel(l, &l->sched);
	if (t->duration_ms == 0)
		return;
	end = l->t_active + t->duration_ms * 1000000;
	if (util_now_ns() >= end)
		link_deactivate(l);
	else
		link_timer_at(l, &l->sched, end);
}

static void
link_sched_cb(void *arg)
{
	struct link *l = arg;

	if (l->state == LINK_PENDING)
		link_try_activate(l);
	else if (l->state == LINK_ACTIVE)
		link_deactivate(l); /* duration_ms is over */
	dir_update_read(l->dir);
}

/*
 * Put toxic t on a connection's direction. The connection's toxicity
 * roll is decided here, once; its ordinal k for this toxic (every,
 * first) was decided when it was accepted (toxic_ordinals()). Only new
 * connections have one: a connection already open when the toxic was
 * added (k 0) is none of "every Nth new connection" or "the first K after
 * it was added", so a toxic limited that way leaves it alone; otherwise
 * it acts there too.
 */
void
toxic_attach(struct toxic *t, struct dir *d, uint64_t conn, uint64_t k)
{
	struct session *s = d->session;
	struct link    *l;
	double		roll;
	int		chosen;

	if (t->type->flags & TOXIC_F_LISTENER)
		return;
	l = xcalloc(1, sizeof(*l));
	l->dir = d;
	l->toxic = t;
	if (t->type->state_size > 0)
		l->state_data = xcalloc(1, t->type->state_size);
	link_timer_set(l, &l->sched, link_sched_cb);
	prng_init(&l->rng, s->seed, s->proxy->name, conn, (int)t->stream,
	    t->name);

	roll = prng_unit(&l->rng);
	if (k > 0)
		chosen = (k - 1) % t->every == 0 &&
		    (t->first == 0 || k <= t->first);
	else
		chosen = t->every == 1 && t->first == 0;
	chosen = chosen && roll < t->toxicity;
	l->state = chosen ? LINK_PENDING : LINK_IDLE;
	events_toxic(l, chosen ? EVENT_TOXIC_ACTED : EVENT_TOXIC_SKIPPED, roll);
	TAILQ_INSERT_TAIL(&d->links, l, entry);
	link_try_activate(l);
}

/*
 * A new connection's ordinal for each of p's stream toxics, in p's order,
 * counted as it is accepted: an array of *n (NULL if none) for
 * toxic_attach_all(). A worker's shard has the same stream toxics in the
 * same order when it takes the connection (worker.c), so the decisions do
 * not depend on which thread serves it.
 */
uint64_t *
toxic_ordinals(struct proxy *p, size_t *n)
{
	struct toxic *t;
	uint64_t     *k;
	size_t	      i = 0;

	TAILQ_FOREACH(t, &p->toxics, entry) {
		if (!(t->type->flags & TOXIC_F_LISTENER))
			i++;
	}
	*n = 0;
	if (i == 0 || (k = reallocarray(NULL, i, sizeof(*k))) == NULL)
		return (NULL);
	TAILQ_FOREACH(t, &p->toxics, entry) {
		if (!(t->type->flags & TOXIC_F_LISTENER))
			k[(*n)++] = ++t->nconns;
	}
	return (k);
}

/* Put the proxy's toxics on a new connection, with its ordinals. */
void
toxic_attach_all(struct session *s, const uint64_t *k, size_t n)
{
	struct toxic *t;
	size_t	      i = 0;

	TAILQ_FOREACH(t, &s->proxy->toxics, entry) {
		if (t->type->flags & TOXIC_F_LISTENER)
			continue;
		toxic_attach(t, session_dir(s, t->stream), s->id,
		    i < n ? k[i] : 0);
		i++;
	}
}

void
link_free(struct link *l)
{
	struct dir *d = l->dir;

	if (l->toxic->type->free != NULL)
		l->toxic->type->free(l);
	if (l->stalling)
		d->stalls--;
	d->held -= l->held;
	TAILQ_REMOVE(&d->links, l, entry);
	link_timer_cancel(l, &l->sched);
	free(l->state_data);
	free(l);
}

/* Take a link off an open connection: what it held is passed on. */
static void
link_remove(struct link *l)
{
	struct dir *d = l->dir;

	l->removing = 1;
	link_deactivate(l);
	link_free(l);
	dir_update_read(d);
}

void
link_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	struct toxic	*t = l->toxic;
	struct evbuffer *head;
	size_t		 len, n;

	while ((len = evbuffer_get_length(buf)) > 0) {
		if (l->state == LINK_ACTIVE) {
			l->bytes += len;
			if (t->type->data != NULL)
				t->type->data(l, buf, t_ns);
			else
				link_forward(l, buf, t_ns);
			return;
		}
		if (l->state != LINK_PENDING || l->bytes >= t->after_bytes) {
			l->bytes += len;
			link_forward(l, buf, t_ns);
			return;
		}
		/* Bytes before after_bytes pass untouched. */
		n = t->after_bytes - l->bytes;
		if (n >= len || l->dir->dgram) {
			/* A datagram is never split: it passes whole. */
			l->bytes += len;
			link_forward(l, buf, t_ns);
			link_try_activate(l);
			return;
		}
		if ((head = evbuffer_new()) == NULL)
			fatalx("evbuffer_new");
		evbuffer_remove_buffer(buf, head, n);
		l->bytes += n;
		link_forward(l, head, t_ns);
		evbuffer_free(head);
		link_try_activate(l);
		if (l->state == LINK_PENDING) {
			/* Still waiting for after_ms: the rest passes too. */
			l->bytes += evbuffer_get_length(buf);
			link_forward(l, buf, t_ns);
			return;
		}
	}
}

void
link_eof(struct link *l)
{
	if (l->state == LINK_ACTIVE && l->toxic->type->eof != NULL)
		l->toxic->type->eof(l);
	else
		link_forward_eof(l);
}

void
link_forward(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	struct link *next = TAILQ_NEXT(l, entry);

	if (next != NULL)
		link_data(next, buf, t_ns);
	else
		dir_deliver(l->dir, buf);
}

void
link_forward_eof(struct link *l)
{
	struct link *next = TAILQ_NEXT(l, entry);

	if (next != NULL)
		link_eof(next);
	else
		dir_deliver_eof(l->dir);
}

void
link_held(struct link *l, ssize_t delta)
{
	l->held += (size_t)delta;
	l->dir->held += (size_t)delta;
	if (delta < 0)
		dir_update_read(l->dir);
}

void
link_stall(struct link *l, int on)
{
	if (l->stalling == !!on)
		return;
	l->stalling = !!on;
	l->dir->stalls += on ? 1 : -1;
	dir_update_read(l->dir);
}

void
link_close(struct link *l, const char *reason)
{
	session_close(l->dir->session, reason, 0);
}

void
link_reset(struct link *l, const char *reason)
{
	session_close(l->dir->session, reason,
	    SESSION_RST_CLIENT | SESSION_RST_UPSTREAM);
}

/* --- toxics on proxies ----------------------------------------------- */

/*
 * Listener toxics (drop_syn, refuse) act on the proxy as a whole: from
 * after_ms after they are added, for duration_ms.
 */
static void
toxic_listener_set(struct toxic *t, int on)
{
	if (t->listener_active == on)
		return;
	t->listener_active = on;
	if (on) {
		t->applied++;
		COUNT_ADD(t->proxy->stats->toxics_applied, 1);
		t->type->listener_start(t);
	} else
		t->type->listener_stop(t);
}

/*
 * Put a listener toxic in the state its schedule says for now, counted
 * from when it was added, and wake up at its next change: at its add, at
 * its timer and after an update of after_ms or duration_ms alike.
 */
static void
toxic_listener_schedule(struct toxic *t)
{
	struct ptimers *timers = t->proxy->loop->timers;
	uint64_t	now = (util_now_ns() - t->t_added) / 1000000;
	uint64_t	end = t->after_ms + t->duration_ms;

	ptimer_cancel(timers, &t->listener_timer);
	if (now < t->after_ms) {
		toxic_listener_set(t, 0);
		ptimer_in_ms(timers, &t->listener_timer, t->after_ms - now);
	} else if (t->duration_ms == 0 || now < end) {
		toxic_listener_set(t, 1);
		if (t->duration_ms > 0)
			ptimer_in_ms(timers, &t->listener_timer, end - now);
	} else
		toxic_listener_set(t, 0);
}

static void
toxic_listener_cb(void *arg)
{
	toxic_listener_schedule(arg);
}

void
proxy_add_toxic(struct proxy *p, struct toxic *t)
{
	struct session *s;

	t->proxy = p;
	TAILQ_INSERT_TAIL(&p->toxics, t, entry);
	if (t->type->flags & TOXIC_F_LISTENER) {
		ptimer_set(&t->listener_timer, toxic_listener_cb, t);
		toxic_listener_schedule(t);
		return;
	}
	TAILQ_FOREACH(s, &p->sessions, entry) {
		if (s->state != SESSION_CLOSING)
			toxic_attach(t, session_dir(s, t->stream), s->id, 0);
	}
	if (p->shards != NULL)
		proxy_shards_toxic_add(p, t);
}

static struct link *
dir_find_link(struct dir *d, struct toxic *t)
{
	struct link *l;

	TAILQ_FOREACH(l, &d->links, entry) {
		if (l->toxic == t)
			return (l);
	}
	return (NULL);
}

void
proxy_remove_toxic(struct proxy *p, struct toxic *t)
{
	struct session *s, *next;
	struct link    *l;

	for (s = TAILQ_FIRST(&p->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if ((l = dir_find_link(session_dir(s, t->stream), t)) != NULL)
			link_remove(l);
	}
	if (t->type->flags & TOXIC_F_LISTENER)
		toxic_listener_set(t, 0);
	else if (p->shards != NULL)
		proxy_shards_toxic_remove(p, t->name);
	TAILQ_REMOVE(&p->toxics, t, entry);
	toxic_free(t);
}

/*
 * Give t src's attributes, schedule and toxicity, acting at once on its
 * connections. Links already rolled keep their decision.
 */
void
toxic_assign(struct toxic *t, const struct toxic *src)
{
	struct session *s;
	struct link    *l;

	toxic_copy_values(t, src);
	if (t->type->flags & TOXIC_F_LISTENER) {
		/* On a proxy of a daemon (not a toxic being checked alone). */
		if (t->proxy != NULL && t->proxy->tardy != NULL)
			toxic_listener_schedule(t);
		return;
	}
	TAILQ_FOREACH(s, &t->proxy->sessions, entry) {
		if ((l = dir_find_link(session_dir(s, t->stream), t)) == NULL)
			continue;
		link_reschedule(l);
		if (l->state == LINK_ACTIVE && t->type->update != NULL)
			t->type->update(l);
		dir_update_read(l->dir);
	}
	if (t->proxy->shards != NULL)
		proxy_shards_toxic_set(t->proxy, t);
}

/* Change attributes and toxicity in place, all or nothing. */
int
toxic_update(struct toxic *t, json_t *attrs, double toxicity, int has_toxicity,
    char *err, size_t errlen)
{
	struct toxic tmp = *t;

	if (has_toxicity &&
	    toxic_check_toxicity(t->type, toxicity, err, errlen) == -1)
		return (-1);
	if (toxic_parse_attrs(&tmp, attrs, 0, err, errlen) == -1)
		return (-1);
	if (has_toxicity)
		tmp.toxicity = toxicity;
	toxic_assign(t, &tmp);
	return (0);
}
