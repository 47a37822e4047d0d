/*
 * A proxy: a named listener, its upstream, its toxics and its sessions.
 */
#ifndef TARDY_PROXY_H
#define TARDY_PROXY_H

#include <sys/queue.h>

#include <stdint.h>

#include <jansson.h>

#include "addr.h"
#include "config.h"
#include "session.h"
#include "toxic.h"

struct event;
struct loop;
struct proxy_conf;
struct tardy;
struct history;
struct udp;

/* Upper bounds (ms) of the fault_ms histogram's buckets, +Inf last. */
#define PROXY_FAULT_BOUNDS \
	{ 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, \
	    60000 }
#define PROXY_FAULT_BUCKETS 14

/*
 * Every loop serving the proxy's connections adds to these (COUNT_ADD),
 * and the API reads them (COUNT_GET).
 */
struct proxy_stats {
	uint64_t accepted;
	uint64_t failed;   /* upstream connect failed */
	uint64_t bytes_up; /* client -> upstream, handed on */
	uint64_t bytes_down;
	uint64_t received_up;	/* read from the client */
	uint64_t received_down; /* read from the upstream */
	uint64_t toxics_applied;
	/*
	 * fault_ms of the connections their client closed: how long clients
	 * hold on under faults, as a Prometheus histogram (api_metrics.c).
	 */
	uint64_t fault_buckets[PROXY_FAULT_BUCKETS]; /* cumulative later */
	uint64_t fault_count;
	uint64_t fault_sum_us;
};

/*
 * With worker threads (worker.c), a TCP proxy has a shard on each worker:
 * a struct proxy without a listener, holding the connections that worker
 * serves, copies of the proxy's stream toxics, and pointers to the
 * proxy's counters and history. The main loop makes every change to a
 * shard by a call on its worker's thread (proxy_shards_*).
 */
struct proxy {
	TAILQ_ENTRY(proxy)    entry;
	struct tardy	     *tardy;
	struct loop	     *loop;   /* where its sessions run */
	struct proxy	    **shards; /* one per worker, or NULL */
	struct proxy	     *parent; /* a shard's proxy, or NULL */
	char		     *name;
	char		     *listen_str; /* as configured */
	char		     *upstream_str;
	struct addr	      listen;	       /* as configured, maybe port 0 */
	struct addr	      bound;	       /* where it listens */
	struct addr	      upstream;	       /* AF_UNSPEC: a name */
	char		     *upstream_host;   /* the name, or NULL */
	int		      upstream_port;   /* with the name */
	int		      upstream_reset;  /* RST, not EOF, on failure */
	unsigned int	      connect_timeout; /* ms */
	const struct timeval *connect_tv;      /* common timeout of it */
	unsigned int	      rcvbuf; /* listener SO_RCVBUF, 0: default */
	int		      enabled;
	int		      started; /* has been enabled */
	int		      from_config;
	enum proxy_protocol   protocol;
	unsigned int	      flow_timeout; /* ms, UDP flows idle */
	unsigned int	      max_flows;    /* UDP */
	struct udp	     *udp;	    /* UDP state, udp.c */

	int	      fd;
	struct event *accept_ev;
	struct event *backoff_ev;
	int	      backoff_logged;
	int	      refusing; /* count of reasons to refuse */
	int	      dropping; /* drop_syn toxics active */
	int	     *fillers;	/* drop_syn: our own connects */
	size_t	      nfillers;

	struct session_list sessions;
	size_t		    nsessions;
	struct toxic_list   toxics;
	uint64_t	    next_id;
	struct proxy_stats *stats; /* own_stats, or a shard's parent's */
	struct proxy_stats  own_stats;
	struct history	   *history; /* closed connections (history.c) */
};
TAILQ_HEAD(proxy_list, proxy);

int  proxy_bind(struct tardy *, const struct addr *, struct addr *, char *,
     size_t);
int  proxy_bind_type(struct tardy *, const struct addr *, int, struct addr *,
     char *, size_t);
void proxy_unbind(int, const struct addr *);
struct proxy *proxy_new(struct tardy *, const struct proxy_conf *, int,
    const struct addr *);
void	      proxy_free(struct proxy *);
int	      proxy_take_listener(struct proxy *, struct addr *);
void	      proxy_close_sessions(struct proxy *, const char *);
int	      proxy_fds_low(int, int);
void	      proxy_set_enabled(struct proxy *, int);
void	      proxy_fault_observe(struct proxy *, uint64_t);
void	      proxy_set_connect_timeout(struct proxy *, unsigned int);
void	      proxy_refuse(struct proxy *, int);
void	      proxy_drop_syn(struct proxy *, int);
struct toxic *proxy_find_toxic(struct proxy *, const char *);
void	      proxy_add_toxic(struct proxy *, struct toxic *);
void	      proxy_remove_toxic(struct proxy *, struct toxic *);
size_t	      proxy_nsessions(struct proxy *);
json_t	     *proxy_sessions_json(struct proxy *);

/* A proxy's shards, on the worker threads. */
void proxy_shards_new(struct proxy *);
void proxy_shards_update(struct proxy *);
void proxy_shards_toxic_add(struct proxy *, const struct toxic *);
void proxy_shards_toxic_set(struct proxy *, const struct toxic *);
void proxy_shards_toxic_remove(struct proxy *, const char *);

#endif
