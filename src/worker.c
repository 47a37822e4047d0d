/*
 * Worker threads, when the daemon runs more than one (threads > 1).
 *
 * The main loop keeps the API, the configuration and every listener: it
 * accepts each connection, numbers it and decides what depends on its
 * number (session_origin()), then hands it to the worker with the fewest
 * connections (workers_pick()). The connection lives its whole life on
 * that worker's loop: its sockets, its toxic links and their exact timers
 * are the worker's alone, in the proxy's shard there (proxy.h).
 *
 * The main loop reaches a worker only through its inbox: a hand-off,
 * which the main loop does not wait for, or a call, a function the
 * worker runs on its own thread while the main loop waits for every
 * worker to have run it (workers_run()). Every change to a shard is such
 * a call: a toxic added, changed or removed, connections closed, a
 * proxy's settings. So when the API answers, every worker has made the
 * change, and it acts on each connection at the same point of its data as
 * on a single loop. The inbox is the only lock between the two sides of a
 * hand-off; a worker never waits for the main loop, so a call cannot
 * deadlock. The inbox event has the highest priority: a worker takes its
 * messages before any data that arrived with them.
 *
 * What workers share with the main loop otherwise is built for it: the
 * counters are atomic (COUNT_ADD), the event ring and a proxy's history
 * have a lock each, taken once per connection event, never per byte.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "loop.h"
#include "session.h"
#include "tardy.h"
#include "util.h"
#include "worker.h"

/* One call made on every worker, and the main loop waiting for it. */
struct worker_call {
	void (*fn)(struct worker *, void *);
	void	       *arg;
	pthread_mutex_t lock;
	pthread_cond_t	done;
	unsigned int	pending; /* workers yet to run it */
};

struct worker_msg {
	TAILQ_ENTRY(worker_msg) entry;
	struct worker_call     *call;  /* a call, or NULL: a hand-off */
	struct proxy	       *shard; /* the hand-off's */
	int			fd;
	struct session_origin	origin;
};
TAILQ_HEAD(worker_msgs, worker_msg);

struct worker {
	struct tardy	  *tardy;
	unsigned int	   index; /* in tardy->workers */
	struct loop	   loop;
	pthread_t	   thread;
	pthread_mutex_t	   lock; /* inbox */
	struct worker_msgs inbox;
	struct loop_wake   wake; /* the inbox is not empty */
};

static void
worker_inbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	   *w = arg;
	struct worker_msgs  msgs;
	struct worker_msg  *m;
	struct worker_call *c;

	loop_wake_clear(&w->wake);
	TAILQ_INIT(&msgs);
	pthread_mutex_lock(&w->lock);
	TAILQ_CONCAT(&msgs, &w->inbox, entry);
	pthread_mutex_unlock(&w->lock);
	while ((m = TAILQ_FIRST(&msgs)) != NULL) {
		TAILQ_REMOVE(&msgs, m, entry);
		if ((c = m->call) == NULL) {
			(void)session_new_at(m->shard, m->fd, &m->origin);
			COUNT_SUB(w->loop.handed, 1);
			free(m);
			continue;
		}
		c->fn(w, c->arg);
		free(m);
		pthread_mutex_lock(&c->lock);
		if (--c->pending == 0)
			pthread_cond_signal(&c->done);
		pthread_mutex_unlock(&c->lock);
	}
}

static void
worker_post(struct worker *w, struct worker_msg *m)
{
	int was_empty;

	pthread_mutex_lock(&w->lock);
	was_empty = TAILQ_EMPTY(&w->inbox);
	TAILQ_INSERT_TAIL(&w->inbox, m, entry);
	pthread_mutex_unlock(&w->lock);
	/* A non-empty inbox has been signalled already. */
	if (was_empty)
		loop_wake(&w->wake);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	if (event_base_dispatch(w->loop.base) == -1)
		fatalx("worker %u: event loop failed", w->index + 1);
	return (NULL);
}

static void
worker_break(struct worker *w, void *arg)
{
	event_base_loopbreak(w->loop.base);
}

/*
 * Start n workers. They take no signals: those are the main loop's
 * (its libevent signal events), so the threads are made with every
 * signal blocked.
 */
void
workers_start(struct tardy *t, unsigned int n)
{
	struct worker *w;
	sigset_t       all, old;
	unsigned int   i;

	if (n == 0)
		return;
	t->workers = xcalloc(n, sizeof(*t->workers));
	sigfillset(&all);
	if ((errno = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0)
		fatal("pthread_sigmask");
	for (i = 0; i < n; i++) {
		w = xcalloc(1, sizeof(*w));
		w->tardy = t;
		w->index = i;
		loop_init(&w->loop, i + 1, t->conf->resolv_conf);
		TAILQ_INIT(&w->inbox);
		if ((errno = pthread_mutex_init(&w->lock, NULL)) != 0)
			fatal("pthread_mutex_init");
		loop_wake_init(&w->wake, w->loop.base, 0, worker_inbox_cb, w);
		if ((errno = pthread_create(&w->thread, NULL, worker_main,
			 w)) != 0)
			fatal("pthread_create");
		t->workers[t->nworkers++] = w;
	}
	if ((errno = pthread_sigmask(SIG_SETMASK, &old, NULL)) != 0)
		fatal("pthread_sigmask");
	log_info("%u worker threads", n);
}

/* Stop and free the workers; their proxies' shards are gone already. */
void
workers_stop(struct tardy *t)
{
	struct worker *w;
	unsigned int   i;

	if (t->nworkers == 0)
		return;
	workers_run(t, worker_break, NULL);
	for (i = 0; i < t->nworkers; i++) {
		w = t->workers[i];
		if ((errno = pthread_join(w->thread, NULL)) != 0)
			fatal("pthread_join");
		loop_wake_free(&w->wake);
		pthread_mutex_destroy(&w->lock);
		loop_free(&w->loop);
		free(w);
	}
	free(t->workers);
	t->workers = NULL;
	t->nworkers = 0;
}

/*
 * Run fn(worker, arg) on every worker's thread, and return once all have.
 * The workers run it in parallel, each between two callbacks of its
 * loop, so this waits at most for the longest of their current slices
 * of data (TARDY_DATA_SLICE_US).
 */
void
workers_run(struct tardy *t, void (*fn)(struct worker *, void *), void *arg)
{
	struct worker_call c;
	struct worker_msg *m;
	unsigned int	   i;

	if (t->nworkers == 0)
		return;
	memset(&c, 0, sizeof(c));
	c.fn = fn;
	c.arg = arg;
	c.pending = t->nworkers;
	if ((errno = pthread_mutex_init(&c.lock, NULL)) != 0 ||
	    (errno = pthread_cond_init(&c.done, NULL)) != 0)
		fatal("pthread_cond_init");
	for (i = 0; i < t->nworkers; i++) {
		m = xcalloc(1, sizeof(*m));
		m->call = &c;
		worker_post(t->workers[i], m);
	}
	pthread_mutex_lock(&c.lock);
	while (c.pending > 0)
		pthread_cond_wait(&c.done, &c.lock);
	pthread_mutex_unlock(&c.lock);
	pthread_cond_destroy(&c.done);
	pthread_mutex_destroy(&c.lock);
}

/*
 * The worker for a new connection: the one with the fewest connections
 * (open, or handed to it and not yet taken), the first in turn of those
 * tied. Connections of unequal lengths then spread evenly, which turns
 * alone would not do.
 */
struct worker *
workers_pick(struct tardy *t)
{
	struct worker *w, *best = NULL;
	size_t	       load, least = SIZE_MAX;
	unsigned int   i;

	for (i = 0; i < t->nworkers; i++) {
		w = t->workers[(t->next_worker + i) % t->nworkers];
		load = COUNT_GET(w->loop.nsessions) + COUNT_GET(w->loop.handed);
		if (load < least) {
			best = w;
			least = load;
		}
	}
	t->next_worker++;
	return (best);
}

/* Give w an accepted connection of shard's, numbered in origin (taken). */
void
worker_handoff(struct worker *w, struct proxy *shard, int fd,
    struct session_origin *origin)
{
	struct worker_msg *m;

	if ((m = malloc(sizeof(*m))) == NULL) {
		log_warn("worker %u: cannot take a connection", w->index + 1);
		session_origin_free(origin);
		(void)util_set_linger0(fd);
		close(fd);
		return;
	}
	memset(m, 0, sizeof(*m));
	COUNT_ADD(w->loop.handed, 1);
	m->shard = shard;
	m->fd = fd;
	m->origin = *origin;
	worker_post(w, m);
}

struct loop *
worker_loop(struct worker *w)
{
	return (&w->loop);
}

unsigned int
worker_index(const struct worker *w)
{
	return (w->index);
}
