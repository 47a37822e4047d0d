/*
 * Toxics: faults attached to a proxy and a stream.
 *
 * A toxic lives on its proxy (struct toxic: name, type, attributes). On
 * every connection of the proxy it has a link (struct link) in the chain
 * of the connection's direction it acts on; data read from the source
 * passes through the links in order and then to the destination. Each
 * type is one small file that fills in a struct toxic_type; the engine
 * (toxic.c) does everything the types share: attribute validation,
 * scheduling (after_bytes, after_ms, duration_ms, every, first), the
 * seeded toxicity roll, and adding and removing links on open
 * connections.
 */
#ifndef TARDY_TOXIC_H
#define TARDY_TOXIC_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "prng.h"
#include "ptimer.h"

struct config;
struct toxic_conf;
struct evbuffer;
struct event;
struct proxy;
struct dir;
struct session;
struct link;
struct toxic;

enum toxic_stream {
	TOXIC_UPSTREAM,	  /* client -> server */
	TOXIC_DOWNSTREAM, /* server -> client */
};

/*
 * An attribute a type accepts: an integer in [min, max]. With
 * TOXIC_A_UNIT it is a probability, given as a number from 0 to 1 and
 * kept as an integer in [0, max], max parts making 1. A TOXIC_A_ALIAS
 * row is another name for the row before it, an integer in its own
 * [0, max] (max dividing the other's); it is never shown, and refused
 * beside the name it stands for.
 */
struct toxic_attr {
	const char *name;
	int64_t	    min;
	int64_t	    max;
	int64_t	    def;
	int	    flags;
};
#define TOXIC_A_REQUIRED	0x1	/* a new toxic must give it */
#define TOXIC_A_UNIT		0x2
#define TOXIC_A_ALIAS		0x4

#define TOXIC_MAX_ATTRS	8

/* Where the type acts. */
#define TOXIC_F_LISTENER	0x1	/* on the proxy's listener, not data */
#define TOXIC_F_UDP_ONLY	0x2	/* acts on datagrams: UDP proxies only */

struct toxic_type {
	const char		*name;
	const char		*doc;
	const struct toxic_attr *attrs;
	int			 flags;
	const char		*no_udp;     /* why not on UDP; NULL: it can */
	size_t			 state_size; /* per link, zeroed */

	/* Checks across attributes; may be NULL. */
	int (*validate)(const int64_t *, char *, size_t);

	/* Data path hooks; any may be NULL. All run on the event loop. */
	void (*start)(struct link *); /* link begins acting */
	void (*stop)(struct link *);  /* ends: pass on what it held */
	void (*data)(struct link *, struct evbuffer *, uint64_t);
	void (*eof)(struct link *);
	void (*update)(struct link *); /* attributes changed */
	void (*free)(struct link *);   /* release, pass nothing */

	/* Listener hooks for TOXIC_F_LISTENER types. */
	void (*listener_start)(struct toxic *);
	void (*listener_stop)(struct toxic *);
};

enum link_state {
	LINK_IDLE,    /* not chosen for this connection: passes data */
	LINK_PENDING, /* chosen, waiting for after_ms / after_bytes */
	LINK_ACTIVE,
	LINK_DONE, /* duration_ms over: passes data */
};

struct toxic {
	TAILQ_ENTRY(toxic)	 entry;
	struct proxy		*proxy;
	char			*name;
	const struct toxic_type *type;
	enum toxic_stream	 stream;
	double			 toxicity;
	int64_t	 attr[TOXIC_MAX_ATTRS]; /* by type->attrs index */
	uint64_t after_bytes;
	uint64_t after_ms;
	uint64_t duration_ms;
	uint64_t every;
	uint64_t first;
	int	 from_config;

	uint64_t      nconns;  /* connections seen since added */
	uint64_t      applied; /* links that went active */
	uint64_t      t_added; /* ns */
	void	     *listener_state;
	struct ptimer listener_timer;
	int	      listener_active;
};
TAILQ_HEAD(toxic_list, toxic);

struct link {
	TAILQ_ENTRY(link) entry;
	struct dir	 *dir;
	struct toxic	 *toxic;
	enum link_state	  state;
	struct prng	  rng;
	uint64_t	  bytes; /* seen by this link */
	struct ptimer	  sched;
	uint64_t	  t_active; /* ns, when it went active */
	size_t		  held;	    /* bytes this link holds */
	int		  stalling;
	int		  removing; /* stop() because removed */
	void		 *state_data;
};

/* Types. */
const struct toxic_type *toxic_type_find(const char *);
const char		*toxic_stream_name(enum toxic_stream);
int			 toxic_stream_parse(const char *, enum toxic_stream *);

/* Toxics on a proxy. */
struct toxic *toxic_new(struct proxy *, const char *, const char *,
    const char *, double, json_t *, char *, size_t, int *);
int  toxic_update(struct toxic *, json_t *, double, int, char *, size_t);
void toxic_free(struct toxic *);
int  toxic_equal(const struct toxic *, const struct toxic *);
struct toxic *toxic_copy(const struct toxic *);
json_t	     *toxic_json(const struct toxic *);
int64_t	      toxic_attr(const struct toxic *, const char *);
int	      toxic_attr_index(const struct toxic_type *, const char *);
int	      toxic_conf_check(struct config *, struct toxic_conf *);
int toxic_check_protocol(const struct toxic_type *, int, char *, size_t);

/* Links, for the session engine. */
void	  toxic_attach(struct toxic *, struct dir *, uint64_t, uint64_t);
uint64_t *toxic_ordinals(struct proxy *, size_t *);
void	  toxic_attach_all(struct session *, const uint64_t *, size_t);
void	  toxic_assign(struct toxic *, const struct toxic *);
void	  link_free(struct link *);
void	  link_data(struct link *, struct evbuffer *, uint64_t);
void	  link_eof(struct link *);

/* For the types. */
#define link_attr(l, i)		((l)->toxic->attr[(i)])
#define link_state(l)		((l)->state_data)
void	 link_forward(struct link *, struct evbuffer *, uint64_t);
void	 link_forward_eof(struct link *);
void	 link_held(struct link *, ssize_t);
void	 link_stall(struct link *, int);
void	 link_close(struct link *, const char *);
void	 link_reset(struct link *, const char *);
void	 link_timer_set(struct link *, struct ptimer *, void (*)(void *));
void	 link_timer_at(struct link *, struct ptimer *, uint64_t);
void	 link_timer_in_ms(struct link *, struct ptimer *, uint64_t);
void	 link_timer_cancel(struct link *, struct ptimer *);
uint64_t link_random(struct link *);
double	 link_random_unit(struct link *);
uint64_t link_random_range(struct link *, uint64_t);
int	 link_dgram(const struct link *);

#endif
