/*
 * The HTTP control API: Toxiproxy's v2 API and tardy's extensions, served
 * with libevent's evhttp on the daemon's event loop.
 */
#ifndef TARDY_API_H
#define TARDY_API_H

#include <stddef.h>

struct addr;
struct api;
struct evbuffer;
struct tardy;

struct api *api_new(struct tardy *, const struct addr *, const char *, char *,
    size_t);
void	    api_free(struct api *);
const char *api_address(struct api *, char *, size_t);
void	    api_set_token(struct api *, const char *);

/* api_metrics.c */
void api_metrics_render(struct tardy *, struct evbuffer *);

#endif
