/*
 * The API's toxic handlers: GET, POST, PATCH and DELETE
 * /proxies/{proxy}/toxics. toxic.c checks a toxic's type, attributes
 * and toxicity; the checks here come first, in Toxiproxy's order.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/queue.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "api_handler.h"
#include "proxy.h"
#include "toxic.h"
#include "util.h"

void
api_toxic_index(struct api_req *ctx)
{
	struct proxy *p;

	if ((p = api_find_proxy(ctx)) != NULL)
		api_reply(ctx, 200, api_view_toxics(p));
}

/*
 * Checks in Toxiproxy's order: body, stream, type, name in use; then
 * toxicity and attributes, which toxic_new() validates.
 */
void
api_toxic_create(struct api_req *ctx)
{
	struct proxy *p;
	struct toxic *tx;
	json_t	     *body, *attrs;
	const char   *name = NULL, *type = NULL, *stream = "downstream";
	char	      lstream[16], defname[NAME_MAX_LEN + 32], err[256];
	double	      toxicity = 1.0;
	size_t	      i;
	int	      status;

	if ((p = api_find_proxy(ctx)) == NULL ||
	    (body = api_body(ctx, 1)) == NULL)
		return;
	if (api_field_string(ctx, body, "name", "", &name) < 0 ||
	    api_field_string(ctx, body, "type", "", &type) < 0 ||
	    api_field_string(ctx, body, "stream", "", &stream) < 0 ||
	    api_field_number(ctx, body, "toxicity", &toxicity) < 0)
		return;
	attrs = json_object_get(body, "attributes");

	/* Toxiproxy takes the stream in any case. */
	for (i = 0; stream[i] != '\0' && i < sizeof(lstream) - 1; i++)
		lstream[i] = (char)tolower((unsigned char)stream[i]);
	lstream[i] = '\0';
	if (stream[i] != '\0' ||
	    (strcmp(lstream, "upstream") != 0 &&
		strcmp(lstream, "downstream") != 0)) {
		api_error(ctx, 400,
		    "stream was invalid, can be either "
		    "upstream or downstream");
		return;
	}
	if (type == NULL || toxic_type_find(type) == NULL) {
		api_error(ctx, 400, "invalid toxic type");
		return;
	}
	if (name == NULL || *name == '\0') {
		snprintf(defname, sizeof(defname), "%s_%s", type, lstream);
		name = defname;
	}
	if (!util_name_valid(name)) {
		api_error(ctx, 400,
		    "bad request body: name: invalid toxic "
		    "name (1 to %d printable ASCII characters, none of '/', "
		    "'\"', '\\', '[', ']' or whitespace)",
		    NAME_MAX_LEN);
		return;
	}
	if (proxy_find_toxic(p, name) != NULL) {
		api_error(ctx, 409, "toxic already exists");
		return;
	}
	tx = toxic_new(p, name, type, lstream, toxicity, attrs, err,
	    sizeof(err), &status);
	if (tx == NULL) {
		api_error(ctx, status, "%s%s",
		    status == 400 ? "bad request body: " : "", err);
		return;
	}
	proxy_add_toxic(p, tx);
	api_reply(ctx, 200, toxic_json(tx));
}

void
api_toxic_show(struct api_req *ctx)
{
	struct proxy *p;
	struct toxic *tx;

	if ((p = api_find_proxy(ctx)) != NULL &&
	    (tx = api_find_toxic(ctx, p)) != NULL)
		api_reply(ctx, 200, toxic_json(tx));
}

/* Attributes sent are merged into the toxic's; the rest stays. */
void
api_toxic_update(struct api_req *ctx)
{
	struct proxy *p;
	struct toxic *tx;
	json_t	     *body;
	double	      toxicity = 0;
	char	      err[256];
	int	      has_toxicity;

	if ((p = api_find_proxy(ctx)) == NULL ||
	    (tx = api_find_toxic(ctx, p)) == NULL ||
	    (body = api_body(ctx, 1)) == NULL)
		return;
	if ((has_toxicity = api_field_number(ctx, body, "toxicity",
		 &toxicity)) < 0)
		return;
	if (toxic_update(tx, json_object_get(body, "attributes"), toxicity,
		has_toxicity, err, sizeof(err)) == -1) {
		api_error(ctx, 400, "bad request body: %s", err);
		return;
	}
	api_reply(ctx, 200, toxic_json(tx));
}

void
api_toxic_delete(struct api_req *ctx)
{
	struct proxy *p;
	struct toxic *tx;

	if ((p = api_find_proxy(ctx)) == NULL ||
	    (tx = api_find_toxic(ctx, p)) == NULL)
		return;
	proxy_remove_toxic(p, tx);
	api_reply_empty(ctx, 204);
}
