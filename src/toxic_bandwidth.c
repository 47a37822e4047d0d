/*
 * bandwidth: caps throughput at rate KB/s (1 KB = 1000 bytes). As in
 * Toxiproxy, nothing arrives early: a byte leaves no sooner than the
 * bytes before it and itself take at that rate, counted from when the
 * toxic began pacing them, so a client whose timeout is shorter than
 * size / rate sees it fire. Data goes in pieces of 10 ms worth, each
 * when its last byte is due, so the pace holds for long and short
 * transfers alike. rate 0 lets nothing through.
 *
 * On a datagram direction (UDP) datagrams are never merged or split:
 * each waits whole in a chunk queue and leaves when it and the ones
 * before it have taken their size at that rate.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "log.h"
#include "toxic_types.h"
#include "util.h"

enum { A_RATE };

/* clang-format off */
static const struct toxic_attr bandwidth_attrs[] = {
	{ "rate",	0, 100000000,	0, 0 },	/* KB/s, up to 100 GB/s */
	{ NULL,		0, 0,		0, 0 },
};
/* clang-format on */

/*
 * The pacing clock is when the bytes sent so far were due, kept exactly:
 * whole ns and the remainder of the division by the rate. Rounding each
 * piece to a ns instead would drift by a ns a piece, early or late.
 */
struct bandwidth {
	struct evbuffer *queue;
	struct chunkq	 q; /* datagram mode */
	struct ptimer	 timer;
	uint64_t	 due_ns;  /* when the bytes sent so far were due */
	uint64_t	 due_rem; /* plus due_rem / rate of a ns */
	size_t		 piece;	  /* bytes the timer waits for; 0: none */
	int		 eof;
};

#define BANDWIDTH_PIECES	100	/* a second's worth is this many */

static void bandwidth_pump(struct link *);

/*
 * Data arriving with nothing queued starts pacing afresh: the time the
 * link sat idle is no credit, or a reply would come before its own size
 * at the rate has passed (Toxiproxy counts from the chunk too).
 */
static void
bandwidth_idle(struct bandwidth *st, uint64_t now)
{
	if (st->due_ns < now) {
		st->due_ns = now;
		st->due_rem = 0;
	}
}

/*
 * Whether n more bytes are due at rate (bytes/s) now; if so the clock
 * moves past them, if not the timer is set for the ns they are, rounded
 * up so that no byte leaves early.
 */
static int
bandwidth_due(struct link *l, size_t n, uint64_t rate)
{
	struct bandwidth *st = link_state(l);
	uint64_t	  num, due;

	/* n is at most a piece (rate / 100) or a datagram: no overflow. */
	num = (uint64_t)n * 1000000000 + st->due_rem;
	due = st->due_ns + num / rate + (num % rate != 0);
	if (due > util_now_ns()) {
		link_timer_at(l, &st->timer, due);
		return (0);
	}
	st->due_ns += num / rate;
	st->due_rem = num % rate;
	return (1);
}

static void
bandwidth_timer_cb(void *arg)
{
	bandwidth_pump(arg);
}

static void
bandwidth_pump_dgram(struct link *l)
{
	struct bandwidth *st = link_state(l);
	uint64_t	  rate = (uint64_t)link_attr(l, A_RATE) * 1000;
	struct chunk	 *c;

	while ((c = TAILQ_FIRST(&st->q)) != NULL) {
		if (c->buf != NULL &&
		    (rate == 0 ||
			!bandwidth_due(l, evbuffer_get_length(c->buf), rate)))
			return;
		chunkq_forward_head(l, &st->q);
	}
}

static void
bandwidth_pump(struct link *l)
{
	struct bandwidth *st = link_state(l);
	uint64_t	  rate = (uint64_t)link_attr(l, A_RATE) * 1000;
	uint64_t	  slice;
	size_t		  len;
	struct evbuffer	 *out;

	if (link_dgram(l)) {
		bandwidth_pump_dgram(l);
		return;
	}
	while ((len = evbuffer_get_length(st->queue)) > 0) {
		if (rate == 0)
			return;
		/*
		 * The piece is fixed when its wait begins: data arriving
		 * meanwhile follows it rather than holding it back.
		 */
		if (st->piece == 0) {
			slice = rate / BANDWIDTH_PIECES;
			st->piece = len < slice ? len : (slice > 0 ? slice : 1);
		}
		if (!bandwidth_due(l, st->piece, rate))
			return;
		if ((out = evbuffer_new()) == NULL)
			fatalx("evbuffer_new");
		evbuffer_remove_buffer(st->queue, out, st->piece);
		link_held(l, -(ssize_t)st->piece);
		st->piece = 0;
		link_forward(l, out, util_now_ns());
		evbuffer_free(out);
	}
	if (st->eof) {
		st->eof = 0;
		link_forward_eof(l);
	}
}

static void
bandwidth_start(struct link *l)
{
	struct bandwidth *st = link_state(l);

	if ((st->queue = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	link_timer_set(l, &st->timer, bandwidth_timer_cb);
}

static void
bandwidth_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	struct bandwidth *st = link_state(l);

	if (link_dgram(l)) {
		if (TAILQ_EMPTY(&st->q))
			bandwidth_idle(st, util_now_ns());
		chunkq_push(l, &st->q, buf, t_ns);
	} else {
		if (evbuffer_get_length(st->queue) == 0)
			bandwidth_idle(st, util_now_ns());
		link_held(l, (ssize_t)evbuffer_get_length(buf));
		if (util_evbuffer_append(st->queue, buf) == -1)
			fatalx("evbuffer_add");
	}
	if (!ptimer_pending(&st->timer))
		bandwidth_pump(l);
}

static void
bandwidth_eof(struct link *l)
{
	struct bandwidth *st = link_state(l);

	st->eof = 1;
	if (!ptimer_pending(&st->timer))
		bandwidth_pump(l);
}

/* A new rate paces what is queued afresh, from now. */
static void
bandwidth_update(struct link *l)
{
	struct bandwidth *st = link_state(l);

	link_timer_cancel(l, &st->timer);
	st->due_ns = 0;
	bandwidth_idle(st, util_now_ns());
	st->piece = 0;
	bandwidth_pump(l);
}

static void
bandwidth_stop(struct link *l)
{
	struct bandwidth *st = link_state(l);
	size_t		  n = evbuffer_get_length(st->queue);

	link_timer_cancel(l, &st->timer);
	chunkq_flush(l, &st->q);
	link_held(l, -(ssize_t)n);
	st->piece = 0;
	link_forward(l, st->queue, util_now_ns());
	if (st->eof) {
		st->eof = 0;
		link_forward_eof(l);
	}
}

static void
bandwidth_free(struct link *l)
{
	struct bandwidth *st = link_state(l);

	link_timer_cancel(l, &st->timer);
	if (st->queue != NULL)
		evbuffer_free(st->queue);
	chunkq_free(&st->q);
}

const struct toxic_type toxic_bandwidth = {
	.name = "bandwidth",
	.doc = "limits throughput to rate KB/s",
	.attrs = bandwidth_attrs,
	.state_size = sizeof(struct bandwidth),
	.start = bandwidth_start,
	.stop = bandwidth_stop,
	.data = bandwidth_data,
	.eof = bandwidth_eof,
	.update = bandwidth_update,
	.free = bandwidth_free,
};
