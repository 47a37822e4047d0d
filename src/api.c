/*
 * The control API's server: Toxiproxy's v2 HTTP API, so every Toxiproxy
 * client drives tardyd unchanged, plus tardy's extensions (/metrics,
 * /events, /proxies/{p}/connections).
 *
 * It is served by libevent's evhttp on the daemon's own event loop and
 * never blocks it. This file takes a request from evhttp, checks who is
 * asking (api_auth.c), routes it, looks up the host names its body holds
 * (a resolver batch: the request is handled only once every name it
 * needs is known), and gives the handlers (api_proxy.c, api_toxic.c,
 * api_view.c) what they need to read it and reply (api_handler.h). The
 * handlers change the daemon only through the control layer (control.c).
 * A handler with nothing to answer yet (a long-poll of /events) holds its
 * request here, and is run again when an event is recorded or its time
 * is up.
 *
 * Status codes, messages and the order in which errors are checked follow
 * Toxiproxy's api.go; doc/api.md lists where and why tardy differs.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <jansson.h>

#include "addr.h"
#include "api.h"
#include "api_auth.h"
#include "api_handler.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "proxy.h"
#include "resolver.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"

#define API_BACKLOG		128
#define API_MAX_BODY		(1024 * 1024)
#define API_MAX_BODY_STR	"1048576"
#define API_MAX_HEADERS		(64 * 1024)
#define API_TIMEOUT_S		30	/* idle or slow clients */
#define API_BACKOFF_MS		100	/* out of descriptors */
#define API_MAX_SEGMENTS	4
#define API_MAX_ARGS		2
#define API_ERR_LEN		512
#define API_MAX_HELD		1024	/* long-polls; each holds a socket */

/* Every method evhttp knows, so the wrong ones get a JSON 405 from us. */
#define API_ALL_METHODS	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | \
	EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | \
	EVHTTP_REQ_PATCH)

struct api_req;

struct api_route {
	const char *path[API_MAX_SEGMENTS + 1]; /* "*": an arg */
	int	    methods;
	int	    flags;
	void (*handler)(struct api_req *);
};
#define API_F_ADDRS	0x1	/* the body may hold host names */

struct api_req {
	TAILQ_ENTRY(api_req)	entry; /* api->waiting */
	struct api	       *api;
	struct evhttp_request  *req;
	const struct api_route *route;
	char		       *arg[API_MAX_ARGS];
	json_t		       *body;
	char		       *body_err;
	int			body_parsed;
	int			replied;
	struct resolver_batch  *names; /* host names it needs */

	/* Held (api_hold) from its first hold to its reply. */
	struct evhttp_connection *conn;
	struct event		 *deadline;
	struct event		 *gone; /* its client's socket, for a close */
	int			  held; /* on api->held */
	int			  expired; /* the deadline passed */
};
TAILQ_HEAD(api_req_list, api_req);

struct api {
	struct tardy	   *tardy;
	struct evhttp	   *http;
	struct addr	    bound;
	char		   *token;
	struct api_req_list waiting;   /* for host name lookups */
	struct api_req_list held;      /* for events (api_hold) */
	size_t		    nheld;     /* held, or being run again */
	struct event	   *wake;      /* a new event (events_set_wake) */
	uint64_t	    tick_us;   /* of libevent's clock */
	uint32_t	    next_id;   /* X-Toxiproxy-Request-Id */
	int		    rewriting; /* in api_output_cb */
};

/* clang-format off */
static const struct api_route api_routes[] = {
	{ { "version" },		EVHTTP_REQ_GET,		0,
	    api_view_version },
	{ { "proxies" },		EVHTTP_REQ_GET,		0,
	    api_proxy_index },
	{ { "proxies" },		EVHTTP_REQ_POST,	API_F_ADDRS,
	    api_proxy_create },
	{ { "populate" },		EVHTTP_REQ_POST,	API_F_ADDRS,
	    api_proxy_populate },
	{ { "reset" },			EVHTTP_REQ_POST,	0,
	    api_proxy_reset },
	{ { "proxies", "*" },		EVHTTP_REQ_GET,		0,
	    api_proxy_show },
	{ { "proxies", "*" },		EVHTTP_REQ_POST | EVHTTP_REQ_PATCH,
	    API_F_ADDRS,		api_proxy_update },
	{ { "proxies", "*" },		EVHTTP_REQ_DELETE,	0,
	    api_proxy_delete },
	{ { "proxies", "*", "toxics" },	EVHTTP_REQ_GET,		0,
	    api_toxic_index },
	{ { "proxies", "*", "toxics" },	EVHTTP_REQ_POST,	0,
	    api_toxic_create },
	{ { "proxies", "*", "toxics", "*" }, EVHTTP_REQ_GET,	0,
	    api_toxic_show },
	{ { "proxies", "*", "toxics", "*" },
	    EVHTTP_REQ_POST | EVHTTP_REQ_PATCH, 0,	api_toxic_update },
	{ { "proxies", "*", "toxics", "*" }, EVHTTP_REQ_DELETE, 0,
	    api_toxic_delete },
	{ { "proxies", "*", "connections" }, EVHTTP_REQ_GET,	0,
	    api_view_connections },
	{ { "events" },			EVHTTP_REQ_GET,		0,
	    api_view_events },
	{ { "metrics" },		EVHTTP_REQ_GET,		0,
	    api_view_metrics },
};
/* clang-format on */
#define API_NROUTES	(sizeof(api_routes) / sizeof(api_routes[0]))

/* clang-format off */
static const struct {
	int		 method;
	const char	*name;
} api_methods[] = {
	{ EVHTTP_REQ_GET,	"GET" },
	{ EVHTTP_REQ_POST,	"POST" },
	{ EVHTTP_REQ_PATCH,	"PATCH" },
	{ EVHTTP_REQ_DELETE,	"DELETE" },
	{ EVHTTP_REQ_HEAD,	"HEAD" },
	{ EVHTTP_REQ_PUT,	"PUT" },
	{ EVHTTP_REQ_OPTIONS,	"OPTIONS" },
	{ EVHTTP_REQ_TRACE,	"TRACE" },
	{ EVHTTP_REQ_CONNECT,	"CONNECT" },
};
/* clang-format on */

static void api_dispatch(struct api_req *);
static void api_req_free(struct api_req *);
static void api_hold_end(struct api_req *);

/* --- replies --------------------------------------------------------- */

static const char *
api_method_name(int method)
{
	size_t i;

	for (i = 0; i < sizeof(api_methods) / sizeof(api_methods[0]); i++) {
		if (api_methods[i].method == method)
			return (api_methods[i].name);
	}
	return ("?");
}

/* The request line for the debug log, without control characters. */
static const char *
api_req_describe(struct api_req *ctx, char *buf, size_t len)
{
	const char *uri = evhttp_request_get_uri(ctx->req);
	size_t	    i, n;

	n = (size_t)snprintf(buf, len, "%s ",
	    api_method_name(evhttp_request_get_command(ctx->req)));
	for (i = 0; uri != NULL && uri[i] != '\0' && n + 1 < len; i++, n++)
		buf[n] = isprint((unsigned char)uri[i]) ? uri[i] : '?';
	if (n < len)
		buf[n] = '\0';
	return (buf);
}

/*
 * An id for X-Toxiproxy-Request-Id, which Toxiproxy sends with every
 * reply: 20 characters of base32hex, like the xid it uses, made of the
 * time, the process and a counter.
 */
static const char *
api_request_id(struct api *api, char *buf, size_t len)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuv";
	unsigned char	  raw[12];
	uint32_t	  t = (uint32_t)time(NULL), pid = (uint32_t)getpid();
	uint32_t	  n = api->next_id++;
	size_t		  i, bits = 0, out = 0;
	uint32_t	  acc = 0;

	raw[0] = t >> 24;
	raw[1] = t >> 16;
	raw[2] = t >> 8;
	raw[3] = t;
	raw[4] = pid >> 24;
	raw[5] = pid >> 16;
	raw[6] = pid >> 8;
	raw[7] = pid;
	raw[8] = n >> 24;
	raw[9] = n >> 16;
	raw[10] = n >> 8;
	raw[11] = n;
	for (i = 0; i < sizeof(raw) && out + 1 < len; i++) {
		acc = (acc << 8) | raw[i];
		for (bits += 8; bits >= 5 && out + 1 < len; bits -= 5)
			buf[out++] = digits[(acc >> (bits - 5)) & 31];
	}
	if (bits > 0 && out + 1 < len)
		buf[out++] = digits[(acc << (5 - bits)) & 31];
	buf[out] = '\0';
	return (buf);
}

void
api_send(struct api_req *ctx, int status, const char *type,
    struct evbuffer *body)
{
	char buf[256], id[32];

	if (ctx->replied) {
		log_warnx("api: second reply %d dropped", status);
		return;
	}
	ctx->replied = 1;
	/* The reply may close the connection: its close callback is not ours. */
	api_hold_end(ctx);
	/* Before the reply: evhttp frees a request whose client left. */
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		log_debug("api: %s: %d",
		    api_req_describe(ctx, buf, sizeof(buf)), status);
	if (type != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(ctx->req),
		    "Content-Type", type);
	evhttp_add_header(evhttp_request_get_output_headers(ctx->req),
	    "X-Toxiproxy-Request-Id", api_request_id(ctx->api, id, sizeof(id)));
	/*
	 * A reply to HEAD has no body: evhttp would send one without a
	 * Content-Length, which a keep-alive client reads as the next reply.
	 */
	if (evhttp_request_get_command(ctx->req) == EVHTTP_REQ_HEAD)
		body = NULL;
	/*
	 * Every other reply that may have a body says how long it is.
	 * evhttp adds a Content-Length only in HTTP/1.1 and a 1.0
	 * keep-alive, never to a reply to CONNECT (it takes it for a
	 * tunnel's), yet keeps the connection open after a reply to CONNECT
	 * and after a keep-alive request in any other version it accepts
	 * ("HTTP/0.9", "HTTP/-1.1"): without one, the client cannot tell
	 * where the body ends.
	 */
	if (evhttp_request_get_command(ctx->req) != EVHTTP_REQ_HEAD &&
	    status >= 200 && status != 204 && status != 304) {
		snprintf(buf, sizeof(buf), "%zu",
		    body != NULL ? evbuffer_get_length(body) : (size_t)0);
		evhttp_add_header(evhttp_request_get_output_headers(ctx->req),
		    "Content-Length", buf);
	}
	evhttp_send_reply(ctx->req, status, NULL, body);
}

/* Reply with j (taken), or a 500 if building it failed. */
void
api_reply(struct api_req *ctx, int status, json_t *j)
{
	struct evbuffer *out;
	char		*s;

	if (j == NULL ||
	    (s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15))) ==
		NULL) {
		json_decref(j);
		out = evbuffer_new();
		if (out != NULL)
			evbuffer_add_printf(out,
			    "{\"error\":\"internal error: "
			    "cannot encode the reply\",\"status\":500}\n");
		api_send(ctx, 500, "application/json", out);
		if (out != NULL)
			evbuffer_free(out);
		return;
	}
	json_decref(j);
	if ((out = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	evbuffer_add(out, s, strlen(s));
	evbuffer_add(out, "\n", 1);
	free(s);
	api_send(ctx, status, "application/json", out);
	evbuffer_free(out);
}

void
api_reply_empty(struct api_req *ctx, int status)
{
	api_send(ctx, status, NULL, NULL);
}

/*
 * An error reply, {"error": message, "status": code}. Messages may quote
 * what the client sent, cut to fit: any byte that would not be valid
 * UTF-8 is replaced, so the reply can always be encoded.
 */
void
api_error(struct api_req *ctx, int status, const char *fmt, ...)
{
	va_list ap;
	char	msg[API_ERR_LEN];
	json_t *s;
	size_t	i;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if ((s = json_string(msg)) == NULL) {
		for (i = 0; msg[i] != '\0'; i++) {
			if ((unsigned char)msg[i] >= 0x80)
				msg[i] = '?';
		}
		s = json_string(msg);
	}
	api_reply(ctx, status,
	    json_pack("{s:o, s:i}", "error", s, "status", status));
}

/* --- request bodies -------------------------------------------------- */

/*
 * The body as JSON, parsed on first use; on error the 400 is sent and
 * NULL returned. jansson refuses invalid UTF-8, NUL in strings, numbers
 * that do not fit and nesting deeper than its limit, each with a message
 * we pass on.
 */
static json_t *
api_body_parse(struct api_req *ctx)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(ctx->req);
	json_error_t	 jerr;
	size_t		 len = evbuffer_get_length(in);
	const char	*data;

	if (ctx->body_parsed)
		return (ctx->body);
	ctx->body_parsed = 1;
	data = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	if (data == NULL) {
		ctx->body_err = xstrdup("out of memory");
		return (NULL);
	}
	/* Like Go's json.Decoder, as Toxiproxy reads: what follows is ignored. */
	ctx->body = json_loadb(data, len, JSON_DISABLE_EOF_CHECK, &jerr);
	if (ctx->body == NULL) {
		if (asprintf(&ctx->body_err, "%s",
			len == 0 ? "EOF" : jerr.text) == -1)
			fatal("asprintf");
	}
	return (ctx->body);
}

/* The body, which must be a JSON object if object is set. */
json_t *
api_body(struct api_req *ctx, int object)
{
	json_t *j;

	if ((j = api_body_parse(ctx)) == NULL) {
		api_error(ctx, 400, "bad request body: %s", ctx->body_err);
		return (NULL);
	}
	if (object && !json_is_object(j)) {
		api_error(ctx, 400, "bad request body: expected a JSON object");
		return (NULL);
	}
	return (j);
}

/*
 * Typed fields. Each returns 1 when the field is there, 0 when it is
 * absent or null (as Go's decoder, which leaves the value alone), and -1
 * after replying 400 for a value of the wrong type. "where" is appended
 * to messages (" at proxy 3" for /populate).
 */
int
api_field_string(struct api_req *ctx, json_t *obj, const char *key,
    const char *where, const char **out)
{
	json_t *j = json_object_get(obj, key);

	if (j == NULL || json_is_null(j))
		return (0);
	if (!json_is_string(j)) {
		api_error(ctx, 400, "bad request body: %s must be a string%s",
		    key, where);
		return (-1);
	}
	*out = json_string_value(j);
	return (1);
}

int
api_field_bool(struct api_req *ctx, json_t *obj, const char *key,
    const char *where, int *out)
{
	json_t *j = json_object_get(obj, key);

	if (j == NULL || json_is_null(j))
		return (0);
	if (!json_is_boolean(j)) {
		api_error(ctx, 400,
		    "bad request body: %s must be true or "
		    "false%s",
		    key, where);
		return (-1);
	}
	*out = json_is_true(j);
	return (1);
}

int
api_field_number(struct api_req *ctx, json_t *obj, const char *key, double *out)
{
	json_t *j = json_object_get(obj, key);

	if (j == NULL || json_is_null(j))
		return (0);
	if (!json_is_number(j)) {
		api_error(ctx, 400, "bad request body: %s must be a number",
		    key);
		return (-1);
	}
	*out = json_number_value(j);
	return (1);
}

/* --- host names ------------------------------------------------------ */

/*
 * Parse an address the client sent, with the names looked up for it. An
 * upstream's name is left for when a connection needs it (lazy), unless
 * the proxy is a UDP one, whose flows start from a datagram.
 */
int
api_addr(struct api_req *ctx, const char *spec, int lazy, struct addr *a,
    char *err, size_t errlen)
{
	char host[NI_MAXHOST];
	int  port;

	if (lazy)
		return (addr_parse_lazy(spec, a, err, errlen));
	if (!addr_name(spec, host, sizeof(host), &port))
		return (addr_parse(spec, a, err, errlen));
	return (resolver_batch_get(ctx->names, spec, a, err, errlen));
}

/* A name in a body's field, to look up before the request is handled. */
static void
api_name_add(struct api_req *ctx, json_t *obj, const char *key)
{
	json_t *j = json_object_get(obj, key);

	if (json_is_string(j))
		resolver_batch_add(ctx->names, json_string_value(j));
}

/* Whether a proxy in a body is a UDP one (its own field, or as it is). */
static int
api_body_udp(struct api_req *ctx, json_t *obj)
{
	json_t	     *j = json_object_get(obj, "protocol");
	struct proxy *p;

	if (json_is_string(j))
		return (strcmp(json_string_value(j), "udp") == 0);
	if (ctx->arg[0] != NULL &&
	    (p = tardy_find_proxy(ctx->api->tardy, ctx->arg[0])) != NULL)
		return (p->protocol == PROTO_UDP);
	return (0);
}

/* The host names in a body: listen addresses, UDP upstreams. */
static void
api_names_collect(struct api_req *ctx)
{
	json_t *body, *list, *item;
	size_t	i;

	if ((body = api_body_parse(ctx)) == NULL)
		return;
	list = body;
	if (json_is_object(body) &&
	    json_is_array(json_object_get(body, "proxies")))
		list = json_object_get(body, "proxies");
	if (json_is_object(list)) {
		api_name_add(ctx, list, "listen");
		if (api_body_udp(ctx, list))
			api_name_add(ctx, list, "upstream");
		return;
	}
	json_array_foreach(list, i, item) {
		if (!json_is_object(item))
			continue;
		api_name_add(ctx, item, "listen");
		if (api_body_udp(ctx, item))
			api_name_add(ctx, item, "upstream");
	}
}

static void
api_names_cb(void *arg)
{
	struct api_req *ctx = arg;

	TAILQ_REMOVE(&ctx->api->waiting, ctx, entry);
	api_dispatch(ctx);
}

/*
 * Start looking up the host names the request needs. Returns 1 if it
 * must wait for them (api_names_cb dispatches it once they are in), 0 if
 * it can be handled now.
 */
static int
api_resolve_start(struct api_req *ctx)
{
	ctx->names = resolver_batch_new(ctx->api->tardy->loop.resolver,
	    api_names_cb, ctx);
	api_names_collect(ctx);
	if (resolver_batch_start(ctx->names) == 0)
		return (0);
	TAILQ_INSERT_TAIL(&ctx->api->waiting, ctx, entry);
	return (1);
}

/* --- for the handlers ------------------------------------------------- */

struct tardy *
api_tardy(struct api_req *ctx)
{
	return (ctx->api->tardy);
}

/* The query string of the request's URI, or NULL. */
const char *
api_query(struct api_req *ctx)
{
	const struct evhttp_uri *uri;

	uri = evhttp_request_get_evhttp_uri(ctx->req);
	return (uri != NULL ? evhttp_uri_get_query(uri) : NULL);
}

/* The proxy the path names, or NULL after replying 404. */
struct proxy *
api_find_proxy(struct api_req *ctx)
{
	struct proxy *p;

	if ((p = tardy_find_proxy(ctx->api->tardy, ctx->arg[0])) == NULL)
		api_error(ctx, 404, "proxy not found");
	return (p);
}

/* The toxic of p the path names, or NULL after replying 404. */
struct toxic *
api_find_toxic(struct api_req *ctx, struct proxy *p)
{
	struct toxic *t;

	if ((t = proxy_find_toxic(p, ctx->arg[1])) == NULL)
		api_error(ctx, 404, "toxic not found");
	return (t);
}

/*
 * A unix path a client names must be where the API may put or reach
 * sockets (api_auth.c). Returns 0, or -1 after replying 403.
 */
int
api_unix_allowed(struct api_req *ctx, const char *field, const char *where,
    const struct addr *a)
{
	char err[API_AUTH_MSG_LEN];

	if (addr_family(a) != AF_UNIX ||
	    api_auth_unix_path_ok(addr_unix_path(a), &ctx->api->bound,
		ctx->api->tardy->conf, err, sizeof(err)))
		return (0);
	api_error(ctx, 403, "%s%s: %s", field, where, err);
	return (-1);
}

/* --- routing --------------------------------------------------------- */

/*
 * Split the path into percent-decoded segments. Empty segments (a
 * trailing slash, "//") and NUL bytes match no route. Returns the number
 * of segments, or -1.
 */
static int
api_split_path(const char *path, char **seg, size_t maxseg)
{
	const char *p, *end;
	char	   *raw;
	size_t	    n = 0, len;

	if (path == NULL || *path != '/')
		return (-1);
	for (p = path + 1;; p = end + 1) {
		end = strchr(p, '/');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len == 0 || n == maxseg)
			goto fail;
		if ((raw = strndup(p, len)) == NULL)
			fatal("strndup");
		seg[n] = evhttp_uridecode(raw, 0, &len);
		free(raw);
		if (seg[n] == NULL)
			fatal("evhttp_uridecode");
		if (strlen(seg[n++]) != len)
			goto fail;
		if (end == NULL)
			return ((int)n);
	}
fail:
	while (n > 0)
		free(seg[--n]);
	return (-1);
}

static int
api_route_matches(const struct api_route *r, char **seg, int nseg)
{
	int i;

	for (i = 0; i < nseg; i++) {
		if (r->path[i] == NULL)
			return (0);
		if (strcmp(r->path[i], "*") != 0 &&
		    strcmp(r->path[i], seg[i]) != 0)
			return (0);
	}
	return (r->path[nseg] == NULL);
}

/*
 * Find the route: 404 if no path matches, 405 with an Allow header if
 * the path does but the method does not. Sets ctx->route and the path
 * arguments; returns -1 after replying.
 */
static int
api_route(struct api_req *ctx)
{
	const struct evhttp_uri *uri;
	const struct api_route	*r;
	char			*seg[API_MAX_SEGMENTS], allow[64];
	int			 nseg, i, methods = 0, method, narg;
	size_t			 k, len;

	method = evhttp_request_get_command(ctx->req);
	uri = evhttp_request_get_evhttp_uri(ctx->req);
	nseg = api_split_path(uri != NULL ? evhttp_uri_get_path(uri) : NULL,
	    seg, API_MAX_SEGMENTS);
	for (k = 0; nseg > 0 && k < API_NROUTES; k++) {
		r = &api_routes[k];
		if (!api_route_matches(r, seg, nseg))
			continue;
		methods |= r->methods;
		if ((r->methods & method) == 0)
			continue;
		ctx->route = r;
		for (i = 0, narg = 0; i < nseg; i++) {
			if (strcmp(r->path[i], "*") == 0 && narg < API_MAX_ARGS)
				ctx->arg[narg++] = seg[i];
			else
				free(seg[i]);
		}
		return (0);
	}
	for (i = 0; i < nseg; i++)
		free(seg[i]);
	if (methods == 0) {
		api_error(ctx, 404, "not found");
		return (-1);
	}
	allow[0] = '\0';
	for (k = 0, len = 0; k < sizeof(api_methods) / sizeof(api_methods[0]);
	    k++) {
		if ((methods & api_methods[k].method) && len < sizeof(allow))
			len += (size_t)snprintf(allow + len,
			    sizeof(allow) - len, "%s%s", len > 0 ? ", " : "",
			    api_methods[k].name);
	}
	evhttp_add_header(evhttp_request_get_output_headers(ctx->req), "Allow",
	    allow);
	api_error(ctx, 405, "method not allowed");
	return (-1);
}

static void
api_dispatch(struct api_req *ctx)
{
	ctx->route->handler(ctx);
	if (ctx->held)
		return; /* run again by api_hold_wake_cb or api_hold_expire_cb */
	if (!ctx->replied)
		api_error(ctx, 500, "internal error: no reply");
	api_req_free(ctx);
}

static void
api_req_free(struct api_req *ctx)
{
	size_t i;

	api_hold_end(ctx);
	for (i = 0; i < API_MAX_ARGS; i++)
		free(ctx->arg[i]);
	resolver_batch_free(ctx->names);
	json_decref(ctx->body);
	free(ctx->body_err);
	free(ctx);
}

static void
api_request_cb(struct evhttp_request *req, void *arg)
{
	struct api_req *ctx;
	char		msg[API_AUTH_MSG_LEN];
	int		status;

	ctx = xcalloc(1, sizeof(*ctx));
	ctx->api = arg;
	ctx->req = req;
	/* Who may ask: api_auth.c. */
	if ((status = api_auth_check(req, &ctx->api->bound,
		 ctx->api->tardy->conf, ctx->api->token, msg, sizeof(msg))) !=
	    0)
		api_error(ctx, status, "%s", msg);
	if (status != 0 || api_route(ctx) == -1) {
		api_req_free(ctx);
		return;
	}
	if ((ctx->route->flags & API_F_ADDRS) && api_resolve_start(ctx))
		return; /* api_names_cb dispatches it */
	api_dispatch(ctx);
}

/* --- requests held for events -------------------------------------- */

/*
 * While a request is held, libevent 2.1's evhttp has stopped reading its
 * connection (evhttp_handle_request disables EV_READ until the reply), so
 * it neither notices nor acts on the client leaving: the request and its
 * connection live on until we reply, or until evhttp frees the connection
 * (evhttp_free, or evhttp_connection_free below), which calls the close
 * callback first. A held request therefore watches the socket itself, so
 * a client that gives up frees its slot and its descriptor at once rather
 * than at its deadline, and takes that close callback, so that nothing of
 * it outlives its connection.
 */

static void
api_hold_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api     *api = arg;
	struct api_req *ctx;
	size_t		n;

	/* Each once: those still waiting are held again at the tail. */
	for (n = api->nheld; n > 0 && (ctx = TAILQ_FIRST(&api->held)) != NULL;
	    n--) {
		TAILQ_REMOVE(&api->held, ctx, entry);
		ctx->held = 0;
		api_dispatch(ctx);
	}
}

static void
api_hold_expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_req *ctx = arg;

	TAILQ_REMOVE(&ctx->api->held, ctx, entry);
	ctx->held = 0;
	ctx->expired = 1;
	api_dispatch(ctx);
}

/*
 * The client's socket is readable while it waits: it left (EOF, or a
 * reset), and the connection and the request go now. Bytes mean a next
 * request pipelined behind this one: the client is there, and as the
 * socket stays readable the watch stops (the wait ends on time).
 */
static void
api_hold_gone_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_req		 *ctx = arg;
	struct evhttp_connection *conn = ctx->conn;
	char			  c, buf[256];
	ssize_t			  n;

	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == -1 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n > 0) {
		event_del(ctx->gone);
		return;
	}
	log_debug("api: %s: the client left",
	    api_req_describe(ctx, buf, sizeof(buf)));
	api_req_free(ctx);
	evhttp_connection_free(conn); /* and the request */
}

/*
 * evhttp is freeing the connection of a held request (evhttp_free at
 * shutdown). It frees the request next, unless it has already let go of
 * it (a request it failed while held, which evhttp 2.1 does not do while
 * it is not reading): then the request is ours to free.
 */
static void
api_hold_close_cb(struct evhttp_connection *conn, void *arg)
{
	struct api_req	      *ctx = arg;
	struct evhttp_request *req = ctx->req;

	api_req_free(ctx);
	if (evhttp_request_get_connection(req) == NULL)
		evhttp_request_free(req);
}

/* The first hold: its deadline, the watch on its socket. */
static void
api_hold_start(struct api_req *ctx, uint64_t ms)
{
	struct api	  *api = ctx->api;
	struct event_base *base = api->tardy->loop.base;
	struct timeval	   tv;
	evutil_socket_t	   fd;
	uint64_t	   us;

	ctx->conn = evhttp_request_get_connection(ctx->req);
	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(ctx->conn));
	/*
	 * libevent's timers run on a clock that ticks (tardy.c): one may go
	 * off up to a tick before its time. A wait must never end early, so
	 * it is a tick longer.
	 */
	us = ms * 1000 + api->tick_us;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	if ((ctx->deadline = evtimer_new(base, api_hold_expire_cb, ctx)) ==
		NULL ||
	    evtimer_add(ctx->deadline, &tv) == -1)
		fatalx("api: evtimer_new");
	if ((ctx->gone = event_new(base, fd, EV_READ | EV_PERSIST,
		 api_hold_gone_cb, ctx)) == NULL ||
	    event_add(ctx->gone, NULL) == -1)
		fatalx("api: event_new");
	evhttp_connection_set_closecb(ctx->conn, api_hold_close_cb, ctx);
	if (api->nheld++ == 0)
		events_set_wake(api->tardy->events, api->wake);
}

/* The request waits no more: it is answered, or gone. */
static void
api_hold_end(struct api_req *ctx)
{
	struct api *api = ctx->api;

	if (ctx->deadline == NULL)
		return;
	if (ctx->held)
		TAILQ_REMOVE(&api->held, ctx, entry);
	ctx->held = 0;
	event_free(ctx->deadline);
	event_free(ctx->gone);
	ctx->deadline = ctx->gone = NULL;
	if (ctx->conn != NULL)
		evhttp_connection_set_closecb(ctx->conn, NULL, NULL);
	ctx->conn = NULL;
	if (--api->nheld == 0)
		events_set_wake(api->tardy->events, NULL);
}

/*
 * Hold a request that has nothing to answer yet: the handler returns
 * without replying and is run again, from the loop, once a new event is
 * recorded (events.c) or ms after the first hold. Returns 1 if held, 0
 * once that time is up (answer now), or -1 after replying 503 when
 * API_MAX_HELD requests wait already.
 */
int
api_hold(struct api_req *ctx, uint64_t ms)
{
	struct api *api = ctx->api;

	if (ctx->expired)
		return (0);
	if (ctx->deadline == NULL) {
		if (api->nheld >= API_MAX_HELD) {
			api_error(ctx, 503,
			    "too many requests waiting: at most %d",
			    API_MAX_HELD);
			return (-1);
		}
		api_hold_start(ctx, ms);
	}
	TAILQ_INSERT_TAIL(&api->held, ctx, entry);
	ctx->held = 1;
	return (1);
}

/* --- the server ------------------------------------------------------ */

#define API_HTML_START	"\r\n\r\n<HTML><HEAD>"	/* evhttp's error page */
#define API_HTML_END	"</BODY></HTML>\n"

/*
 * evhttp answers some requests itself, before any callback of ours runs
 * (a malformed request line or header: 400; a body over the limit: 413),
 * with an HTML page. Every error of the API is JSON, so such a page is
 * rewritten as it is queued: evhttp writes nothing else ending the way
 * its error page does, and it queues that page whole, the body last.
 */
static void api_output_rewrite(struct api *, struct evbuffer *, size_t);

static void
api_output_cb(struct evbuffer *out, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct api *api = arg;
	size_t	    len = evbuffer_get_length(out);
	int	    frozen = 0;

	if (api->rewriting || info->n_added == 0 ||
	    len < sizeof(API_HTML_END) - 1)
		return;
	/*
	 * The bufferevent freezes the start of its output between writes,
	 * which forbids reading it too: thaw it while we work. Draining
	 * nothing fails only on a frozen start.
	 */
	api->rewriting = 1;
	if (evbuffer_drain(out, 0) == -1) {
		frozen = 1;
		evbuffer_unfreeze(out, 1);
	}
	api_output_rewrite(api, out, len);
	api->rewriting = 0;
	if (frozen)
		evbuffer_freeze(out, 1);
}

static void
api_output_rewrite(struct api *api, struct evbuffer *out, size_t len)
{
	struct evbuffer_ptr start, body;
	struct evbuffer	   *reply, *keep;
	char		    tail[sizeof(API_HTML_END) - 1], id[32];
	char		    line[128], json[192];
	const char	   *msg;
	size_t		    n;
	int		    status;

	if (evbuffer_ptr_set(out, &body, len - sizeof(tail),
		EVBUFFER_PTR_SET) == -1 ||
	    evbuffer_copyout_from(out, &body, tail, sizeof(tail)) !=
		(ev_ssize_t)sizeof(tail) ||
	    memcmp(tail, API_HTML_END, sizeof(tail)) != 0)
		return;
	/* The page's status line: the last one before its body. */
	body = evbuffer_search(out, API_HTML_START, strlen(API_HTML_START),
	    NULL);
	if (body.pos == -1)
		return;
	start = evbuffer_search_range(out, "HTTP/", 5, NULL, &body);
	for (;;) {
		struct evbuffer_ptr next = start;

		if (start.pos == -1 ||
		    evbuffer_ptr_set(out, &next, 1, EVBUFFER_PTR_ADD) == -1)
			break;
		next = evbuffer_search_range(out, "HTTP/", 5, &next, &body);
		if (next.pos == -1)
			break;
		start = next;
	}
	if (start.pos == -1)
		return;
	n = (size_t)(body.pos - start.pos);
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	if (evbuffer_copyout_from(out, &start, line, n) <= 0)
		return;
	line[n] = '\0';
	/* evhttp answers in the version the client spoke, even "HTTP/-1.1". */
	if (sscanf(line, "HTTP/%*s %d", &status) != 1)
		return;
	line[strcspn(line, "\r")] = '\0';
	switch (status) {
	case 501:
		/* A method evhttp does not know: 405, as for one it does. */
		status = 405;
		snprintf(line, sizeof(line), "HTTP/1.1 405 Method Not Allowed");
		msg = "method not allowed";
		break;
	case 413:
		msg = "request too large: at most " API_MAX_BODY_STR
		      " bytes of body";
		break;
	case 400:
		msg = "bad request: malformed HTTP request";
		break;
	default:
		/* The reason phrase, after the version and the status. */
		msg = strchr(line, ' ');
		msg = msg != NULL ? strchr(msg + 1, ' ') : NULL;
		msg = msg != NULL ? msg + 1 : "error";
		break;
	}
	if ((reply = evbuffer_new()) == NULL)
		return;
	evbuffer_add_printf(reply,
	    "%s\r\nContent-Type: application/json\r\n"
	    "Connection: close\r\nX-Toxiproxy-Request-Id: %s\r\n",
	    line, api_request_id(api, id, sizeof(id)));
	/*
	 * evhttp gives its page a Content-Length unless the reply must have
	 * no body (to HEAD; to CONNECT, whose connection it keeps; in no
	 * HTTP/1.x): then ours has none either, and says so.
	 */
	if (evbuffer_search_range(out, "\r\nContent-Length:", 17, &start, &body)
		.pos == -1)
		json[0] = '\0';
	else
		(void)snprintf(json, sizeof(json),
		    "{\"error\":\"%s\","
		    "\"status\":%d}\n",
		    msg, status);
	n = strlen(json);
	evbuffer_add_printf(reply, "Content-Length: %zu\r\n\r\n%s", n, json);
	/* Keep what is queued before the page; replace the page. */
	if ((keep = evbuffer_new()) != NULL) {
		(void)evbuffer_remove_buffer(out, keep, (size_t)start.pos);
		evbuffer_drain(out, evbuffer_get_length(out));
		evbuffer_add_buffer(out, keep);
		evbuffer_add_buffer(out, reply);
		evbuffer_free(keep);
	}
	evbuffer_free(reply);
}

/* Each API connection's bufferevent, with the rewriting of error pages. */
static struct bufferevent *
api_bev_cb(struct event_base *base, void *arg)
{
	struct bufferevent *bev;

	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		(void)evbuffer_add_cb(bufferevent_get_output(bev),
		    api_output_cb, arg);
	return (bev);
}

static void
api_accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evconnlistener *lev = arg;
	struct timeval	       tv = { 0, API_BACKOFF_MS * 1000 };
	int		       probe;

	/* Still none free: wait again, rather than fail and log again. */
	probe = fcntl(evconnlistener_get_fd(lev), F_DUPFD_CLOEXEC, 0);
	if (probe == -1 &&
	    event_base_once(evconnlistener_get_base(lev), -1, EV_TIMEOUT,
		api_accept_resume_cb, lev, &tv) == 0)
		return;
	if (probe != -1)
		close(probe);
	evconnlistener_enable(lev);
}

/*
 * accept() failed for want of descriptors: stop accepting for a moment
 * instead of spinning on a listener that stays readable. The one-shot
 * timer is freed with the event loop; the API is only freed after the
 * loop has stopped, so it never fires on a freed listener.
 */
static void
api_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct timeval tv = { 0, API_BACKOFF_MS * 1000 };

	log_warn("api: accept, pausing %d ms", API_BACKOFF_MS);
	evconnlistener_disable(lev);
	if (event_base_once(evconnlistener_get_base(lev), -1, EV_TIMEOUT,
		api_accept_resume_cb, lev, &tv) == -1)
		evconnlistener_enable(lev);
}

struct api *
api_new(struct tardy *t, const struct addr *where, const char *token, char *err,
    size_t errlen)
{
	struct api		   *api;
	struct evhttp_bound_socket *bs;
	struct addr		    bound;
	struct timespec		    res;
	char			    buf[ADDR_STRLEN];
	int			    fd;

	if ((fd = proxy_bind(t, where, &bound, err, errlen)) == -1)
		return (NULL);
	/* A unix socket's mode and group: api_auth.c. */
	if (api_auth_socket(&bound, t->conf, err, errlen) == -1) {
		proxy_unbind(fd, &bound);
		return (NULL);
	}
	/*
	 * Accepted sockets inherit SO_REUSEADDR, and their TIME_WAITs with
	 * it do not keep the next tardyd (a restart) off the port; nobody
	 * can bind a port that is listening, so nothing is shared.
	 */
	if (addr_family(&bound) != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 },
		sizeof(int)) == -1) {
		snprintf(err, errlen, "SO_REUSEADDR: %s", strerror(errno));
		proxy_unbind(fd, &bound);
		return (NULL);
	}
	if (listen(fd, API_BACKLOG) == -1) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		proxy_unbind(fd, &bound);
		return (NULL);
	}
	api = xcalloc(1, sizeof(*api));
	api->tardy = t;
	api->bound = bound;
	if (token != NULL && *token != '\0')
		api->token = xstrdup(token);
	TAILQ_INIT(&api->waiting);
	TAILQ_INIT(&api->held);
	/* What libevent's timers run on, without a precise timer. */
	if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0)
		api->tick_us = (uint64_t)res.tv_sec * 1000000 +
		    ((uint64_t)res.tv_nsec + 999) / 1000;
	if ((api->wake = event_new(t->loop.base, -1, 0, api_hold_wake_cb,
		 api)) == NULL)
		fatalx("event_new");
	if ((api->http = evhttp_new(t->loop.base)) == NULL)
		fatalx("evhttp_new");
	if ((bs = evhttp_accept_socket_with_handle(api->http, fd)) == NULL)
		fatalx("evhttp_accept_socket");
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bs),
	    api_accept_error_cb);
	evhttp_set_allowed_methods(api->http, API_ALL_METHODS);
	evhttp_set_max_body_size(api->http, API_MAX_BODY);
	evhttp_set_max_headers_size(api->http, API_MAX_HEADERS);
	evhttp_set_timeout(api->http, API_TIMEOUT_S);
	/* Read an oversized body to its end, so the client sees the 413. */
	evhttp_set_flags(api->http, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_gencb(api->http, api_request_cb, api);
	evhttp_set_bevcb(api->http, api_bev_cb, api);
	log_info("api: listening on %s%s", api_address(api, buf, sizeof(buf)),
	    api->token != NULL ? " (token required)" : "");
	if (api->token == NULL && !addr_is_loopback(&bound))
		log_warnx(
		    "api: %s is not a loopback address and no token is "
		    "required (api_open): anyone who can reach it can drive "
		    "tardyd",
		    buf);
	return (api);
}

void
api_free(struct api *api)
{
	struct api_req *ctx;

	if (api == NULL)
		return;
	/* With the connections go the held requests (api_hold_close_cb). */
	evhttp_free(api->http);
	while ((ctx = TAILQ_FIRST(&api->waiting)) != NULL) {
		TAILQ_REMOVE(&api->waiting, ctx, entry);
		api_req_free(ctx);
	}
	event_free(api->wake);
	if (addr_family(&api->bound) == AF_UNIX)
		(void)unlink(addr_unix_path(&api->bound));
	free(api->token);
	free(api);
}

/* A new token (NULL or "": none), from a reload: it applies at once. */
void
api_set_token(struct api *api, const char *token)
{
	free(api->token);
	api->token = token != NULL && *token != '\0' ? xstrdup(token) : NULL;
}

const char *
api_address(struct api *api, char *buf, size_t len)
{
	return (addr_fmt(&api->bound, buf, len));
}
