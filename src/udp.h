/*
 * UDP proxies: datagrams from each client address form a flow, a session
 * in datagram mode with its own connected socket to the upstream.
 */
#ifndef TARDY_UDP_H
#define TARDY_UDP_H

#include <sys/types.h>

struct dir;
struct evbuffer;
struct proxy;
struct session;

/*
 * What toxics may hold per flow direction before new datagrams are
 * dropped, as a full router queue would: UDP has no backpressure.
 */
#define UDP_HELD_MAX	(4 * 1024 * 1024)

void udp_start(struct proxy *);
void udp_free(struct proxy *);
void udp_flow_free(struct session *);
void udp_deliver(struct dir *, struct evbuffer *);

#endif
