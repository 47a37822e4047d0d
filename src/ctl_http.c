/*
 * tardyctl's HTTP client: a small blocking HTTP/1.1 client over a socket.
 *
 * It reaches unix-socket APIs as easily as TCP ones (libevent 2.1's evhttp
 * client cannot), and bounds every step with one deadline per request so
 * a hung server cannot hang a script. Each request is on a connection of
 * its own, "Connection: close", so a reply ends where the stream does.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "addr.h"
#include "ctl_http.h"
#include "ctl_util.h"

#define CTL_HTTP_MAX_REPLY	(64 * 1024 * 1024)

struct ctl_http_reply {
	int    status;
	char  *body;
	size_t len;
};

static uint64_t
ctl_http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* Milliseconds left before deadline, for poll(). */
static int
ctl_http_left(uint64_t deadline)
{
	uint64_t now = ctl_http_now_ms();

	return (now >= deadline ? 0 : (int)(deadline - now));
}

static int
ctl_http_connect(struct ctl_http *h, uint64_t deadline)
{
	struct pollfd pfd;
	socklen_t     len = sizeof(int);
	int	      fd, err = 0, rc;

	fd = socket(addr_family(&h->api),
	    SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		ctl_util_warnx("socket: %s", strerror(errno));
		return (-1);
	}
	if (connect(fd, addr_sa(&h->api), h->api.len) == -1) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			err = errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		while ((rc = poll(&pfd, 1, ctl_http_left(deadline))) == -1 &&
		    errno == EINTR)
			;
		if (rc == 0) {
			err = ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0)
			goto fail;
	}
	return (fd);
fail:
	ctl_util_warnx("cannot connect to %s: %s", h->api_str, strerror(err));
	close(fd);
	return (-1);
}

static int
ctl_http_write_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	ssize_t	      n;

	while (len > 0) {
		if ((n = send(fd, buf, len, MSG_NOSIGNAL)) > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != EAGAIN)
			return (-1);
		if (poll(&pfd, 1, ctl_http_left(deadline)) == 0) {
			errno = ETIMEDOUT;
			return (-1);
		}
	}
	return (0);
}

/* Read until the server closes (we sent "Connection: close"). */
static char *
ctl_http_read_all(int fd, size_t *lenp, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char	     *buf = NULL, *nbuf;
	size_t	      len = 0, size = 0;
	ssize_t	      n;

	for (;;) {
		if (size - len < 4096) {
			size = size == 0 ? 16384 : size * 2;
			if (size > CTL_HTTP_MAX_REPLY + 1) {
				errno = EFBIG;
				goto fail;
			}
			if ((nbuf = realloc(buf, size)) == NULL)
				goto fail;
			buf = nbuf;
		}
		n = recv(fd, buf + len, size - len - 1, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			goto fail;
		if (poll(&pfd, 1, ctl_http_left(deadline)) == 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
	}
	buf[len] = '\0';
	*lenp = len;
	return (buf);
fail:
	free(buf);
	return (NULL);
}

/* Undo Transfer-Encoding: chunked in place. Returns -1 if malformed. */
static int
ctl_http_dechunk(char *body, size_t *lenp)
{
	char	     *in = body, *out = body, *end = body + *lenp, *eol;
	unsigned long n;

	for (;;) {
		if ((eol = memchr(in, '\n', (size_t)(end - in))) == NULL)
			return (-1);
		errno = 0;
		n = strtoul(in, NULL, 16);
		if (errno != 0 || !isxdigit((unsigned char)*in))
			return (-1);
		in = eol + 1;
		if (n == 0)
			break;
		if (n > (size_t)(end - in))
			return (-1);
		memmove(out, in, n);
		out += n;
		in += n;
		if (in < end && *in == '\r')
			in++;
		if (in < end && *in == '\n')
			in++;
	}
	*out = '\0';
	*lenp = (size_t)(out - body);
	return (0);
}

/* The value of header name in the header block head, or NULL. */
static const char *
ctl_http_header(const char *head, const char *name, size_t *vlen)
{
	const char *line, *eol, *v;
	size_t	    nlen = strlen(name);

	for (line = strchr(head, '\n'); line != NULL; line = eol) {
		line++;
		if ((eol = strchr(line, '\n')) == NULL)
			return (NULL);
		if (strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
			continue;
		for (v = line + nlen + 1; *v == ' ' || *v == '\t'; v++)
			;
		*vlen = (size_t)(eol - v);
		while (*vlen > 0 && isspace((unsigned char)v[*vlen - 1]))
			(*vlen)--;
		return (v);
	}
	return (NULL);
}

static int
ctl_http_parse_reply(char *raw, size_t len, struct ctl_http_reply *r)
{
	char	     *sep, *body;
	const char   *v;
	size_t	      vlen, blen;
	unsigned long clen;

	if (strncmp(raw, "HTTP/1.", 7) != 0 || len < 12 ||
	    !isdigit((unsigned char)raw[9]))
		return (-1);
	r->status = atoi(raw + 9);
	if ((sep = strstr(raw, "\r\n\r\n")) == NULL)
		return (-1);
	sep[2] = '\0'; /* headers end with a line end */
	body = sep + 4;
	blen = len - (size_t)(body - raw);
	if ((v = ctl_http_header(raw, "Transfer-Encoding", &vlen)) != NULL &&
	    vlen == 7 && strncasecmp(v, "chunked", 7) == 0) {
		if (ctl_http_dechunk(body, &blen) == -1)
			return (-1);
	} else if ((v = ctl_http_header(raw, "Content-Length", &vlen)) !=
	    NULL) {
		clen = strtoul(v, NULL, 10);
		if (clen < blen)
			blen = clen;
	}
	r->body = ctl_util_alloc(blen + 1);
	memcpy(r->body, body, blen);
	r->len = blen;
	return (0);
}

/*
 * One request. Returns 0 with the reply (any status), or -1 after saying
 * why no reply came.
 */
static int
ctl_http_request(struct ctl_http *h, const char *method, const char *path,
    json_t *body, struct ctl_http_reply *r)
{
	uint64_t deadline = ctl_http_now_ms() + (uint64_t)h->timeout_ms;
	char	*req = NULL, *data = NULL, *raw = NULL, *auth = NULL;
	size_t	 rawlen;
	int	 fd, n, rc = -1;

	memset(r, 0, sizeof(*r));
	if (body != NULL && (data = json_dumps(body, JSON_COMPACT)) == NULL) {
		ctl_util_warnx("cannot encode the request");
		return (-1);
	}
	if (h->token != NULL &&
	    asprintf(&auth,
		"Authorization: Bearer "
		"%s\r\n",
		h->token) == -1) {
		free(data);
		ctl_util_warnx("out of memory");
		return (-1);
	}
	n = asprintf(&req,
	    "%s %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "User-Agent: tardyctl/%s\r\n"
	    "Accept: application/json\r\n"
	    "Connection: close\r\n"
	    "%s%s"
	    "Content-Length: %zu\r\n"
	    "\r\n%s",
	    method, path,
	    addr_family(&h->api) == AF_UNIX ? "localhost" : h->api_str,
	    PACKAGE_VERSION, auth != NULL ? auth : "",
	    data != NULL ? "Content-Type: application/json\r\n" : "",
	    data != NULL ? strlen(data) : 0, data != NULL ? data : "");
	free(data);
	free(auth);
	if (n == -1) {
		ctl_util_warnx("out of memory");
		return (-1);
	}
	if ((fd = ctl_http_connect(h, deadline)) == -1)
		goto out;
	if (ctl_http_write_all(fd, req, (size_t)n, deadline) == -1 ||
	    (raw = ctl_http_read_all(fd, &rawlen, deadline)) == NULL) {
		ctl_util_warnx("%s: %s", h->api_str, strerror(errno));
		close(fd);
		goto out;
	}
	close(fd);
	if (ctl_http_parse_reply(raw, rawlen, r) == -1) {
		ctl_util_warnx("%s: not an HTTP reply", h->api_str);
		goto out;
	}
	rc = 0;
out:
	free(raw);
	free(req);
	return (rc);
}

/*
 * Run a request and check the status. On success returns the reply's
 * JSON (or json_null() for an empty body), writing its body first when
 * h->echo is set (--json). On failure prints the server's message and
 * returns NULL.
 */
json_t *
ctl_http_call(struct ctl_http *h, const char *method, const char *path,
    json_t *body, int expect)
{
	struct ctl_http_reply r;
	json_error_t	      jerr;
	json_t		     *j, *e;

	if (ctl_http_request(h, method, path, body, &r) == -1)
		return (NULL);
	j = r.len > 0 ? json_loadb(r.body, r.len, 0, &jerr) : json_null();
	if (r.status != expect && !(expect == 200 && r.status == 201)) {
		e = j != NULL ? json_object_get(j, "error") : NULL;
		if (json_is_string(e))
			ctl_util_warnx("%s", json_string_value(e));
		else
			ctl_util_warnx("%s %s: the server answered %d", method,
			    path, r.status);
		json_decref(j);
		free(r.body);
		return (NULL);
	}
	if (j == NULL) {
		ctl_util_warnx("%s %s: bad JSON in the reply: %s", method, path,
		    jerr.text);
		free(r.body);
		return (NULL);
	}
	if (h->echo && r.len > 0) {
		fwrite(r.body, 1, r.len, stdout);
		if (r.body[r.len - 1] != '\n')
			putchar('\n');
	}
	free(r.body);
	return (j);
}
