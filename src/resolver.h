/*
 * Host names looked up on the event loop (evdns), with a short cache, for
 * upstreams named by a host name that may not resolve yet when the proxy
 * is made (a container's service name).
 */
#ifndef TARDY_RESOLVER_H
#define TARDY_RESOLVER_H

#include <sys/queue.h>

#include <stddef.h>

#include "addr.h"

struct event_base;
struct evdns_base;
struct resolver;
struct resolver_batch;
struct resolver_name;

/* How long an answer is used before the name is looked up again. */
#define RESOLVER_TTL_MS		1000

/*
 * One caller waiting for a name, embedded in the caller's object. The
 * callback gets the address (port 0), or NULL and the reason.
 */
struct resolver_wait {
	TAILQ_ENTRY(resolver_wait) entry;
	struct resolver_name	  *name; /* NULL: not waiting */
	void (*cb)(struct resolver_wait *, const struct addr *, const char *);
};

struct resolver	  *resolver_new(struct event_base *, const char *);
void		   resolver_free(struct resolver *);
struct evdns_base *resolver_dns(struct resolver *);
int  resolver_get(struct resolver *, const char *, struct resolver_wait *,
     struct addr *, char *, size_t);
void resolver_cancel(struct resolver_wait *);

struct resolver_batch *resolver_batch_new(struct resolver *, void (*)(void *),
    void *);
void		       resolver_batch_free(struct resolver_batch *);
void resolver_batch_add(struct resolver_batch *, const char *);
int  resolver_batch_start(struct resolver_batch *);
int  resolver_batch_get(struct resolver_batch *, const char *, struct addr *,
     char *, size_t);

#endif
