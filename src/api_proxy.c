/*
 * The API's proxy handlers: GET, POST, PATCH and DELETE /proxies, POST
 * /populate and /reset. Each reads and checks its request, in
 * Toxiproxy's order and words, asks the control layer (control.c) for
 * the change, and prints the result (api_view.c); a request that fails
 * its checks changes nothing.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "addr.h"
#include "api_handler.h"
#include "config.h"
#include "control.h"
#include "proxy.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"

/* The fields of a proxy in a request body. */
struct api_proxy_in {
	const char *name;
	const char *listen;
	const char *upstream;
	const char *protocol;
	const char *upstream_failure;
	int	    enabled;
	int	    has_listen;
	int	    has_upstream;
	int	    has_enabled;
};

/* Read them, checking types. Returns 0, or -1 after replying 400. */
static int
api_proxy_fields(struct api_req *ctx, json_t *obj, const char *where,
    struct api_proxy_in *in)
{
	int rc;

	if ((rc = api_field_string(ctx, obj, "name", where, &in->name)) < 0)
		return (-1);
	if ((rc = api_field_string(ctx, obj, "listen", where, &in->listen)) < 0)
		return (-1);
	in->has_listen = rc && *in->listen != '\0';
	if ((rc = api_field_string(ctx, obj, "upstream", where,
		 &in->upstream)) < 0)
		return (-1);
	in->has_upstream = rc && *in->upstream != '\0';
	if ((rc = api_field_bool(ctx, obj, "enabled", where, &in->enabled)) < 0)
		return (-1);
	in->has_enabled = rc;
	if (api_field_string(ctx, obj, "protocol", where, &in->protocol) < 0 ||
	    api_field_string(ctx, obj, "upstream_failure", where,
		&in->upstream_failure) < 0)
		return (-1);
	return (0);
}

/* upstream_failure: "close" (EOF, as Toxiproxy) or "reset" (RST). */
static int
api_proxy_upstream_failure(struct api_req *ctx, const struct api_proxy_in *in,
    const char *where, int *reset)
{
	if (in->upstream_failure == NULL)
		return (0);
	if (strcmp(in->upstream_failure, "close") == 0)
		*reset = 0;
	else if (strcmp(in->upstream_failure, "reset") == 0)
		*reset = 1;
	else {
		api_error(ctx, 400,
		    "bad request body: upstream_failure%s: "
		    "must be close or reset",
		    where);
		return (-1);
	}
	return (0);
}

/*
 * Fill pc from the fields of a proxy in a request. With base (the proxy
 * of that name, if there is one), what the request does not say is as
 * base has it; without, as a new proxy has it (listen 127.0.0.1:0).
 * Unless partial (PATCH), name and upstream are required, in Toxiproxy's
 * order and words. Returns 0, or -1 after replying 4xx. pc borrows.
 */
static int
api_proxy_conf(struct api_req *ctx, const struct api_proxy_in *in,
    const char *where, const struct proxy *base, int partial,
    struct proxy_conf *pc)
{
	char err[256];
	int  relisten, reconnect;

	if (!partial) {
		if (in->name == NULL || *in->name == '\0') {
			api_error(ctx, 400, "missing required field: name%s",
			    where);
			return (-1);
		}
		if (!in->has_upstream) {
			api_error(ctx, 400,
			    "missing required field: "
			    "upstream%s",
			    where);
			return (-1);
		}
		if (!util_name_valid(in->name)) {
			api_error(ctx, 400,
			    "bad request body: name: invalid "
			    "proxy name%s (1 to %d printable ASCII "
			    "characters, none of '/', '\"', '\\', '[', ']' "
			    "or whitespace)",
			    where, NAME_MAX_LEN);
			return (-1);
		}
	}
	if (base != NULL)
		control_proxy_conf(base, pc);
	else {
		memset(pc, 0, sizeof(*pc));
		pc->name = (char *)in->name;
		pc->listen_str = "127.0.0.1:0";
		pc->enabled = 1;
		pc->connect_timeout = CONFIG_DEFAULT_CONNECT_TIMEOUT;
		pc->protocol = PROTO_TCP;
		pc->line = -1; /* made through the API */
	}
	if (in->has_enabled)
		pc->enabled = in->enabled;
	if (in->protocol != NULL && !partial) {
		if (strcmp(in->protocol, "tcp") == 0)
			pc->protocol = PROTO_TCP;
		else if (strcmp(in->protocol, "udp") == 0)
			pc->protocol = PROTO_UDP;
		else {
			api_error(ctx, 400,
			    "bad request body: protocol%s: "
			    "must be tcp or udp",
			    where);
			return (-1);
		}
	}
	if (api_proxy_upstream_failure(ctx, in, where, &pc->upstream_reset) ==
	    -1)
		return (-1);

	/* The address a proxy was given or the one it got: no change. */
	relisten = base == NULL;
	if (in->has_listen || base == NULL) {
		if (api_addr(ctx, in->has_listen ? in->listen : pc->listen_str,
			0, &pc->listen, err, sizeof(err)) == -1) {
			api_error(ctx, 400, "bad request body: listen%s: %s",
			    where, err);
			return (-1);
		}
		if (base != NULL && control_same_listen(base, &pc->listen))
			pc->listen = base->listen;
		else {
			if (in->has_listen)
				pc->listen_str = (char *)in->listen;
			relisten = 1;
		}
	}
	reconnect = base == NULL;
	if (in->has_upstream) {
		if (api_addr(ctx, in->upstream, pc->protocol == PROTO_TCP,
			&pc->upstream, err, sizeof(err)) == -1) {
			api_error(ctx, 400, "bad request body: upstream%s: %s",
			    where, err);
			return (-1);
		}
		if (base == NULL ||
		    strcmp(in->upstream, base->upstream_str) != 0 ||
		    !addr_equal(&pc->upstream, &base->upstream)) {
			pc->upstream_str = (char *)in->upstream;
			reconnect = 1;
		}
	}
	if (pc->protocol == PROTO_UDP &&
	    (addr_family(&pc->listen) == AF_UNIX ||
		addr_family(&pc->upstream) == AF_UNIX)) {
		api_error(ctx, 400,
		    "bad request body: protocol%s: udp needs "
		    "host:port addresses (unix datagram sockets are not "
		    "supported)",
		    where);
		return (-1);
	}
	/* Addresses the proxy has already are not the client's to check. */
	if ((relisten &&
		api_unix_allowed(ctx, "listen", where, &pc->listen) == -1) ||
	    (reconnect &&
		api_unix_allowed(ctx, "upstream", where, &pc->upstream) == -1))
		return (-1);
	return (0);
}

void
api_proxy_index(struct api_req *ctx)
{
	struct proxy *p;
	json_t	     *o = json_object();

	TAILQ_FOREACH(p, &api_tardy(ctx)->proxies, entry)
		json_object_set_new(o, p->name, api_view_proxy(p));
	api_reply(ctx, 200, o);
}

/* Reply with what a change made of p, or (status) why it could not. */
static void
api_proxy_result(struct api_req *ctx, int status, int ok, struct proxy *p,
    const char *err)
{
	if (status != 0)
		api_error(ctx, status, "%s", err);
	else
		api_reply(ctx, ok, api_view_proxy(p));
}

void
api_proxy_create(struct api_req *ctx)
{
	struct api_proxy_in in;
	struct proxy_conf   pc;
	struct proxy	   *p;
	json_t		   *body;
	char		    err[256];
	int		    status;

	memset(&in, 0, sizeof(in));
	if ((body = api_body(ctx, 1)) == NULL ||
	    api_proxy_fields(ctx, body, "", &in) == -1 ||
	    api_proxy_conf(ctx, &in, "", NULL, 0, &pc) == -1)
		return;
	status = control_proxy_add(api_tardy(ctx), &pc, &p, err, sizeof(err));
	api_proxy_result(ctx, status, 201, p, err);
}

/*
 * PATCH (or POST) /proxies/NAME: what the body does not say stays as it
 * is; the name cannot change. control.c says what a change keeps.
 */
void
api_proxy_update(struct api_req *ctx)
{
	struct api_proxy_in in;
	struct proxy_conf   pc;
	struct proxy	   *p;
	json_t		   *body;
	char		    err[256];
	int		    status;

	memset(&in, 0, sizeof(in));
	if ((p = api_find_proxy(ctx)) == NULL ||
	    (body = api_body(ctx, 1)) == NULL ||
	    api_proxy_fields(ctx, body, "", &in) == -1 ||
	    api_proxy_conf(ctx, &in, "", p, 1, &pc) == -1)
		return;
	status = control_proxy_set(api_tardy(ctx), &pc, &p, err, sizeof(err));
	api_proxy_result(ctx, status, 200, p, err);
}

void
api_proxy_show(struct api_req *ctx)
{
	struct proxy *p;

	if ((p = api_find_proxy(ctx)) != NULL)
		api_reply(ctx, 200, api_view_proxy(p));
}

void
api_proxy_delete(struct api_req *ctx)
{
	struct tardy *t = api_tardy(ctx);
	struct proxy *p;

	if ((p = api_find_proxy(ctx)) == NULL)
		return;
	control_proxy_remove(t, p);
	(void)tardy_write_ready(t);
	api_reply_empty(ctx, 204);
}

struct api_populate_item {
	struct api_proxy_in in;
	struct proxy_conf   pc;
};

/*
 * POST /populate: make each proxy of a list exist as described, through
 * one plan (control.c): a proxy of that name already as described is
 * kept as it is (with its connections and toxics), one that differs is
 * changed, a missing one is created. Proxies not in the list are left
 * alone. All entries are checked and every listener bound before any
 * proxy changes, so the request applies whole or not at all.
 */
void
api_proxy_populate(struct api_req *ctx)
{
	struct tardy		 *t = api_tardy(ctx);
	struct api_populate_item *items = NULL, *it;
	struct control_plan	  pl;
	json_t			 *body, *list, *item, *out;
	char			  where[64], err[256];
	size_t			  n, i, j;

	if ((body = api_body(ctx, 0)) == NULL)
		return;
	/* Toxiproxy takes a bare array; we also take {"proxies": [...]}. */
	list = body;
	if (json_is_object(body) && json_object_get(body, "proxies") != NULL)
		list = json_object_get(body, "proxies");
	if (!json_is_array(list)) {
		api_error(ctx, 400,
		    "bad request body: expected an array of "
		    "proxies");
		return;
	}
	n = json_array_size(list);
	items = xcalloc(n + 1, sizeof(*items));
	json_array_foreach(list, i, item) {
		it = &items[i];
		snprintf(where, sizeof(where), " at proxy %zu", i + 1);
		if (!json_is_object(item)) {
			api_error(ctx, 400,
			    "bad request body: expected an "
			    "object%s",
			    where);
			goto out;
		}
		if (api_proxy_fields(ctx, item, where, &it->in) == -1 ||
		    api_proxy_conf(ctx, &it->in, where,
			it->in.name == NULL ? NULL :
					      tardy_find_proxy(t, it->in.name),
			0, &it->pc) == -1)
			goto out;
		for (j = 0; j < i; j++) {
			if (strcmp(items[j].pc.name, it->pc.name) == 0) {
				api_error(ctx, 400,
				    "bad request body: "
				    "duplicate proxy name%s",
				    where);
				goto out;
			}
		}
	}

	control_plan_init(&pl, t);
	for (i = 0; i < n; i++)
		(void)control_plan_set(&pl, &items[i].pc, 0);
	if (control_plan_bind(&pl, err, sizeof(err)) == -1) {
		api_error(ctx, 500, "%s", err);
		control_plan_free(&pl);
		goto out;
	}
	control_plan_commit(&pl);
	out = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(out,
		    api_view_proxy(pl.changes[i].result));
	control_plan_free(&pl);
	(void)tardy_write_ready(t);
	api_reply(ctx, 201, json_pack("{s:o}", "proxies", out));
out:
	free(items);
}

void
api_proxy_reset(struct api_req *ctx)
{
	control_reset(api_tardy(ctx));
	api_reply_empty(ctx, 204);
}
