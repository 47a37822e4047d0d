/*
 * What a proxy remembers of its connections once they are closed: the
 * last HISTORY_MAX of them, with the verdict (who closed, how, how long
 * into the fault) and their totals, for GET
 * /proxies/{proxy}/connections?closed=N; and the time of each peer's
 * last close, so a new connection knows how long its client waited
 * before it tried again (retry_gap_ms). Both are rings: a fixed cost per
 * proxy, whatever the connection rate.
 *
 * An entry is kept as its JSON text, one allocation, not as a tree of
 * them: entries are made while a burst of connections ends, among the
 * burst's buffers, and a few thousand small objects scattered through the
 * heap would pin tens of MB of it after the buffers are freed.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "addr.h"
#include "history.h"
#include "log.h"
#include "util.h"

/* A peer's close: its host (family and IP, no port), and when. */
struct history_close {
	uint8_t	 host[1 + 16];
	uint64_t t_closed;
};

/*
 * Every loop's sessions record their closes here (worker.c), once per
 * connection, never while moving bytes: one lock guards it all.
 */
struct history {
	pthread_mutex_t	     lock;
	char		    *ring[HISTORY_MAX]; /* entries, or NULL */
	uint64_t	     next;		/* entries ever added */
	struct history_close closes[HISTORY_MAX];
	uint64_t	     next_close;
	uint64_t	     t_first; /* ns: the first accept; 0: none */
};

struct history *
history_new(void)
{
	struct history *h;

	h = xcalloc(1, sizeof(*h));
	if ((errno = pthread_mutex_init(&h->lock, NULL)) != 0)
		fatal("pthread_mutex_init");
	return (h);
}

void
history_free(struct history *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < HISTORY_MAX; i++)
		free(h->ring[i]);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/*
 * A client is the same client whatever port it connects from; over a
 * unix socket, every client is one (they have no address).
 */
static void
history_host(const struct addr *peer, uint8_t host[1 + 16])
{
	const struct sockaddr_in  *sin;
	const struct sockaddr_in6 *sin6;

	memset(host, 0, 1 + 16);
	host[0] = (uint8_t)addr_family(peer);
	if (addr_family(peer) == AF_INET) {
		sin = (const struct sockaddr_in *)&peer->ss;
		memcpy(host + 1, &sin->sin_addr, sizeof(sin->sin_addr));
	} else if (addr_family(peer) == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)&peer->ss;
		memcpy(host + 1, &sin6->sin6_addr, sizeof(sin6->sin6_addr));
	}
}

/*
 * A connection was accepted at t_accept from peer: the ns since that
 * peer's last close (its retry gap), or -1 if none is remembered.
 */
int64_t
history_accept(struct history *h, const struct addr *peer, uint64_t t_accept)
{
	struct history_close *c;
	uint8_t		      host[1 + 16];
	uint64_t	      i, first;
	int64_t		      gap = -1;

	history_host(peer, host);
	pthread_mutex_lock(&h->lock);
	if (h->t_first == 0)
		h->t_first = t_accept;
	first = h->next_close > HISTORY_MAX ? h->next_close - HISTORY_MAX : 0;
	for (i = h->next_close; i > first; i--) {
		c = &h->closes[(i - 1) % HISTORY_MAX];
		if (memcmp(c->host, host, sizeof(host)) == 0 &&
		    t_accept >= c->t_closed) {
			gap = (int64_t)(t_accept - c->t_closed);
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	return (gap);
}

/* The ns since the proxy's first connection, for an accept time. */
uint64_t
history_since_first(struct history *h, uint64_t t_accept)
{
	uint64_t first;

	pthread_mutex_lock(&h->lock);
	first = h->t_first;
	pthread_mutex_unlock(&h->lock);
	return (first != 0 && t_accept >= first ? t_accept - first : 0);
}

/* peer closed (or was closed) at t_closed. */
void
history_close(struct history *h, const struct addr *peer, uint64_t t_closed)
{
	struct history_close *c;

	pthread_mutex_lock(&h->lock);
	c = &h->closes[h->next_close++ % HISTORY_MAX];
	history_host(peer, c->host);
	c->t_closed = t_closed;
	pthread_mutex_unlock(&h->lock);
}

/* Remember a closed connection's entry (taken). */
void
history_add(struct history *h, json_t *entry)
{
	char **slot, *text, *old;

	text = json_dumps(entry, JSON_COMPACT);
	json_decref(entry);
	if (text == NULL)
		return; /* out of memory: the entry is lost, nothing else */
	pthread_mutex_lock(&h->lock);
	slot = &h->ring[h->next++ % HISTORY_MAX];
	old = *slot;
	*slot = text;
	pthread_mutex_unlock(&h->lock);
	free(old);
}

/* The last n closed connections, oldest first. */
json_t *
history_json(struct history *h, size_t n)
{
	json_t	*a = json_array();
	uint64_t i, first;

	if (n > HISTORY_MAX)
		n = HISTORY_MAX;
	pthread_mutex_lock(&h->lock);
	first = h->next > n ? h->next - n : 0;
	for (i = first; i < h->next; i++)
		json_array_append_new(a,
		    json_loads(h->ring[i % HISTORY_MAX], 0, NULL));
	pthread_mutex_unlock(&h->lock);
	return (a);
}
