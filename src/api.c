/*
 * The control API (placeholder until the full API lands: /version only).
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/event.h>

#include "addr.h"
#include "api.h"
#include "log.h"
#include "proxy.h"
#include "tardy.h"
#include "util.h"

struct api {
	struct tardy		*tardy;
	struct evhttp		*http;
	struct addr		 bound;
};

static void
api_generic_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer	*out = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evbuffer_add_printf(out, "{\"version\":\"%s\"}", PACKAGE_VERSION);
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

struct api *
api_new(struct tardy *t, const struct addr *where, const char *token,
    char *err, size_t errlen)
{
	struct api	*api;
	struct addr	 bound;
	char		 buf[ADDR_STRLEN];
	int		 fd;

	if ((fd = proxy_bind(where, &bound, err, errlen)) == -1)
		return (NULL);
	if (listen(fd, 128) == -1) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		proxy_unbind(fd, &bound);
		return (NULL);
	}
	api = xcalloc(1, sizeof(*api));
	api->tardy = t;
	api->bound = bound;
	if ((api->http = evhttp_new(t->base)) == NULL)
		fatalx("evhttp_new");
	if (evhttp_accept_socket(api->http, fd) == -1)
		fatalx("evhttp_accept_socket");
	evhttp_set_gencb(api->http, api_generic_cb, api);
	log_info("api: listening on %s", api_address(api, buf, sizeof(buf)));
	return (api);
}

void
api_free(struct api *api)
{
	if (api == NULL)
		return;
	evhttp_free(api->http);
	if (addr_family(&api->bound) == AF_UNIX)
		(void)unlink(addr_unix_path(&api->bound));
	free(api);
}

const char *
api_address(struct api *api, char *buf, size_t len)
{
	return (addr_fmt(&api->bound, buf, len));
}
