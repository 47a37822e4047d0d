/*
 * Worker threads: each runs an event loop of its own that serves the
 * connections the main loop hands it (worker.c).
 */
#ifndef TARDY_WORKER_H
#define TARDY_WORKER_H

struct loop;
struct proxy;
struct session_origin;
struct tardy;
struct worker;

void	       workers_start(struct tardy *, unsigned int);
struct worker *workers_pick(struct tardy *);
void	       workers_stop(struct tardy *);
void workers_run(struct tardy *, void (*)(struct worker *, void *), void *);
struct loop *worker_loop(struct worker *);
unsigned int worker_index(const struct worker *);
void	     worker_handoff(struct worker *, struct proxy *, int,
	    struct session_origin *);

#endif
