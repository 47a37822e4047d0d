/*
 * Small helpers shared by the daemon's modules: clocks, strict number
 * parsing, object names, socket options.
 */
#ifndef TARDY_UTIL_H
#define TARDY_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct json_t;

#define NAME_MAX_LEN	128

uint64_t util_now_ns(void);
#define util_now_ms()	(util_now_ns() / 1000000)
/* A duration in ns as ms with µs precision, for the API. */
#define util_ns_to_ms(ns) ((double)((ns) / 1000) / 1000.0)

/*
 * Counters that loops on several threads add to and the API reads: a
 * count, not a synchronisation, so relaxed (one locked add on x86).
 */
#define COUNT_ADD(v, n)	((void)__atomic_fetch_add(&(v), (n), __ATOMIC_RELAXED))
#define COUNT_SUB(v, n)	((void)__atomic_fetch_sub(&(v), (n), __ATOMIC_RELAXED))
#define COUNT_GET(v)	__atomic_load_n(&(v), __ATOMIC_RELAXED)
int	       util_parse_u64(const char *, uint64_t, uint64_t *);
int	       util_parse_bool(const char *, int *);
struct json_t *util_json_number(const char *);
int	       util_name_valid(const char *);
int	       util_set_linger0(int);
int	       util_evbuffer_append(struct evbuffer *, struct evbuffer *);
void	      *xcalloc(size_t, size_t);
void	      *xreallocarray(void *, size_t, size_t);
char	      *xstrdup(const char *);

#endif
