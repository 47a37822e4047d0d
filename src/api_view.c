/*
 * What the API shows: proxies and toxics in Toxiproxy's JSON form, and
 * the read-only endpoints (/version, /proxies/{proxy}/connections,
 * /events, /metrics).
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "addr.h"
#include "api.h"
#include "api_handler.h"
#include "events.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"

/* Toxiproxy lists upstream toxics before downstream ones. */
json_t *
api_view_toxics(struct proxy *p)
{
	const enum toxic_stream order[] = { TOXIC_UPSTREAM, TOXIC_DOWNSTREAM };
	struct toxic	       *t;
	json_t		       *a = json_array();
	size_t			i;

	for (i = 0; i < 2; i++) {
		TAILQ_FOREACH(t, &p->toxics, entry) {
			if (t->stream == order[i])
				json_array_append_new(a, toxic_json(t));
		}
	}
	return (a);
}

json_t *
api_view_proxy(struct proxy *p)
{
	char buf[ADDR_STRLEN];

	/* Never enabled, it shows the address it was given, as Toxiproxy. */
	return (json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:o}", "name",
	    p->name, "listen",
	    p->started ? addr_fmt(&p->bound, buf, sizeof(buf)) : p->listen_str,
	    "upstream", p->upstream_str, "enabled", p->enabled, "protocol",
	    p->protocol == PROTO_UDP ? "udp" : "tcp", "upstream_failure",
	    p->upstream_reset ? "reset" : "close", "toxics",
	    api_view_toxics(p)));
}

/* Byte for byte as Toxiproxy writes it, for clients that compare. */
void
api_view_version(struct api_req *ctx)
{
	struct evbuffer *out;

	if ((out = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	evbuffer_add_printf(out, "{\"version\": \"%s\"}\n", PACKAGE_VERSION);
	api_send(ctx, 200, "application/json;charset=utf-8", out);
	evbuffer_free(out);
}

/* Names of the toxics acting on a direction right now. */
static void
api_view_active_links(json_t *a, struct dir *d)
{
	struct link *l;

	TAILQ_FOREACH(l, &d->links, entry) {
		if (l->state == LINK_ACTIVE)
			json_array_append_new(a, json_string(l->toxic->name));
	}
}

void
api_view_connections(struct api_req *ctx)
{
	struct proxy   *p;
	struct session *s;
	json_t	       *a, *c, *toxics;
	char		buf[ADDR_STRLEN];
	uint64_t	now = util_now_ns();

	if ((p = api_find_proxy(ctx)) == NULL)
		return;
	a = json_array();
	TAILQ_FOREACH(s, &p->sessions, entry) {
		toxics = json_array();
		api_view_active_links(toxics, &s->up);
		api_view_active_links(toxics, &s->down);
		c = json_pack("{s:I, s:s, s:s, s:I, s:I, s:I, s:o}", "id",
		    (json_int_t)s->id, "peer",
		    addr_fmt(&s->peer, buf, sizeof(buf)), "state",
		    session_state_name(s->state), "bytes_up",
		    (json_int_t)s->up.bytes, "bytes_down",
		    (json_int_t)s->down.bytes, "age_ms",
		    (json_int_t)((now - s->t_accept) / 1000000), "toxics",
		    toxics);
		if (s->up.dgram)
			json_object_update_new(c,
			    json_pack("{s:s, s:I, s:I}", "protocol", "udp",
				"datagrams_up", (json_int_t)s->up.dgrams,
				"datagrams_down", (json_int_t)s->down.dgrams));
		json_array_append_new(a, c);
	}
	api_reply(ctx, 200, a);
}

/* ?since=ID: a plain decimal, no sign, no hex, no octal. */
static int
api_view_parse_since(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return (-1);
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return (-1);
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return (0);
}

void
api_view_events(struct api_req *ctx)
{
	struct evkeyvalq query;
	const char	*q, *since;
	uint64_t	 id = 0;
	int		 bad = 0;

	TAILQ_INIT(&query);
	if ((q = api_query(ctx)) != NULL) {
		if (evhttp_parse_query_str(q, &query) == -1)
			bad = 1;
		else if ((since = evhttp_find_header(&query, "since")) !=
			NULL &&
		    api_view_parse_since(since, &id) == -1)
			bad = 1;
		evhttp_clear_headers(&query);
	}
	if (bad) {
		api_error(ctx, 400, "since must be a non-negative integer");
		return;
	}
	api_reply(ctx, 200, events_json(api_tardy(ctx)->events, id));
}

void
api_view_metrics(struct api_req *ctx)
{
	struct evbuffer *out;

	if ((out = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	api_metrics_render(api_tardy(ctx), out);
	api_send(ctx, 200, "text/plain; version=0.0.4; charset=utf-8", out);
	evbuffer_free(out);
}
