/*
 * fuzz_datapath: the session engine and every toxic's data path, driven
 * by a script.
 *
 * Each input runs one connection through a real proxy (proxy_bind() and
 * proxy_new() on 127.0.0.1:0) in a real daemon context (tardy_new()):
 * the client is one end of a socketpair handed to session_new(), the
 * upstream a unix socket listener of ours, so the engine reads, writes,
 * shuts down and closes real sockets and runs its real timers.
 *
 * Input: a header byte (bits 0-1: number of toxics, bit 2: the upstream
 * refuses, bits 4-7: seed), then 6 bytes per toxic
 * (type, stream, toxicity, attributes capped so every timer is a few ms
 * at most, scheduling attributes, added before the connection or while
 * it is open), then the script, one op a byte (some take the next byte):
 * write or bulk-write on either end, read either end, shut down or close
 * (or reset) either end, run the loop once or for up to 1.5 ms, update,
 * remove or re-add a toxic, disable and re-enable the proxy. Unless an
 * op has bit 7 set, the loop runs once (without waiting) after it.
 *
 * Checked after every op: a direction's held bytes are what its links
 * hold, its stall count the links that stall, and it queues less than
 * DIR_HIGH_WATER + DIR_READ_MAX bytes (the memory bound the README
 * promises); nothing arrives that was not sent, and in order (but where
 * a toxic drops data); nothing arrives early: a byte no sooner than the
 * least delay of the latency toxics on its stream after it was sent, an
 * EOF no sooner than a slow_close's delay (for toxics that act on the
 * whole connection and were not changed since). At the end, every toxic
 * is removed (held and stalls must be 0 then) and, when nothing in the
 * input may lose data (no dropping or closing toxic, no close),
 * everything sent must arrive, and each EOF sent, too, and once both
 * directions are shut the connection must close. Then the connection
 * and proxy are torn down and no event may be left in the loop.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "addr.h"
#include "config.h"
#include "proxy.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_TOXICS	3
#define MAX_OPS		128
#define MAX_BULK	(1024 * 1024)	/* bytes per input and end */
#define MAX_WAIT_US	20000		/* loop waits per input */
#define DRAIN_MS	2000		/* final drain, at most */

static const char *const type_names[] = {
	"noop",
	"latency",
	"bandwidth",
	"slow_close",
	"timeout",
	"reset_peer",
	"slicer",
	"limit_data",
	"blackhole",
	"stall",
	"refuse",
	"drop_syn",
};
#define NTYPES	(sizeof(type_names) / sizeof(type_names[0]))
static const char *const sched_names[] = {
	"after_bytes",
	"after_ms",
	"duration_ms",
	"every",
	"first",
};
static const double toxicities[] = { 1.0, 1.0, 0.5, 0.0 };

static struct tardy *T;
static struct event *wake_ev;
static int	     up_lfd = -1;
static char	     up_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int	     base_events;

/* One toxic of the input. */
struct spec {
	const char   *type;
	const char   *stream;
	double	      toxicity;
	json_t	     *attrs;
	char	      name[8];
	int	      later;	/* added once the connection is open */
	int	      exact;	/* acts on everything, from the start */
	int	      touched;	/* updated, removed or re-added */
	int64_t	      delay_ms; /* latency: the least; slow_close */
	struct toxic *t;	/* on the proxy now */
};

/* One direction, as its two ends see it. */
struct flow {
	const char *what;
	uint64_t    sent;
	uint64_t    recv;
	uint64_t    bulk;
	int	    ordered; /* no toxic drops data in it */
	int	    shut;    /* the sender shut down */
	int	    eof;     /* the receiver read EOF */
	uint8_t	    salt;
	const char *stream; /* the toxics' name for it */
	uint64_t    shut_ns;
	struct {
		uint64_t end; /* offset after the write */
		uint64_t ns;  /* when it was written */
	} writes[MAX_OPS + 8];
	size_t nwrites;
};

struct run {
	struct proxy *p;
	struct spec   specs[MAX_TOXICS];
	size_t	      nspecs;
	int	      cfd; /* our end of the client socketpair */
	int	      ufd; /* the upstream connection we accepted */
	struct flow   up;  /* client -> upstream */
	struct flow   down;
	int	      lossy; /* something may lose data */
	long	      waited_us;
};

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	T = fuzz_tardy();
	if ((wake_ev = evtimer_new(T->loop.base, wake_cb, NULL)) == NULL)
		abort();
	up_lfd = fuzz_unix_listener("datapath", up_path, sizeof(up_path));
	base_events = event_base_get_num_events(T->loop.base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE);
	return (0);
}

/* Run the loop once: without waiting, or for at most us µs. */
static void
pump(int us)
{
	struct timeval tv = { 0, us };

	if (us <= 0) {
		event_base_loop(T->loop.base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
		return;
	}
	evtimer_add(wake_ev, &tv);
	event_base_loop(T->loop.base, EVLOOP_ONCE);
	evtimer_del(wake_ev);
}

static uint8_t
pattern(const struct flow *f, uint64_t off)
{
	return ((uint8_t)((off + f->salt) % 251));
}

/* --- toxics ---------------------------------------------------------- */

static int64_t
attr_value(const char *type, const char *attr, uint8_t v)
{
	static const int64_t rates[] = { 0, 10000, 100000, 100000000 };

	if (strcmp(attr, "rate") == 0)
		return (rates[v % 4]);
	if (strcmp(attr, "delay") == 0 && strcmp(type, "slicer") == 0)
		return ((v % 8) * 100); /* µs */
	if (strcmp(attr, "average_size") == 0)
		return (1 + v % 64);
	if (strcmp(attr, "size_variation") == 0)
		return (v % 64);
	if (strcmp(attr, "bytes") == 0 || strcmp(attr, "after_bytes") == 0)
		return ((int64_t)v * 16);
	if (strcmp(attr, "every") == 0)
		return (1 + v % 3);
	if (strcmp(attr, "first") == 0)
		return (v % 3);
	if (strcmp(attr, "duration_ms") == 0)
		return (1 + v % 4);
	return (v % 4); /* ms: latency, jitter, delay, timeout */
}

static int
listener_type(const char *type)
{
	return (strcmp(type, "refuse") == 0 || strcmp(type, "drop_syn") == 0);
}

static int
drops_data(const char *type)
{
	/* reset_peer drops its stream's first data, as Toxiproxy's. */
	return (strcmp(type, "blackhole") == 0 ||
	    strcmp(type, "timeout") == 0 || strcmp(type, "reset_peer") == 0);
}

static int
closes(const char *type)
{
	return (strcmp(type, "timeout") == 0 ||
	    strcmp(type, "reset_peer") == 0 || strcmp(type, "limit_data") == 0);
}

static const uint8_t *
spec_decode(struct spec *sp, int idx, const uint8_t *b)
{
	const struct toxic_type *tt;
	int			 i;

	sp->type = type_names[(b[0] & 0x7f) % NTYPES];
	sp->later = b[0] & 0x80;
	sp->stream = b[1] & 1 ? "upstream" : "downstream";
	sp->toxicity = toxicities[(b[1] >> 1) & 3];
	sp->exact = sp->toxicity == 1.0 && !sp->later && (b[1] >> 3) == 0;
	snprintf(sp->name, sizeof(sp->name), "t%d", idx);
	sp->attrs = json_object();
	if ((tt = toxic_type_find(sp->type)) == NULL)
		return (b + 6);
	for (i = 0; tt->attrs != NULL && tt->attrs[i].name != NULL && i < 3;
	    i++)
		json_object_set_new(sp->attrs, tt->attrs[i].name,
		    json_integer(attr_value(sp->type, tt->attrs[i].name,
			b[2 + i])));
	if (strcmp(sp->type, "latency") == 0)
		sp->delay_ms = attr_value(sp->type, "latency", b[2]) -
		    attr_value(sp->type, "jitter", b[3]);
	else if (strcmp(sp->type, "slow_close") == 0)
		sp->delay_ms = attr_value(sp->type, "delay", b[2]);
	/* Scheduling, from bits 3-7 of b[1] and the values in b[5]. */
	for (i = 0; i < 5; i++) {
		if (!(b[1] & (0x08 << i)))
			continue;
		if (listener_type(sp->type) && i != 1 && i != 2)
			continue; /* refused for listener toxics */
		json_object_set_new(sp->attrs, sched_names[i],
		    json_integer(attr_value(sp->type, sched_names[i],
			(uint8_t)(b[5] >> (i == 0 ? 0 : 2 * (i - 1))))));
	}
	return (b + 6);
}

static void
spec_add(struct run *r, struct spec *sp)
{
	char err[256];
	int  status;

	if (sp->t != NULL)
		return;
	sp->t = toxic_new(r->p, sp->name, sp->type, sp->stream, sp->toxicity,
	    sp->attrs, err, sizeof(err), &status);
	if (sp->t != NULL)
		proxy_add_toxic(r->p, sp->t);
}

static void
spec_remove(struct run *r, struct spec *sp)
{
	if (sp->t == NULL)
		return;
	sp->touched = 1;
	proxy_remove_toxic(r->p, sp->t);
	sp->t = NULL;
}

static void
spec_update(struct run *r, struct spec *sp, uint8_t sel, uint8_t v)
{
	const struct toxic_type *tt = toxic_type_find(sp->type);
	const char		*attr;
	json_t			*j;
	struct toxic		 before;
	char			 err[256];
	int			 n = 0, rc;

	if (sp->t == NULL)
		return;
	sp->touched = 1;
	while (tt->attrs != NULL && tt->attrs[n].name != NULL)
		n++;
	attr = (sel & 0x3f) % (n + 5) < n ?
	    tt->attrs[(sel & 0x3f) % (n + 5)].name :
	    sched_names[(sel & 0x3f) % (n + 5) - n];
	j = json_object();
	/* Bit 6: a value out of range, which must change nothing. */
	json_object_set_new(j, attr,
	    json_integer(sel & 0x40 ? -1 : attr_value(sp->type, attr, v)));
	before = *sp->t;
	rc = toxic_update(sp->t, j, toxicities[v % 4], sel & 0x80, err,
	    sizeof(err));
	if (rc == -1)
		FUZZ_CHECK(toxic_equal(sp->t, &before), "%s", err);
	json_decref(j);
}

/* --- the ends -------------------------------------------------------- */

static void
end_write(struct run *r, int fd, struct flow *f, size_t n)
{
	uint8_t	 buf[64 * 1024];
	uint64_t now;
	size_t	 i;
	ssize_t	 w;

	if (fd == -1 || f->shut)
		return;
	if (n > sizeof(buf))
		n = sizeof(buf);
	for (i = 0; i < n; i++)
		buf[i] = pattern(f, f->sent + i);
	now = util_now_ns();
	if ((w = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT)) > 0) {
		f->sent += (uint64_t)w;
		if (f->nwrites < sizeof(f->writes) / sizeof(f->writes[0])) {
			f->writes[f->nwrites].end = f->sent;
			f->writes[f->nwrites++].ns = now;
		}
	}
}

/*
 * The least time data (or, with eof, an EOF) must take on f: what the
 * toxics that act on all of it, unchanged, make it wait at least.
 */
static uint64_t
min_delay_ns(const struct run *r, const struct flow *f, int eof)
{
	const struct spec *sp;
	uint64_t	   ns = 0;
	size_t		   i;

	for (i = 0; i < r->nspecs; i++) {
		sp = &r->specs[i];
		if (!sp->exact || sp->touched || sp->t == NULL ||
		    strcmp(sp->stream, f->stream) != 0 || sp->delay_ms <= 0)
			continue;
		if (strcmp(sp->type, eof ? "slow_close" : "latency") == 0)
			ns += (uint64_t)sp->delay_ms * 1000000;
	}
	return (ns);
}

/* When the byte at off was written (the write after, if unrecorded). */
static uint64_t
written_ns(const struct flow *f, uint64_t off)
{
	size_t i;

	for (i = 0; i < f->nwrites; i++) {
		if (off < f->writes[i].end)
			return (f->writes[i].ns);
	}
	return (UINT64_MAX);
}

static void
end_read(struct run *r, int fd, struct flow *f)
{
	uint8_t	 buf[64 * 1024];
	uint64_t now, t, least;
	ssize_t	 n, i;

	if (fd == -1)
		return;
	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		FUZZ_CHECK(!f->eof, "%s: data after EOF", f->what);
		now = util_now_ns();
		t = written_ns(f, f->recv + (uint64_t)n - 1);
		least = min_delay_ns(r, f, 0);
		if (least > 0 && t != UINT64_MAX && now - t < least)
			fuzz_fail(__FILE__, __LINE__,
			    "%s: byte %llu arrived "
			    "after %llu us, before its latency of %llu us",
			    f->what, (unsigned long long)(f->recv + n - 1),
			    (unsigned long long)(now - t) / 1000,
			    (unsigned long long)least / 1000);
		if (f->ordered) {
			for (i = 0; i < n; i++) {
				if (buf[i] != pattern(f, f->recv + (uint64_t)i))
					fuzz_fail(__FILE__, __LINE__,
					    "%s: byte "
					    "%llu is wrong (lost, reordered or "
					    "repeated data)",
					    f->what,
					    (unsigned long long)(f->recv + i));
			}
		}
		f->recv += (uint64_t)n;
		FUZZ_CHECK(f->recv <= f->sent,
		    "%s: %llu bytes arrived, %llu "
		    "sent",
		    f->what, (unsigned long long)f->recv,
		    (unsigned long long)f->sent);
	}
	if (n == 0 && !f->eof) {
		FUZZ_CHECK(f->shut || r->lossy, "%s: EOF that was not sent",
		    f->what);
		now = util_now_ns();
		least = min_delay_ns(r, f, 1);
		/* A close (r->lossy) ends the connection at once. */
		if (f->shut && !r->lossy && least > 0 &&
		    now - f->shut_ns < least)
			fuzz_fail(__FILE__, __LINE__,
			    "%s: EOF arrived after "
			    "%llu us, before the slow_close delay of %llu us",
			    f->what,
			    (unsigned long long)(now - f->shut_ns) / 1000,
			    (unsigned long long)least / 1000);
		f->eof = 1;
	}
}

static void
end_close(struct run *r, int *fd, int rst)
{
	if (*fd == -1)
		return;
	if (rst)
		(void)util_set_linger0(*fd);
	close(*fd);
	*fd = -1;
	r->lossy = 1;
}

/* --- invariants ------------------------------------------------------ */

static void
check_dir(const struct dir *d, const struct flow *f)
{
	const struct link *l;
	size_t		   held = 0;
	int		   stalls = 0;

	TAILQ_FOREACH(l, &d->links, entry) {
		held += l->held;
		stalls += l->stalling;
		FUZZ_CHECK(l->dir == d);
	}
	FUZZ_CHECK(d->held == held, "%s: dir holds %zu, its links %zu", f->what,
	    d->held, held);
	FUZZ_CHECK(d->stalls == stalls, "%s: %d stalls, %d links stalling",
	    f->what, d->stalls, stalls);
	FUZZ_CHECK(dir_queued(d) < DIR_HIGH_WATER + DIR_READ_MAX,
	    "%s: %zu bytes queued", f->what, dir_queued(d));
	FUZZ_CHECK(d->bytes <= f->sent, "%s: %llu bytes passed, %llu sent",
	    f->what, (unsigned long long)d->bytes, (unsigned long long)f->sent);
	FUZZ_CHECK(f->recv <= d->bytes,
	    "%s: %llu bytes arrived, %llu "
	    "passed",
	    f->what, (unsigned long long)f->recv, (unsigned long long)d->bytes);
}

static struct session *
run_session(struct run *r)
{
	struct session *s;
	size_t		n = 0;

	TAILQ_FOREACH(s, &r->p->sessions, entry)
		n++;
	FUZZ_CHECK(n == r->p->nsessions && n <= 1, "%zu sessions", n);
	return (TAILQ_FIRST(&r->p->sessions));
}

static void
check_run(struct run *r)
{
	struct session *s;

	if ((s = run_session(r)) == NULL)
		return;
	check_dir(&s->up, &r->up);
	check_dir(&s->down, &r->down);
}

/* --- a run ----------------------------------------------------------- */

static struct proxy *
run_proxy(int refused)
{
	struct proxy_conf pc;
	struct addr	  bound;
	char		  err[256];
	int		  fd;

	memset(&pc, 0, sizeof(pc));
	pc.name = "fuzz";
	pc.listen_str = "127.0.0.1:0";
	pc.upstream_str = up_path;
	if (addr_parse(pc.listen_str, &pc.listen, err, sizeof(err)) == -1)
		fuzz_fail(__FILE__, __LINE__, "%s", err);
	memset(&pc.upstream, 0, sizeof(pc.upstream));
	pc.upstream.ss.ss_family = AF_UNIX;
	/* Nothing listens on up_path plus ".none": connect() fails. */
	snprintf(((struct sockaddr_un *)&pc.upstream.ss)->sun_path,
	    sizeof(((struct sockaddr_un *)0)->sun_path), "%s%s", up_path,
	    refused ? ".none" : "");
	pc.upstream.len = sizeof(struct sockaddr_un);
	pc.enabled = 1;
	pc.connect_timeout = 1000;
	pc.line = -1;
	if ((fd = proxy_bind(T, &pc.listen, &bound, err, sizeof(err))) == -1)
		fuzz_fail(__FILE__, __LINE__, "proxy_bind: %s", err);
	return (proxy_new(T, &pc, fd, &bound));
}

static void
run_connect(struct run *r)
{
	struct session *s;
	struct addr	peer;
	int		sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		sv) == -1)
		fuzz_fail(__FILE__, __LINE__, "socketpair: %s",
		    strerror(errno));
	memset(&peer, 0, sizeof(peer));
	peer.ss.ss_family = AF_UNIX;
	peer.len = sizeof(sa_family_t);
	r->cfd = sv[1];
	/* NULL: not set up; closing: its upstream failed at once. */
	s = session_new(r->p, sv[0], &peer);
	if (s == NULL || s->state == SESSION_CLOSING) {
		r->lossy = 1;
		return;
	}
	/* A unix connect() is queued at once. */
	r->ufd = accept4(up_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	FUZZ_CHECK(r->ufd != -1, "accept: %s", strerror(errno));
}

static void
run_op(struct run *r, const uint8_t **pp, const uint8_t *end)
{
	const uint8_t *p = *pp;
	uint8_t	       op = *p++, arg = p < end ? *p : 0;
	struct spec   *sp = &r->specs[((op >> 4) & 7) % r->nspecs];
	int	       us;

	switch (op & 0x0f) {
	case 0: /* client writes 1 to 256 bytes */
	case 1: /* upstream writes */
		p++;
		if (op & 1)
			end_write(r, r->ufd, &r->down, 1 + (size_t)arg);
		else
			end_write(r, r->cfd, &r->up, 1 + (size_t)arg);
		break;
	case 2: /* bulk: 1 to 64 KiB */
	case 3: {
		struct flow *f = op & 1 ? &r->down : &r->up;
		size_t	     n = (1 + (size_t)(arg % 64)) * 1024;

		p++;
		if (f->bulk + n > MAX_BULK)
			break;
		f->bulk += n;
		end_write(r, op & 1 ? r->ufd : r->cfd, f, n);
		break;
	}
	case 4:
		end_read(r, r->cfd, &r->down);
		break;
	case 5:
		end_read(r, r->ufd, &r->up);
		break;
	case 6:
		if (r->cfd != -1 && !r->up.shut) {
			r->up.shut_ns = util_now_ns();
			(void)shutdown(r->cfd, SHUT_WR);
			r->up.shut = 1;
		}
		break;
	case 7:
		if (r->ufd != -1 && !r->down.shut) {
			r->down.shut_ns = util_now_ns();
			(void)shutdown(r->ufd, SHUT_WR);
			r->down.shut = 1;
		}
		break;
	case 8:
		pump(0);
		break;
	case 9: /* wait up to 1.5 ms for timers or sockets */
		p++;
		us = (arg % 16) * 100;
		if (r->waited_us + us > MAX_WAIT_US)
			us = 0;
		r->waited_us += us;
		pump(us);
		break;
	case 10:
		p += 2;
		spec_update(r, sp, arg, p <= end ? p[-1] : 0);
		break;
	case 11:
		spec_remove(r, sp);
		break;
	case 12:
		if (sp->t == NULL)
			sp->touched = 1;
		spec_add(r, sp);
		break;
	case 13:
		end_close(r, &r->cfd, op & 0x10);
		break;
	case 14:
		end_close(r, &r->ufd, op & 0x10);
		break;
	case 15: /* disabling closes the connections */
		proxy_set_enabled(r->p, !r->p->enabled);
		r->lossy = 1;
		break;
	}
	if (!(op & 0x80))
		pump(0);
	*pp = p < end ? p : end;
	check_run(r);
}

/* Everything the toxics held is out: all that was sent arrives. */
static void
run_drain(struct run *r)
{
	uint64_t deadline = util_now_ms() + DRAIN_MS;
	int	 done;

	do {
		end_read(r, r->cfd, &r->down);
		end_read(r, r->ufd, &r->up);
		done = r->up.recv == r->up.sent &&
		    r->down.recv == r->down.sent && r->up.eof == r->up.shut &&
		    r->down.eof == r->down.shut;
		if (done || r->lossy)
			break;
		pump(1000);
		check_run(r);
	} while (util_now_ms() < deadline);
	if (r->lossy)
		return;
	if (!done)
		fuzz_fail(__FILE__, __LINE__,
		    "after %d ms: up %llu of %llu "
		    "bytes%s, down %llu of %llu bytes%s",
		    DRAIN_MS, (unsigned long long)r->up.recv,
		    (unsigned long long)r->up.sent,
		    r->up.shut && !r->up.eof ? ", no EOF" : "",
		    (unsigned long long)r->down.recv,
		    (unsigned long long)r->down.sent,
		    r->down.shut && !r->down.eof ? ", no EOF" : "");
	/* Both directions shut and drained: the connection ends. */
	if (!r->up.shut || !r->down.shut)
		return;
	while (run_session(r) != NULL && util_now_ms() < deadline)
		pump(1000);
	FUZZ_CHECK(run_session(r) == NULL,
	    "both directions shut, the "
	    "connection stays open");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t  *p = data, *end = data + size;
	struct session *s;
	struct run	r;
	size_t		i, nops;
	int		n;

	if (size < 7 || size > 4096)
		return (-1);
	memset(&r, 0, sizeof(r));
	r.cfd = r.ufd = -1;
	r.up.what = "client->upstream";
	r.down.what = "upstream->client";
	r.up.stream = "upstream";
	r.down.stream = "downstream";
	r.down.salt = 100;
	r.up.ordered = r.down.ordered = 1;
	T->seed = *p >> 4;
	r.nspecs = 1 + (*p & 3) % MAX_TOXICS;
	p++;
	if ((size_t)(end - p) < 6 * r.nspecs)
		return (-1);
	for (i = 0; i < r.nspecs; i++) {
		p = spec_decode(&r.specs[i], (int)i, p);
		if (drops_data(r.specs[i].type)) {
			if (strcmp(r.specs[i].stream, "upstream") == 0)
				r.up.ordered = 0;
			else
				r.down.ordered = 0;
		}
		if (closes(r.specs[i].type) || drops_data(r.specs[i].type))
			r.lossy = 1;
	}

	r.p = run_proxy(data[0] & 4);
	for (i = 0; i < r.nspecs; i++) {
		if (!r.specs[i].later)
			spec_add(&r, &r.specs[i]);
	}
	run_connect(&r);
	pump(0);
	for (i = 0; i < r.nspecs; i++) {
		if (r.specs[i].later)
			spec_add(&r, &r.specs[i]);
	}
	check_run(&r);
	for (nops = 0; p < end && nops < MAX_OPS; nops++)
		run_op(&r, &p, end);

	/* Take every toxic off: what they held must be passed on. */
	for (i = 0; i < r.nspecs; i++)
		spec_remove(&r, &r.specs[i]);
	if ((s = run_session(&r)) != NULL) {
		FUZZ_CHECK(s->up.held == 0 && s->down.held == 0);
		FUZZ_CHECK(s->up.stalls == 0 && s->down.stalls == 0);
		FUZZ_CHECK(TAILQ_EMPTY(&s->up.links) &&
		    TAILQ_EMPTY(&s->down.links));
	}
	check_run(&r);
	run_drain(&r);

	/* Tear down; nothing of this run may stay in the loop. */
	end_close(&r, &r.cfd, 0);
	end_close(&r, &r.ufd, 0);
	for (i = 0; i < 8 && r.p->nsessions > 0; i++)
		pump(0);
	proxy_free(r.p);
	pump(0);
	n = event_base_get_num_events(T->loop.base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE);
	/* The loop's own: the last connection's end arms its idle trim. */
	if (evtimer_pending(T->loop.trim_ev, NULL))
		n--;
	FUZZ_CHECK(n == base_events, "%d events left in the loop, %d before", n,
	    base_events);
	for (i = 0; i < r.nspecs; i++)
		json_decref(r.specs[i].attrs);
	return (0);
}
