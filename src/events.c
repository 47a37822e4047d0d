/*
 * The event ring. Each event has an id that only grows, so a client can
 * poll GET /events?since=ID and miss nothing as long as it keeps up with
 * EVENTS_MAX events; older ones are overwritten. A long-poll waits for
 * the next one through events_set_wake.
 *
 * Every loop records its sessions' events here: a record is filled on
 * the recording thread's stack and copied into the ring under a lock,
 * once per connection event, never while moving bytes. A worker wakes the
 * main loop's long-polls through an eventfd; the main loop directly.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "addr.h"
#include "events.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"

/*
 * Names longer than fit are cut in events (never elsewhere): the ring is
 * a fixed cost, kept near 1 MiB.
 */
struct event_rec {
	uint64_t	       id;
	uint64_t	       t_ns;
	uint64_t	       conn;
	uint64_t	       bytes_up;
	uint64_t	       bytes_down;
	double		       roll;
	enum event_kind	       kind;
	char		       proxy[64];
	char		       toxic[64];
	char		       peer[48]; /* "[v6]:port" fits */
	char		       detail[64];
	struct session_verdict verdict; /* a close's; its fault in toxic */
};

struct events {
	struct tardy	 *tardy;
	pthread_mutex_t	  lock; /* the ring and next_id */
	struct event_rec *ring;
	uint64_t	  next_id; /* id of the next event, from 1 */
	pthread_t	  owner;   /* the main loop's thread */
	struct event	 *wake;	   /* activated by each new event, or NULL */
	int		  waiting; /* wake != NULL, for other threads */
	struct loop_wake  notify;  /* from the workers */
};

static const char *const kind_names[] = { "accept", "connected", "close",
	"toxic_acted", "toxic_skipped" };

const char *
events_kind_name(enum event_kind kind)
{
	return (kind_names[kind]);
}

/* A worker recorded an event while a long-poll waits. */
static void
events_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct events *ev = arg;

	loop_wake_clear(&ev->notify);
	if (ev->wake != NULL)
		event_active(ev->wake, 0, 0);
}

struct events *
events_new(struct tardy *t)
{
	struct events *ev;

	ev = xcalloc(1, sizeof(*ev));
	ev->tardy = t;
	ev->ring = xcalloc(EVENTS_MAX, sizeof(*ev->ring));
	ev->next_id = 1;
	ev->owner = pthread_self();
	if ((errno = pthread_mutex_init(&ev->lock, NULL)) != 0)
		fatal("pthread_mutex_init");
	loop_wake_init(&ev->notify, t->loop.base, 1 /* the default */,
	    events_notify_cb, ev);
	return (ev);
}

void
events_free(struct events *ev)
{
	if (ev == NULL)
		return;
	loop_wake_free(&ev->notify);
	pthread_mutex_destroy(&ev->lock);
	free(ev->ring);
	free(ev);
}

static void
events_start(struct event_rec *e, struct session *s, enum event_kind kind)
{
	memset(e, 0, sizeof(*e));
	e->t_ns = util_now_ns();
	e->kind = kind;
	e->conn = s->id;
	snprintf(e->proxy, sizeof(e->proxy), "%s", s->proxy->name);
	addr_fmt(&s->peer, e->peer, sizeof(e->peer));
}

/* Put e in the ring, giving it its id, and wake whoever waits. */
static void
events_add(struct events *ev, struct event_rec *e)
{
	pthread_mutex_lock(&ev->lock);
	e->id = ev->next_id++;
	ev->ring[e->id % EVENTS_MAX] = *e;
	pthread_mutex_unlock(&ev->lock);
	if (!__atomic_load_n(&ev->waiting, __ATOMIC_RELAXED))
		return;
	if (pthread_equal(pthread_self(), ev->owner))
		event_active(ev->wake, 0, 0);
	else
		loop_wake(&ev->notify);
}

void
events_session(struct session *s, enum event_kind kind, const char *detail)
{
	struct event_rec rec, *e = &rec;

	events_start(e, s, kind);
	if (detail != NULL)
		snprintf(e->detail, sizeof(e->detail), "%s", detail);
	e->bytes_up = s->up.bytes;
	e->bytes_down = s->down.bytes;
	if (kind == EVENT_CLOSE) {
		e->verdict = s->verdict;
		if (s->fault_name != NULL)
			snprintf(e->toxic, sizeof(e->toxic), "%s",
			    s->fault_name);
	}
	events_add(s->proxy->tardy->events, e);
	log_debug("event %llu: proxy %s conn %llu %s %s%s%s",
	    (unsigned long long)e->id, e->proxy, (unsigned long long)e->conn,
	    e->peer, kind_names[kind], detail != NULL ? ": " : "",
	    detail != NULL ? detail : "");
}

void
events_toxic(struct link *l, enum event_kind kind, double roll)
{
	struct session	*s = l->dir->session;
	struct event_rec rec, *e = &rec;

	events_start(e, s, kind);
	snprintf(e->toxic, sizeof(e->toxic), "%s", l->toxic->name);
	e->roll = roll;
	events_add(s->proxy->tardy->events, e);
	log_debug("event %llu: proxy %s conn %llu toxic %s %s (roll %.6f)",
	    (unsigned long long)e->id, e->proxy, (unsigned long long)e->conn,
	    e->toxic, kind_names[kind], roll);
}

/* The id of the newest event, 0 if there is none yet. */
uint64_t
events_last_id(struct events *ev)
{
	uint64_t id;

	pthread_mutex_lock(&ev->lock);
	id = ev->next_id - 1;
	pthread_mutex_unlock(&ev->lock);
	return (id);
}

/*
 * Who waits for new events (the API's long-polls) hands an event to
 * activate, not a callback: an event is recorded in the middle of session
 * code and filled in after events_add returns, so whoever reads it must
 * run later, from the loop, where one run sees every event of the pass.
 * NULL while nobody waits, so recording costs nothing then.
 */
void
events_set_wake(struct events *ev, struct event *wake)
{
	ev->wake = wake;
	__atomic_store_n(&ev->waiting, wake != NULL, __ATOMIC_RELAXED);
}

/* Events with an id greater than since, oldest first. */
json_t *
events_json(struct events *ev, uint64_t since)
{
	struct event_rec *e;
	json_t		 *arr, *o;
	uint64_t	  id, first;

	arr = json_array();
	pthread_mutex_lock(&ev->lock);
	first = ev->next_id > EVENTS_MAX ? ev->next_id - EVENTS_MAX : 1;
	if (since + 1 > first)
		first = since + 1;
	for (id = first; id < ev->next_id; id++) {
		e = &ev->ring[id % EVENTS_MAX];
		o = json_pack("{s:I, s:I, s:s, s:s, s:I, s:s}", "id",
		    (json_int_t)e->id, "time_ns", (json_int_t)e->t_ns, "type",
		    kind_names[e->kind], "proxy", e->proxy, "connection",
		    (json_int_t)e->conn, "peer", e->peer);
		if (o == NULL)
			continue;
		if (e->kind == EVENT_TOXIC_ACTED ||
		    e->kind == EVENT_TOXIC_SKIPPED) {
			json_object_set_new(o, "toxic", json_string(e->toxic));
			json_object_set_new(o, "roll", json_real(e->roll));
		}
		if (e->detail[0] != '\0')
			json_object_set_new(o, "reason",
			    json_string(e->detail));
		if (e->kind == EVENT_CLOSE) {
			session_verdict_json(&e->verdict,
			    e->toxic[0] != '\0' ? e->toxic : NULL, o);
			json_object_set_new(o, "bytes_up",
			    json_integer((json_int_t)e->bytes_up));
			json_object_set_new(o, "bytes_down",
			    json_integer((json_int_t)e->bytes_down));
		}
		json_array_append_new(arr, o);
	}
	pthread_mutex_unlock(&ev->lock);
	return (arr);
}
