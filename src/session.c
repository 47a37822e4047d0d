/*
 * The session engine: one proxied connection, both directions.
 *
 * Each socket has one event whose mask follows what the two directions
 * need of it: read while its direction may take more, write while data
 * is queued for it. Data read from a direction's source goes through the
 * direction's chain of toxic links (toxic.c) and ends in dir_deliver().
 * With no link in the chain, a read goes straight to a write on the
 * destination, and only what the destination cannot take at once is
 * queued. Reading a source stops while DIR_HIGH_WATER bytes are queued
 * for its destination (or held by its toxics), or while a toxic stalls
 * it, and resumes at DIR_LOW_WATER: that bounds memory per connection.
 *
 * A source's EOF travels the same chain and becomes shutdown(SHUT_WR) on
 * the destination once everything before it was written, so half-closed
 * connections keep flowing the other way. When both directions are shut,
 * the session ends.
 *
 * Every ending, from a socket's callback, a toxic, a timer or the API, is
 * one call: session_close(s, reason, flags). It only stops the session
 * (no more reads, no more callbacks) and queues it; session_reap() frees
 * it from the event loop, so nothing is ever freed under a callback
 * still on the stack, and no function has to tell its caller that the
 * session is gone. Code that runs after session_close() in the same
 * callback finds the session in SESSION_CLOSING (or SESSION_DRAINING)
 * and does nothing more.
 *
 * No bufferevents: two of them cost about 2 KiB per connection, more than
 * the whole session does without them.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "events.h"
#include "history.h"
#include "log.h"
#include "loop.h"
#include "proxy.h"
#include "resolver.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "udp.h"
#include "util.h"

static void session_client_cb(evutil_socket_t, short, void *);
static void session_upstream_cb(evutil_socket_t, short, void *);
static void session_drain_cb(evutil_socket_t, short, void *);
static void dir_flush(struct dir *);
static void dir_read(struct dir *);
static void session_connected(struct session *, int);
static void session_error(struct session *, struct side *, int);

const char *
session_state_name(enum session_state state)
{
	switch (state) {
	case SESSION_RESOLVING:
		return ("resolving");
	case SESSION_CONNECTING:
		return ("connecting");
	case SESSION_OPEN:
		return ("open");
	case SESSION_DRAINING:
		return ("draining");
	case SESSION_CLOSING:
		return ("closing");
	}
	return ("unknown");
}

struct event_base *
session_base(struct session *s)
{
	return (s->proxy->loop->base);
}

struct dir *
session_dir(struct session *s, enum toxic_stream stream)
{
	return (stream == TOXIC_UPSTREAM ? &s->up : &s->down);
}

/* Whether bytes wait to be written to the destination. */
static int
dir_pending(const struct dir *d)
{
	return (d->piped > 0 ||
	    (d->out != NULL && evbuffer_get_length(d->out) > 0));
}

/* Bytes waiting for the destination, including what toxics hold. */
size_t
dir_queued(const struct dir *d)
{
	return ((d->out != NULL ? evbuffer_get_length(d->out) : 0) + d->piped +
	    d->held);
}

static void
dir_init(struct session *s, struct dir *d, enum toxic_stream stream,
    struct side *src, struct side *dst)
{
	d->session = s;
	d->stream = stream;
	d->src = src;
	d->dst = dst;
	d->pipe[0] = d->pipe[1] = -1;
	TAILQ_INIT(&d->links);
}

/*
 * Set a side's event to the mask its directions need. The write half
 * has the connect timeout while connecting.
 */
static void
side_update(struct session *s, struct side *sd)
{
	struct dir *as_src = sd == &s->client ? &s->up : &s->down;
	struct dir *as_dst = sd == &s->client ? &s->down : &s->up;
	short	    mask = 0;

	if (sd->fd == -1)
		return; /* the upstream while resolving, a UDP flow's client */
	if (s->state == SESSION_RESOLVING || s->state == SESSION_CONNECTING) {
		if (sd == &s->upstream)
			mask = EV_WRITE;
	} else {
		if (as_src->reading)
			mask |= EV_READ;
		if (dir_pending(as_dst))
			mask |= EV_WRITE;
	}
	/*
	 * A peer tardy does not read from (a toxic stalls it, its
	 * destination is full, the upstream is not connected yet) is still
	 * watched for its close, so the verdict is when it gave up, not when
	 * tardy next reads: a FIN is EV_CLOSED (EPOLLRDHUP), a RST an error,
	 * which libevent reports as readable and writable only. Writing
	 * finds it; otherwise reads are watched edge-triggered, so data
	 * left unread does not wake the loop again and again. The upstream
	 * is watched for resets only: its FIN is the client's to see, when
	 * the toxics pass it on.
	 */
	if (!as_src->reading && !as_src->src_eof && s->verdict.t_closed == 0) {
		if (sd == &s->client)
			mask |= (mask & EV_WRITE) ? EV_CLOSED :
						    EV_READ | EV_CLOSED | EV_ET;
		else if (s->state >= SESSION_OPEN && !(mask & EV_WRITE))
			mask |= EV_READ | EV_ET; /* resets only: see below */
	}
	if (mask == sd->mask)
		return;
	event_del(sd->ev);
	sd->mask = mask;
	if (mask == 0)
		return;
	event_assign(sd->ev, session_base(s), sd->fd, mask | EV_PERSIST,
	    sd == &s->client ? session_client_cb : session_upstream_cb, s);
	event_priority_set(sd->ev, TARDY_PRI_DATA);
	event_add(sd->ev,
	    s->state == SESSION_CONNECTING && sd == &s->upstream ?
		s->proxy->connect_tv :
		NULL);
}

const char *
session_closer_name(enum session_closer by)
{
	switch (by) {
	case SESSION_BY_CLIENT:
		return ("client");
	case SESSION_BY_UPSTREAM:
		return ("upstream");
	case SESSION_BY_TARDY:
		return ("tardy");
	case SESSION_BY_FLOW_TIMEOUT:
		return ("flow_timeout");
	case SESSION_BY_NONE:
		break;
	}
	return (NULL);
}

/*
 * Number a connection p accepted from peer, now; on the main loop, in
 * the order they arrive (see struct session_origin).
 */
void
session_origin(struct proxy *p, const struct addr *peer,
    struct session_origin *o)
{
	o->peer = *peer;
	o->t_accept = util_now_ns();
	o->id = ++p->next_id;
	o->retry_gap_ns = history_accept(p->history, peer, o->t_accept);
	o->seed = p->tardy->seed;
	o->ordinals = toxic_ordinals(p, &o->nordinals);
	o->upstream_fd = -1;
	o->upstream_errno = 0;
	if (p->protocol == PROTO_UDP || p->upstream_host != NULL)
		return; /* a flow's socket is udp.c's; a name's family unknown */
	o->upstream_fd = socket(addr_family(&p->upstream),
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (o->upstream_fd == -1)
		o->upstream_errno = errno;
}

void
session_origin_free(struct session_origin *o)
{
	free(o->ordinals);
	o->ordinals = NULL;
	if (o->upstream_fd != -1)
		close(o->upstream_fd);
	o->upstream_fd = -1;
}

/* A new connection: none of it known, but how long its client waited. */
static void
session_start(struct session *s, struct session_origin *o)
{
	struct proxy *p = s->proxy;

	s->id = o->id;
	s->peer = o->peer;
	s->t_accept = o->t_accept;
	s->seed = o->seed;
	s->upstream_fd = o->upstream_fd;
	s->upstream_errno = o->upstream_errno;
	o->upstream_fd = -1;
	s->verdict.unread = -1;
	s->verdict.retry_gap_ns = o->retry_gap_ns;
	TAILQ_INSERT_TAIL(&p->sessions, s, entry);
	COUNT_ADD(p->nsessions, 1);
	loop_session_start(p->loop);
	COUNT_ADD(p->stats->accepted, 1);
	events_session(s, EVENT_ACCEPT, NULL);
	toxic_attach_all(s, o->ordinals, o->nordinals);
	session_origin_free(o);
}

/* A toxic acted on the connection: the first one is its fault. */
void
session_fault(struct session *s, const struct toxic *tx)
{
	struct session_verdict *v = &s->verdict;
	json_t		       *name;
	size_t			i;

	if (s->acted == NULL)
		s->acted = json_array();
	json_array_foreach(s->acted, i, name) {
		if (strcmp(json_string_value(name), tx->name) == 0)
			break;
	}
	if (i == json_array_size(s->acted))
		json_array_append_new(s->acted, json_string(tx->name));
	if (v->t_fault != 0 || v->t_closed != 0)
		return;
	v->t_fault = util_now_ns();
	v->fault_type = tx->type->name;
	s->fault_name = strdup(tx->name); /* NULL: shown without a name */
}

/*
 * The connection's first close: by whom, by FIN or RST. Taken once; the
 * close event says it at once, even if a toxic keeps tardy's side of the
 * connection open after the client gave up (blackhole swallows the EOF).
 * What the client sent that tardy never read is what its socket still
 * holds (SIOCINQ): under stall, how much the client's send() pushed.
 */
static void
session_verdict(struct session *s, enum session_closer by, int rst,
    const char *reason)
{
	struct session_verdict *v = &s->verdict;
	struct proxy	       *p = s->proxy;
	uint64_t		now, last;
	int			n;

	if (v->t_closed != 0)
		return;
	now = util_now_ns();
	v->t_closed = now;
	v->by = by;
	v->rst = rst != 0;
	v->duration_ns = now - s->t_accept;
	last = by == SESSION_BY_UPSTREAM ? s->t_to_upstream : s->t_to_client;
	v->idle_ns = now - (last != 0 ? last : s->t_accept);
	v->unread = -1;
	if (s->client.fd != -1 && ioctl(s->client.fd, SIOCINQ, &n) == 0)
		v->unread = n;
	history_close(p->history, &s->peer, now);
	if (by == SESSION_BY_CLIENT && v->t_fault != 0)
		proxy_fault_observe(p, now - v->t_fault);
	events_session(s, EVENT_CLOSE, reason);
}

/* A verdict's fields, in an event, a connection or its history entry. */
void
session_verdict_json(const struct session_verdict *v, const char *fault_name,
    json_t *o)
{
	json_t *fault;

	json_object_set_new(o, "retry_gap_ms",
	    v->retry_gap_ns >= 0 ?
		json_real(util_ns_to_ms((uint64_t)v->retry_gap_ns)) :
		json_null());
	if (v->t_closed == 0)
		return;
	fault = json_null();
	if (v->t_fault != 0)
		fault = json_pack("{s:s?, s:s}", "name", fault_name, "type",
		    v->fault_type);
	json_object_set_new(o, "closed_by",
	    json_string(session_closer_name(v->by)));
	json_object_set_new(o, "close",
	    v->dgram ? json_null() : json_string(v->rst ? "rst" : "fin"));
	json_object_set_new(o, "fault_ms",
	    v->t_fault != 0 ?
		json_real(util_ns_to_ms(v->t_closed - v->t_fault)) :
		json_null());
	json_object_set_new(o, "fault", fault);
	json_object_set_new(o, "idle_ms", json_real(util_ns_to_ms(v->idle_ns)));
	json_object_set_new(o, "unread_bytes",
	    v->unread >= 0 ? json_integer(v->unread) : json_null());
	json_object_set_new(o, "duration_ms",
	    json_real(util_ns_to_ms(v->duration_ns)));
}

/* The toxics acting on a direction now. */
static void
session_json_links(json_t *a, struct dir *d)
{
	struct link *l;

	TAILQ_FOREACH(l, &d->links, entry) {
		if (l->state == LINK_ACTIVE)
			json_array_append_new(a, json_string(l->toxic->name));
	}
}

/*
 * A connection as GET /proxies/{proxy}/connections shows it: open, or
 * (from the proxy's history) closed, with its verdict once it has one.
 */
json_t *
session_json(struct session *s)
{
	struct history *h = s->proxy->history;
	json_t	       *c, *toxics;
	char		buf[ADDR_STRLEN];
	int		closed = s->state == SESSION_CLOSING;
	uint64_t	now = util_now_ns();

	/*
	 * Open: the toxics acting now; closed: those that ever acted. A deep
	 * copy: the listing is read on the main loop, maybe after a worker
	 * has freed s, and jansson's reference counts do not order one
	 * thread's reads before another's free.
	 */
	if (closed)
		toxics = s->acted != NULL ? json_deep_copy(s->acted) :
					    json_array();
	else {
		toxics = json_array();
		session_json_links(toxics, &s->up);
		session_json_links(toxics, &s->down);
	}
	c = json_pack("{s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:o}", "id",
	    (json_int_t)s->id, "peer", addr_fmt(&s->peer, buf, sizeof(buf)),
	    "state", closed ? "closed" : session_state_name(s->state),
	    "bytes_up", (json_int_t)s->up.bytes, "bytes_down",
	    (json_int_t)s->down.bytes, "age_ms",
	    (json_int_t)((now - s->t_accept) / 1000000), "accept_ns",
	    (json_int_t)s->t_accept, "accept_ms",
	    util_ns_to_ms(history_since_first(h, s->t_accept)), "toxics",
	    toxics);
	if (c == NULL)
		return (json_object());
	/* Which event loop serves it: 0 the main one, workers from 1. */
	json_object_set_new(c, "loop", json_integer(s->proxy->loop->index));
	if (s->up.dgram)
		json_object_update_new(c,
		    json_pack("{s:s, s:I, s:I}", "protocol", "udp",
			"datagrams_up", (json_int_t)s->up.dgrams,
			"datagrams_down", (json_int_t)s->down.dgrams));
	if (closed)
		json_object_del(c, "age_ms");
	session_verdict_json(&s->verdict, s->fault_name, c);
	return (c);
}

/*
 * An event on a side not read from (see side_update()): its peer reset
 * (an error) or closed (EV_CLOSED), or only sent bytes. A reset ends the
 * session as a read error would; a FIN is only the verdict, and is read
 * in its turn after what came before it.
 */
static void
session_peer_closed(struct session *s, struct side *sd, int closed)
{
	int err = 0;

	if (getsockopt(sd->fd, SOL_SOCKET, SO_ERROR, &err,
		&(socklen_t){ sizeof(err) }) == -1)
		err = errno;
	if (err != 0) {
		session_error(s, sd, err);
		return;
	}
	if (!closed || sd == &s->upstream)
		return; /* bytes, or a FIN, left to read in their turn */
	session_verdict(s,
	    sd == &s->client ? SESSION_BY_CLIENT : SESSION_BY_UPSTREAM, 0,
	    sd == &s->client ? "client closed" : "upstream closed");
	side_update(s, sd);
}

/*
 * The upstream could not be reached (refused, timed out, a name that did
 * not resolve, no descriptor to spare). As with Toxiproxy the client's
 * connect() has succeeded and it now sees EOF, unless the proxy resets
 * it instead (upstream_failure = reset). What the client sent is
 * discarded first, or the kernel would answer our close with a reset.
 */
static void
session_fail(struct session *s, const char *reason)
{
	char buf[4096];
	int  i;

	session_verdict(s, SESSION_BY_UPSTREAM, s->proxy->upstream_reset,
	    reason);
	if (s->proxy->upstream_reset) {
		session_close(s, reason, SESSION_RST_CLIENT | SESSION_FAILED);
		return;
	}
	for (i = 0; i < 256; i++) {
		if (recv(s->client.fd, buf, sizeof(buf),
			MSG_DONTWAIT | MSG_TRUNC) <= 0)
			break;
	}
	session_close(s, reason, SESSION_FAILED);
}

/* Start connecting to the upstream at a. */
static void
session_connect(struct session *s, const struct addr *a)
{
	struct pollfd pfd = { .events = POLLOUT };
	char	      reason[128];
	int	      fd, one = 1;

	s->state = SESSION_CONNECTING;
	if ((fd = s->upstream_fd) != -1 || s->upstream_errno != 0)
		s->upstream_fd = -1; /* made when it was accepted */
	else
		fd = socket(addr_family(a),
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(reason, sizeof(reason), "upstream socket: %s",
		    strerror(s->upstream_errno != 0 ? s->upstream_errno :
						      errno));
		session_fail(s, reason);
		return;
	}
	if (addr_family(a) != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	s->upstream.fd = pfd.fd = fd;
	if (connect(fd, addr_sa(a), a->len) == -1 && errno != EINPROGRESS) {
		/* Immediate failures: refused unix sockets, missing paths. */
		snprintf(reason, sizeof(reason), "upstream connect failed: %s",
		    strerror(errno));
		session_fail(s, reason);
		return;
	}
	/*
	 * On loopback the handshake is usually over already: asking poll()
	 * spares a trip through the event loop for every connection.
	 */
	if (poll(&pfd, 1, 0) == 1)
		session_connected(s, pfd.revents == POLLOUT);
	else {
		side_update(s, &s->upstream);
		side_update(s, &s->client);
	}
}

/* The upstream's host name was looked up (resolver.c). */
static void
session_resolved_cb(struct resolver_wait *w, const struct addr *a,
    const char *err)
{
	struct session *s = (struct session *)((char *)w -
	    offsetof(struct session, resolving));
	struct addr	to;
	char		reason[300];

	if (s->state != SESSION_RESOLVING)
		return; /* a toxic is closing it */
	if (a == NULL) {
		snprintf(reason, sizeof(reason), "upstream %s: %s",
		    s->proxy->upstream_str, err);
		session_fail(s, reason);
		return;
	}
	to = *a;
	addr_set_port(&to, s->proxy->upstream_port);
	session_connect(s, &to);
}

/*
 * Take over an accepted client socket and start connecting upstream,
 * once the upstream's name is known if it has one. Returns NULL if the
 * session could not be set up (the client is reset); a session that
 * failed at once is returned closing.
 */
struct session *
session_new(struct proxy *p, int fd, const struct addr *peer)
{
	struct session_origin o;

	session_origin(p, peer, &o);
	return (session_new_at(p, fd, &o));
}

/* The same, for a connection numbered already (origin, taken). */
struct session *
session_new_at(struct proxy *p, int fd, struct session_origin *origin)
{
	struct event_base *base = p->loop->base;
	struct session	  *s;
	struct addr	   to;
	char		   reason[300], err[256];

	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto fail;
	s->client.fd = s->upstream.fd = -1;
	if ((s->client.ev = event_new(base, -1, 0, NULL, NULL)) == NULL ||
	    (s->upstream.ev = event_new(base, -1, 0, NULL, NULL)) == NULL)
		goto fail;
	s->proxy = p;
	s->state = SESSION_RESOLVING;
	s->client.fd = fd;
	dir_init(s, &s->up, TOXIC_UPSTREAM, &s->client, &s->upstream);
	dir_init(s, &s->down, TOXIC_DOWNSTREAM, &s->upstream, &s->client);
	session_start(s, origin);
	if (s->state != SESSION_RESOLVING)
		return (s); /* a toxic closes it */

	if (p->upstream_host == NULL) {
		session_connect(s, &p->upstream);
		return (s);
	}
	s->resolving.cb = session_resolved_cb;
	switch (resolver_get(p->loop->resolver, p->upstream_host, &s->resolving,
	    &to, err, sizeof(err))) {
	case 0:
		addr_set_port(&to, p->upstream_port);
		session_connect(s, &to);
		break;
	case -1:
		snprintf(reason, sizeof(reason), "upstream %s: %s",
		    p->upstream_str, err);
		session_fail(s, reason);
		break;
	default:
		side_update(s, &s->client);
		break; /* session_resolved_cb goes on */
	}
	return (s);

fail:
	log_warn("proxy %s: cannot set up a connection", p->name);
	if (s != NULL) {
		if (s->client.ev != NULL)
			event_free(s->client.ev);
		if (s->upstream.ev != NULL)
			event_free(s->upstream.ev);
		free(s);
	}
	session_origin_free(origin);
	(void)util_set_linger0(fd);
	close(fd);
	COUNT_ADD(p->stats->failed, 1);
	return (NULL);
}

/*
 * A UDP flow (udp.c): its client side is the proxy's own socket, so it
 * has no fd or event of its own; the upstream side is a connected UDP
 * socket whose event udp.c sets up. Both directions are in datagram
 * mode: dir_deliver() hands each buffer to udp_deliver() as one datagram.
 */
struct session *
session_new_dgram(struct proxy *p, int ufd, const struct addr *peer)
{
	struct session	     *s;
	struct session_origin o;

	s = xcalloc(1, sizeof(*s));
	s->client.fd = -1;
	s->upstream.fd = ufd;
	s->proxy = p;
	s->state = SESSION_OPEN;
	dir_init(s, &s->up, TOXIC_UPSTREAM, &s->client, &s->upstream);
	dir_init(s, &s->down, TOXIC_DOWNSTREAM, &s->upstream, &s->client);
	s->up.dgram = s->down.dgram = 1;
	s->verdict.dgram = 1;
	session_origin(p, peer, &o);
	session_start(s, &o);
	return (s);
}

static void
side_close(struct side *sd, int rst)
{
	if (sd->ev != NULL)
		event_free(sd->ev);
	if (sd->fd == -1)
		return;
	if (rst)
		(void)util_set_linger0(sd->fd);
	close(sd->fd);
}

static void
dir_free(struct dir *d)
{
	struct link *l;

	while ((l = TAILQ_FIRST(&d->links)) != NULL)
		link_free(l);
	if (d->out != NULL)
		evbuffer_free(d->out);
	if (d->pipe[0] != -1) {
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
}

/*
 * Free a closed session: reset the sides named in its close flags
 * (SO_LINGER 0, so the peer's next call fails with ECONNRESET), close
 * the rest, log the reason. Only session_reap() calls it.
 */
static void
session_free(struct session *s)
{
	struct proxy *p = s->proxy;
	char	      buf[ADDR_STRLEN];
	const char   *reason;
	int	      flags = s->close_flags;

	reason = s->close_reason != NULL ? s->close_reason : "out of memory";
	if (flags & SESSION_FAILED) {
		log_info("proxy %s: connection %llu from %s: %s", p->name,
		    (unsigned long long)s->id,
		    addr_fmt(&s->peer, buf, sizeof(buf)), reason);
		COUNT_ADD(p->stats->failed, 1);
	} else
		log_debug("proxy %s: connection %llu from %s closed: %s "
			  "(%llu bytes up, %llu down)",
		    p->name, (unsigned long long)s->id,
		    addr_fmt(&s->peer, buf, sizeof(buf)), reason,
		    (unsigned long long)s->up.bytes,
		    (unsigned long long)s->down.bytes);
	history_add(p->history, session_json(s));

	TAILQ_REMOVE(&p->loop->reap, s, reap_entry);
	dir_free(&s->up);
	dir_free(&s->down);
	side_close(&s->client, flags & SESSION_RST_CLIENT);
	side_close(&s->upstream, flags & SESSION_RST_UPSTREAM);
	if (s->upstream_fd != -1)
		close(s->upstream_fd); /* closed before it connected */
	if (s->drain_ev != NULL)
		event_free(s->drain_ev);
	TAILQ_REMOVE(&p->sessions, s, entry);
	COUNT_SUB(p->nsessions, 1);
	loop_session_end(p->loop);
	free(s->close_reason);
	free(s->fault_name);
	json_decref(s->acted);
	free(s);
}

/* Stop the session and queue it for session_reap(). */
static void
session_reap_later(struct session *s)
{
	struct loop *l = s->proxy->loop;

	if (s->client.ev != NULL)
		event_del(s->client.ev);
	if (s->upstream.ev != NULL)
		event_del(s->upstream.ev);
	s->client.mask = s->upstream.mask = 0;
	s->state = SESSION_CLOSING;
	TAILQ_INSERT_TAIL(&l->reap, s, reap_entry);
	event_active(l->reap_ev, EV_TIMEOUT, 0);
}

/*
 * Free the sessions whose close was asked for. From the event loop, or
 * from code that no session callback is under (the API, a reload).
 */
void
session_reap(struct loop *l)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&l->reap)) != NULL)
		session_free(s);
}

static int
session_drained(const struct session *s)
{
	return (!dir_pending(&s->up) && !dir_pending(&s->down));
}

/*
 * End the session: the one way to, from anywhere. It stops reading at
 * once, leaves the resolver and (a UDP flow) its proxy's table, so the
 * peer's next datagram starts a new flow, and is freed by
 * session_reap(). Unless flags ask for a reset or SESSION_NOW, what is
 * already queued is written first (for at most SESSION_DRAIN_MS), so a
 * reader gets every byte that passed before the close. The first reason
 * given wins, except that a reset, an error or SESSION_NOW ends a drain.
 */
void
session_close(struct session *s, const char *reason, int flags)
{
	struct timeval tv = { SESSION_DRAIN_MS / 1000,
		(SESSION_DRAIN_MS % 1000) * 1000 };

	if (s->state == SESSION_CLOSING ||
	    (s->state == SESSION_DRAINING && flags == 0))
		return;
	session_verdict(s, SESSION_BY_TARDY,
	    (flags & (SESSION_RST_CLIENT | SESSION_RST_UPSTREAM)) != 0, reason);
	free(s->close_reason);
	s->close_reason = strdup(reason); /* NULL: "out of memory" */
	s->close_flags = flags & ~SESSION_NOW;
	s->up.reading = s->down.reading = 0;
	resolver_cancel(&s->resolving);
	if (s->flow != NULL)
		udp_flow_free(s);
	if (s->state == SESSION_OPEN && flags == 0 && !session_drained(s)) {
		s->state = SESSION_DRAINING;
		s->drain_ev = evtimer_new(session_base(s), session_drain_cb, s);
		if (s->drain_ev != NULL) {
			evtimer_add(s->drain_ev, &tv);
			side_update(s, &s->client);
			side_update(s, &s->upstream);
			return;
		}
	}
	session_reap_later(s);
}

/* A UDP flow was idle for its proxy's flow_timeout: its end. */
void
session_expire(struct session *s)
{
	session_verdict(s, SESSION_BY_FLOW_TIMEOUT, 0, "flow idle");
	session_close(s, "flow idle", 0);
}

/* The drain took too long: close with what is still queued. */
static void
session_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	session_reap_later(s);
}

/*
 * Read from the source while nothing holds it back: below the high water
 * mark, or once drained to the low one after it was reached.
 */
void
dir_update_read(struct dir *d)
{
	struct session *s = d->session;
	size_t		queued = dir_queued(d);
	int		want;

	if (s->state != SESSION_OPEN || d->dgram)
		return; /* UDP reads are the proxy's (udp.c) */
	if (d->src_eof || d->stalls > 0 || d->piped > 0)
		want = 0; /* a pipe is only filled when empty */
	else if (d->reading)
		want = queued < DIR_HIGH_WATER;
	else
		want = queued <= DIR_LOW_WATER;
	if (want == d->reading)
		return;
	d->reading = want;
	side_update(s, d->src);
}

static int
dir_out(struct dir *d)
{
	if (d->out == NULL && (d->out = evbuffer_new()) == NULL) {
		log_warnx("proxy %s: connection %llu: out of memory",
		    d->session->proxy->name,
		    (unsigned long long)d->session->id);
		session_close(d->session, "out of memory",
		    SESSION_RST_CLIENT | SESSION_RST_UPSTREAM);
		return (-1);
	}
	return (0);
}

/* Bytes a direction handed to its destination, for it and the proxy. */
void
dir_count(struct dir *d, size_t n)
{
	struct session *s = d->session;
	struct proxy   *p = s->proxy;

	if (d->dst == &s->client)
		s->t_to_client = util_now_ns();
	else
		s->t_to_upstream = util_now_ns();
	d->bytes += n;
	if (d->stream == TOXIC_UPSTREAM)
		COUNT_ADD(p->stats->bytes_up, n);
	else
		COUNT_ADD(p->stats->bytes_down, n);
}

/*
 * Bytes a direction read from its source, before its toxics: what they
 * swallow or add makes the difference with dir_count().
 */
void
dir_received(struct dir *d, size_t n)
{
	struct proxy *p = d->session->proxy;

	if (d->stream == TOXIC_UPSTREAM)
		COUNT_ADD(p->stats->received_up, n);
	else
		COUNT_ADD(p->stats->received_down, n);
}

/* The end of the chain: queue bytes for the destination and try to send. */
void
dir_deliver(struct dir *d, struct evbuffer *buf)
{
	size_t n = evbuffer_get_length(buf);

	if (d->dgram) {
		udp_deliver(d, buf);
		return;
	}
	if (n == 0)
		return;
	if (d->eof_out || d->session->state == SESSION_CLOSING ||
	    dir_out(d) == -1) {
		/* A toxic passed data after EOF or close: nowhere to go. */
		evbuffer_drain(buf, n);
		return;
	}
	if (util_evbuffer_append(d->out, buf) == -1) {
		session_close(d->session, "out of memory",
		    SESSION_RST_CLIENT | SESSION_RST_UPSTREAM);
		return;
	}
	dir_count(d, n);
	dir_flush(d);
}

static void
dir_try_shutdown(struct dir *d)
{
	struct session *s = d->session;

	if (!d->eof_out || d->shut || dir_pending(d))
		return;
	d->shut = 1;
	/*
	 * Both ways done: close() sends the FIN (the peer already sent its
	 * own, so nothing unread turns it into a RST).
	 */
	if (s->up.shut && s->down.shut) {
		session_close(s, "closed", 0);
		return;
	}
	/* The peer may be gone already; its side reports that. */
	(void)shutdown(d->dst->fd, SHUT_WR);
}

void
dir_deliver_eof(struct dir *d)
{
	struct session *s = d->session;

	if (d->eof_out)
		return;
	d->eof_out = 1;
	/* The upstream's close is the client's to see: see dir_got(). */
	if (d->src == &s->upstream)
		session_verdict(s, SESSION_BY_UPSTREAM, 0, "upstream closed");
	dir_try_shutdown(d);
}

/*
 * A reset or error on one side ends the session and resets the other
 * side, so each peer sees what it would have seen without the proxy.
 */
static void
session_error(struct session *s, struct side *sd, int err)
{
	char reason[128];

	snprintf(reason, sizeof(reason), "%s: %s",
	    sd == &s->client ? "client" : "upstream", strerror(err));
	session_verdict(s,
	    sd == &s->client ? SESSION_BY_CLIENT : SESSION_BY_UPSTREAM, 1,
	    reason);
	session_close(s, reason,
	    sd == &s->client ? SESSION_RST_UPSTREAM : SESSION_RST_CLIENT);
}

/* Write what is queued for the destination. */
static void
dir_flush(struct dir *d)
{
	struct session *s = d->session;
	int		n;

	if (s->state == SESSION_RESOLVING || s->state == SESSION_CONNECTING ||
	    s->state == SESSION_CLOSING)
		return;
	/* What is in the pipe came first. */
	if (d->piped > 0) {
		n = (int)splice(d->pipe[0], NULL, d->dst->fd, NULL, d->piped,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0)
			d->piped -= (size_t)n;
	} else if (d->out != NULL && evbuffer_get_length(d->out) > 0)
		n = evbuffer_write_atmost(d->out, d->dst->fd, DIR_HIGH_WATER);
	else
		n = 0;
	if (n == -1 && errno != EAGAIN && errno != EINTR) {
		session_error(s, d->dst, errno);
		return;
	}
	if (s->state == SESSION_DRAINING) {
		if (session_drained(s)) {
			session_reap_later(s);
			return;
		}
	} else {
		dir_try_shutdown(d);
		dir_update_read(d);
	}
	side_update(s, d->dst);
}

static void
dir_eof(struct dir *d)
{
	struct link *first;

	d->src_eof = 1;
	d->reading = 0;
	side_update(d->session, d->src);
	if ((first = TAILQ_FIRST(&d->links)) == NULL)
		dir_deliver_eof(d);
	else
		link_eof(first);
}

/*
 * Bulk transfers between TCP sockets skip user space: once a direction
 * without toxics reads a full buffer, it gets a pipe, and from then on
 * splice(2) moves the source's bytes into it and on to the destination
 * without copying them. The pipe holds DIR_HIGH_WATER and is only filled
 * while empty (a full pipe and an empty socket look alike to splice), so
 * what it holds counts as queued like the copying path's queue, bounded
 * the same. A toxic added later acts on the reads after what the pipe
 * holds, which is written first.
 */
static int
dir_splice_ok(const struct dir *d)
{
	return (TAILQ_EMPTY(&d->links) && !d->dgram &&
	    (d->out == NULL || evbuffer_get_length(d->out) == 0) &&
	    addr_family(&d->session->peer) != AF_UNIX &&
	    addr_family(&d->session->proxy->upstream) != AF_UNIX);
}

static void
dir_pipe_open(struct dir *d)
{
	/*
	 * The descriptors are the connections' before they are speed's, and
	 * a pipe smaller than the queue it stands for would be slower than
	 * copying: past the user's pipe-user-pages-soft, pipes stay small.
	 * One attempt per direction; copying works too.
	 */
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		d->pipe[0] = d->pipe[1] = -1;
		d->no_pipe = 1;
	} else if (proxy_fds_low(d->pipe[1], 1) ||
	    fcntl(d->pipe[1], F_SETPIPE_SZ, DIR_HIGH_WATER) < DIR_HIGH_WATER) {
		close(d->pipe[0]);
		close(d->pipe[1]);
		d->pipe[0] = d->pipe[1] = -1;
		d->no_pipe = 1;
	}
}

/*
 * What a read or splice from the source returned: 1 if it brought bytes,
 * 0 if none (EAGAIN, or EOF or an error, handled here).
 */
static int
dir_got(struct dir *d, ssize_t n)
{
	if (n > 0) {
		dir_received(d, (size_t)n);
		return (1);
	}
	if (n == 0) {
		/*
		 * The client's FIN is its close when it arrives, whatever
		 * the toxics do with it. The upstream's counts only once it
		 * leaves the toxics for the client (dir_deliver_eof()): one a
		 * toxic swallows or holds (blackhole, timeout, latency) is
		 * not what ended the connection for the client, whose own
		 * timeout then is.
		 */
		if (d->src == &d->session->client)
			session_verdict(d->session, SESSION_BY_CLIENT, 0,
			    "client closed");
		dir_eof(d);
		return (0);
	}
	if (errno == EAGAIN || errno == EINTR)
		return (0);
	session_error(d->session, d->src, errno);
	return (0);
}

static void
dir_splice(struct dir *d)
{
	ssize_t n;

	n = splice(d->src->fd, NULL, d->pipe[1], NULL, DIR_HIGH_WATER,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (dir_got(d, n) != 1)
		return;
	dir_count(d, (size_t)n);
	d->piped = (size_t)n;
	dir_flush(d);
}

/*
 * One read from the source. Without toxics, the bytes go straight to the
 * destination; only what it cannot take now is queued.
 */
static void
dir_read(struct dir *d)
{
	struct session	*s = d->session;
	struct link	*first;
	struct evbuffer *chunk;
	char		 buf[DIR_READ_MAX];
	ssize_t		 n, w = 0;

	if (d->pipe[0] != -1 && dir_splice_ok(d)) {
		dir_splice(d);
		return;
	}
	n = read(d->src->fd, buf, sizeof(buf));
	if (dir_got(d, n) != 1)
		return;
	if ((first = TAILQ_FIRST(&d->links)) != NULL) {
		if ((chunk = evbuffer_new()) == NULL ||
		    evbuffer_add(chunk, buf, (size_t)n) == -1) {
			if (chunk != NULL)
				evbuffer_free(chunk);
			session_close(s, "out of memory",
			    SESSION_RST_CLIENT | SESSION_RST_UPSTREAM);
			return;
		}
		link_data(first, chunk, util_now_ns());
		evbuffer_free(chunk);
		dir_update_read(d);
		return;
	}
	dir_count(d, (size_t)n);
	if (d->out == NULL || evbuffer_get_length(d->out) == 0) {
		w = send(d->dst->fd, buf, (size_t)n, MSG_NOSIGNAL);
		if (w == -1) {
			if (errno != EAGAIN && errno != EINTR) {
				session_error(s, d->dst, errno);
				return;
			}
			w = 0;
		}
	}
	/* The queue is only made for what the destination could not take. */
	if (w < n) {
		if (dir_out(d) == -1)
			return;
		evbuffer_add(d->out, buf + w, (size_t)(n - w));
		side_update(s, d->dst);
		dir_update_read(d);
	} else if (n == (ssize_t)sizeof(buf) && d->pipe[0] == -1 &&
	    !d->no_pipe && dir_splice_ok(d))
		dir_pipe_open(d);
}

/*
 * The upstream connect finished, one way or the other: SO_ERROR says
 * which, unless the caller knows it succeeded (ok: poll() saw the socket
 * writable without an error).
 */
static void
session_connected(struct session *s, int ok)
{
	char buf[ADDR_STRLEN];
	int  err = 0;

	if (s->state != SESSION_CONNECTING)
		return; /* a toxic closed it already */
	if (!ok &&
	    getsockopt(s->upstream.fd, SOL_SOCKET, SO_ERROR, &err,
		&(socklen_t){ sizeof(err) }) == -1)
		err = errno;
	if (err != 0) {
		char reason[128];

		snprintf(reason, sizeof(reason), "upstream connect failed: %s",
		    strerror(err));
		session_fail(s, reason);
		return;
	}
	s->state = SESSION_OPEN;
	log_debug("proxy %s: connection %llu from %s: upstream %s connected",
	    s->proxy->name, (unsigned long long)s->id,
	    addr_fmt(&s->peer, buf, sizeof(buf)), s->proxy->upstream_str);
	events_session(s, EVENT_CONNECTED, NULL);
	dir_update_read(&s->up);
	dir_update_read(&s->down);
	side_update(s, &s->client);
	side_update(s, &s->upstream);
	/* Clients often speak first: their request may be here already. */
	if (s->up.reading)
		dir_read(&s->up);
}

/*
 * Events on a side: it can take what is queued for it (as a
 * destination), and it has data or EOF (as a source).
 */
static void
session_side_cb(struct session *s, struct side *sd, short what)
{
	struct dir *as_src = sd == &s->client ? &s->up : &s->down;
	struct dir *as_dst = sd == &s->client ? &s->down : &s->up;

	if ((what & (EV_READ | EV_CLOSED)) && !as_src->reading)
		session_peer_closed(s, sd, what & EV_CLOSED);
	if ((what & EV_WRITE) && s->state != SESSION_CLOSING)
		dir_flush(as_dst);
	if ((what & EV_READ) && as_src->reading)
		dir_read(as_src);
}

static void
session_client_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	session_side_cb(s, &s->client, what);
}

static void
session_upstream_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (s->state == SESSION_CONNECTING) {
		if (what & EV_TIMEOUT)
			session_fail(s, "upstream connect timed out");
		else
			session_connected(s, 0);
		return;
	}
	session_side_cb(s, &s->upstream, what);
}
