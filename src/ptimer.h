/*
 * Exact timers, for the toxics: one timerfd per event loop and a binary
 * heap of due times. A timer never fires before its time and, within a
 * CPU budget, fires within a few microseconds after it (see ptimer.c).
 */
#ifndef TARDY_PTIMER_H
#define TARDY_PTIMER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct ptimers;

/* Embedded in its owner; all zeroes is a valid, unarmed timer. */
struct ptimer {
	uint64_t due_ns; /* util_now_ns() clock */
	size_t	 slot;	 /* heap index + 1; 0: not armed */
	void (*cb)(void *);
	void *arg;
};

/* How late timers fired: a histogram, for /metrics. */
#define PTIMER_NBUCKETS	10
extern const uint64_t ptimer_bucket_ns[PTIMER_NBUCKETS]; /* le */
struct ptimer_stats {
	uint64_t fired;
	uint64_t late_ns;		  /* sum */
	uint64_t bucket[PTIMER_NBUCKETS]; /* not cumulative */
};

struct ptimers *ptimers_new(struct event_base *, int, uint64_t);
void		ptimers_free(struct ptimers *);
void		ptimers_stats_add(struct ptimers *, struct ptimer_stats *);

void ptimer_set(struct ptimer *, void (*)(void *), void *);
void ptimer_at(struct ptimers *, struct ptimer *, uint64_t);
void ptimer_in_ms(struct ptimers *, struct ptimer *, uint64_t);
void ptimer_cancel(struct ptimers *, struct ptimer *);
#define ptimer_pending(t)	((t)->slot != 0)

#endif
