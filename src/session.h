/*
 * A session is one proxied connection: the client's socket, the upstream
 * socket and the two directions between them, each with its chain of
 * toxic links.
 */
#ifndef TARDY_SESSION_H
#define TARDY_SESSION_H

#include <sys/queue.h>

#include <stdint.h>

#include <jansson.h>

#include "addr.h"
#include "resolver.h"
#include "toxic.h"

struct event;
struct event_base;
struct evbuffer;
struct loop;
struct proxy;
struct tardy;
struct udp_flow;

/*
 * Per direction, the daemon queues at most DIR_HIGH_WATER bytes for the
 * destination (plus one read of at most DIR_READ_MAX bytes) before it
 * stops reading the source; reading resumes at DIR_LOW_WATER.
 */
#define DIR_HIGH_WATER	(256 * 1024)
#define DIR_LOW_WATER	(64 * 1024)
#define DIR_READ_MAX	(64 * 1024)

/* A graceful close waits this long at most for queued data to be written. */
#define SESSION_DRAIN_MS	5000

TAILQ_HEAD(link_list, link);

/* One socket. Its event's mask follows what the two directions need. */
struct side {
	int	      fd;
	struct event *ev;
	short	      mask; /* EV_READ|EV_WRITE now wanted */
};

struct dir {
	struct session	 *session;
	enum toxic_stream stream;
	struct side	 *src;
	struct side	 *dst;
	struct evbuffer	 *out;	   /* queued for dst, lazily */
	int		  pipe[2]; /* splice(2) src to dst, lazily */
	size_t		  piped;   /* bytes in the pipe */
	struct link_list  links;
	size_t		  held;	     /* bytes inside links */
	uint64_t	  bytes;     /* bytes handed to dst */
	uint64_t	  dgrams;    /* datagrams sent, UDP */
	int		  stalls;    /* links holding reads */
	unsigned int	  reading:1; /* src read wanted */
	unsigned int	  src_eof:1; /* source sent EOF */
	unsigned int	  eof_out:1; /* EOF left the chain */
	unsigned int	  shut:1;    /* dst shut down for writing */
	unsigned int	  dgram:1;   /* UDP: each buffer one datagram */
	unsigned int	  no_pipe:1; /* could not make one: copy */
};

enum session_state {
	SESSION_RESOLVING, /* looking up the upstream's name */
	SESSION_CONNECTING,
	SESSION_OPEN,
	SESSION_DRAINING, /* closing once queued data is written */
	SESSION_CLOSING,  /* close requested, runs from the loop */
};

/* Who closed a connection first (the verdict's closed_by). */
enum session_closer {
	SESSION_BY_NONE,
	SESSION_BY_CLIENT,
	SESSION_BY_UPSTREAM,
	SESSION_BY_TARDY,	 /* a toxic, a disable, a removal, a shutdown */
	SESSION_BY_FLOW_TIMEOUT, /* a UDP flow idle for flow_timeout */
};

/*
 * What became of a connection: who closed it first and how, how long
 * into its fault and after its closer's last byte, and what its client
 * had sent that was never read. Taken once, at the first close.
 */
struct session_verdict {
	uint64_t	    t_closed;	  /* ns, monotonic; 0: open */
	uint64_t	    t_fault;	  /* ns: a toxic first acted; 0: none */
	uint64_t	    idle_ns;	  /* since the closer last got bytes */
	uint64_t	    duration_ns;  /* since accept */
	int64_t		    unread;	  /* client bytes never read; -1: ? */
	int64_t		    retry_gap_ns; /* since the peer's last close; -1 */
	const char	   *fault_type;	  /* the first toxic's type */
	enum session_closer by;
	uint8_t		    rst; /* closed by RST, not FIN */
	uint8_t		    dgram;
};

/*
 * What the acceptor decides for a connection, on the main loop, in the
 * order connections arrive, whatever loop then serves it: its number, its
 * retry gap, the seed its toxics roll from, and its ordinal for each of
 * the proxy's stream toxics (every, first), in the proxy's order. And its
 * upstream socket, when the upstream is an address: taken with the
 * client's, so the descriptors a connection needs are counted against
 * the reserve when it is accepted (proxy.c), not later on a worker.
 */
struct session_origin {
	struct addr peer;
	uint64_t    id;
	uint64_t    t_accept; /* ns, monotonic */
	int64_t	    retry_gap_ns;
	uint64_t    seed;
	uint64_t   *ordinals;
	size_t	    nordinals;
	int	    upstream_fd;    /* its upstream socket, or -1 */
	int	    upstream_errno; /* why there is none, or 0 */
};

struct session {
	TAILQ_ENTRY(session)   entry;
	TAILQ_ENTRY(session)   reap_entry;
	struct proxy	      *proxy;
	uint64_t	       id;   /* per proxy, from 1 */
	uint64_t	       seed; /* its toxics' rolls (prng.h) */
	enum session_state     state;
	struct side	       client;
	struct side	       upstream;
	struct dir	       up;	 /* client -> upstream */
	struct dir	       down;	 /* upstream -> client */
	struct event	      *drain_ev; /* graceful close deadline */
	struct addr	       peer;
	uint64_t	       t_accept;     /* ns, monotonic */
	char		      *close_reason; /* set by session_close() */
	int		       close_flags;
	struct udp_flow	      *flow;	       /* a UDP flow (udp.c), or NULL */
	struct resolver_wait   resolving;      /* the upstream's name */
	int		       upstream_fd;    /* from its origin, or -1 */
	int		       upstream_errno; /* why not, or 0 */
	struct session_verdict verdict;
	char		      *fault_name;    /* the first toxic that acted */
	json_t		      *acted;	      /* names of those that acted */
	uint64_t	       t_to_client;   /* ns: bytes last handed to */
	uint64_t	       t_to_upstream; /* each side; 0: never */
};
TAILQ_HEAD(session_list, session);

/* close_flags */
#define SESSION_RST_CLIENT	0x1
#define SESSION_RST_UPSTREAM	0x2
#define SESSION_FAILED		0x4	/* upstream never connected */
#define SESSION_NOW		0x8	/* close without draining */

void		session_origin(struct proxy *, const struct addr *,
	       struct session_origin *);
void		session_origin_free(struct session_origin *);
struct session *session_new(struct proxy *, int, const struct addr *);
struct session *session_new_at(struct proxy *, int, struct session_origin *);
struct session *session_new_dgram(struct proxy *, int, const struct addr *);
void		session_close(struct session *, const char *, int);
void		session_expire(struct session *);
void		session_reap(struct loop *);
const char     *session_state_name(enum session_state);
void		session_fault(struct session *, const struct toxic *);
void	    session_verdict_json(const struct session_verdict *, const char *,
	   json_t *);
const char *session_closer_name(enum session_closer);
json_t	   *session_json(struct session *);
struct dir *session_dir(struct session *, enum toxic_stream);
size_t	    dir_queued(const struct dir *);
void	    dir_count(struct dir *, size_t);
void	    dir_received(struct dir *, size_t);

/* For the toxic engine. */
void		   dir_deliver(struct dir *, struct evbuffer *);
void		   dir_deliver_eof(struct dir *);
void		   dir_update_read(struct dir *);
struct event_base *session_base(struct session *);

#endif
