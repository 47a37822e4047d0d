/*
 * slicer: chunks are cut into pieces of average_size bytes, plus or minus
 * size_variation, sent delay microseconds apart, so the reader sees many
 * small reads.
 */
#include "autoconf.h"

#include <stdio.h>

#include <event2/buffer.h>

#include "log.h"
#include "session.h"
#include "toxic_types.h"
#include "util.h"

enum { A_AVERAGE_SIZE, A_SIZE_VARIATION, A_DELAY };

#define SLICER_RETRY_MS	10	/* while the direction past us is full */

/* clang-format off */
static const struct toxic_attr slicer_attrs[] = {
	{ "average_size",	1, 1 << 30,	0, 1 },
	{ "size_variation",	0, 1 << 30,	0, 0 },
	{ "delay",		0, 86400000000LL, 0, 0 },	/* µs */
	{ NULL,			0, 0,		0, 0 },
};
/* clang-format on */

struct slicer {
	struct evbuffer *queue;
	struct ptimer	 timer;
	int		 eof;
};

static void slicer_pump(struct link *);

/*
 * Toxiproxy takes a variation equal to the average (pieces then run from
 * 1 byte to twice the average) and crashes above it; refuse only that.
 */
static int
slicer_validate(const int64_t *attr, char *err, size_t errlen)
{
	if (attr[A_SIZE_VARIATION] > attr[A_AVERAGE_SIZE]) {
		snprintf(err, errlen,
		    "attribute size_variation must not be "
		    "more than average_size");
		return (-1);
	}
	return (0);
}

static void
slicer_timer_cb(void *arg)
{
	slicer_pump(arg);
}

static size_t
slicer_piece(struct link *l)
{
	int64_t avg = link_attr(l, A_AVERAGE_SIZE);
	int64_t var = link_attr(l, A_SIZE_VARIATION);

	if (var > 0)
		avg += (int64_t)link_random_range(l, (uint64_t)(2 * var + 1)) -
		    var;
	return (avg < 1 ? 1 : (size_t)avg);
}

static void
slicer_pump(struct link *l)
{
	struct slicer	*st = link_state(l);
	struct evbuffer *out;
	size_t		 n, len;
	int64_t		 delay = link_attr(l, A_DELAY);

	while ((len = evbuffer_get_length(st->queue)) > 0) {
		/*
		 * A link after this one holds each piece on its own, at a
		 * cost of its own: cut no more while the direction is full
		 * past this link, or one read would become thousands.
		 */
		if (dir_queued(l->dir) - l->held >= DIR_HIGH_WATER) {
			link_timer_in_ms(l, &st->timer, SLICER_RETRY_MS);
			return;
		}
		if ((n = slicer_piece(l)) > len)
			n = len;
		if ((out = evbuffer_new()) == NULL)
			fatalx("evbuffer_new");
		evbuffer_remove_buffer(st->queue, out, n);
		link_held(l, -(ssize_t)n);
		link_forward(l, out, util_now_ns());
		evbuffer_free(out);
		if (delay > 0 && evbuffer_get_length(st->queue) > 0) {
			link_timer_at(l, &st->timer,
			    util_now_ns() + (uint64_t)delay * 1000);
			return;
		}
	}
	if (st->eof) {
		st->eof = 0;
		link_forward_eof(l);
	}
}

static void
slicer_start(struct link *l)
{
	struct slicer *st = link_state(l);

	if ((st->queue = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	link_timer_set(l, &st->timer, slicer_timer_cb);
}

static void
slicer_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	struct slicer *st = link_state(l);

	link_held(l, (ssize_t)evbuffer_get_length(buf));
	if (util_evbuffer_append(st->queue, buf) == -1)
		fatalx("evbuffer_add");
	if (!ptimer_pending(&st->timer))
		slicer_pump(l);
}

static void
slicer_eof(struct link *l)
{
	struct slicer *st = link_state(l);

	st->eof = 1;
	if (!ptimer_pending(&st->timer))
		slicer_pump(l);
}

static void
slicer_stop(struct link *l)
{
	struct slicer *st = link_state(l);

	link_timer_cancel(l, &st->timer);
	link_held(l, -(ssize_t)evbuffer_get_length(st->queue));
	link_forward(l, st->queue, util_now_ns());
	if (st->eof) {
		st->eof = 0;
		link_forward_eof(l);
	}
}

static void
slicer_free(struct link *l)
{
	struct slicer *st = link_state(l);

	link_timer_cancel(l, &st->timer);
	if (st->queue != NULL)
		evbuffer_free(st->queue);
}

const struct toxic_type toxic_slicer = {
	.name = "slicer",
	.no_udp = "a datagram cannot be sliced without changing what the "
		  "receiver reads",
	.doc = "slices data into pieces sent delay µs apart",
	.attrs = slicer_attrs,
	.state_size = sizeof(struct slicer),
	.validate = slicer_validate,
	.start = slicer_start,
	.stop = slicer_stop,
	.data = slicer_data,
	.eof = slicer_eof,
	.free = slicer_free,
};
