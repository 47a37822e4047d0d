/*
 * The chunk queue: data a toxic holds back, in order, each chunk with the
 * time it is due. A zeroed queue is a valid empty one. Held bytes are accounted to the link, so a direction's
 * backpressure covers what its toxics hold.
 *
 * Each chunk also costs its struct, an evbuffer and a chain of at least
 * 1 KiB, whatever its size: that is accounted too (CHUNK_COST), or a
 * slicer's one-byte pieces held here would cost a thousand times the
 * bytes the backpressure counts.
 */
#include "autoconf.h"

#include <stdlib.h>

#include <event2/buffer.h>

#include "log.h"
#include "toxic.h"
#include "toxic_types.h"
#include "util.h"

#define CHUNK_COST	1280

void
chunkq_push(struct link *l, struct chunkq *q, struct evbuffer *buf,
    uint64_t t_ns)
{
	struct chunk *c;
	size_t	      n = evbuffer_get_length(buf);

	c = xcalloc(1, sizeof(*c));
	if ((c->buf = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	evbuffer_add_buffer(c->buf, buf);
	c->t_ns = t_ns;
	if (TAILQ_EMPTY(q))
		TAILQ_INIT(q);
	TAILQ_INSERT_TAIL(q, c, entry);
	link_held(l, (ssize_t)(n + CHUNK_COST));
}

void
chunkq_push_eof(struct chunkq *q, uint64_t t_ns)
{
	struct chunk *c;

	c = xcalloc(1, sizeof(*c));
	c->t_ns = t_ns;
	if (TAILQ_EMPTY(q))
		TAILQ_INIT(q);
	TAILQ_INSERT_TAIL(q, c, entry);
}

/* Pass the first chunk on. */
void
chunkq_forward_head(struct link *l, struct chunkq *q)
{
	struct chunk *c = TAILQ_FIRST(q);

	TAILQ_REMOVE(q, c, entry);
	if (c->buf == NULL)
		link_forward_eof(l);
	else {
		link_held(l,
		    -(ssize_t)(evbuffer_get_length(c->buf) + CHUNK_COST));
		link_forward(l, c->buf, c->t_ns);
		evbuffer_free(c->buf);
	}
	free(c);
}

void
chunkq_flush(struct link *l, struct chunkq *q)
{
	while (!TAILQ_EMPTY(q))
		chunkq_forward_head(l, q);
}

void
chunkq_free(struct chunkq *q)
{
	struct chunk *c;

	while ((c = TAILQ_FIRST(q)) != NULL) {
		TAILQ_REMOVE(q, c, entry);
		if (c->buf != NULL)
			evbuffer_free(c->buf);
		free(c);
	}
}
