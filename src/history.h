/*
 * A proxy's closed connections and its peers' last closes (history.c).
 */
#ifndef TARDY_HISTORY_H
#define TARDY_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct addr;
struct history;

/* Closed connections a proxy remembers (?closed=N); peers' closes too. */
#define HISTORY_MAX	256

struct history *history_new(void);
void		history_free(struct history *);
int64_t		history_accept(struct history *, const struct addr *, uint64_t);
uint64_t	history_since_first(struct history *, uint64_t);
void		history_close(struct history *, const struct addr *, uint64_t);
void		history_add(struct history *, json_t *);
json_t	       *history_json(struct history *, size_t);

#endif
