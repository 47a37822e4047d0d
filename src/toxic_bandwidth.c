/*
 * bandwidth: caps throughput at rate KB/s (1 KB = 1000 bytes). Data is
 * sent in slices of 10 ms worth, each slice after the time the previous
 * one took at that rate, so the pace holds for long and short transfers
 * alike. rate 0 lets nothing through.
 *
 * On a datagram direction (UDP) datagrams are never merged or split:
 * each waits whole in a chunk queue and leaves when the time the ones
 * before it took at that rate has passed.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "log.h"
#include "toxic_types.h"
#include "util.h"

enum { A_RATE };

static const struct toxic_attr bandwidth_attrs[] = {
	{ "rate",	0, 100000000,	0, 0 },	/* KB/s, up to 100 GB/s */
	{ NULL,		0, 0,		0, 0 },
};

struct bandwidth {
	struct evbuffer	*queue;
	struct chunkq	 q;		/* datagram mode */
	struct ptimer	 timer;
	uint64_t	 next_ns;	/* when the next slice may go */
	int		 eof;
};

#define BANDWIDTH_IDLE_NS	10000000	/* idle past this: no credit */

static void	bandwidth_pump(struct link *);

/*
 * Whether the next slice may go now (*now set); if not, the timer is set
 * for when it may. A link idle for a while gets no burst credit.
 */
static int
bandwidth_ready(struct link *l, uint64_t *now)
{
	struct bandwidth	*st = link_state(l);

	*now = util_now_ns();
	if (st->next_ns > *now) {
		link_timer_at(l, &st->timer, st->next_ns);
		return (0);
	}
	if (st->next_ns + BANDWIDTH_IDLE_NS < *now)
		st->next_ns = *now;
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
	struct bandwidth	*st = link_state(l);
	uint64_t		 rate = (uint64_t)link_attr(l, A_RATE) * 1000;
	uint64_t		 now;
	struct chunk		*c;

	while ((c = TAILQ_FIRST(&st->q)) != NULL && rate > 0) {
		if (!bandwidth_ready(l, &now))
			return;
		if (c->buf != NULL)
			st->next_ns += (uint64_t)evbuffer_get_length(c->buf) *
			    1000000000 / rate;
		chunkq_forward_head(l, &st->q);
	}
}

static void
bandwidth_pump(struct link *l)
{
	struct bandwidth	*st = link_state(l);
	uint64_t		 rate = (uint64_t)link_attr(l, A_RATE) * 1000;
	uint64_t		 now, slice;
	size_t			 len, n;
	struct evbuffer		*out;

	if (link_dgram(l)) {
		bandwidth_pump_dgram(l);
		return;
	}
	while ((len = evbuffer_get_length(st->queue)) > 0) {
		if (rate == 0 || !bandwidth_ready(l, &now))
			return;
		slice = rate / 100;
		n = len < slice ? len : (slice > 0 ? slice : 1);
		if ((out = evbuffer_new()) == NULL)
			fatalx("evbuffer_new");
		evbuffer_remove_buffer(st->queue, out, n);
		link_held(l, -(ssize_t)n);
		st->next_ns += (uint64_t)n * 1000000000 / rate;
		link_forward(l, out, now);
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
	struct bandwidth	*st = link_state(l);

	if ((st->queue = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	link_timer_set(l, &st->timer, bandwidth_timer_cb);
}

static void
bandwidth_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	struct bandwidth	*st = link_state(l);

	if (link_dgram(l))
		chunkq_push(l, &st->q, buf, t_ns);
	else {
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
	struct bandwidth	*st = link_state(l);

	st->eof = 1;
	if (!ptimer_pending(&st->timer))
		bandwidth_pump(l);
}

static void
bandwidth_update(struct link *l)
{
	struct bandwidth	*st = link_state(l);

	link_timer_cancel(l, &st->timer);
	st->next_ns = 0;
	bandwidth_pump(l);
}

static void
bandwidth_stop(struct link *l)
{
	struct bandwidth	*st = link_state(l);
	size_t			 n = evbuffer_get_length(st->queue);

	link_timer_cancel(l, &st->timer);
	chunkq_flush(l, &st->q);
	link_held(l, -(ssize_t)n);
	link_forward(l, st->queue, util_now_ns());
	if (st->eof) {
		st->eof = 0;
		link_forward_eof(l);
	}
}

static void
bandwidth_free(struct link *l)
{
	struct bandwidth	*st = link_state(l);

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
