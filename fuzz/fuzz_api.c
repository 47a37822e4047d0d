/*
 * fuzz_api: the control API, from raw HTTP bytes to the response.
 *
 * A daemon context (tardy_new()) serves two APIs made by api_new() on
 * 127.0.0.1:0, one open and one that wants the token "fuzz-token"; an
 * input that starts with '!' goes to the second (without the '!'). Each
 * input is written to a fresh connection as it is, then the loop runs
 * until the server has answered and gone quiet, closed, or a bound is
 * reached; the connection is then reset.
 *
 * Before each input the daemon is put back in a known state: proxy "p"
 * (TCP, two toxics, one open connection through it, to a unix socket
 * upstream of ours) and proxy "q" (unix socket, disabled), so every
 * endpoint has something to act on. Host names in addresses are never
 * looked up (fuzz_guard.c: evdns is unavailable, getaddrinfo numeric),
 * and listeners only go on loopback addresses, ports the kernel gave us
 * and paths under FUZZ_DIR, which is where the API may put and reach
 * unix sockets (TARDY_UNIX_DIRS).
 *
 * The input is also read the way evhttp reads it (libevent 2.1's http.c,
 * with the limits api.c sets: see "the requests" below), so each reply is
 * checked against the request it answers: one reply per request, in
 * order, after at most one 100 Continue for a request that asked for it;
 * the version the client spoke on the status line; evhttp's own error
 * (400, 405 for a method it does not know, 413, 417) to a request it
 * rejects; no body in a reply to HEAD (whatever its Content-Length says)
 * nor in a 204 or 304; a body framed by a Content-Length or a chunked
 * transfer coding (chunk sizes, extensions, trailer and last chunk parsed,
 * a malformed framing fails) -- or, only when the connection then closes,
 * by the close; nothing after the reply to a request after which the
 * connection closes, and the connection closed then and only then. Every
 * final reply has a request id; a JSON body parses, and an error is
 * {"error": string, "status": its status}.
 * FUZZ_SHOW=1 prints what the server answered.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>

#include "addr.h"
#include "api.h"
#include "config.h"
#include "control.h"
#include "proxy.h"
#include "session.h"
#include "tardy.h"
#include "toxic.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_INPUT	(256 * 1024)
#define MAX_RESPONSE	(4 * 1024 * 1024)
#define QUIET_ROUNDS	4	/* loop runs without news: done */
#define MAX_ROUNDS	400

static struct tardy *T;
static struct api   *api_open, *api_token;
static struct addr   addr_open, addr_token;
static int	     up_lfd = -1;
static char	     up_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int	     conn_fds[2] = { -1, -1 }; /* ours, of p's session */

static struct api *
make_api(const char *token, struct addr *bound)
{
	struct addr where;
	struct api *a;
	char	    err[256], buf[ADDR_STRLEN];

	if (addr_parse("127.0.0.1:0", &where, err, sizeof(err)) == -1 ||
	    (a = api_new(T, &where, token, err, sizeof(err))) == NULL)
		fuzz_fail(__FILE__, __LINE__, "api_new: %s", err);
	if (addr_parse(api_address(a, buf, sizeof(buf)), bound, err,
		sizeof(err)) == -1)
		fuzz_fail(__FILE__, __LINE__, "api address %s: %s", buf, err);
	return (a);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	/* Unix paths the API may use (api_auth.c): ours, past the refusal. */
	if (setenv("TARDY_UNIX_DIRS", FUZZ_DIR, 1) == -1)
		fuzz_fail(__FILE__, __LINE__, "setenv: %s", strerror(errno));
	T = fuzz_tardy();
	api_open = make_api(NULL, &addr_open);
	api_token = make_api("fuzz-token", &addr_token);
	T->api = api_open;
	up_lfd = fuzz_unix_listener("api-up", up_path, sizeof(up_path));
	return (0);
}

static void
pump(void)
{
	event_base_loop(T->loop.base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
}

/* --- the daemon's state before each input ---------------------------- */

static struct proxy *
add_proxy(const char *name, const char *listen, const char *upstream,
    int enabled)
{
	struct proxy_conf pc;
	struct proxy	 *p;
	char		  err[256];

	memset(&pc, 0, sizeof(pc));
	pc.name = (char *)name;
	pc.listen_str = (char *)listen;
	pc.upstream_str = (char *)upstream;
	pc.enabled = enabled;
	pc.connect_timeout = 1000;
	pc.line = -1;
	if (addr_parse(listen, &pc.listen, err, sizeof(err)) == -1 ||
	    addr_parse(upstream, &pc.upstream, err, sizeof(err)) == -1 ||
	    control_proxy_add(T, &pc, &p, err, sizeof(err)) != 0)
		fuzz_fail(__FILE__, __LINE__, "proxy %s: %s", name, err);
	return (p);
}

static void
add_toxic(struct proxy *p, const char *name, const char *type,
    const char *stream, const char *attrs)
{
	struct toxic *t;
	json_t	     *j;
	char	      err[256];
	int	      status;

	j = json_loads(attrs, 0, NULL);
	t = toxic_new(p, name, type, stream, 1.0, j, err, sizeof(err), &status);
	json_decref(j);
	if (t == NULL)
		fuzz_fail(__FILE__, __LINE__, "toxic %s: %s", name, err);
	proxy_add_toxic(p, t);
}

static void
state_reset(void)
{
	struct proxy *p;
	struct addr   peer;
	char	      upstream[sizeof(up_path) + 8];
	int	      sv[2], i;

	for (i = 0; i < 2; i++) {
		if (conn_fds[i] != -1)
			close(conn_fds[i]);
		conn_fds[i] = -1;
	}
	while ((p = TAILQ_FIRST(&T->proxies)) != NULL)
		control_proxy_remove(T, p);

	snprintf(upstream, sizeof(upstream), "unix:%s", up_path);
	p = add_proxy("p", "127.0.0.1:0", upstream, 1);
	add_toxic(p, "lat", "latency", "downstream",
	    "{\"latency\": 1000, \"jitter\": 10}");
	add_toxic(p, "bw", "bandwidth", "upstream",
	    "{\"rate\": 0, \"after_bytes\": 1}");
	(void)add_proxy("q", "unix:" FUZZ_DIR "/api-q.sock",
	    "unix:" FUZZ_DIR "/nowhere.sock", 0);

	/* One open connection through p, for /connections and the rest. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		sv) == -1)
		fuzz_fail(__FILE__, __LINE__, "socketpair: %s",
		    strerror(errno));
	memset(&peer, 0, sizeof(peer));
	peer.ss.ss_family = AF_UNIX;
	peer.len = sizeof(sa_family_t);
	conn_fds[0] = sv[1];
	if (session_new(p, sv[0], &peer) != NULL)
		conn_fds[1] = accept4(up_lfd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
	pump();
	/* Some bytes each way: held by "lat" and "bw". */
	(void)send(conn_fds[0], "hello", 5, MSG_NOSIGNAL);
	if (conn_fds[1] != -1)
		(void)send(conn_fds[1], "world", 5, MSG_NOSIGNAL);
	pump();
}

/* --- the requests, as evhttp reads them ----------------------------- */

/*
 * Which reply answers which request, and whether the connection stays
 * open after it, is decided by how evhttp reads the input: this is that
 * reading, after libevent 2.1.12's http.c (evhttp_parse_request_line,
 * evhttp_parse_headers_, evhttp_read_header, evhttp_get_body,
 * evhttp_handle_chunked_read, evhttp_send_done), with the limits
 * api_new() sets. A request evhttp reads whole gets one reply; one it
 * rejects gets its error page, which api.c rewrites, and the connection
 * closes (after a CONNECT, only in an old version: evhttp then reads
 * on from where it stopped); one it has not all of yet gets nothing, nor
 * does anything after it.
 *
 * Debian's 2.1.12-stable-8+deb12u1 carries upstream's fixes against
 * request smuggling: no CR or LF in a header value (evhttp_add_header
 * itself says which headers it takes, so that is asked of it here), a
 * Transfer-Encoding read as RFC 9112 says and refused with a
 * Content-Length, and a chunked body's trailer discarded. Only a
 * libevent with those exports evhttp_check_transfer_encoding_, and then
 * it is what reads a Transfer-Encoding here too.
 */
#define RQ_MAX_HEADERS	(64 * 1024)	/* api.c: API_MAX_HEADERS */
#define RQ_MAX_BODY	(1024 * 1024)	/* api.c: API_MAX_BODY */
#define RQ_UNKNOWN	(1 << 15)	/* evhttp's EVHTTP_REQ_UNKNOWN_ */
#define MAX_REQUESTS	(MAX_INPUT / 16 + 1)	/* "GET / HTTP/1.0\n\n" */

enum rq_te { RQ_TE_INVALID, RQ_TE_ENDS_IN_CHUNKED, RQ_TE_NO_CHUNKED };
extern enum rq_te evhttp_check_transfer_encoding_(const char *)
    __attribute__((weak));

/* evhttp keeps the version in chars: "HTTP/-254.1" is 2.1. */
#define RQ_BEFORE_1_1(r)						\
	((r)->major < 1 || ((r)->major == 1 && (r)->minor < 1))

struct rq {
	int  type;	   /* EVHTTP_REQ_*, RQ_UNKNOWN; 0 if not read */
	char major, minor; /* 0.0 if not read; 1.1 for a 0 on an error */
	int  proxy;	   /* an absolute http URI: EVHTTP_PROXY_REQUEST */
	int  error;	   /* the status of evhttp's own reply, or 0 */
	int  close;	   /* the connection closes after the reply */
	int  expect;	   /* a 100 Continue may come first */
	int  may_wait;	   /* "wait=": a long-poll tardyd may hold */
};

enum rq_status { RQ_DONE, RQ_MORE, RQ_BAD };

struct rq_reader {
	const uint8_t *p; /* what evhttp has not read yet */
	size_t	       left;
	size_t	       headers_size; /* of this request, trailer too */
	char	     **hdr;	     /* key, value, key, value... */
	size_t	       nhdr, caphdr;
	size_t	       first; /* hdr[first] on: this block's */
};

/* rqs[nrqs]: the request evhttp waits for more of, if any. */
static struct rq rqs[MAX_REQUESTS + 1];
static size_t	 nrqs;

/* evbuffer_readln(EVBUFFER_EOL_CRLF): NULL if there is no LF yet. */
static char *
rq_readln(struct rq_reader *rd, size_t *len)
{
	const uint8_t *lf;
	char	      *line;
	size_t	       n;

	if ((lf = memchr(rd->p, '\n', rd->left)) == NULL)
		return (NULL);
	n = (size_t)(lf - rd->p);
	if ((line = malloc(n + 1)) == NULL)
		fuzz_fail(__FILE__, __LINE__, "malloc");
	memcpy(line, rd->p, n);
	rd->p += n + 1;
	rd->left -= n + 1;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	*len = n;
	return (line);
}

/* evutil_rtrim_lws_ */
static void
rq_rtrim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

/* As evhttp_add_header, which says whether it takes the header. */
static int
rq_add_header(struct rq_reader *rd, const char *key, const char *value)
{
	static struct evkeyvalq scratch = TAILQ_HEAD_INITIALIZER(scratch);
	int			ok;

	ok = evhttp_add_header(&scratch, key, value) == 0;
	evhttp_clear_headers(&scratch);
	if (!ok)
		return (-1);
	if (rd->nhdr + 2 > rd->caphdr) {
		rd->caphdr = rd->caphdr == 0 ? 32 : rd->caphdr * 2;
		if ((rd->hdr = realloc(rd->hdr,
			 rd->caphdr * sizeof(*rd->hdr))) == NULL)
			fuzz_fail(__FILE__, __LINE__, "realloc");
	}
	rd->hdr[rd->nhdr++] = xstrdup(key);
	rd->hdr[rd->nhdr++] = xstrdup(value);
	return (0);
}

/* evhttp_append_to_last_header: a line that starts with a space. */
static int
rq_fold_header(struct rq_reader *rd, char *line)
{
	char  *v;
	size_t old, n;

	if (rd->nhdr == rd->first)
		return (-1);
	line += strspn(line, " \t");
	rq_rtrim(line);
	old = strlen(rd->hdr[rd->nhdr - 1]);
	n = strlen(line);
	if ((v = realloc(rd->hdr[rd->nhdr - 1], old + n + 2)) == NULL)
		fuzz_fail(__FILE__, __LINE__, "realloc");
	v[old] = ' ';
	memcpy(v + old + 1, line, n + 1);
	rd->hdr[rd->nhdr - 1] = v;
	return (0);
}

/* evhttp_find_header: the first one of that name. */
static const char *
rq_header(const struct rq_reader *rd, const char *name)
{
	size_t i;

	for (i = 0; i < rd->nhdr; i += 2) {
		if (evutil_ascii_strcasecmp(rd->hdr[i], name) == 0)
			return (rd->hdr[i + 1]);
	}
	return (NULL);
}

/* Forget the headers from hdr[n] on. */
static void
rq_drop_headers(struct rq_reader *rd, size_t n)
{
	while (rd->nhdr > n)
		free(rd->hdr[--rd->nhdr]);
	rd->first = n;
}

/* evhttp_parse_headers_, for the head and for a chunked body's trailer. */
static enum rq_status
rq_headers(struct rq_reader *rd)
{
	char  *line, *key, *value;
	size_t len;
	int    bad;

	while ((line = rq_readln(rd, &len)) != NULL) {
		rd->headers_size += len;
		if (rd->headers_size > RQ_MAX_HEADERS) {
			free(line);
			return (RQ_BAD);
		}
		if (*line == '\0') {
			free(line);
			return (RQ_DONE);
		}
		if (*line == ' ' || *line == '\t')
			bad = rq_fold_header(rd, line) == -1;
		else {
			value = line;
			key = strsep(&value, ":");
			if (value != NULL) {
				value += strspn(value, " ");
				rq_rtrim(value);
			}
			bad = value == NULL ||
			    rq_add_header(rd, key, value) == -1;
		}
		free(line);
		if (bad)
			return (RQ_BAD);
	}
	/* Too long already, with what is there of the next line. */
	if (rd->headers_size + rd->left > RQ_MAX_HEADERS)
		return (RQ_BAD);
	return (RQ_MORE);
}

/* evhttp_parse_request_line: -1 if evhttp answers 400. */
static int
rq_request_line(struct rq *r, char *line, size_t len)
{
	static const struct {
		const char *name;
		int	    type;
	} methods[] = {
		{ "GET", EVHTTP_REQ_GET },
		{ "POST", EVHTTP_REQ_POST },
		{ "HEAD", EVHTTP_REQ_HEAD },
		{ "PUT", EVHTTP_REQ_PUT },
		{ "DELETE", EVHTTP_REQ_DELETE },
		{ "OPTIONS", EVHTTP_REQ_OPTIONS },
		{ "TRACE", EVHTTP_REQ_TRACE },
		{ "CONNECT", EVHTTP_REQ_CONNECT },
		{ "PATCH", EVHTTP_REQ_PATCH },
	};
	struct evhttp_uri *u;
	const char	  *scheme;
	char		  *eos = line + len, *method, *uri, *version;
	char		  *auth, ch;
	size_t		   i, n;
	int		   major, minor;

	while (eos > line && eos[-1] == ' ') {
		*--eos = '\0';
		len--;
	}
	if (len < strlen("GET / HTTP/1.0"))
		return (-1);
	method = strsep(&line, " ");
	if (line == NULL)
		return (-1);
	uri = line;
	if ((version = strrchr(uri, ' ')) == NULL || version == uri)
		return (-1);
	*version++ = '\0';
	r->type = RQ_UNKNOWN;
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(method, methods[i].name) == 0)
			r->type = methods[i].type;
	}
	if (sscanf(version, "HTTP/%d.%d%c", &major, &minor, &ch) != 2 ||
	    major > 1)
		return (-1);
	r->major = (char)major;
	r->minor = (char)minor;
	if (r->type == EVHTTP_REQ_CONNECT) {
		/*
		 * evhttp_uri_parse_authority, which libevent does not export:
		 * the authority alone, what follows it is not looked at.
		 */
		n = strcspn(uri, "/?#");
		if ((auth = malloc(n + 3)) == NULL)
			fuzz_fail(__FILE__, __LINE__, "malloc");
		snprintf(auth, n + 3, "//%.*s", (int)n, uri);
		u = evhttp_uri_parse_with_flags(auth, 0);
		free(auth);
	} else
		u = evhttp_uri_parse_with_flags(uri, EVHTTP_URI_NONCONFORMANT);
	if (u == NULL)
		return (-1);
	/*
	 * GET /events?wait=MS may be held for MS (up to a minute): quiet
	 * then is not the end of the replies. Any "wait=" may be one.
	 */
	r->may_wait = strstr(uri, "wait=") != NULL;
	/* No virtual hosts: an http URI with a host is for a proxy. */
	scheme = evhttp_uri_get_scheme(u);
	r->proxy = scheme != NULL &&
	    (evutil_ascii_strcasecmp(scheme, "http") == 0 ||
		evutil_ascii_strcasecmp(scheme, "https") == 0) &&
	    evhttp_uri_get_host(u) != NULL;
	evhttp_uri_free(u);
	return (0);
}

/* evhttp_handle_chunked_read and evhttp_read_trailer: errors are 413. */
static enum rq_status
rq_chunked(struct rq_reader *rd, struct rq *r)
{
	enum rq_status st;
	long long      size, n = -1;
	size_t	       len, body = 0, keep;
	char	      *line, *end;
	int	       bad;

	for (;;) {
		if (rd->left == 0)
			return (RQ_MORE);
		if (n >= 0) {
			if ((size_t)n > rd->left)
				return (RQ_MORE);
			rd->p += n;
			rd->left -= (size_t)n;
			n = -1;
			continue;
		}
		if ((line = rq_readln(rd, &len)) == NULL)
			return (RQ_MORE);
		if (*line == '\0') { /* the CRLF after a chunk's data */
			free(line);
			continue;
		}
		size = strtoll(line, &end, 16);
		bad = (*end != '\0' && *end != ' ') || size < 0 ||
		    (unsigned long long)size > RQ_MAX_BODY - body;
		free(line);
		if (bad) {
			r->error = 413;
			return (RQ_BAD);
		}
		body += (size_t)size;
		if ((n = size) == 0)
			break;
	}
	/* The trailer: headers, discarded if evhttp has the fixes. */
	keep = rd->nhdr;
	if (evhttp_check_transfer_encoding_ != NULL)
		rd->first = keep;
	st = rq_headers(rd);
	if (evhttp_check_transfer_encoding_ != NULL)
		rq_drop_headers(rd, keep);
	if (st == RQ_BAD)
		r->error = 413;
	return (st);
}

/*
 * Whether the body is chunked (1) or not (0), or -1 if evhttp refuses
 * the headers that say: evhttp_validate_len_and_encoding_, run for every
 * request, if evhttp has it; else only a first Transfer-Encoding of
 * "chunked" counts.
 */
static int
rq_chunked_body(const struct rq_reader *rd)
{
	const char *te_name = "Transfer-Encoding";
	const char *te = rq_header(rd, te_name);
	size_t	    i;
	int	    chunked = 0;

	if (evhttp_check_transfer_encoding_ == NULL)
		return (te != NULL &&
		    evutil_ascii_strcasecmp(te, "chunked") == 0);
	if (te != NULL && rq_header(rd, "Content-Length") != NULL)
		return (-1);
	for (i = 0; i < rd->nhdr; i += 2) {
		if (evutil_ascii_strcasecmp(rd->hdr[i], te_name) != 0)
			continue;
		if (chunked)
			return (-1);
		switch (evhttp_check_transfer_encoding_(rd->hdr[i + 1])) {
		case RQ_TE_INVALID:
			return (-1);
		case RQ_TE_ENDS_IN_CHUNKED:
			chunked = 1;
			break;
		default:
			break;
		}
	}
	return (chunked);
}

/* evhttp_get_body and evhttp_read_body. */
static enum rq_status
rq_body(struct rq_reader *rd, struct rq *r, int chunked)
{
	const char *cl, *expect;
	char	   *end;
	long long   n = 0;

	switch (r->type) {
	case EVHTTP_REQ_POST:
	case EVHTTP_REQ_PUT:
	case EVHTTP_REQ_PATCH:
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_DELETE:
	case EVHTTP_REQ_OPTIONS:
	case EVHTTP_REQ_CONNECT:
		break;
	default:
		return (RQ_DONE); /* no body, whatever the headers say */
	}
	if (!chunked) {
		if ((cl = rq_header(rd, "Content-Length")) == NULL)
			return (RQ_DONE);
		n = strtoll(cl, &end, 10);
		if (*cl == '\0' || *end != '\0' || n < 0) {
			r->error = 400;
			return (RQ_BAD);
		}
		if (n == 0)
			return (RQ_DONE);
	}
	if (!RQ_BEFORE_1_1(r) && (expect = rq_header(rd, "Expect")) != NULL) {
		if (evutil_ascii_strcasecmp(expect, "100-continue") != 0) {
			r->error = 417;
			return (RQ_BAD);
		}
		r->expect = n <= RQ_MAX_BODY; /* else no 100 but a 413 */
	}
	if (chunked)
		return (rq_chunked(rd, r));
	if ((unsigned long long)n > rd->left)
		return (RQ_MORE);
	rd->p += n;
	rd->left -= (size_t)n;
	if (n > RQ_MAX_BODY) {
		r->error = 413; /* once it has all been read */
		return (RQ_BAD);
	}
	return (RQ_DONE);
}

/*
 * The requests of data[0..size) that get a reply, into rqs[0..nrqs);
 * rqs[nrqs] may still get a 100 Continue.
 */
static void
rq_read_all(const uint8_t *data, size_t size)
{
	struct rq_reader rd;
	struct rq	*r;
	const char	*conn;
	char		*line;
	size_t		 len;
	enum rq_status	 st;
	int		 keepalive, chunked = 0;

	memset(&rd, 0, sizeof(rd));
	rd.p = data;
	rd.left = size;
	for (nrqs = 0;; nrqs++) {
		r = &rqs[nrqs];
		memset(r, 0, sizeof(*r));
		if (nrqs == MAX_REQUESTS)
			break;
		rq_drop_headers(&rd, 0);
		if ((line = rq_readln(&rd, &len)) == NULL) {
			if (rd.left <= RQ_MAX_HEADERS)
				break;
			st = RQ_BAD;
		} else {
			st = len > RQ_MAX_HEADERS ||
				rq_request_line(r, line, len) == -1 ?
			    RQ_BAD :
			    RQ_DONE;
			rd.headers_size = len;
			free(line);
		}
		if (st == RQ_DONE)
			st = rq_headers(&rd);
		if (st == RQ_DONE && (chunked = rq_chunked_body(&rd)) == -1)
			st = RQ_BAD;
		if (st == RQ_DONE)
			st = rq_body(&rd, r, chunked);
		if (st == RQ_MORE)
			break;
		if (st == RQ_BAD && r->error == 0)
			r->error = 400;
		if (st == RQ_DONE && r->type == RQ_UNKNOWN)
			r->error = 405; /* evhttp's 501, made 405 by api.c */
		if (r->error != 0 && (r->major == 0 || r->minor == 0)) {
			r->major = 1; /* evhttp_send_page_ */
			r->minor = 1;
		}
		/*
		 * evhttp_send_done. An error page says "Connection: close",
		 * and the reply to a proxy request has no "Proxy-Connection:
		 * keep-alive": either closes the connection, but after a
		 * CONNECT (even one evhttp rejects) only an old version does.
		 */
		conn = rq_header(&rd, "Connection");
		keepalive = conn != NULL &&
		    evutil_ascii_strncasecmp(conn, "keep-alive", 10) == 0;
		r->close = (RQ_BEFORE_1_1(r) && !keepalive) ||
		    (r->type != EVHTTP_REQ_CONNECT &&
			(r->error != 0 || r->proxy ||
			    (conn != NULL &&
				evutil_ascii_strcasecmp(conn, "close") == 0)));
		if (r->close) {
			nrqs++;
			break;
		}
	}
	rq_drop_headers(&rd, 0);
	free(rd.hdr);
}

/* --- responses ------------------------------------------------------- */

/*
 * The value of header name in the head[0..hlen) of a reply (status line
 * to blank line), without the white space around it, or NULL; *count: how
 * many there are. A line that is not a header is a failure.
 */
static const char *
header_value(const char *head, size_t hlen, const char *name, size_t *len,
    int *count)
{
	const char *p, *eol, *colon, *v, *found = NULL;
	const char *end = head + hlen - 2; /* the blank line */
	size_t	    n = strlen(name);

	*count = 0;
	*len = 0;
	p = (const char *)memmem(head, hlen, "\r\n", 2) + 2;
	for (; p < end; p = eol + 2) {
		eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
		colon = memchr(p, ':', (size_t)(eol - p));
		FUZZ_CHECK(colon != NULL && colon > p,
		    "a header line without a name: %.*s", (int)(eol - p), p);
		if ((size_t)(colon - p) != n || strncasecmp(p, name, n) != 0)
			continue;
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		if ((*count)++ > 0)
			continue;
		found = v;
		for (*len = (size_t)(eol - v);
		    *len > 0 && (v[*len - 1] == ' ' || v[*len - 1] == '\t');
		    (*len)--)
			;
	}
	return (found);
}

static void
check_body(int status, const char *type, size_t typelen, const char *body,
    size_t len)
{
	json_t	    *j, *e, *s;
	json_error_t jerr;

	if (len == 0 || type == NULL || typelen < 16 ||
	    strncmp(type, "application/json", 16) != 0) {
		/* Every error is JSON, even those evhttp makes (api.c). */
		FUZZ_CHECK(status < 400 || len == 0,
		    "error %d with a body that is not JSON: %.*s", status,
		    (int)len, body);
		return;
	}
	if ((j = json_loadb(body, len, 0, &jerr)) == NULL)
		fuzz_fail(__FILE__, __LINE__,
		    "status %d: the JSON body does not parse: %s: %.*s", status,
		    jerr.text, (int)len, body);
	if (status >= 400) {
		e = json_object_get(j, "error");
		s = json_object_get(j, "status");
		FUZZ_CHECK(json_is_string(e) && json_is_integer(s) &&
			json_integer_value(s) == status,
		    "error %d: %.*s", status, (int)len, body);
	}
	json_decref(j);
}

static int
is_tchar(int c)
{
	return (c > 0 && c < 128 &&
	    (isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL));
}

/* BWS, then *(";" BWS name [BWS "=" BWS (token | quoted-string)] BWS) */
static void
check_chunk_ext(const char *p, const char *eol)
{
	const char *start = p;

	while (p < eol) {
		while (p < eol && (*p == ' ' || *p == '\t'))
			p++;
		FUZZ_CHECK(p < eol && *p == ';',
		    "a chunk extension without ';': %.*s", (int)(eol - start),
		    start);
		for (p++; p < eol && (*p == ' ' || *p == '\t'); p++)
			;
		FUZZ_CHECK(p < eol && is_tchar((unsigned char)*p),
		    "a chunk extension without a name: %.*s",
		    (int)(eol - start), start);
		while (p < eol && is_tchar((unsigned char)*p))
			p++;
		while (p < eol && (*p == ' ' || *p == '\t'))
			p++;
		if (p == eol || *p != '=')
			continue;
		for (p++; p < eol && (*p == ' ' || *p == '\t'); p++)
			;
		if (p < eol && *p == '"') {
			for (p++; p < eol && *p != '"'; p++) {
				if (*p == '\\')
					p++;
			}
			FUZZ_CHECK(p < eol,
			    "a chunk extension's quoted value not closed: %.*s",
			    (int)(eol - start), start);
			p++;
		} else {
			FUZZ_CHECK(p < eol && is_tchar((unsigned char)*p),
			    "a chunk extension without a value: %.*s",
			    (int)(eol - start), start);
			while (p < eol && is_tchar((unsigned char)*p))
				p++;
		}
	}
}

/*
 * The end of the line at p (its CRLF), or NULL if it has not all come.
 * A CR or LF anywhere else in it is a failure.
 */
static const char *
chunk_line(const char *p, const char *end)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));

	if (lf == NULL)
		return (NULL);
	FUZZ_CHECK(lf > p && lf[-1] == '\r' &&
		memchr(p, '\r', (size_t)(lf - 1 - p)) == NULL,
	    "a line of a chunked body not ended by CRLF: %.*s",
	    (int)(lf + 1 - p), p);
	return (lf - 1);
}

/*
 * A chunked body at p[0..len) (RFC 9112 7.1): returns how many bytes it
 * takes, its data in body[0..*blen), or 0 if it has not all come. Any
 * malformed framing is a failure.
 */
static size_t
check_chunked(const char *p, size_t len, char *body, size_t *blen)
{
	const char *end = p + len, *line = p, *eol, *q;
	size_t	    size;

	*blen = 0;
	for (;;) {
		if ((eol = chunk_line(line, end)) == NULL)
			return (0);
		for (size = 0, q = line; q < eol && isxdigit((unsigned char)*q);
		    q++) {
			FUZZ_CHECK(size < MAX_RESPONSE,
			    "a chunk size too large: %.*s", (int)(eol - line),
			    line);
			size = size * 16 +
			    (size_t)(isdigit((unsigned char)*q) ?
				    *q - '0' :
				    tolower((unsigned char)*q) - 'a' + 10);
		}
		FUZZ_CHECK(q > line, "a chunk size that is not hex: %.*s",
		    (int)(eol - line), line);
		check_chunk_ext(q, eol);
		line = eol + 2;
		if (size == 0)
			break;
		if ((size_t)(end - line) < size + 2)
			return (0);
		FUZZ_CHECK(*blen + size <= MAX_RESPONSE,
		    "a chunked body larger than %d bytes", MAX_RESPONSE);
		memcpy(body + *blen, line, size);
		*blen += size;
		FUZZ_CHECK(line[size] == '\r' && line[size + 1] == '\n',
		    "chunk data of %zu bytes not followed by CRLF: %.*s", size,
		    (int)(end - line < 200 ? end - line : 200), line);
		line += size + 2;
	}
	/* The trailer: field lines, up to an empty line. */
	for (;;) {
		if ((eol = chunk_line(line, end)) == NULL)
			return (0);
		if (eol == line)
			return ((size_t)(eol + 2 - p));
		for (q = line; q < eol && is_tchar((unsigned char)*q); q++)
			;
		FUZZ_CHECK(q > line && q < eol && *q == ':',
		    "a trailer line that is not a field: %.*s",
		    (int)(eol - line), line);
		for (q++; q < eol; q++) {
			FUZZ_CHECK(*q == '\t' || (unsigned char)*q >= ' ',
			    "a control character in a trailer field: %.*s",
			    (int)(eol - line), line);
		}
		line = eol + 2;
	}
}

/*
 * Check the replies in buf[0..len) against the requests (rqs) they
 * answer; returns how many bytes the whole ones took, and in *answered
 * how many requests they answer. eof: the server closed the connection
 * after buf.
 */
static size_t
check_responses(const char *buf, size_t len, int eof, size_t *answered)
{
	static char	 body[MAX_RESPONSE];
	const struct rq *r;
	const char	*head, *end, *sp, *te, *cl, *type, *b;
	char		 version[32];
	size_t		 off = 0, i = 0, hlen, vlen, tlen, cllen, typelen;
	size_t		 idlen, blen, wire, k;
	int		 status, n, continued = 0;

	while (off < len) {
		head = buf + off;
		r = &rqs[i]; /* i <= nrqs: rqs[nrqs] may get a 100 */
		if ((end = memmem(head, len - off, "\r\n\r\n", 4)) == NULL)
			break;
		hlen = (size_t)(end - head) + 4;
		/*
		 * evhttp answers in the version the client spoke (as it
		 * keeps it), and api.c writes "HTTP/1.1 405" over its 501.
		 */
		if (r->error == 405)
			snprintf(version, sizeof(version), "HTTP/1.1");
		else
			snprintf(version, sizeof(version), "HTTP/%d.%d",
			    r->major, r->minor);
		vlen = strlen(version);
		sp = head + vlen;
		if (hlen < vlen + 6 || strncmp(head, version, vlen) != 0 ||
		    *sp != ' ' || !isdigit((unsigned char)sp[1]) ||
		    sscanf(sp + 1, "%3d", &status) != 1 || status < 100 ||
		    status > 599 || sp[4] != ' ')
			fuzz_fail(__FILE__, __LINE__,
			    "bad status line, expected %s: %.*s", version,
			    (int)(hlen < 80 ? hlen : 80), head);
		if (status < 200) {
			FUZZ_CHECK(status == 100 && r->expect && !continued,
			    "an interim reply to request %zu: %.*s", i,
			    (int)hlen, head);
			continued = 1;
			off += hlen;
			continue;
		}
		FUZZ_CHECK(i < nrqs,
		    "a reply to no request (%zu of them): %.*s", nrqs,
		    (int)(len - off < 200 ? len - off : 200), head);
		(void)header_value(head, hlen, "X-Toxiproxy-Request-Id", &idlen,
		    &n);
		FUZZ_CHECK(n == 1 && idlen == 20,
		    "a reply without a request id: %.*s",
		    (int)(hlen < 200 ? hlen : 200), head);
		FUZZ_CHECK(r->error == 0 || status == r->error,
		    "evhttp rejects request %zu with %d: %.*s", i, r->error,
		    (int)(hlen < 200 ? hlen : 200), head);
		te = header_value(head, hlen, "Transfer-Encoding", &tlen, &n);
		FUZZ_CHECK(n <= 1, "%d Transfer-Encodings: %.*s", n, (int)hlen,
		    head);
		cl = header_value(head, hlen, "Content-Length", &cllen, &n);
		FUZZ_CHECK(n <= 1 && (cl == NULL || te == NULL),
		    "%d Content-Lengths and %s Transfer-Encoding: %.*s", n,
		    te != NULL ? "a" : "no", (int)hlen, head);
		FUZZ_CHECK(te == NULL ||
			(tlen == 7 && strncasecmp(te, "chunked", 7) == 0),
		    "a transfer coding other than chunked: %.*s", (int)hlen,
		    head);
		for (k = 0, blen = 0; cl != NULL && k < cllen; k++) {
			FUZZ_CHECK(isdigit((unsigned char)cl[k]) &&
				blen < MAX_RESPONSE,
			    "a bad Content-Length: %.*s", (int)hlen, head);
			blen = blen * 10 + (size_t)(cl[k] - '0');
		}
		FUZZ_CHECK(cl == NULL || cllen > 0, "an empty Content-Length");
		FUZZ_CHECK((status != 204 && status != 304) ||
			(cl == NULL && te == NULL),
		    "a %d that says it has a body: %.*s", status, (int)hlen,
		    head);
		type = header_value(head, hlen, "Content-Type", &typelen, &n);

		b = head + hlen;
		if (r->type == EVHTTP_REQ_HEAD || status == 204 ||
		    status == 304)
			blen = wire = 0; /* whatever the headers say */
		else if (te != NULL) {
			if ((wire = check_chunked(b, len - off - hlen, body,
				 &blen)) == 0)
				break;
			b = body;
		} else if (cl != NULL) {
			if (blen > len - off - hlen)
				break;
			wire = blen;
		} else {
			FUZZ_CHECK(r->close,
			    "no length, kept open after request %zu: %.*s", i,
			    (int)hlen, head);
			if (!eof)
				break;
			blen = wire = len - off - hlen;
		}
		check_body(status, type, typelen, b, blen);
		off += hlen + wire;
		continued = 0;
		i++;
		if (r->close) {
			FUZZ_CHECK(off == len,
			    "%zu bytes after the close of request %zu: %.*s",
			    len - off, i - 1,
			    (int)(len - off < 200 ? len - off : 200),
			    buf + off);
			break;
		}
	}
	*answered = i;
	return (off);
}

/* --- one request ----------------------------------------------------- */

/* Whether a request read may be a long-poll held past the loop's runs. */
static int
rq_may_wait(void)
{
	size_t i;

	for (i = 0; i <= nrqs && i < MAX_REQUESTS + 1; i++) {
		if (rqs[i].may_wait)
			return (1);
	}
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct addr *to = &addr_open;
	static char	   resp[MAX_RESPONSE + 1];
	size_t		   off = 0, rlen = 0, checked, answered;
	ssize_t		   n;
	int		   fd, rounds, quiet = 0, eof = 0, whole = 0;

	if (size > MAX_INPUT)
		return (-1);
	if (size > 0 && data[0] == '!') {
		to = &addr_token;
		data++;
		size--;
	}
	rq_read_all(data, size);
	state_reset();

	fd = socket(addr_family(to), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		fuzz_fail(__FILE__, __LINE__, "socket: %s", strerror(errno));
	if (connect(fd, addr_sa(to), to->len) == -1 && errno != EINPROGRESS)
		fuzz_fail(__FILE__, __LINE__, "connect: %s", strerror(errno));

	/* whole: the server closed, or went quiet with the input all sent. */
	for (rounds = 0; rounds < MAX_ROUNDS; rounds++) {
		if (off < size) {
			n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n == -1 && errno != EAGAIN)
				off = size; /* closed: read what it sent */
		}
		pump();
		n = recv(fd, resp + rlen, MAX_RESPONSE - rlen, 0);
		if (n > 0) {
			rlen += (size_t)n;
			quiet = 0;
		} else if (n == 0 || errno == ECONNRESET) {
			/* A reset (input left unread) comes after the data. */
			eof = whole = 1;
			break;
		} else if (errno != EAGAIN)
			break;
		else if (off == size && ++quiet >= QUIET_ROUNDS) {
			whole = !rq_may_wait();
			break;
		}
		if (rlen == MAX_RESPONSE)
			break;
	}
	if (getenv("FUZZ_SHOW") != NULL)
		fprintf(stderr, "%.*s\n", (int)rlen, resp);
	checked = check_responses(resp, rlen, eof, &answered);
	/* A reply cut short: only at a bound of ours. */
	FUZZ_CHECK(!whole || checked == rlen,
	    "%zu bytes after the last whole reply: %.*s", rlen - checked,
	    (int)(rlen - checked < 200 ? rlen - checked : 200), resp + checked);
	if (whole) {
		FUZZ_CHECK(answered == nrqs, "%zu replies to %zu requests",
		    answered, nrqs);
		FUZZ_CHECK(eof == (nrqs > 0 && rqs[nrqs - 1].close),
		    "the connection %s after the last reply",
		    eof ? "closed" : "stayed open");
	}

	(void)util_set_linger0(fd);
	close(fd);
	pump();
	pump();
	return (0);
}
