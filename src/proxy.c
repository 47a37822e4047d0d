/*
 * Proxies: a listener, its accept loop and the sessions it spawned.
 *
 * The listening socket is bound once and kept for the proxy's life, so
 * tardyd never gives up its port: "refusing" (enabled=false, the refuse
 * toxic) stops listening without closing the socket, and drop_syn shrinks
 * the backlog and fills the queue with connections of our own so the
 * kernel drops further SYNs. Listeners are bound without SO_REUSEADDR
 * left set, so no other socket can take the port while we refuse.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "api.h"
#include "config.h"
#include "events.h"
#include "history.h"
#include "log.h"
#include "loop.h"
#include "proxy.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "udp.h"
#include "util.h"
#include "worker.h"

#define PROXY_BACKLOG		1024
#define PROXY_ACCEPT_BATCH	64
#define PROXY_BACKOFF_MS	100
/*
 * Descriptors kept for everything but new proxied connections: the
 * upstream socket of the connection just accepted, the API's clients, a
 * reload's files and listeners. Proxies stop accepting when fewer remain
 * (relayd's accept_reserve), so running out never locks out the API; they
 * resume once twice as many are free, so they do not flap on each close.
 */
#define PROXY_FD_RESERVE	16

static void proxy_shards_close(struct proxy *, const char *);
static void proxy_shards_free(struct proxy *);
static void proxy_free_own(struct proxy *);

static void proxy_accept_cb(evutil_socket_t, short, void *);
static void proxy_backoff_cb(evutil_socket_t, short, void *);
static void proxy_listener_apply(struct proxy *);
static int  proxy_drop_syn_fill(struct proxy *);

/*
 * Whether one of this daemon's own sockets (a proxy's, even disabled or
 * refusing, or the API's) is bound to the unix path of a. Such a path is
 * never probed (the probe would be a connection of its own) and never
 * taken over.
 */
static int
proxy_unix_ours(struct tardy *t, const struct addr *a, char *err, size_t errlen)
{
	struct proxy *p;
	char	      buf[ADDR_STRLEN], want[ADDR_STRLEN];

	if (t == NULL)
		return (0);
	TAILQ_FOREACH(p, &t->proxies, entry) {
		if (p->fd != -1 && addr_equal(&p->bound, a)) {
			snprintf(err, errlen,
			    "listen unix %s: bind: address "
			    "already in use (by proxy %s)",
			    addr_unix_path(a), p->name);
			return (1);
		}
	}
	if (t->api != NULL &&
	    strcmp(api_address(t->api, buf, sizeof(buf)),
		addr_fmt(a, want, sizeof(want))) == 0) {
		snprintf(err, errlen,
		    "listen unix %s: bind: address already "
		    "in use (by the API)",
		    addr_unix_path(a));
		return (1);
	}
	return (0);
}

/*
 * A unix path can be bound if nothing is there, or if what is there is a
 * stale socket: nobody accepts on it. The probe never blocks: a listener
 * with a full backlog answers a non-blocking connect with EAGAIN, and is
 * as much in use as one that accepts.
 */
static int
proxy_unix_prepare(struct tardy *t, const struct addr *a, char *err,
    size_t errlen)
{
	const char *path = addr_unix_path(a);
	struct stat st;
	int	    fd, rc, e;

	if (proxy_unix_ours(t, a, err, errlen))
		return (-1);
	if (lstat(path, &st) == -1)
		return (errno == ENOENT ? 0 : -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return (-1);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (-1);
	rc = connect(fd, addr_sa(a), a->len);
	e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
		snprintf(err, errlen,
		    "listen unix %s: bind: address already "
		    "in use",
		    path);
		return (-1);
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		errno = e;
		return (-1);
	}
	/* A socket nobody listens on is stale: take it over. */
	if (unlink(path) == -1 && errno != ENOENT)
		return (-1);
	return (0);
}

/* Sets *op to the call that failed, for the error message. */
static int
proxy_socket(const struct addr *a, int type, const char **op)
{
	int fd, one = 1;

	*op = "socket";
	fd = socket(addr_family(a), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (-1);
	*op = "setsockopt";
	if (addr_family(a) != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	if (addr_family(a) == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	/* Accepted sockets inherit it: one call per listener, not each. */
	if (addr_family(a) != AF_UNIX && type == SOCK_STREAM &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		goto fail;
	*op = "bind";
	if (bind(fd, addr_sa(a), a->len) == -1)
		goto fail;
	return (fd);
fail:
	close(fd);
	return (-1);
}

/*
 * A failure to listen, in the words of Go's net.Listen, as Toxiproxy
 * reports it and its clients expect: "listen tcp 127.0.0.1:3310: bind:
 * address already in use".
 */
static void
proxy_bind_error(const struct addr *a, int type, const char *op, int err,
    char *buf, size_t len)
{
	char where[ADDR_STRLEN], msg[128];

	snprintf(msg, sizeof(msg), "%s", strerror(err));
	msg[0] = (char)tolower((unsigned char)msg[0]);
	snprintf(buf, len, "listen %s %s: %s: %s",
	    addr_family(a) == AF_UNIX ? "unix" :
		type == SOCK_DGRAM    ? "udp" :
					"tcp",
	    addr_family(a) == AF_UNIX ? addr_unix_path(a) :
					addr_fmt(a, where, sizeof(where)),
	    op, msg);
}

/*
 * Bind a listening socket (without listening yet) and return it, with the
 * address it got in bound. Port 0 is resolved and bound again explicitly:
 * the kernel releases an automatic port when a socket stops listening,
 * an explicit one it keeps.
 */
int
proxy_bind(struct tardy *t, const struct addr *listen, struct addr *bound,
    char *err, size_t errlen)
{
	return (proxy_bind_type(t, listen, SOCK_STREAM, bound, err, errlen));
}

/* The same for a socket of a given type: SOCK_STREAM or SOCK_DGRAM. */
int
proxy_bind_type(struct tardy *t, const struct addr *listen, int type,
    struct addr *bound, char *err, size_t errlen)
{
	struct addr explicit;
	socklen_t   len;
	const char *op = "listen";
	int	    fd, fd2, zero = 0;

	*err = '\0';
	if (addr_family(listen) == AF_UNIX &&
	    proxy_unix_prepare(t, listen, err, errlen) == -1)
		goto fail;
	if ((fd = proxy_socket(listen, type, &op)) == -1)
		goto fail;
	len = sizeof(bound->ss);
	if (getsockname(fd, addr_sa(bound), &len) == -1) {
		op = "getsockname";
		close(fd);
		goto fail;
	}
	bound->len = len;
	if (addr_family(listen) == AF_UNIX) {
		*bound = *listen;
		return (fd);
	}
	if (addr_port(listen) == 0) {
		explicit = *listen;
		addr_set_port(&explicit, addr_port(bound));
		if ((fd2 = proxy_socket(&explicit, type, &op)) != -1) {
			close(fd);
			fd = fd2;
		} else
			log_debug("cannot rebind port %d explicitly",
			    addr_port(bound));
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &zero, sizeof(zero));
	return (fd);
fail:
	if (*err == '\0')
		proxy_bind_error(listen, type, op, errno, err, errlen);
	return (-1);
}

/* Close a socket from proxy_bind() and remove its unix path. */
void
proxy_unbind(int fd, const struct addr *bound)
{
	if (fd == -1)
		return;
	close(fd);
	if (addr_family(bound) == AF_UNIX)
		(void)unlink(addr_unix_path(bound));
}

/*
 * A small receive buffer on the listener, set before listen(), is
 * inherited by every accepted socket: it bounds how much a client can
 * send before its send() blocks while a stall toxic holds the stream
 * (the kernel doubles the value). 0 leaves the kernel's autotuning.
 */
static void
proxy_set_rcvbuf(struct proxy *p)
{
	int size = (int)p->rcvbuf;

	if (size == 0)
		return;
	if (setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) == -1)
		log_warn("proxy %s: SO_RCVBUF %d", p->name, size);
}

/*
 * One libevent common timeout per duration: every connect timer of the
 * proxy shares a queue instead of churning the timer heap (and the
 * timerfd) once per connection. Connections already connecting keep the
 * timeout they started with.
 */
void
proxy_set_connect_timeout(struct proxy *p, unsigned int ms)
{
	p->connect_timeout = ms;
	p->connect_tv = event_base_init_common_timeout(p->loop->base,
	    &(const struct timeval){ ms / 1000, (ms % 1000) * 1000 });
}

struct proxy *
proxy_new(struct tardy *t, const struct proxy_conf *pc, int fd,
    const struct addr *bound)
{
	struct proxy *p;
	char	      buf[ADDR_STRLEN];

	p = xcalloc(1, sizeof(*p));
	p->tardy = t;
	p->loop = &t->loop;
	p->stats = &p->own_stats;
	p->name = xstrdup(pc->name);
	p->listen_str = xstrdup(pc->listen_str);
	p->upstream_str = xstrdup(pc->upstream_str);
	p->listen = pc->listen;
	p->bound = *bound;
	p->upstream = pc->upstream;
	if (addr_family(&pc->upstream) == AF_UNSPEC) {
		char host[256]; /* a DNS name is at most 253 bytes */

		if (!addr_name(pc->upstream_str, host, sizeof(host),
			&p->upstream_port))
			fatalx("proxy %s: upstream %s is not a name", pc->name,
			    pc->upstream_str);
		p->upstream_host = xstrdup(host);
	}
	p->upstream_reset = pc->upstream_reset;
	proxy_set_connect_timeout(p, pc->connect_timeout);
	p->rcvbuf = pc->rcvbuf;
	p->enabled = p->started = pc->enabled;
	p->from_config = pc->line >= 0;
	p->protocol = pc->protocol;
	p->flow_timeout = pc->flow_timeout != 0 ? pc->flow_timeout :
						  CONFIG_DEFAULT_FLOW_TIMEOUT;
	p->max_flows = pc->max_flows != 0 ? pc->max_flows :
					    CONFIG_DEFAULT_MAX_FLOWS;
	p->fd = fd;
	TAILQ_INIT(&p->sessions);
	p->history = history_new();
	TAILQ_INIT(&p->toxics);
	if ((p->backoff_ev = evtimer_new(t->loop.base, proxy_backoff_cb, p)) ==
	    NULL)
		fatal("evtimer_new");
	if (p->protocol == PROTO_UDP)
		udp_start(p);
	else {
		proxy_shards_new(p);
		proxy_listener_apply(p);
	}
	log_info("proxy %s: listening on %s%s, upstream %s%s", p->name,
	    p->protocol == PROTO_UDP ? "udp " : "",
	    addr_fmt(&p->bound, buf, sizeof(buf)), p->upstream_str,
	    p->enabled ? "" : " (disabled)");
	return (p);
}

/* Close p's connections now; never from under a session's callback. */
void
proxy_close_sessions(struct proxy *p, const char *reason)
{
	struct session *s;

	TAILQ_FOREACH(s, &p->sessions, entry)
		session_close(s, reason, SESSION_NOW);
	session_reap(p->loop);
	if (p->shards != NULL)
		proxy_shards_close(p, reason);
}

static void
proxy_fillers_close(struct proxy *p)
{
	size_t i;

	for (i = 0; i < p->nfillers; i++)
		close(p->fillers[i]);
	free(p->fillers);
	p->fillers = NULL;
	p->nfillers = 0;
}

static void
proxy_listener_detach(struct proxy *p)
{
	if (p->accept_ev != NULL) {
		event_free(p->accept_ev);
		p->accept_ev = NULL;
	}
	evtimer_del(p->backoff_ev);
}

/* Hand the listening socket over (to a proxy that replaces this one). */
int
proxy_take_listener(struct proxy *p, struct addr *bound)
{
	int fd = p->fd;

	proxy_listener_detach(p);
	proxy_fillers_close(p);
	*bound = p->bound;
	p->fd = -1;
	return (fd);
}

void
proxy_free(struct proxy *p)
{
	proxy_close_sessions(p, "proxy stopped");
	proxy_shards_free(p);
	udp_free(p);
	history_free(p->history);
	proxy_listener_detach(p);
	proxy_fillers_close(p);
	proxy_unbind(p->fd, &p->bound);
	event_free(p->backoff_ev);
	proxy_free_own(p);
}

/* What a proxy and a shard alike own: their toxics and names. */
static void
proxy_free_own(struct proxy *p)
{
	struct toxic *t;

	while ((t = TAILQ_FIRST(&p->toxics)) != NULL) {
		TAILQ_REMOVE(&p->toxics, t, entry);
		toxic_free(t);
	}
	free(p->name);
	free(p->listen_str);
	free(p->upstream_str);
	free(p->upstream_host);
	free(p);
}

/*
 * Stop listening but keep the port. A TCP listener is disconnected
 * (connect with AF_UNSPEC), which leaves it bound; queued connections
 * are reset. A unix listener cannot be, so it is replaced by a socket
 * bound to the same path that does not listen: connects are refused.
 */
static int
proxy_listener_suspend(struct proxy *p)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };
	int		fd;

	if (addr_family(&p->bound) != AF_UNIX)
		return (connect(p->fd, &sa, sizeof(sa)));
	(void)unlink(addr_unix_path(&p->bound));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (-1);
	if (bind(fd, addr_sa(&p->bound), p->bound.len) == -1) {
		close(fd);
		return (-1);
	}
	close(p->fd);
	p->fd = fd;
	return (0);
}

/*
 * Put the listener in the state the proxy asks for: refusing while
 * disabled or a refuse toxic is on, dropping SYNs while a drop_syn toxic
 * is on, otherwise accepting.
 */
static void
proxy_listener_apply(struct proxy *p)
{
	struct event_base *base = p->tardy->loop.base;
	int		   refuse, backlog, one = 1, zero = 0;
	int		   tcp = addr_family(&p->bound) != AF_UNIX;

	refuse = !p->enabled || p->refusing > 0;
	proxy_listener_detach(p);
	if (refuse) {
		proxy_fillers_close(p);
		if (tcp)
			(void)setsockopt(p->fd, SOL_SOCKET, SO_REUSEADDR, &zero,
			    sizeof(zero));
		if (proxy_listener_suspend(p) == -1 && errno != EINVAL)
			log_warn("proxy %s: cannot stop listening", p->name);
		return;
	}
	backlog = p->dropping > 0 ? 0 : PROXY_BACKLOG;
	proxy_set_rcvbuf(p); /* a unix listener may be a new socket */
	/*
	 * Listening again after refusing checks the port against every
	 * socket on it: connections still open and their TIME_WAITs would
	 * make it fail (EADDRINUSE) unless both sides have SO_REUSEADDR. So
	 * the listener has it while listening, and the sockets it accepts
	 * inherit it; nobody can bind a listening port either way. While
	 * refusing it has not, so that nobody can bind the port then.
	 */
	if (tcp)
		(void)setsockopt(p->fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
	if (listen(p->fd, backlog) == -1) {
		log_warn("proxy %s: listen", p->name);
		return;
	}
	p->accept_ev = event_new(base, p->fd, EV_READ | EV_PERSIST,
	    proxy_accept_cb, p);
	if (p->accept_ev == NULL)
		fatal("event_new");
	/* While dropping SYNs nothing is accepted: the queue must stay full. */
	if (p->dropping == 0)
		event_add(p->accept_ev, NULL);
	else if (proxy_drop_syn_fill(p) == -1)
		log_warn("proxy %s: cannot fill the accept queue", p->name);
}

/*
 * Fill the accept queue of a listener whose backlog is 0 with a connection
 * of our own: the kernel then drops every further SYN, and clients see
 * their connect() time out. The filler is recognised and closed when it
 * is finally accepted.
 */
static int
proxy_drop_syn_fill(struct proxy *p)
{
	struct addr to = p->bound;
	int	   *fillers, fd;

	if (addr_family(&to) == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&to.ss;

		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (addr_family(&to) == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to.ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
	}
	fd = socket(addr_family(&to),
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (-1);
	if (connect(fd, addr_sa(&to), to.len) == -1 && errno != EINPROGRESS &&
	    errno != EAGAIN) {
		close(fd);
		return (-1);
	}
	fillers = reallocarray(p->fillers, p->nfillers + 1, sizeof(int));
	if (fillers == NULL) {
		close(fd);
		return (-1);
	}
	p->fillers = fillers;
	p->fillers[p->nfillers++] = fd;
	return (0);
}

/* A connection its client closed ns into its fault. */
void
proxy_fault_observe(struct proxy *p, uint64_t ns)
{
	static const double bounds[] = PROXY_FAULT_BOUNDS;
	double		    ms = util_ns_to_ms(ns);
	size_t		    i;

	for (i = 0; i < PROXY_FAULT_BUCKETS && ms > bounds[i]; i++)
		;
	/* The count first: a reader never sees more in the buckets. */
	COUNT_ADD(p->stats->fault_count, 1);
	if (i < PROXY_FAULT_BUCKETS)
		COUNT_ADD(p->stats->fault_buckets[i], 1);
	COUNT_ADD(p->stats->fault_sum_us, ns / 1000);
}

void
proxy_set_enabled(struct proxy *p, int enabled)
{
	if (p->enabled == !!enabled)
		return;
	p->enabled = !!enabled;
	p->started |= p->enabled;
	if (!p->enabled)
		proxy_close_sessions(p, "proxy disabled");
	/* A UDP proxy keeps reading and drops what comes (udp.c). */
	if (p->protocol != PROTO_UDP)
		proxy_listener_apply(p);
}

/* Count a reason to refuse new connections (on > 0) or drop one. */
void
proxy_refuse(struct proxy *p, int on)
{
	p->refusing += on ? 1 : -1;
	if (p->refusing == (on ? 1 : 0))
		proxy_listener_apply(p);
}

void
proxy_drop_syn(struct proxy *p, int on)
{
	p->dropping += on ? 1 : -1;
	if (p->dropping == (on ? 1 : 0))
		proxy_listener_apply(p);
}

/*
 * Whether an accepted connection is one of our drop_syn fillers: over
 * TCP its peer is a filler's local address; over a unix socket, whose
 * clients have no address, its peer is this very process. Returns the
 * filler's index, or -1.
 */
static int
proxy_find_filler(struct proxy *p, int fd, const struct addr *peer)
{
	struct addr  local;
	struct ucred cred;
	socklen_t    len;
	size_t	     i;

	if (addr_family(peer) == AF_UNIX || peer->len <= sizeof(sa_family_t)) {
		len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
		    cred.pid == getpid())
			return (0);
		return (-1);
	}
	for (i = 0; i < p->nfillers; i++) {
		len = sizeof(local.ss);
		if (getsockname(p->fillers[i], addr_sa(&local), &len) == -1)
			continue;
		local.len = len;
		if (addr_equal(&local, peer))
			return ((int)i);
	}
	return (-1);
}

/* An accepted filler has done its job: close both of its ends. */
static void
proxy_filler_done(struct proxy *p, int idx, int fd)
{
	close(fd);
	close(p->fillers[idx]);
	p->fillers[idx] = p->fillers[--p->nfillers];
}

/*
 * Whether fewer than times the reserve (at most a quarter of the limit)
 * are free above fd, the lowest free descriptor as accept() or F_DUPFD
 * return it. All below it are in use, so this is exact when the table
 * fills from the bottom and errs towards accepting when it has holes;
 * the EMFILE backoff stays the last resort.
 */
int
proxy_fds_low(int fd, int times)
{
	struct rlimit rl;
	rlim_t	      reserve;

	/* Read each time: prlimit(1) may change it under us. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return (0);
	reserve = PROXY_FD_RESERVE * times;
	if (reserve > rl.rlim_cur / 4)
		reserve = rl.rlim_cur / 4;
	return ((rlim_t)fd + reserve >= rl.rlim_cur);
}

/* Stop accepting for a while; logged once until a connection is taken. */
static void
proxy_accept_pause(struct proxy *p, const char *why)
{
	struct timeval backoff = { 0, PROXY_BACKOFF_MS * 1000 };

	if (!p->backoff_logged)
		log_warnx("proxy %s: accept, pausing %d ms: %s", p->name,
		    PROXY_BACKOFF_MS, why);
	p->backoff_logged = 1;
	event_del(p->accept_ev);
	evtimer_add(p->backoff_ev, &backoff);
}

/* Serve a new connection here, or hand it to the next worker. */
static void
proxy_accept(struct proxy *p, int fd, const struct addr *peer)
{
	struct session_origin o;
	struct worker	     *w;

	if (p->shards == NULL) {
		(void)session_new(p, fd, peer);
		return;
	}
	w = workers_pick(p->tardy);
	session_origin(p, peer, &o);
	worker_handoff(w, p->shards[worker_index(w)], fd, &o);
}

static void
proxy_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct proxy *p = arg;
	struct addr   peer;
	socklen_t     len;
	int	      fd, filler, i;

	for (i = 0; i < PROXY_ACCEPT_BATCH; i++) {
		len = sizeof(peer.ss);
		fd = accept4(lfd, addr_sa(&peer), &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			switch (errno) {
			case EINTR:
			case ECONNABORTED:
				continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				/* Pause rather than spin on a full table. */
				proxy_accept_pause(p, strerror(errno));
				return;
			case EAGAIN:
				return;
			default:
				log_warn("proxy %s: accept", p->name);
				return;
			}
		}
		peer.len = len;
		if (p->nfillers > 0 &&
		    (filler = proxy_find_filler(p, fd, &peer)) != -1) {
			proxy_filler_done(p, filler, fd);
			continue;
		}
		if (p->backoff_logged) {
			log_info("proxy %s: accepting again", p->name);
			p->backoff_logged = 0;
		}
		proxy_accept(p, fd, &peer);
		if (proxy_fds_low(fd, 1)) {
			proxy_accept_pause(p, "descriptors running out");
			return;
		}
	}
}

static void
proxy_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy  *p = arg;
	struct timeval backoff = { 0, PROXY_BACKOFF_MS * 1000 };
	int	       probe;

	if (p->accept_ev == NULL)
		return;
	/* The lowest free descriptor says whether enough are back. */
	if ((probe = fcntl(p->fd, F_DUPFD_CLOEXEC, 0)) != -1)
		close(probe);
	if (probe == -1 || proxy_fds_low(probe, 2)) {
		evtimer_add(p->backoff_ev, &backoff);
		return;
	}
	event_add(p->accept_ev, NULL);
}

struct toxic *
proxy_find_toxic(struct proxy *p, const char *name)
{
	struct toxic *t;

	TAILQ_FOREACH(t, &p->toxics, entry) {
		if (strcmp(t->name, name) == 0)
			return (t);
	}
	return (NULL);
}

/*
 * Shards (see proxy.h). Each function below runs one step on every
 * worker's thread through workers_run(), the main loop waiting: a shard is
 * only ever touched by its worker, and the main loop reads the proxy it
 * is a shard of, which does not change meanwhile.
 */
enum proxy_shard_op {
	SHARD_NEW,
	SHARD_UPDATE,
	SHARD_TOXIC_ADD,
	SHARD_TOXIC_SET,
	SHARD_TOXIC_REMOVE,
	SHARD_CLOSE,
	SHARD_FREE,
	SHARD_JSON,
};

struct proxy_shard_call {
	enum proxy_shard_op op;
	struct proxy	   *p;
	const struct toxic *toxic;
	const char	   *name; /* a toxic's, or a close's reason */
	json_t		  **json; /* per worker */
};

static struct proxy *
proxy_shard_new(struct proxy *p, struct loop *loop)
{
	struct proxy *sh;
	struct toxic *t;

	sh = xcalloc(1, sizeof(*sh));
	sh->tardy = p->tardy;
	sh->loop = loop;
	sh->parent = p;
	sh->stats = p->stats;
	sh->history = p->history;
	sh->name = xstrdup(p->name);
	sh->listen_str = xstrdup(p->listen_str);
	sh->upstream_str = xstrdup(p->upstream_str);
	sh->listen = p->listen;
	sh->bound = p->bound;
	sh->upstream = p->upstream;
	if (p->upstream_host != NULL)
		sh->upstream_host = xstrdup(p->upstream_host);
	sh->upstream_port = p->upstream_port;
	sh->upstream_reset = p->upstream_reset;
	proxy_set_connect_timeout(sh, p->connect_timeout);
	sh->protocol = p->protocol;
	sh->fd = -1;
	TAILQ_INIT(&sh->sessions);
	TAILQ_INIT(&sh->toxics);
	TAILQ_FOREACH(t, &p->toxics, entry) {
		if (!(t->type->flags & TOXIC_F_LISTENER))
			proxy_add_toxic(sh, toxic_copy(t));
	}
	return (sh);
}

static void
proxy_shard_cb(struct worker *w, void *arg)
{
	struct proxy_shard_call *c = arg;
	struct proxy		*p = c->p, **shp = &p->shards[worker_index(w)];
	struct toxic		*t;
	struct session		*s;

	switch (c->op) {
	case SHARD_NEW:
		*shp = proxy_shard_new(p, worker_loop(w));
		break;
	case SHARD_UPDATE:
		(*shp)->stats = p->stats;
		(*shp)->history = p->history;
		(*shp)->upstream_reset = p->upstream_reset;
		if ((*shp)->connect_timeout != p->connect_timeout)
			proxy_set_connect_timeout(*shp, p->connect_timeout);
		break;
	case SHARD_TOXIC_ADD:
		proxy_add_toxic(*shp, toxic_copy(c->toxic));
		break;
	case SHARD_TOXIC_SET:
		if ((t = proxy_find_toxic(*shp, c->toxic->name)) != NULL)
			toxic_assign(t, c->toxic);
		break;
	case SHARD_TOXIC_REMOVE:
		if ((t = proxy_find_toxic(*shp, c->name)) != NULL)
			proxy_remove_toxic(*shp, t);
		break;
	case SHARD_CLOSE:
		proxy_close_sessions(*shp, c->name);
		break;
	case SHARD_FREE:
		proxy_close_sessions(*shp, "proxy stopped");
		proxy_free_own(*shp);
		*shp = NULL;
		break;
	case SHARD_JSON:
		c->json[worker_index(w)] = json_array();
		TAILQ_FOREACH(s, &(*shp)->sessions, entry)
			json_array_append_new(c->json[worker_index(w)],
			    session_json(s));
		break;
	}
}

static void
proxy_shards_run(struct proxy *p, struct proxy_shard_call *c)
{
	c->p = p;
	workers_run(p->tardy, proxy_shard_cb, c);
}

/* A TCP proxy of a daemon with workers gets a shard on each. */
void
proxy_shards_new(struct proxy *p)
{
	struct proxy_shard_call c = { .op = SHARD_NEW };

	if (p->tardy->nworkers == 0)
		return;
	p->shards = xcalloc(p->tardy->nworkers, sizeof(*p->shards));
	proxy_shards_run(p, &c);
}

/* The settings an update in place changes, and what a replacement keeps. */
void
proxy_shards_update(struct proxy *p)
{
	struct proxy_shard_call c = { .op = SHARD_UPDATE };

	if (p->shards != NULL)
		proxy_shards_run(p, &c);
}

void
proxy_shards_toxic_add(struct proxy *p, const struct toxic *t)
{
	struct proxy_shard_call c = { .op = SHARD_TOXIC_ADD, .toxic = t };

	proxy_shards_run(p, &c);
}

void
proxy_shards_toxic_set(struct proxy *p, const struct toxic *t)
{
	struct proxy_shard_call c = { .op = SHARD_TOXIC_SET, .toxic = t };

	proxy_shards_run(p, &c);
}

void
proxy_shards_toxic_remove(struct proxy *p, const char *name)
{
	struct proxy_shard_call c = { .op = SHARD_TOXIC_REMOVE, .name = name };

	proxy_shards_run(p, &c);
}

static void
proxy_shards_close(struct proxy *p, const char *reason)
{
	struct proxy_shard_call c = { .op = SHARD_CLOSE, .name = reason };

	proxy_shards_run(p, &c);
}

static void
proxy_shards_free(struct proxy *p)
{
	struct proxy_shard_call c = { .op = SHARD_FREE };

	if (p->shards == NULL)
		return;
	proxy_shards_run(p, &c);
	free(p->shards);
	p->shards = NULL;
}

/* Open connections, on every loop. */
size_t
proxy_nsessions(struct proxy *p)
{
	size_t	     n = COUNT_GET(p->nsessions);
	unsigned int i;

	for (i = 0; p->shards != NULL && i < p->tardy->nworkers; i++)
		n += COUNT_GET(p->shards[i]->nsessions);
	return (n);
}

static int
proxy_session_cmp(const void *a, const void *b)
{
	json_int_t x, y;

	x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
	y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
	return (x < y ? -1 : x > y);
}

/* The open connections as JSON, in the order they were accepted. */
json_t *
proxy_sessions_json(struct proxy *p)
{
	struct proxy_shard_call c = { .op = SHARD_JSON };
	struct session	       *s;
	json_t		      **all, *a = json_array();
	size_t			n = 0, i, j;

	TAILQ_FOREACH(s, &p->sessions, entry)
		json_array_append_new(a, session_json(s));
	if (p->shards == NULL)
		return (a);
	c.json = xcalloc(p->tardy->nworkers, sizeof(*c.json));
	proxy_shards_run(p, &c);
	for (i = 0; i < p->tardy->nworkers; i++)
		n += json_array_size(c.json[i]);
	all = xcalloc(n + 1, sizeof(*all));
	n = 0;
	for (i = 0; i < p->tardy->nworkers; i++) {
		for (j = 0; j < json_array_size(c.json[i]); j++)
			all[n++] = json_incref(json_array_get(c.json[i], j));
		json_decref(c.json[i]);
	}
	qsort(all, n, sizeof(*all), proxy_session_cmp);
	for (i = 0; i < n; i++)
		json_array_append_new(a, all[i]);
	free(all);
	free(c.json);
	return (a);
}
