/*
 * UDP proxies.
 *
 * The proxy's socket is a bound SOCK_DGRAM one, read by the proxy itself.
 * Each client source address gets a flow: a session (session.c) whose
 * client side is that address behind the proxy's socket and whose
 * upstream side is a UDP socket of its own connected to the upstream, so
 * the upstream's replies come back on it and tell the flows apart. Both
 * directions are in datagram mode: what the toxic chain hands on is sent
 * as one datagram each (udp_deliver), so boundaries are kept: nothing is
 * ever merged or split. Replies go back with sendto() from the proxy's
 * socket, so the client sees them from the address it sent to.
 *
 * Flows are found by client address in a hash table, end after
 * flow_timeout ms with no datagram either way, and are capped at
 * max_flows: past that, datagrams from new clients are dropped (logged
 * once until a flow ends). A disabled proxy keeps its port and drops
 * what arrives. UDP has no backpressure: a direction whose toxics hold
 * UDP_HELD_MAX bytes drops new datagrams, as a full router queue would.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "proxy.h"
#include "ptimer.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "udp.h"
#include "util.h"

#define UDP_READ_BATCH	64		/* datagrams per wakeup and socket */
#define UDP_MAX_DGRAM	65536		/* largest UDP payload, rounded up */

struct udp_flow {
	struct udp_flow *hnext; /* hash chain */
	struct session	*s;
	struct ptimer	 idle;
	uint64_t	 t_last; /* ns, last datagram either way */
};

struct udp {
	struct udp_flow **buckets;
	size_t		  nbuckets; /* a power of 2 */
	int		  full_logged;
	int		  fds_logged; /* out of descriptors, said once */
	unsigned char	  buf[UDP_MAX_DGRAM];
};

static void udp_read_cb(evutil_socket_t, short, void *);
static void udp_flow_read_cb(evutil_socket_t, short, void *);
static void udp_idle_cb(void *);

/* FNV-1a over the address and port: what addr_equal() compares. */
static size_t
udp_hash(const struct udp *u, const struct addr *a)
{
	const unsigned char *p;
	size_t		     len, i;
	uint32_t	     h = 2166136261u;
	uint16_t	     port = (uint16_t)addr_port(a);

	if (addr_family(a) == AF_INET6) {
		p = (const unsigned char *)&(
		    (const struct sockaddr_in6 *)&a->ss)
			->sin6_addr;
		len = 16;
	} else {
		p = (const unsigned char *)&((const struct sockaddr_in *)&a->ss)
			->sin_addr;
		len = 4;
	}
	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	h = (h ^ (port & 0xff)) * 16777619u;
	h = (h ^ (port >> 8)) * 16777619u;
	return (h & (u->nbuckets - 1));
}

void
udp_start(struct proxy *p)
{
	struct udp *u;
	int	    size = (int)p->rcvbuf;

	u = xcalloc(1, sizeof(*u));
	for (u->nbuckets = 64;
	    u->nbuckets < p->max_flows && u->nbuckets < 65536; u->nbuckets *= 2)
		;
	u->buckets = xcalloc(u->nbuckets, sizeof(*u->buckets));
	p->udp = u;
	if (size != 0 &&
	    setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) == -1)
		log_warn("proxy %s: SO_RCVBUF %d", p->name, size);
	/* The proxy's accept event is its read event: detaching frees it. */
	p->accept_ev = event_new(p->loop->base, p->fd, EV_READ | EV_PERSIST,
	    udp_read_cb, p);
	if (p->accept_ev == NULL)
		fatal("event_new");
	event_add(p->accept_ev, NULL);
}

/* After the proxy's sessions, its flows, were closed. */
void
udp_free(struct proxy *p)
{
	if (p->udp == NULL)
		return;
	free(p->udp->buckets);
	free(p->udp);
	p->udp = NULL;
}

static struct session *
udp_flow_find(struct proxy *p, const struct addr *peer)
{
	struct udp_flow *f;

	for (f = p->udp->buckets[udp_hash(p->udp, peer)]; f != NULL;
	    f = f->hnext) {
		if (addr_equal(&f->s->peer, peer))
			return (f->s);
	}
	return (NULL);
}

static struct session *
udp_flow_new(struct proxy *p, const struct addr *peer)
{
	struct udp	*u = p->udp;
	struct udp_flow *f;
	struct session	*s;
	char		 buf[ADDR_STRLEN];
	size_t		 h;
	int		 fd;

	if (p->nsessions >= p->max_flows) {
		if (!u->full_logged)
			log_warnx(
			    "proxy %s: %u flows, the most allowed "
			    "(max_flows): dropping datagrams from new clients",
			    p->name, p->max_flows);
		u->full_logged = 1;
		return (NULL);
	}
	/*
	 * A flow's socket is a descriptor like an accepted connection's: the
	 * same reserve is kept for the API and the rest (proxy.c), and
	 * running out is said once, not once a datagram.
	 */
	fd = socket(addr_family(&p->upstream),
	    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || proxy_fds_low(fd, 1)) {
		if (!u->fds_logged)
			log_warnx("proxy %s: flow from %s: %s: dropping "
				  "datagrams from new clients",
			    p->name, addr_fmt(peer, buf, sizeof(buf)),
			    fd == -1 ? strerror(errno) :
				       "descriptors running out");
		u->fds_logged = 1;
		if (fd != -1)
			close(fd);
		COUNT_ADD(p->stats->failed, 1);
		return (NULL);
	}
	if (u->fds_logged) {
		log_info("proxy %s: making flows again", p->name);
		u->fds_logged = 0;
	}
	if (connect(fd, addr_sa(&p->upstream), p->upstream.len) == -1) {
		log_warn("proxy %s: flow from %s: connect %s", p->name,
		    addr_fmt(peer, buf, sizeof(buf)), p->upstream_str);
		close(fd);
		COUNT_ADD(p->stats->failed, 1);
		return (NULL);
	}
	f = xcalloc(1, sizeof(*f));
	s = session_new_dgram(p, fd, peer);
	f->s = s;
	s->flow = f;
	f->t_last = s->t_accept;
	if ((s->upstream.ev = event_new(p->loop->base, fd, EV_READ | EV_PERSIST,
		 udp_flow_read_cb, s)) == NULL)
		fatal("event_new");
	ptimer_set(&f->idle, udp_idle_cb, s);
	h = udp_hash(u, peer);
	f->hnext = u->buckets[h];
	u->buckets[h] = f;
	event_add(s->upstream.ev, NULL);
	ptimer_in_ms(p->loop->timers, &f->idle, p->flow_timeout);
	log_debug("proxy %s: flow %llu from %s", p->name,
	    (unsigned long long)s->id, addr_fmt(peer, buf, sizeof(buf)));
	return (s);
}

/* From session_close(): unhook the flow from its proxy. */
void
udp_flow_free(struct session *s)
{
	struct udp_flow *f = s->flow, **fp;
	struct udp	*u = s->proxy->udp;

	if (u != NULL) {
		for (fp = &u->buckets[udp_hash(u, &s->peer)]; *fp != NULL;
		    fp = &(*fp)->hnext) {
			if (*fp == f) {
				*fp = f->hnext;
				break;
			}
		}
		u->full_logged = 0;
	}
	ptimer_cancel(s->proxy->loop->timers, &f->idle);
	free(f);
	s->flow = NULL;
}

static void
udp_idle_cb(void *arg)
{
	struct session *s = arg;
	uint64_t	timeout = (uint64_t)s->proxy->flow_timeout * 1000000;
	uint64_t	idle = util_now_ns() - s->flow->t_last;

	if (idle >= timeout) {
		session_expire(s);
		return;
	}
	ptimer_at(s->proxy->loop->timers, &s->flow->idle,
	    s->flow->t_last + timeout);
}

/* Send one datagram to a direction's destination. */
static void
udp_send(struct dir *d, const void *data, size_t n)
{
	struct session *s = d->session;
	struct proxy   *p = s->proxy;
	ssize_t		w;

	if (s->state == SESSION_CLOSING)
		return;
	if (d->stream == TOXIC_UPSTREAM)
		w = send(s->upstream.fd, data, n, MSG_NOSIGNAL);
	else
		w = sendto(p->fd, data, n, MSG_NOSIGNAL, addr_sa(&s->peer),
		    s->peer.len);
	if (w == -1) {
		/* Lost, as UDP may lose it: a full buffer, ICMP, no route. */
		log_debug("proxy %s: flow %llu: %s datagram of %zu bytes "
			  "dropped: %s",
		    p->name, (unsigned long long)s->id,
		    toxic_stream_name(d->stream), n, strerror(errno));
		return;
	}
	dir_count(d, n);
	d->dgrams++;
}

/* The end of a datagram direction's chain: each buffer is one datagram. */
void
udp_deliver(struct dir *d, struct evbuffer *buf)
{
	size_t	       n = evbuffer_get_length(buf);
	unsigned char *data;

	if (n > UDP_MAX_DGRAM) {
		/* Cannot happen: no type merges datagrams in datagram mode. */
		log_warnx("proxy %s: flow %llu: %zu bytes is no datagram, "
			  "dropped",
		    d->session->proxy->name, (unsigned long long)d->session->id,
		    n);
		evbuffer_drain(buf, n);
		return;
	}
	if ((data = evbuffer_pullup(buf, -1)) != NULL || n == 0)
		udp_send(d, data, n);
	evbuffer_drain(buf, n);
}

/* A datagram read from a direction's source: through its toxics. */
static void
udp_input(struct dir *d, const unsigned char *data, size_t n)
{
	struct link	*first;
	struct evbuffer *chunk;

	d->session->flow->t_last = util_now_ns();
	dir_received(d, n);
	if ((first = TAILQ_FIRST(&d->links)) == NULL) {
		udp_send(d, data, n);
		return;
	}
	/* The chain carries bytes: an empty datagram cannot pass it. */
	if (n == 0 || d->held >= UDP_HELD_MAX)
		return;
	if ((chunk = evbuffer_new()) == NULL ||
	    evbuffer_add(chunk, data, n) == -1) {
		if (chunk != NULL)
			evbuffer_free(chunk);
		log_warnx("proxy %s: flow %llu: out of memory, datagram "
			  "dropped",
		    d->session->proxy->name,
		    (unsigned long long)d->session->id);
		return;
	}
	link_data(first, chunk, util_now_ns());
	evbuffer_free(chunk);
}

static void
udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy   *p = arg;
	struct udp     *u = p->udp;
	struct session *s;
	struct addr	peer;
	socklen_t	len;
	ssize_t		n;
	int		i;

	for (i = 0; i < UDP_READ_BATCH; i++) {
		len = sizeof(peer.ss);
		n = recvfrom(fd, u->buf, sizeof(u->buf), 0, addr_sa(&peer),
		    &len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != ECONNREFUSED)
				log_warn("proxy %s: recvfrom", p->name);
			return;
		}
		peer.len = len;
		if (!p->enabled)
			continue; /* disabled: the port stays, data goes */
		if ((s = udp_flow_find(p, &peer)) == NULL &&
		    (s = udp_flow_new(p, &peer)) == NULL)
			continue;
		if (s->state == SESSION_CLOSING)
			continue;
		udp_input(&s->up, u->buf, (size_t)n);
	}
}

static void
udp_flow_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct udp     *u = s->proxy->udp;
	ssize_t		n;
	int		i;

	for (i = 0; i < UDP_READ_BATCH && s->state != SESSION_CLOSING; i++) {
		n = recv(fd, u->buf, sizeof(u->buf), 0);
		if (n == -1) {
			/* ECONNREFUSED: an ICMP error for an earlier send. */
			if (errno == EINTR || errno == ECONNREFUSED)
				continue;
			if (errno != EAGAIN)
				log_warn("proxy %s: flow %llu: recv",
				    s->proxy->name, (unsigned long long)s->id);
			return;
		}
		udp_input(&s->down, u->buf, (size_t)n);
	}
}
