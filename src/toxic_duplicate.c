/*
 * duplicate (ext, UDP only): each datagram in the stream is sent twice,
 * back to back, with probability probability (0 to 1, kept in parts per
 * billion; probability_ppm, in parts per million, is the same setting).
 * The draws come one per datagram, in order, from the link's generator,
 * as loss's do.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "log.h"
#include "toxic_types.h"

enum { A_PROBABILITY };

#define DUPLICATE_PARTS	1000000000	/* of a probability, as loss's */

/* clang-format off */
static const struct toxic_attr duplicate_attrs[] = {
	{ "probability",	0, DUPLICATE_PARTS, 0,
	    TOXIC_A_REQUIRED | TOXIC_A_UNIT },
	{ "probability_ppm",	0, 1000000,	0, TOXIC_A_ALIAS },
	{ NULL,			0, 0,		0, 0 },
};
/* clang-format on */

static void
duplicate_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	struct evbuffer *copy;
	size_t		 len = evbuffer_get_length(buf);

	if (link_random_range(l, DUPLICATE_PARTS) >=
	    (uint64_t)link_attr(l, A_PROBABILITY)) {
		link_forward(l, buf, t_ns);
		return;
	}
	if ((copy = evbuffer_new()) == NULL ||
	    evbuffer_add(copy, evbuffer_pullup(buf, -1), len) == -1)
		fatalx("evbuffer_add");
	link_forward(l, buf, t_ns);
	link_forward(l, copy, t_ns);
	evbuffer_free(copy);
}

const struct toxic_type toxic_duplicate = {
	.name = "duplicate",
	.doc = "sends each datagram twice with probability (0 to 1)",
	.attrs = duplicate_attrs,
	.flags = TOXIC_F_UDP_ONLY,
	.data = duplicate_data,
};
