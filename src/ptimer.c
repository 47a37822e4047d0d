/*
 * Exact timers for the toxics.
 *
 * A latency toxic promises that data is held for exactly its delay, and
 * never less. libevent's own timers are one event each, and with the
 * precise timer they cost a timerfd_settime() on every turn of the loop;
 * without it they run on a clock with a 4 ms tick. So the toxics' timers
 * are kept here instead: a binary heap ordered by due time, and one
 * timerfd set to the earliest, reset only when that changes.
 *
 * Timers wake up late: by the 50 µs of timer slack on an idle Linux box,
 * by 100 to 200 µs under virtualisation. So the timerfd goes off
 * PTIMER_EARLY_NS before the earliest due time, and from then on the loop
 * polls: the timerfd is set to a time already past, which keeps it
 * readable, so every turn of the loop handles the sockets that are ready
 * without sleeping, and then fires whatever has come due. Unlike spinning
 * in a callback, the other connections are served meanwhile, and a burst
 * of due times close together costs one wait, not one each.
 *
 * Polling costs CPU, so it has a budget: PTIMER_BUDGET_NS of each second.
 * Past it the timerfd is set to the due time itself, and timers fire
 * late by the wake-up, never early.
 */
#include "autoconf.h"

#include <sys/timerfd.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "ptimer.h"
#include "util.h"

#define PTIMER_EARLY_NS		250000
#define PTIMER_BUDGET_NS	100000000	/* 10% of a core */
#define PTIMER_WINDOW_NS	1000000000
#define PTIMER_NOW		1		/* a time long past */
#define PTIMER_EXPIRED		UINT64_MAX	/* went off, not set again */

struct ptimers {
	struct ptimer	  **heap;
	size_t		    n;
	size_t		    cap;
	int		    fd;
	struct event	   *ev;
	uint64_t	    slice_ns; /* at most this long firing in a row */
	uint64_t	    armed_ns; /* the timerfd's time; 0: disarmed */
	int		    running;  /* in ptimers_cb(): arm once, after */
	int		    polling;
	uint64_t	    poll_since;
	uint64_t	    window; /* start of the budget's second */
	uint64_t	    used;   /* polling in it */
	struct ptimer_stats stats;
};

const uint64_t ptimer_bucket_ns[PTIMER_NBUCKETS] = { 5000, 10000, 20000, 50000,
	100000, 200000, 500000, 1000000, 10000000, UINT64_MAX };

static void
ptimers_count(struct ptimers *pt, uint64_t late)
{
	size_t i;

	for (i = 0; late > ptimer_bucket_ns[i]; i++)
		;
	/* Read by the API from another thread (ptimers_stats_add). */
	COUNT_ADD(pt->stats.bucket[i], 1);
	COUNT_ADD(pt->stats.fired, 1);
	COUNT_ADD(pt->stats.late_ns, late);
}

static void
heap_place(struct ptimers *pt, size_t i, struct ptimer *t)
{
	pt->heap[i] = t;
	t->slot = i + 1;
}

static void
heap_up(struct ptimers *pt, size_t i)
{
	struct ptimer *t = pt->heap[i];
	size_t	       parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (pt->heap[parent]->due_ns <= t->due_ns)
			break;
		heap_place(pt, i, pt->heap[parent]);
		i = parent;
	}
	heap_place(pt, i, t);
}

static void
heap_down(struct ptimers *pt, size_t i)
{
	struct ptimer *t = pt->heap[i];
	size_t	       child;

	while ((child = 2 * i + 1) < pt->n) {
		if (child + 1 < pt->n &&
		    pt->heap[child + 1]->due_ns < pt->heap[child]->due_ns)
			child++;
		if (t->due_ns <= pt->heap[child]->due_ns)
			break;
		heap_place(pt, i, pt->heap[child]);
		i = child;
	}
	heap_place(pt, i, t);
}

static void
heap_remove(struct ptimers *pt, struct ptimer *t)
{
	size_t i = t->slot - 1;

	t->slot = 0;
	if (--pt->n == i)
		return;
	/* The last one takes its place, then moves up or down from there. */
	heap_place(pt, i, pt->heap[pt->n]);
	heap_up(pt, i);
	heap_down(pt, i);
}

/* Whether polling may go on, charging it the time since the last turn. */
static int
ptimers_budget(struct ptimers *pt, uint64_t now)
{
	if (pt->polling) {
		pt->used += now - pt->poll_since;
		pt->poll_since = now;
	}
	if (now - pt->window >= PTIMER_WINDOW_NS) {
		pt->window = now;
		pt->used = 0;
	}
	return (pt->used < PTIMER_BUDGET_NS);
}

/* Set the timerfd for the earliest timer, if that changed. */
static void
ptimers_arm(struct ptimers *pt, uint64_t now)
{
	struct itimerspec its;
	uint64_t	  when = 0;
	int		  poll = 0;

	if (pt->running)
		return;
	if (pt->n > 0) {
		when = pt->heap[0]->due_ns;
		if (!ptimers_budget(pt, now))
			when = when > now ? when : PTIMER_NOW;
		else if (when > now + PTIMER_EARLY_NS)
			when -= PTIMER_EARLY_NS;
		else {
			when = PTIMER_NOW;
			poll = 1;
		}
	}
	if (poll && !pt->polling)
		pt->poll_since = now;
	pt->polling = poll;
	if (when == pt->armed_ns)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(when / 1000000000);
	its.it_value.tv_nsec = (long)(when % 1000000000);
	if (timerfd_settime(pt->fd, TFD_TIMER_ABSTIME, &its, NULL) == -1)
		fatal("timerfd_settime");
	pt->armed_ns = when;
}

static void
ptimers_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ptimers *pt = arg;
	struct ptimer  *t;
	uint64_t	now, start;

	/* Setting the timerfd again, or disarming it, clears it. */
	pt->armed_ns = PTIMER_EXPIRED;
	pt->running = 1;
	now = start = util_now_ns();
	while (pt->n > 0 && (t = pt->heap[0])->due_ns <= now) {
		/* The rest on the next turn, after the sockets and the API. */
		if (now - start >= pt->slice_ns)
			break;
		heap_remove(pt, t);
		ptimers_count(pt, now - t->due_ns);
		t->cb(t->arg);
		now = util_now_ns();
	}
	pt->running = 0;
	ptimers_arm(pt, now);
}

/*
 * Timers on base, whose event has that priority; firing them yields to a
 * new poll after slice_ns, like the loop's other callbacks.
 */
struct ptimers *
ptimers_new(struct event_base *base, int priority, uint64_t slice_ns)
{
	struct ptimers *pt;

	pt = xcalloc(1, sizeof(*pt));
	pt->slice_ns = slice_ns;
	pt->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (pt->fd == -1)
		fatal("timerfd_create");
	pt->ev = event_new(base, pt->fd, EV_READ | EV_PERSIST, ptimers_cb, pt);
	if (pt->ev == NULL || event_priority_set(pt->ev, priority) == -1 ||
	    event_add(pt->ev, NULL) == -1)
		fatalx("cannot set up the toxics' timer");
	return (pt);
}

void
ptimers_free(struct ptimers *pt)
{
	if (pt == NULL)
		return;
	while (pt->n > 0)
		heap_remove(pt, pt->heap[0]);
	event_free(pt->ev);
	close(pt->fd);
	free(pt->heap);
	free(pt);
}

/* Add pt's lateness histogram to sum: every loop's make the daemon's. */
void
ptimers_stats_add(struct ptimers *pt, struct ptimer_stats *sum)
{
	size_t i;

	sum->fired += COUNT_GET(pt->stats.fired);
	sum->late_ns += COUNT_GET(pt->stats.late_ns);
	for (i = 0; i < PTIMER_NBUCKETS; i++)
		sum->bucket[i] += COUNT_GET(pt->stats.bucket[i]);
}

void
ptimer_set(struct ptimer *t, void (*cb)(void *), void *arg)
{
	t->cb = cb;
	t->arg = arg;
}

/* Fire t at when_ns (util_now_ns() clock), or now if that has passed. */
void
ptimer_at(struct ptimers *pt, struct ptimer *t, uint64_t when_ns)
{
	if (t->slot != 0) {
		t->due_ns = when_ns;
		heap_up(pt, t->slot - 1);
		heap_down(pt, t->slot - 1);
	} else {
		if (pt->n == pt->cap) {
			pt->cap = pt->cap == 0 ? 64 : pt->cap * 2;
			pt->heap = reallocarray(pt->heap, pt->cap,
			    sizeof(*pt->heap));
			if (pt->heap == NULL)
				fatal("reallocarray");
		}
		t->due_ns = when_ns;
		heap_place(pt, pt->n, t);
		pt->n++;
		heap_up(pt, pt->n - 1);
	}
	if (pt->heap[0] == t)
		ptimers_arm(pt, util_now_ns());
}

void
ptimer_in_ms(struct ptimers *pt, struct ptimer *t, uint64_t ms)
{
	ptimer_at(pt, t, util_now_ns() + ms * 1000000);
}

void
ptimer_cancel(struct ptimers *pt, struct ptimer *t)
{
	if (t->slot == 0)
		return;
	heap_remove(pt, t);
	/* An earlier wake-up than needed is harmless: no syscall here. */
}
