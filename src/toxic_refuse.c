/*
 * refuse (ext): new connections are refused (ECONNREFUSED at once) while
 * tardyd keeps the port; open connections are untouched.
 */
#include "autoconf.h"

#include "proxy.h"
#include "toxic_types.h"

static void
refuse_listener_start(struct toxic *t)
{
	proxy_refuse(t->proxy, 1);
}

static void
refuse_listener_stop(struct toxic *t)
{
	proxy_refuse(t->proxy, 0);
}

const struct toxic_type toxic_refuse = {
	.name = "refuse",
	.no_udp = "a user-space proxy cannot make the kernel answer ICMP "
		  "port unreachable on a port it holds; use blackhole or loss",
	.doc = "refuses new connections, keeping the port",
	.flags = TOXIC_F_LISTENER,
	.listener_start = refuse_listener_start,
	.listener_stop = refuse_listener_stop,
};
