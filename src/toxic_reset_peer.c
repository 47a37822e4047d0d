/*
 * reset_peer: as in Toxiproxy, the first data (or EOF) that reaches the
 * toxic in its stream is thrown away, and timeout ms later the connection
 * is reset: both peers' next call fails with ECONNRESET. Nothing in the
 * stream passes meanwhile; a connection that sends nothing is never
 * reset. With after_bytes, data passes until then: a reset mid-stream.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "toxic_types.h"

enum { A_TIMEOUT };

/* clang-format off */
static const struct toxic_attr reset_peer_attrs[] = {
	{ "timeout",	0, 86400000,	0, 0 },
	{ NULL,		0, 0,		0, 0 },
};
/* clang-format on */

struct reset_peer {
	struct ptimer timer;
	int	      armed; /* data came: the reset is due */
	int	      eof;   /* held, passed on if removed */
};

static void
reset_peer_timer_cb(void *arg)
{
	link_reset(arg, "reset_peer toxic");
}

static void
reset_peer_arm(struct link *l)
{
	struct reset_peer *st = link_state(l);

	if (st->armed)
		return;
	st->armed = 1;
	link_timer_set(l, &st->timer, reset_peer_timer_cb);
	link_timer_in_ms(l, &st->timer, (uint64_t)link_attr(l, A_TIMEOUT));
}

static void
reset_peer_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	evbuffer_drain(buf, evbuffer_get_length(buf));
	reset_peer_arm(l);
}

static void
reset_peer_eof(struct link *l)
{
	((struct reset_peer *)link_state(l))->eof = 1;
	reset_peer_arm(l);
}

static void
reset_peer_stop(struct link *l)
{
	struct reset_peer *st = link_state(l);

	link_timer_cancel(l, &st->timer);
	st->armed = 0;
	if (st->eof)
		link_forward_eof(l);
}

static void
reset_peer_free(struct link *l)
{
	struct reset_peer *st = link_state(l);

	link_timer_cancel(l, &st->timer);
}

const struct toxic_type toxic_reset_peer = {
	.name = "reset_peer",
	.no_udp = "UDP has no connection to reset",
	.doc = "drops the stream's first data, resets (RST) timeout ms later",
	.attrs = reset_peer_attrs,
	.state_size = sizeof(struct reset_peer),
	.stop = reset_peer_stop,
	.data = reset_peer_data,
	.eof = reset_peer_eof,
	.free = reset_peer_free,
};
