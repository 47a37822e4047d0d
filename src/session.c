/*
 * The session engine: one proxied connection, both directions.
 *
 * Data read from a direction's source goes through the direction's chain
 * of toxic links (toxic.c) and ends in dir_deliver(), which queues it on
 * the destination. With no link in the chain, bytes move straight from
 * one bufferevent to the other without a copy. Reading a source stops
 * while its destination holds DIR_HIGH_WATER bytes or a toxic stalls it,
 * and resumes when the destination's write callback reports it drained
 * to DIR_LOW_WATER: that bounds memory per connection.
 *
 * A source's EOF travels the same chain and becomes shutdown(SHUT_WR) on
 * the destination once everything before it was written, so half-closed
 * connections keep flowing the other way. When both directions are shut,
 * the session ends. Every ending goes through session_close(); toxics ask
 * for it through session_close_later(), which runs it from the event loop
 * so no object is freed under a callback still on the stack.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "events.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"

static void	session_client_read_cb(struct bufferevent *, void *);
static void	session_upstream_read_cb(struct bufferevent *, void *);
static void	session_client_write_cb(struct bufferevent *, void *);
static void	session_upstream_write_cb(struct bufferevent *, void *);
static void	session_client_event_cb(struct bufferevent *, short, void *);
static void	session_upstream_event_cb(struct bufferevent *, short, void *);
static void	session_timer_cb(evutil_socket_t, short, void *);

const char *
session_state_name(enum session_state state)
{
	switch (state) {
	case SESSION_CONNECTING:
		return ("connecting");
	case SESSION_OPEN:
		return ("open");
	case SESSION_CLOSING:
		return ("closing");
	}
	return ("unknown");
}

struct event_base *
session_base(struct session *s)
{
	return (s->proxy->tardy->base);
}

struct dir *
session_dir(struct session *s, enum toxic_stream stream)
{
	return (stream == TOXIC_UPSTREAM ? &s->up : &s->down);
}

static void
dir_init(struct session *s, struct dir *d, enum toxic_stream stream,
    struct bufferevent *src, struct bufferevent *dst)
{
	d->session = s;
	d->stream = stream;
	d->src = src;
	d->dst = dst;
	TAILQ_INIT(&d->links);
}

static int
session_upstream_socket(struct proxy *p)
{
	int	fd, one = 1;

	fd = socket(addr_family(&p->upstream),
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (-1);
	if (addr_family(&p->upstream) != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	return (fd);
}

/*
 * Take over an accepted client socket and start connecting upstream.
 * Returns NULL (and closes fd with a reset) if resources run out.
 */
struct session *
session_new(struct proxy *p, int fd, const struct addr *peer)
{
	struct event_base	*base = p->tardy->base;
	struct session		*s;
	struct timeval		 tv;
	int			 ufd = -1, one = 1;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto fail;
	s->proxy = p;
	s->peer = *peer;
	s->t_accept = util_now_ns();
	s->state = SESSION_CONNECTING;

	if (addr_family(peer) != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	if ((ufd = session_upstream_socket(p)) == -1)
		goto fail;
	s->client = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->client == NULL)
		goto fail;
	fd = -1;
	s->upstream = bufferevent_socket_new(base, ufd, BEV_OPT_CLOSE_ON_FREE);
	if (s->upstream == NULL)
		goto fail;
	ufd = -1;
	if ((s->ev = evtimer_new(base, session_timer_cb, s)) == NULL)
		goto fail;

	dir_init(s, &s->up, TOXIC_UPSTREAM, s->client, s->upstream);
	dir_init(s, &s->down, TOXIC_DOWNSTREAM, s->upstream, s->client);
	bufferevent_setcb(s->client, session_client_read_cb,
	    session_client_write_cb, session_client_event_cb, s);
	bufferevent_setcb(s->upstream, session_upstream_read_cb,
	    session_upstream_write_cb, session_upstream_event_cb, s);
	bufferevent_setwatermark(s->client, EV_WRITE, DIR_LOW_WATER, 0);
	bufferevent_setwatermark(s->upstream, EV_WRITE, DIR_LOW_WATER, 0);
	bufferevent_setwatermark(s->client, EV_READ, 0, DIR_READ_MAX);
	bufferevent_setwatermark(s->upstream, EV_READ, 0, DIR_READ_MAX);
	/* libevent's 16 KiB per call costs a syscall every 16 KiB. */
	bufferevent_set_max_single_read(s->client, DIR_READ_MAX);
	bufferevent_set_max_single_read(s->upstream, DIR_READ_MAX);
	bufferevent_set_max_single_write(s->client, DIR_HIGH_WATER);
	bufferevent_set_max_single_write(s->upstream, DIR_HIGH_WATER);

	s->id = ++p->next_id;
	TAILQ_INSERT_TAIL(&p->sessions, s, entry);
	p->nsessions++;
	p->stats.accepted++;
	events_session(s, EVENT_ACCEPT, NULL);

	tv.tv_sec = p->connect_timeout / 1000;
	tv.tv_usec = (p->connect_timeout % 1000) * 1000;
	evtimer_add(s->ev, &tv);
	/* Reading waits for the upstream: both directions start together. */
	bufferevent_disable(s->client, EV_READ);
	if (bufferevent_socket_connect(s->upstream, addr_sa(&p->upstream),
	    (int)p->upstream.len) == -1) {
		/* Immediate failures, e.g. a unix path that does not exist. */
		char	reason[128];

		snprintf(reason, sizeof(reason), "upstream connect failed: %s",
		    strerror(errno));
		session_close(s, reason, SESSION_RST_CLIENT | SESSION_FAILED);
		return (NULL);
	}
	toxic_attach_all(s);
	return (s);

fail:
	log_warn("proxy %s: cannot set up a connection", p->name);
	if (s != NULL) {
		if (s->client != NULL)
			bufferevent_free(s->client);
		if (s->upstream != NULL)
			bufferevent_free(s->upstream);
		free(s);
	}
	if (ufd != -1)
		close(ufd);
	if (fd != -1) {
		(void)util_set_linger0(fd);
		close(fd);
	}
	p->stats.failed++;
	return (NULL);
}

/*
 * The one teardown path. Resets the sides named in flags (SO_LINGER 0,
 * so the peer's next call fails with ECONNRESET), frees everything.
 */
void
session_close(struct session *s, const char *reason, int flags)
{
	struct proxy	*p = s->proxy;
	struct link	*l;
	char		 buf[ADDR_STRLEN];
	int		 level_info = (flags & (SESSION_FAILED)) != 0;

	if (level_info)
		log_info("proxy %s: connection %llu from %s: %s",
		    p->name, (unsigned long long)s->id,
		    addr_fmt(&s->peer, buf, sizeof(buf)), reason);
	else
		log_debug("proxy %s: connection %llu from %s closed: %s "
		    "(%llu bytes up, %llu down)", p->name,
		    (unsigned long long)s->id,
		    addr_fmt(&s->peer, buf, sizeof(buf)), reason,
		    (unsigned long long)s->up.bytes,
		    (unsigned long long)s->down.bytes);
	if (flags & SESSION_FAILED)
		p->stats.failed++;
	events_session(s, EVENT_CLOSE, reason);

	while ((l = TAILQ_FIRST(&s->up.links)) != NULL)
		link_free(l);
	while ((l = TAILQ_FIRST(&s->down.links)) != NULL)
		link_free(l);
	if (flags & SESSION_RST_CLIENT)
		(void)util_set_linger0(bufferevent_getfd(s->client));
	if (flags & SESSION_RST_UPSTREAM)
		(void)util_set_linger0(bufferevent_getfd(s->upstream));
	bufferevent_free(s->client);
	bufferevent_free(s->upstream);
	event_free(s->ev);
	TAILQ_REMOVE(&p->sessions, s, entry);
	p->nsessions--;
	free(s);
}

static int
session_flushed(struct session *s)
{
	return (evbuffer_get_length(bufferevent_get_output(s->client)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->upstream)) == 0);
}

/*
 * Ask for session_close() from the event loop. Both sides stop reading at
 * once; the first reason given wins. A graceful close first writes what
 * is queued for either side (bufferevent_free would drop it: limit_data's
 * last bytes, say), for at most SESSION_DRAIN_MS; a reset does not wait.
 */
void
session_close_later(struct session *s, const char *reason, int flags)
{
	struct timeval	tv = { SESSION_DRAIN_MS / 1000,
			    (SESSION_DRAIN_MS % 1000) * 1000 };

	if (s->state == SESSION_CLOSING)
		return;
	s->state = SESSION_CLOSING;
	s->close_reason = reason;
	s->close_flags = flags;
	bufferevent_disable(s->client, EV_READ);
	bufferevent_disable(s->upstream, EV_READ);
	evtimer_del(s->ev);
	if ((flags & (SESSION_RST_CLIENT | SESSION_RST_UPSTREAM)) ||
	    session_flushed(s))
		event_active(s->ev, EV_TIMEOUT, 0);
	else
		evtimer_add(s->ev, &tv);	/* the write callbacks end it */
}

static void
session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session	*s = arg;

	switch (s->state) {
	case SESSION_CONNECTING:
		session_close(s, "upstream connect timed out",
		    SESSION_RST_CLIENT | SESSION_FAILED);
		break;
	case SESSION_CLOSING:
		session_close(s, s->close_reason, s->close_flags);
		break;
	case SESSION_OPEN:
		break;
	}
}

/* Read from the source while nothing holds it back. */
void
dir_update_read(struct dir *d)
{
	size_t	queued;

	if (d->session->state != SESSION_OPEN)
		return;
	queued = evbuffer_get_length(bufferevent_get_output(d->dst)) + d->held;
	if (d->src_eof || d->stalls > 0 || queued >= DIR_HIGH_WATER)
		bufferevent_disable(d->src, EV_READ);
	else
		bufferevent_enable(d->src, EV_READ);
}

/* The end of the chain: queue bytes for the destination. */
void
dir_deliver(struct dir *d, struct evbuffer *buf)
{
	struct proxy	*p = d->session->proxy;
	size_t		 n = evbuffer_get_length(buf);

	if (n == 0)
		return;
	if (d->eof_out) {
		/* A toxic passed data after EOF: nowhere to go. */
		evbuffer_drain(buf, n);
		return;
	}
	evbuffer_add_buffer(bufferevent_get_output(d->dst), buf);
	d->bytes += n;
	if (d->stream == TOXIC_UPSTREAM)
		p->stats.bytes_up += n;
	else
		p->stats.bytes_down += n;
}

static void
dir_try_shutdown(struct dir *d)
{
	struct session	*s = d->session;

	if (!d->eof_out || d->shut ||
	    evbuffer_get_length(bufferevent_get_output(d->dst)) != 0)
		return;
	d->shut = 1;
	/* The peer may be gone already; the read side reports that. */
	(void)shutdown(bufferevent_getfd(d->dst), SHUT_WR);
	if (s->up.shut && s->down.shut)
		session_close_later(s, "closed", 0);
}

void
dir_deliver_eof(struct dir *d)
{
	if (d->eof_out)
		return;
	d->eof_out = 1;
	dir_try_shutdown(d);
}

static void
dir_read(struct dir *d)
{
	struct evbuffer	*in = bufferevent_get_input(d->src);
	struct link	*first;

	if (d->session->state != SESSION_OPEN) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if ((first = TAILQ_FIRST(&d->links)) == NULL)
		dir_deliver(d, in);
	else
		link_data(first, in, util_now_ns());
	dir_update_read(d);
}

static void
dir_eof(struct dir *d)
{
	struct link	*first;

	d->src_eof = 1;
	if ((first = TAILQ_FIRST(&d->links)) == NULL)
		dir_deliver_eof(d);
	else
		link_eof(first);
}

static void
dir_drained(struct dir *d)
{
	struct session	*s = d->session;

	if (s->state == SESSION_CLOSING) {
		/* Closing gracefully: end once both sides are written. */
		if (session_flushed(s) && !(s->close_flags &
		    (SESSION_RST_CLIENT | SESSION_RST_UPSTREAM))) {
			evtimer_del(s->ev);
			event_active(s->ev, EV_TIMEOUT, 0);
		}
		return;
	}
	dir_try_shutdown(d);
	dir_update_read(d);
}

static void
session_client_read_cb(struct bufferevent *bev, void *arg)
{
	dir_read(&((struct session *)arg)->up);
}

static void
session_upstream_read_cb(struct bufferevent *bev, void *arg)
{
	dir_read(&((struct session *)arg)->down);
}

static void
session_client_write_cb(struct bufferevent *bev, void *arg)
{
	dir_drained(&((struct session *)arg)->down);
}

static void
session_upstream_write_cb(struct bufferevent *bev, void *arg)
{
	dir_drained(&((struct session *)arg)->up);
}

static void
session_connected(struct session *s)
{
	char	buf[ADDR_STRLEN];

	evtimer_del(s->ev);
	s->state = SESSION_OPEN;
	log_debug("proxy %s: connection %llu from %s: upstream %s connected",
	    s->proxy->name, (unsigned long long)s->id,
	    addr_fmt(&s->peer, buf, sizeof(buf)), s->proxy->upstream_str);
	events_session(s, EVENT_CONNECTED, NULL);
	dir_update_read(&s->up);
	dir_update_read(&s->down);
}

/*
 * A reset or error on one side ends the session and resets the other
 * side, so each peer sees what it would have seen without the proxy.
 */
static void
session_error(struct session *s, const char *who, int rst_flag)
{
	char	reason[128];
	int	err = EVUTIL_SOCKET_ERROR();

	if (err == 0 || err == EAGAIN)
		err = ECONNRESET;
	snprintf(reason, sizeof(reason), "%s: %s", who, strerror(err));
	session_close(s, reason, rst_flag);
}

static void
session_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session	*s = arg;

	if (what & BEV_EVENT_ERROR) {
		session_error(s, "client", SESSION_RST_UPSTREAM);
		return;
	}
	if (what & BEV_EVENT_EOF)
		dir_eof(&s->up);
}

static void
session_upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session	*s = arg;
	char		 reason[128];

	if (what & BEV_EVENT_CONNECTED) {
		session_connected(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		if (s->state == SESSION_CONNECTING) {
			snprintf(reason, sizeof(reason),
			    "upstream connect failed: %s",
			    strerror(EVUTIL_SOCKET_ERROR()));
			session_close(s, reason,
			    SESSION_RST_CLIENT | SESSION_FAILED);
			return;
		}
		session_error(s, "upstream", SESSION_RST_CLIENT);
		return;
	}
	if (what & BEV_EVENT_EOF)
		dir_eof(&s->down);
}
