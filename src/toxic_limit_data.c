/*
 * limit_data: once bytes bytes have passed in the stream, the connection
 * is closed (after what passed was delivered): the reader gets exactly
 * that many bytes, then EOF.
 *
 * On a datagram direction (UDP) nothing is closed and no datagram is
 * cut: datagrams pass whole while their total stays within bytes; from
 * the first one that would go past it, every datagram is dropped.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "log.h"
#include "toxic_types.h"

enum { A_BYTES };

/* clang-format off */
static const struct toxic_attr limit_data_attrs[] = {
	{ "bytes",	0, INT64_MAX,	0, 0 },
	{ NULL,		0, 0,		0, 0 },
};
/* clang-format on */

struct limit_data {
	uint64_t passed;
	int	 full; /* datagram mode: limit reached */
};

static void
limit_data_check(struct link *l)
{
	struct limit_data *st = link_state(l);

	if (link_dgram(l))
		return;
	if (st->passed >= (uint64_t)link_attr(l, A_BYTES))
		link_close(l, "limit_data reached");
}

static void
limit_data_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	struct limit_data *st = link_state(l);
	uint64_t	   limit = (uint64_t)link_attr(l, A_BYTES);
	size_t		   len = evbuffer_get_length(buf);
	struct evbuffer	  *head;

	if (link_dgram(l)) {
		if (!st->full && st->passed + len <= limit) {
			st->passed += len;
			link_forward(l, buf, t_ns);
		} else {
			st->full = 1;
			evbuffer_drain(buf, len);
		}
		return;
	}
	if (st->passed + len <= limit) {
		st->passed += len;
		link_forward(l, buf, t_ns);
	} else {
		if ((head = evbuffer_new()) == NULL)
			fatalx("evbuffer_new");
		evbuffer_remove_buffer(buf, head, (size_t)(limit - st->passed));
		st->passed = limit;
		link_forward(l, head, t_ns);
		evbuffer_free(head);
		evbuffer_drain(buf, evbuffer_get_length(buf));
	}
	limit_data_check(l);
}

const struct toxic_type toxic_limit_data = {
	.name = "limit_data",
	.doc = "closes the connection after bytes bytes",
	.attrs = limit_data_attrs,
	.state_size = sizeof(struct limit_data),
	.start = limit_data_check,
	.data = limit_data_data,
	.update = limit_data_check,
};
