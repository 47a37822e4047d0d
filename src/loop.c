/*
 * What every event loop that serves connections has: an event base with
 * the data plane at the lowest priority and yielding after a slice, the
 * exact timers, a resolver for upstream names, and the list of sessions
 * waiting to be freed.
 *
 * And giving memory back. A burst of connections with toxics holding
 * their data (a latency toxic on a thousand streams holds a few hundred
 * MB) leaves the allocator's heaps full of free chunks it keeps: the RSS
 * stays at the burst's peak, for good. So once a loop has served no
 * connection for LOOP_TRIM_MS, it asks the allocator to return its free
 * pages (malloc_trim(3), as haproxy does when it is idle or short of
 * memory): the daemon goes back to its size at rest between tests.
 */
#include "autoconf.h"

#include <sys/eventfd.h>
#include <sys/queue.h>

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "loop.h"
#include "ptimer.h"
#include "resolver.h"
#include "session.h"
#include "tardy.h"
#include "util.h"

#define LOOP_TRIM_MS	1000

/* Sessions whose close was asked for from deep inside the data path. */
static void
loop_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	session_reap(arg);
}

static void
loop_trim_arm(struct loop *l)
{
	struct timeval tv = { LOOP_TRIM_MS / 1000,
		(LOOP_TRIM_MS % 1000) * 1000 };

	l->trim_mark = l->started;
	evtimer_add(l->trim_ev, &tv);
}

static void
loop_trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;

	if (COUNT_GET(l->nsessions) != 0)
		return; /* its end arms the timer again */
	if (l->started != l->trim_mark) {
		loop_trim_arm(l); /* not idle all along: wait on */
		return;
	}
#ifdef HAVE_MALLOC_TRIM
	(void)malloc_trim(0);
#endif
}

void
loop_session_start(struct loop *l)
{
	/* Counted for the main loop's choice of a worker (worker.c). */
	COUNT_ADD(l->nsessions, 1);
	l->started++;
}

void
loop_session_end(struct loop *l)
{
	COUNT_SUB(l->nsessions, 1);
	if (COUNT_GET(l->nsessions) == 0 && !evtimer_pending(l->trim_ev, NULL))
		loop_trim_arm(l);
}

/* Watch a new eventfd on base, at priority, calling cb(fd, what, arg). */
void
loop_wake_init(struct loop_wake *w, struct event_base *base, int priority,
    void (*cb)(int, short, void *), void *arg)
{
	if ((w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("eventfd");
	w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, cb, arg);
	if (w->ev == NULL || event_priority_set(w->ev, priority) == -1 ||
	    event_add(w->ev, NULL) == -1)
		fatalx("cannot watch an eventfd");
}

void
loop_wake_free(struct loop_wake *w)
{
	event_free(w->ev);
	close(w->fd);
}

/* From any thread. A full counter (EAGAIN) is awake already. */
void
loop_wake(struct loop_wake *w)
{
	static const uint64_t one = 1;

	if (write(w->fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		fatal("eventfd");
}

void
loop_wake_clear(struct loop_wake *w)
{
	uint64_t n;

	(void)read(w->fd, &n, sizeof(n));
}

void
loop_init(struct loop *l, unsigned int index, const char *resolv_conf)
{
	struct event_config *cfg;

	l->index = index;
	/*
	 * No EVENT_BASE_FLAG_PRECISE_TIMER: it costs a timerfd_settime() on
	 * every turn of the loop. libevent's timers are the daemon's own
	 * timeouts, where its 4 ms clock is plenty; the toxics' timers,
	 * which must be exact, are ptimers.
	 */
	if ((cfg = event_config_new()) == NULL)
		fatalx("event_config_new");
	if (event_config_set_max_dispatch_interval(cfg,
		&(const struct timeval){ 0, TARDY_DATA_SLICE_US }, -1,
		TARDY_PRI_DATA) == -1)
		fatalx("event_config_set_max_dispatch_interval");
	l->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (l->base == NULL ||
	    event_base_priority_init(l->base, TARDY_PRIORITIES) == -1)
		fatalx("cannot create an event loop");
	l->resolver = resolver_new(l->base, resolv_conf);
	l->timers = ptimers_new(l->base, TARDY_PRI_DATA,
	    TARDY_DATA_SLICE_US * 1000);
	TAILQ_INIT(&l->reap);
	if ((l->reap_ev = event_new(l->base, -1, 0, loop_reap_cb, l)) == NULL)
		fatalx("event_new");
	/* After the session callbacks already due, as before priorities. */
	event_priority_set(l->reap_ev, TARDY_PRI_DATA);
	if ((l->trim_ev = evtimer_new(l->base, loop_trim_cb, l)) == NULL)
		fatalx("evtimer_new");
}

void
loop_free(struct loop *l)
{
	if (l->base == NULL)
		return;
	resolver_free(l->resolver);
	event_free(l->reap_ev);
	event_free(l->trim_ev);
	ptimers_free(l->timers);
	event_base_free(l->base);
	l->base = NULL;
}
