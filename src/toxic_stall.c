/*
 * stall (ext): tardyd stops reading the stream's source. Once the kernel
 * buffers between fill, the sender's send() blocks and its send timeout
 * fires. Whatever was already read when the stall began is held and
 * passed on, in order, when it ends.
 */
#include "autoconf.h"

#include "toxic_types.h"

struct stall {
	struct chunkq q;
};

static void
stall_start(struct link *l)
{
	link_stall(l, 1);
}

static void
stall_data(struct link *l, struct evbuffer *buf, uint64_t t_ns)
{
	chunkq_push(l, &((struct stall *)link_state(l))->q, buf, t_ns);
}

static void
stall_eof(struct link *l)
{
	chunkq_push_eof(&((struct stall *)link_state(l))->q, 0);
}

static void
stall_stop(struct link *l)
{
	link_stall(l, 0);
	chunkq_flush(l, &((struct stall *)link_state(l))->q);
}

static void
stall_free(struct link *l)
{
	chunkq_free(&((struct stall *)link_state(l))->q);
}

const struct toxic_type toxic_stall = {
	.name = "stall",
	.no_udp = "UDP has no flow control: a sender never blocks, "
		  "datagrams are dropped; use blackhole or loss",
	.doc = "stops reading the source, so the sender's send() blocks",
	.state_size = sizeof(struct stall),
	.start = stall_start,
	.stop = stall_stop,
	.data = stall_data,
	.eof = stall_eof,
	.free = stall_free,
};
