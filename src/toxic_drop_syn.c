/*
 * drop_syn (ext): new connection attempts are never answered, so the
 * client's connect() times out; established connections keep working.
 * The listener's accept queue is shrunk and filled (see proxy.c), which
 * makes the kernel drop further SYNs; no root needed.
 */
#include "autoconf.h"

#include "proxy.h"
#include "toxic_types.h"

static void
drop_syn_listener_start(struct toxic *t)
{
	proxy_drop_syn(t->proxy, 1);
}

static void
drop_syn_listener_stop(struct toxic *t)
{
	proxy_drop_syn(t->proxy, 0);
}

const struct toxic_type toxic_drop_syn = {
	.name = "drop_syn",
	.no_udp = "UDP has no handshake (SYN) to drop; use blackhole or loss",
	.doc = "leaves new connection attempts unanswered",
	.flags = TOXIC_F_LISTENER,
	.listener_start = drop_syn_listener_start,
	.listener_stop = drop_syn_listener_stop,
};
