/*
 * loss (ext, UDP only): each datagram in the stream is dropped with
 * probability probability_ppm parts per million (500000 = half). The
 * draws come one per datagram, in order, from the link's generator,
 * keyed by (seed, proxy, flow number, stream, toxic name): a replay with
 * the same seed and the same datagrams in each flow loses the same ones.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "toxic_types.h"

enum { A_PPM };

static const struct toxic_attr loss_attrs[] = {
	{ "probability_ppm",	0, 1000000,	0, 1 },
	{ NULL,			0, 0,		0, 0 },
};

static void
loss_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	if (link_random_range(l, 1000000) < (uint64_t)link_attr(l, A_PPM))
		evbuffer_drain(buf, evbuffer_get_length(buf));
	else
		link_forward(l, buf, t_ns);
}

const struct toxic_type toxic_loss = {
	.name = "loss",
	.doc = "drops each datagram with probability_ppm per million",
	.attrs = loss_attrs,
	.flags = TOXIC_F_UDP_ONLY,
	.data = loss_data,
};
