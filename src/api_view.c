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
#include "history.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"

/* The longest long-poll of /events; a client that wants more asks again. */
#define API_VIEW_WAIT_MAX	60000

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
static int api_view_query_number(struct api_req *, const char *, uint64_t *);

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

/*
 * GET /proxies/{proxy}/connections: the open ones; with ?closed=N (ext)
 * the last N closed ones first (at most HISTORY_MAX), oldest first.
 */
void
api_view_connections(struct api_req *ctx)
{
	struct proxy *p;
	json_t	     *a, *open;
	uint64_t      closed = 0;

	if ((p = api_find_proxy(ctx)) == NULL ||
	    api_view_query_number(ctx, "closed", &closed) == -1)
		return;
	a = closed > 0 ? history_json(p->history, (size_t)closed) :
			 json_array();
	json_array_extend(a, open = proxy_sessions_json(p));
	json_decref(open);
	api_reply(ctx, 200, a);
}

/* A query value: a plain decimal, no sign, no hex, no octal. */
static int
api_view_parse_number(const char *s, uint64_t *out)
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

/*
 * The decimal value of ?key= in *out (left alone when absent). Returns
 * 0, or -1 after replying 400 naming the key.
 */
static int
api_view_query_number(struct api_req *ctx, const char *key, uint64_t *out)
{
	struct evkeyvalq query;
	const char	*q, *v;
	int		 bad = 0;

	TAILQ_INIT(&query);
	if ((q = api_query(ctx)) != NULL) {
		if (evhttp_parse_query_str(q, &query) == -1)
			bad = 1;
		else if ((v = evhttp_find_header(&query, key)) != NULL &&
		    api_view_parse_number(v, out) == -1)
			bad = 1;
		evhttp_clear_headers(&query);
	}
	if (bad) {
		api_error(ctx, 400, "%s must be a non-negative integer", key);
		return (-1);
	}
	return (0);
}

/*
 * GET /events?since=ID: the events after ID. With &wait=MS (ext), when
 * there are none yet, the request is held (api_hold) until one is
 * recorded, then answered with it and whatever came in the same pass of
 * the loop, or answered [] after MS. This runs again at each of those.
 */
void
api_view_events(struct api_req *ctx)
{
	struct events *ev = api_tardy(ctx)->events;
	uint64_t       id = 0, wait = 0;

	if (api_view_query_number(ctx, "since", &id) == -1 ||
	    api_view_query_number(ctx, "wait", &wait) == -1)
		return;
	if (wait > API_VIEW_WAIT_MAX) {
		api_error(ctx, 400, "wait must be at most %d (ms)",
		    API_VIEW_WAIT_MAX);
		return;
	}
	if (wait > 0 && id >= events_last_id(ev) && api_hold(ctx, wait) != 0)
		return;
	api_reply(ctx, 200, events_json(ev, id));
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
