/*
 * slow_close: the source's EOF is passed on delay ms late; data passes.
 */
#include "autoconf.h"

#include "toxic_types.h"

enum { A_DELAY };

/* clang-format off */
static const struct toxic_attr slow_close_attrs[] = {
	{ "delay",	0, 86400000,	0, 0 },
	{ NULL,		0, 0,		0, 0 },
};
/* clang-format on */

struct slow_close {
	struct ptimer timer;
};

static void
slow_close_timer_cb(void *arg)
{
	link_forward_eof(arg);
}

static void
slow_close_eof(struct link *l)
{
	struct slow_close *st = link_state(l);

	link_timer_set(l, &st->timer, slow_close_timer_cb);
	link_timer_in_ms(l, &st->timer, (uint64_t)link_attr(l, A_DELAY));
}

static void
slow_close_stop(struct link *l)
{
	struct slow_close *st = link_state(l);

	if (ptimer_pending(&st->timer)) {
		link_timer_cancel(l, &st->timer);
		link_forward_eof(l);
	}
}

static void
slow_close_free(struct link *l)
{
	struct slow_close *st = link_state(l);

	link_timer_cancel(l, &st->timer);
}

const struct toxic_type toxic_slow_close = {
	.name = "slow_close",
	.no_udp = "UDP has no close to delay",
	.doc = "delays the close by delay ms",
	.attrs = slow_close_attrs,
	.state_size = sizeof(struct slow_close),
	.stop = slow_close_stop,
	.eof = slow_close_eof,
	.free = slow_close_free,
};
