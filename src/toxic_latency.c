/*
 * latency: each chunk is delayed latency ms, plus or minus a uniform
 * jitter, measured from when tardyd read it. Order is kept: a chunk is
 * never released before the one ahead of it.
 */
#include "autoconf.h"

#include "toxic_types.h"
#include "util.h"

enum { A_LATENCY, A_JITTER };

/* clang-format off */
static const struct toxic_attr latency_attrs[] = {
	{ "latency",	0, 86400000,	0, 0 },
	{ "jitter",	0, 86400000,	0, 0 },
	{ NULL,		0, 0,		0, 0 },
};
/* clang-format on */

struct latency {
	struct chunkq q;
	struct ptimer timer;
	uint64_t      last_ns; /* release time of the last chunk */
};

static void
latency_release_cb(void *arg)
{
	struct link    *l = arg;
	struct latency *st = link_state(l);
	struct chunk   *c;
	uint64_t	now = util_now_ns();

	while ((c = TAILQ_FIRST(&st->q)) != NULL && c->t_ns <= now)
		chunkq_forward_head(l, &st->q);
	if (c != NULL)
		link_timer_at(l, &st->timer, c->t_ns);
}

static void
latency_hold(struct link *l, struct evbuffer *buf, uint64_t due)
{
	struct latency *st = link_state(l);
	int		was_empty = TAILQ_EMPTY(&st->q);

	if (due < st->last_ns)
		due = st->last_ns;
	st->last_ns = due;
	if (buf != NULL)
		chunkq_push(l, &st->q, buf, due);
	else
		chunkq_push_eof(&st->q, due);
	if (was_empty)
		link_timer_at(l, &st->timer, due);
}

static void
latency_start(struct link *l)
{
	struct latency *st = link_state(l);

	link_timer_set(l, &st->timer, latency_release_cb);
}

static void
latency_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	int64_t delay_us = link_attr(l, A_LATENCY) * 1000;
	int64_t jitter_us = link_attr(l, A_JITTER) * 1000;

	if (jitter_us > 0)
		delay_us += (int64_t)link_random_range(l,
				(uint64_t)(2 * jitter_us + 1)) -
		    jitter_us;
	if (delay_us < 0)
		delay_us = 0;
	latency_hold(l, buf, t_ns + (uint64_t)delay_us * 1000);
}

static void
latency_eof(struct link *l)
{
	/* EOF follows the data ahead of it, without delay of its own. */
	latency_hold(l, NULL, util_now_ns());
}

static void
latency_stop(struct link *l)
{
	struct latency *st = link_state(l);

	link_timer_cancel(l, &st->timer);
	chunkq_flush(l, &st->q);
}

static void
latency_free(struct link *l)
{
	struct latency *st = link_state(l);

	link_timer_cancel(l, &st->timer);
	chunkq_free(&st->q);
}

const struct toxic_type toxic_latency = {
	.name = "latency",
	.doc = "delays data by latency ms, plus or minus jitter ms",
	.attrs = latency_attrs,
	.state_size = sizeof(struct latency),
	.start = latency_start,
	.stop = latency_stop,
	.data = latency_data,
	.eof = latency_eof,
	.free = latency_free,
};
