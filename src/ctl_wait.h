/*
 * tardyctl wait: block until a proxy's connections have closed the way a
 * test expects, through the long-poll of GET /events.
 */
#ifndef TARDY_CTL_WAIT_H
#define TARDY_CTL_WAIT_H

#include <stdint.h>

struct ctl_http;

/* The longest --timeout: a wait must end. */
#define CTL_WAIT_MAX_MS		(24 * 60 * 60 * 1000)

struct ctl_wait {
	const char *proxy;
	const char *closed_by; /* or NULL: any closer */
	uint64_t    count;
	uint64_t    timeout_ms;
	uint64_t    since;
	int	    since_set; /* else: from the newest event on */
};

int ctl_wait_closes(struct ctl_http *, const struct ctl_wait *);

#endif
