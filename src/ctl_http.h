/*
 * tardyctl's HTTP client: one blocking HTTP/1.1 request per call, to a
 * TCP or a unix-socket API, bounded from connect to the last byte.
 */
#ifndef TARDY_CTL_HTTP_H
#define TARDY_CTL_HTTP_H

#include <jansson.h>

#include "addr.h"

/* Where requests go and how; the caller fills it in. */
struct ctl_http {
	struct addr api;
	char	    api_str[ADDR_STRLEN]; /* api, for Host: and errors */
	const char *token;		  /* sent as a bearer token, or NULL */
	int	    timeout_ms;		  /* for the whole of each request */
	int	    echo; /* write each reply's body to stdout */
};

json_t *ctl_http_call(struct ctl_http *, const char *, const char *, json_t *,
    int);

#endif
