/*
 * What the API's handlers see: the request they answer (api.c serves it)
 * and the functions to read it and reply, and the handlers themselves, by
 * file, for api.c's routing table. Every reply helper replies at most
 * once; a function that returns NULL or -1 "after replying" has sent the
 * error, and the handler just returns.
 */
#ifndef TARDY_API_HANDLER_H
#define TARDY_API_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct addr;
struct api_req;
struct evbuffer;
struct proxy;
struct tardy;
struct toxic;

/* api.c */
struct tardy *api_tardy(struct api_req *);
const char   *api_query(struct api_req *);
void	      api_send(struct api_req *, int, const char *, struct evbuffer *);
void	      api_reply(struct api_req *, int, json_t *);
void	      api_reply_empty(struct api_req *, int);
void	      api_error(struct api_req *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
json_t *api_body(struct api_req *, int);
int	api_field_string(struct api_req *, json_t *, const char *, const char *,
	const char **);
int	api_field_bool(struct api_req *, json_t *, const char *, const char *,
	int *);
int	api_field_number(struct api_req *, json_t *, const char *, double *);
int	api_addr(struct api_req *, const char *, int, struct addr *, char *,
	size_t);
int	api_unix_allowed(struct api_req *, const char *, const char *,
	const struct addr *);
struct proxy *api_find_proxy(struct api_req *);
struct toxic *api_find_toxic(struct api_req *, struct proxy *);
int	      api_hold(struct api_req *, uint64_t);

/* api_proxy.c */
void api_proxy_index(struct api_req *);
void api_proxy_create(struct api_req *);
void api_proxy_show(struct api_req *);
void api_proxy_update(struct api_req *);
void api_proxy_delete(struct api_req *);
void api_proxy_populate(struct api_req *);
void api_proxy_reset(struct api_req *);

/* api_toxic.c */
void api_toxic_index(struct api_req *);
void api_toxic_create(struct api_req *);
void api_toxic_show(struct api_req *);
void api_toxic_update(struct api_req *);
void api_toxic_delete(struct api_req *);

/* api_view.c */
json_t *api_view_proxy(struct proxy *);
json_t *api_view_toxics(struct proxy *);
void	api_view_version(struct api_req *);
void	api_view_connections(struct api_req *);
void	api_view_events(struct api_req *);
void	api_view_metrics(struct api_req *);

#endif
