/*
 * blackhole (ext): bytes in the stream are read and thrown away, and
 * nothing is closed: the receiver's recv() times out. An EOF from the
 * source is swallowed too while the toxic acts, and passed on when it
 * stops, so the peer "vanishes" without a trace.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "toxic_types.h"

struct blackhole {
	int eof;
};

static void
blackhole_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	evbuffer_drain(buf, evbuffer_get_length(buf));
}

static void
blackhole_eof(struct link *l)
{
	((struct blackhole *)link_state(l))->eof = 1;
}

static void
blackhole_stop(struct link *l)
{
	if (((struct blackhole *)link_state(l))->eof)
		link_forward_eof(l);
}

const struct toxic_type toxic_blackhole = {
	.name = "blackhole",
	.doc = "swallows data; never closes",
	.state_size = sizeof(struct blackhole),
	.stop = blackhole_stop,
	.data = blackhole_data,
	.eof = blackhole_eof,
};
