/*
 * reset_peer: timeout ms after the toxic starts acting, the connection is
 * reset: both peers' next call fails with ECONNRESET. Data passes until
 * then.
 */
#include "autoconf.h"

#include "toxic_types.h"

enum { A_TIMEOUT };

static const struct toxic_attr reset_peer_attrs[] = {
	{ "timeout",	0, 86400000,	0, 0 },
	{ NULL,		0, 0,		0, 0 },
};

struct reset_peer {
	struct ptimer	 timer;
};

static void
reset_peer_timer_cb(void *arg)
{
	link_reset(arg, "reset_peer toxic");
}

static void
reset_peer_start(struct link *l)
{
	struct reset_peer	*st = link_state(l);

	link_timer_set(l, &st->timer, reset_peer_timer_cb);
	link_timer_in_ms(l, &st->timer, (uint64_t)link_attr(l, A_TIMEOUT));
}

static void
reset_peer_stop(struct link *l)
{
	struct reset_peer	*st = link_state(l);

	link_timer_cancel(l, &st->timer);
}

static void
reset_peer_free(struct link *l)
{
	struct reset_peer	*st = link_state(l);

	link_timer_cancel(l, &st->timer);
}

const struct toxic_type toxic_reset_peer = {
	.name = "reset_peer",
	.no_udp = "UDP has no connection to reset",
	.doc = "resets the connection (RST) after timeout ms",
	.attrs = reset_peer_attrs,
	.state_size = sizeof(struct reset_peer),
	.start = reset_peer_start,
	.stop = reset_peer_stop,
	.free = reset_peer_free,
};
