/*
 * timeout: data in the stream is read and thrown away; once timeout ms
 * pass with no data, the connection is closed. 0 never closes. Removing
 * the toxic closes the connections it was holding, as in Toxiproxy: what
 * it swallowed cannot be given back.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "toxic_types.h"

enum { A_TIMEOUT };

/* clang-format off */
static const struct toxic_attr timeout_attrs[] = {
	{ "timeout",	0, 86400000,	0, 0 },
	{ NULL,		0, 0,		0, 0 },
};
/* clang-format on */

struct timeout {
	struct ptimer timer;
};

static void
timeout_timer_cb(void *arg)
{
	link_close(arg, "timeout toxic");
}

static void
timeout_arm(struct link *l)
{
	struct timeout *st = link_state(l);

	if (link_attr(l, A_TIMEOUT) > 0)
		link_timer_in_ms(l, &st->timer,
		    (uint64_t)link_attr(l, A_TIMEOUT));
	else
		link_timer_cancel(l, &st->timer);
}

static void
timeout_start(struct link *l)
{
	struct timeout *st = link_state(l);

	link_timer_set(l, &st->timer, timeout_timer_cb);
	timeout_arm(l);
}

static void
timeout_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	evbuffer_drain(buf, evbuffer_get_length(buf));
	timeout_arm(l);
}

static void
timeout_eof(struct link *l)
{
	/* Swallowed like the data: the other side sees nothing. */
}

static void
timeout_stop(struct link *l)
{
	struct timeout *st = link_state(l);

	link_timer_cancel(l, &st->timer);
	if (l->removing)
		link_close(l, "timeout toxic removed");
}

static void
timeout_free(struct link *l)
{
	struct timeout *st = link_state(l);

	link_timer_cancel(l, &st->timer);
}

const struct toxic_type toxic_timeout = {
	.name = "timeout",
	.no_udp = "UDP has no connection to close; use blackhole",
	.doc = "swallows data; closes after timeout ms without data",
	.attrs = timeout_attrs,
	.state_size = sizeof(struct timeout),
	.start = timeout_start,
	.stop = timeout_stop,
	.data = timeout_data,
	.eof = timeout_eof,
	.update = timeout_arm,
	.free = timeout_free,
};
