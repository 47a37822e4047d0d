/*
 * Who may drive the control API, and which unix paths a request may
 * name: the checks api.c makes before it routes a request, in one place
 * (doc/api.md, "Who may ask" and "Threat model").
 */
#ifndef TARDY_API_AUTH_H
#define TARDY_API_AUTH_H

#include <stddef.h>

struct addr;
struct config;
struct evhttp_request;

#define API_AUTH_MSG_LEN	384

int api_auth_check(struct evhttp_request *, const struct addr *,
    const struct config *, const char *, char *, size_t);
int api_auth_socket(const struct addr *, const struct config *, char *, size_t);
int api_auth_unix_path_ok(const char *, const struct addr *,
    const struct config *, char *, size_t);
int api_auth_token_equal(const char *, size_t, const char *);

#endif
