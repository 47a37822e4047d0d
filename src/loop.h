/*
 * An event loop that serves connections: the daemon's main loop, or a
 * worker's (worker.c). A session, its toxic links and their timers
 * belong to one loop for their whole life, and only its thread touches
 * them.
 */
#ifndef TARDY_LOOP_H
#define TARDY_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

struct event;
struct event_base;
struct ptimers;
struct resolver;

struct loop {
	struct event_base  *base;
	struct ptimers	   *timers;   /* the toxics' (ptimer.h) */
	struct resolver	   *resolver; /* upstream names */
	struct session_list reap;     /* sessions to close */
	struct event	   *reap_ev;
	unsigned int	    index;     /* 0: the main loop, workers from 1 */
	size_t		    nsessions; /* its sessions, on every proxy */
	size_t		    handed;    /* connections handed to it, not taken */
	uint64_t	    started;   /* sessions ever started */
	uint64_t	    trim_mark; /* started when the trim timer was set */
	struct event	   *trim_ev;
};

/*
 * A wake-up another thread can give a loop: an eventfd the loop watches.
 * Its callback takes it with loop_wake_clear().
 */
struct loop_wake {
	int	      fd;
	struct event *ev;
};

void loop_wake_init(struct loop_wake *, struct event_base *, int,
    void (*)(int, short, void *), void *);
void loop_wake_free(struct loop_wake *);
void loop_wake(struct loop_wake *);
void loop_wake_clear(struct loop_wake *);

void loop_init(struct loop *, unsigned int, const char *);
void loop_free(struct loop *);
void loop_session_start(struct loop *);
void loop_session_end(struct loop *);

#endif
