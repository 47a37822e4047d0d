/*
 * A bounded ring of recent connection and toxic events, for GET /events
 * and the debug log.
 */
#ifndef TARDY_EVENTS_H
#define TARDY_EVENTS_H

#include <stdint.h>

#include <jansson.h>

struct event;
struct link;
struct session;
struct tardy;

enum event_kind {
	EVENT_ACCEPT,
	EVENT_CONNECTED,
	EVENT_CLOSE,
	EVENT_TOXIC_ACTED,
	EVENT_TOXIC_SKIPPED,
};

#define EVENTS_MAX	4096

struct events *events_new(struct tardy *);
void	       events_free(struct events *);
void	       events_session(struct session *, enum event_kind, const char *);
void	       events_toxic(struct link *, enum event_kind, double);
json_t	      *events_json(struct events *, uint64_t);
uint64_t       events_last_id(struct events *);
void	       events_set_wake(struct events *, struct event *);
const char    *events_kind_name(enum event_kind);

#endif
