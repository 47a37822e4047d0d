/*
 * The toxic types, one file each, and the chunk queue several of them use
 * to hold data for later. Adding a type: write toxic_NAME.c, declare it
 * here, list it in toxic.c's table and in Makefile.am.
 */
#ifndef TARDY_TOXIC_TYPES_H
#define TARDY_TOXIC_TYPES_H

#include <sys/queue.h>

#include <stdint.h>

#include "toxic.h"

extern const struct toxic_type toxic_noop;
extern const struct toxic_type toxic_latency;
extern const struct toxic_type toxic_bandwidth;
extern const struct toxic_type toxic_slow_close;
extern const struct toxic_type toxic_timeout;
extern const struct toxic_type toxic_reset_peer;
extern const struct toxic_type toxic_slicer;
extern const struct toxic_type toxic_limit_data;
extern const struct toxic_type toxic_blackhole;
extern const struct toxic_type toxic_stall;
extern const struct toxic_type toxic_refuse;
extern const struct toxic_type toxic_drop_syn;
extern const struct toxic_type toxic_loss;
extern const struct toxic_type toxic_duplicate;

/* Data (or an EOF) a link holds, each piece with a time. */
struct chunk {
	TAILQ_ENTRY(chunk) entry;
	struct evbuffer	  *buf; /* NULL: EOF */
	uint64_t	   t_ns;
};
TAILQ_HEAD(chunkq, chunk);

void chunkq_push(struct link *, struct chunkq *, struct evbuffer *, uint64_t);
void chunkq_push_eof(struct chunkq *, uint64_t);
void chunkq_forward_head(struct link *, struct chunkq *);
void chunkq_flush(struct link *, struct chunkq *);
void chunkq_free(struct chunkq *);

#endif
