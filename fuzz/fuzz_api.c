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
 * and paths under FUZZ_DIR.
 *
 * Checked: every response has a valid status line; a JSON response
 * parses, and an error is {"error": string, "status": its status};
 * nothing follows the last response. With FUZZ_API_STRICT_HEAD set, a
 * reply to HEAD must have no body (api.c gives it one: see below).
 * FUZZ_SHOW=1 prints what the server answered.
 */
#include "autoconf.h"

#include <sys/types.h>
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
	event_base_loop(T->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
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

/* --- responses ------------------------------------------------------- */

/* The value of header name in the head (ends with \r\n\r\n), or NULL. */
static const char *
header_value(const char *head, const char *name, size_t *len)
{
	const char *p = strstr(head, "\r\n"), *end;
	size_t	    n = strlen(name);

	while (p != NULL && strncmp(p, "\r\n\r\n", 4) != 0) {
		p += 2;
		if ((end = strstr(p, "\r\n")) == NULL)
			end = p + strlen(p); /* the last line */
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			for (p += n + 1; *p == ' ' || *p == '\t'; p++)
				;
			*len = (size_t)(end - p);
			return (p);
		}
		p = *end != '\0' ? end : NULL;
	}
	return (NULL);
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
		    "status %d: the JSON body does "
		    "not parse: %s: %.*s",
		    status, jerr.text, (int)len, body);
	if (status >= 400) {
		e = json_object_get(j, "error");
		s = json_object_get(j, "status");
		FUZZ_CHECK(json_is_string(e) && json_is_integer(s) &&
			json_integer_value(s) == status,
		    "error %d: %.*s", status, (int)len, body);
	}
	json_decref(j);
}

/*
 * Check the responses in buf[0..len); returns how many bytes they took
 * (complete ones only), or -1 if the rest cannot be checked (chunked).
 */
static ssize_t
check_responses(char *buf, size_t len, const uint8_t *req, size_t reqlen,
    int eof)
{
	const char *head, *v, *type, *sp;
	char	   *end, save;
	size_t	    off = 0, vlen, typelen, hlen, clen, idlen;
	int	    status, ishead;

	/*
	 * A response to HEAD has no body, whatever its Content-Length says:
	 * with a HEAD anywhere in the input, only the first response is
	 * checked, and only its head if the input starts with HEAD.
	 */
	ishead = memmem(req, reqlen, "HEAD", 4) != NULL;
	while (off < len) {
		if (ishead && off > 0)
			return (-1);
		head = buf + off;
		save = buf[len];
		buf[len] = '\0';
		end = strstr(head, "\r\n\r\n");
		buf[len] = save;
		if (end == NULL)
			break;
		hlen = (size_t)(end - head) + 4;
		/*
		 * evhttp answers in the version the client spoke, whatever
		 * its sscanf("%d.%d") made of it ("HTTP/-1.1").
		 */
		sp = memchr(head, ' ', hlen);
		if (strncmp(head, "HTTP/", 5) != 0 || sp == NULL ||
		    !isdigit((unsigned char)sp[1]) ||
		    sscanf(sp + 1, "%3d", &status) != 1 || status < 100 ||
		    status > 599 || sp[4] != ' ')
			fuzz_fail(__FILE__, __LINE__, "bad status line: %.*s",
			    (int)(hlen < 80 ? hlen : 80), head);
		save = *end;
		*end = '\0';
		if (header_value(head, "Transfer-Encoding", &vlen) != NULL)
			return (-1);
		v = header_value(head, "Content-Length", &vlen);
		type = header_value(head, "Content-Type", &typelen);
		FUZZ_CHECK(header_value(head, "X-Toxiproxy-Request-Id",
			       &idlen) != NULL &&
			idlen == 20,
		    "a reply without a request id: %.*s",
		    (int)(hlen < 200 ? hlen : 200), head);
		*end = save;
		/*
		 * evhttp sends the body of a reply to HEAD (without a
		 * Content-Length): api.c must not give it one. Until it does,
		 * that is only checked with FUZZ_API_STRICT_HEAD set.
		 */
		if (ishead && reqlen >= 5 && memcmp(req, "HEAD ", 5) == 0) {
			if (getenv("FUZZ_API_STRICT_HEAD") != NULL &&
			    len > off + hlen)
				fuzz_fail(__FILE__, __LINE__,
				    "a reply to HEAD "
				    "with a body: %.*s",
				    (int)(len - off - hlen), head + hlen);
			return (-1);
		}
		if (v != NULL)
			clen = strtoul(v, NULL, 10);
		else if (status < 200 || status == 204 || status == 304)
			clen = 0;
		else if (eof)
			clen = len - off - hlen; /* ends at the close */
		else
			return (-1);
		if (off + hlen + clen > len)
			break;
		check_body(status, type, typelen, head + hlen, clen);
		off += hlen + clen;
	}
	return ((ssize_t)off);
}

/* --- one request ----------------------------------------------------- */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct addr *to = &addr_open;
	static char	   resp[MAX_RESPONSE + 1];
	size_t		   off = 0, rlen = 0, checked = 0;
	ssize_t		   n, c;
	int		   fd, rounds, quiet = 0, eof = 0, unchecked = 0;

	if (size > MAX_INPUT)
		return (-1);
	if (size > 0 && data[0] == '!') {
		to = &addr_token;
		data++;
		size--;
	}
	state_reset();

	fd = socket(addr_family(to), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		fuzz_fail(__FILE__, __LINE__, "socket: %s", strerror(errno));
	if (connect(fd, addr_sa(to), to->len) == -1 && errno != EINPROGRESS)
		fuzz_fail(__FILE__, __LINE__, "connect: %s", strerror(errno));

	for (rounds = 0; rounds < MAX_ROUNDS && !eof; rounds++) {
		if (off < size) {
			n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n == -1 && errno != EAGAIN)
				break; /* the server gave up on us */
		}
		pump();
		n = recv(fd, resp + rlen, MAX_RESPONSE - rlen, 0);
		if (n > 0) {
			rlen += (size_t)n;
			quiet = 0;
		} else if (n == 0)
			eof = 1;
		else if (errno != EAGAIN)
			break;
		else if (off == size && ++quiet >= QUIET_ROUNDS)
			break;
		if (rlen == MAX_RESPONSE)
			break;
	}
	if (!unchecked && rlen > checked) {
		c = check_responses(resp + checked, rlen - checked, data, size,
		    eof);
		if (c == -1)
			unchecked = 1;
		else
			checked += (size_t)c;
	}
	if (getenv("FUZZ_SHOW") != NULL)
		fprintf(stderr, "%.*s\n", (int)rlen, resp);
	/* Bytes after the last whole response: only at a cut. */
	if (!unchecked && checked < rlen && eof && rlen < MAX_RESPONSE)
		fuzz_fail(__FILE__, __LINE__,
		    "%zu bytes after the last "
		    "response: %.*s",
		    rlen - checked,
		    (int)(rlen - checked < 200 ? rlen - checked : 200),
		    resp + checked);

	(void)util_set_linger0(fd);
	close(fd);
	pump();
	pump();
	return (0);
}
