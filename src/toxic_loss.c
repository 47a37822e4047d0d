/*
 * loss (ext, UDP only): each datagram in the stream is dropped with
 * probability probability (0 to 1, kept in parts per billion). The old
 * probability_ppm, in parts per million, is the same setting. The draws
 * come one per datagram, in order, from the link's generator, keyed by
 * (seed, proxy, flow number, stream, toxic name): a replay with the same
 * seed and the same datagrams in each flow loses the same ones.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "toxic_types.h"

enum { A_PROBABILITY };

#define LOSS_PARTS	1000000000	/* of a probability: 1e-9 resolution */

/* clang-format off */
static const struct toxic_attr loss_attrs[] = {
	{ "probability",	0, LOSS_PARTS,	0,
	    TOXIC_A_REQUIRED | TOXIC_A_UNIT },
	{ "probability_ppm",	0, 1000000,	0, TOXIC_A_ALIAS },
	{ NULL,			0, 0,		0, 0 },
};
/* clang-format on */

/*
 * A draw below probability in parts per billion. For a probability in
 * whole ppm this drops the datagrams a draw in ppm did: Lemire's method
 * scales the same 64 bits, and redraws (which would shift the sequence)
 * about once in 2e10 draws. Seeds replay as before.
 */
static void
loss_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	if (link_random_range(l, LOSS_PARTS) <
	    (uint64_t)link_attr(l, A_PROBABILITY))
		evbuffer_drain(buf, evbuffer_get_length(buf));
	else
		link_forward(l, buf, t_ns);
}

const struct toxic_type toxic_loss = {
	.name = "loss",
	.doc = "drops each datagram with probability (0 to 1)",
	.attrs = loss_attrs,
	.flags = TOXIC_F_UDP_ONLY,
	.data = loss_data,
};
