/*
 * tardyctl: drive a running tardyd (or Toxiproxy) through its HTTP
 * control API from a shell.
 *
 * Each command is one request. The client is a small blocking HTTP/1.1
 * client over a socket, which reaches unix-socket APIs as easily as TCP
 * ones (libevent 2.1's evhttp client cannot), and bounds every step with
 * a deadline so a hung server cannot hang a script.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "addr.h"
#include "util.h"

#define CTL_DEFAULT_API		"127.0.0.1:8474"
#define CTL_TIMEOUT_MS		10000
#define CTL_MAX_REPLY		(64 * 1024 * 1024)

#define EXIT_FAIL	1
#define EXIT_USAGE	2

/* Options, as bits, so each command says which it takes. */
#define O_LISTEN	0x001
#define O_UPSTREAM	0x002
#define O_DISABLED	0x004
#define O_TYPE		0x008
#define O_STREAM	0x010
#define O_TOXICITY	0x020
#define O_ATTR		0x040
#define O_NAME		0x080
#define O_PROTOCOL	0x100
#define O_UPFAIL	0x200

struct ctl {
	struct addr	 api;
	char		 api_str[ADDR_STRLEN];
	const char	*token;
	int		 json;

	/* Command options. */
	int		 given;		/* O_* seen */
	const char	*listen;
	const char	*upstream;
	const char	*type;
	const char	*stream;
	const char	*name;
	const char	*protocol;
	const char	*upstream_failure;
	double		 toxicity;
	json_t		*attrs;
};

struct ctl_reply {
	int	 status;
	char	*body;
	size_t	 len;
};

struct ctl_cmd {
	const char	*name;
	const char	*synopsis;
	int		 minargs;
	int		 maxargs;
	int		 opts;
	int		(*run)(struct ctl *, char **);
	const char	*help;
};

static const struct ctl_cmd *ctl_find_cmd(int, char **, int *);
static void	ctl_cmd_usage(const struct ctl_cmd *, FILE *);

/* --- small things ---------------------------------------------------- */

static void
ctl_warnx(const char *fmt, ...)
{
	va_list	ap;

	fputs("tardyctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void *
ctl_alloc(size_t n)
{
	void	*p;

	if ((p = calloc(1, n)) == NULL) {
		ctl_warnx("out of memory");
		exit(EXIT_FAIL);
	}
	return (p);
}

static uint64_t
ctl_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* Milliseconds left before deadline, for poll(). */
static int
ctl_left(uint64_t deadline)
{
	uint64_t	now = ctl_now_ms();

	return (now >= deadline ? 0 : (int)(deadline - now));
}

/* Percent-encode a name for a URL path: everything but unreserved. */
static char *
ctl_escape(const char *s)
{
	static const char	 hex[] = "0123456789ABCDEF";
	char			*out, *o;

	o = out = ctl_alloc(strlen(s) * 3 + 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			*o++ = (char)c;
		else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return (out);
}

/* --- HTTP ------------------------------------------------------------ */

static int
ctl_connect(struct ctl *ctl, uint64_t deadline)
{
	struct pollfd	pfd;
	socklen_t	len = sizeof(int);
	int		fd, err = 0, rc;

	fd = socket(addr_family(&ctl->api), SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (fd == -1) {
		ctl_warnx("socket: %s", strerror(errno));
		return (-1);
	}
	if (connect(fd, addr_sa(&ctl->api), ctl->api.len) == -1) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			err = errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		while ((rc = poll(&pfd, 1, ctl_left(deadline))) == -1 &&
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
	ctl_warnx("cannot connect to %s: %s", ctl->api_str, strerror(err));
	close(fd);
	return (-1);
}

static int
ctl_write_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLOUT };
	ssize_t		n;

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
		if (poll(&pfd, 1, ctl_left(deadline)) == 0) {
			errno = ETIMEDOUT;
			return (-1);
		}
	}
	return (0);
}

/* Read until the server closes (we sent "Connection: close"). */
static char *
ctl_read_all(int fd, size_t *lenp, uint64_t deadline)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	char		*buf = NULL, *nbuf;
	size_t		 len = 0, size = 0;
	ssize_t		 n;

	for (;;) {
		if (size - len < 4096) {
			size = size == 0 ? 16384 : size * 2;
			if (size > CTL_MAX_REPLY + 1) {
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
		if (poll(&pfd, 1, ctl_left(deadline)) == 0) {
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
ctl_dechunk(char *body, size_t *lenp)
{
	char		*in = body, *out = body, *end = body + *lenp, *eol;
	unsigned long	 n;

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
ctl_header(const char *head, const char *name, size_t *vlen)
{
	const char	*line, *eol, *v;
	size_t		 nlen = strlen(name);

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
ctl_parse_reply(char *raw, size_t len, struct ctl_reply *r)
{
	char		*sep, *body;
	const char	*v;
	size_t		 vlen, blen;
	unsigned long	 clen;

	if (strncmp(raw, "HTTP/1.", 7) != 0 || len < 12 ||
	    !isdigit((unsigned char)raw[9]))
		return (-1);
	r->status = atoi(raw + 9);
	if ((sep = strstr(raw, "\r\n\r\n")) == NULL)
		return (-1);
	sep[2] = '\0';		/* headers end with a line end */
	body = sep + 4;
	blen = len - (size_t)(body - raw);
	if ((v = ctl_header(raw, "Transfer-Encoding", &vlen)) != NULL &&
	    vlen == 7 && strncasecmp(v, "chunked", 7) == 0) {
		if (ctl_dechunk(body, &blen) == -1)
			return (-1);
	} else if ((v = ctl_header(raw, "Content-Length", &vlen)) != NULL) {
		clen = strtoul(v, NULL, 10);
		if (clen < blen)
			blen = clen;
	}
	r->body = ctl_alloc(blen + 1);
	memcpy(r->body, body, blen);
	r->len = blen;
	return (0);
}

/*
 * One request. Returns 0 with the reply (any status), or -1 after saying
 * why no reply came.
 */
static int
ctl_http(struct ctl *ctl, const char *method, const char *path,
    json_t *body, struct ctl_reply *r)
{
	uint64_t	 deadline = ctl_now_ms() + CTL_TIMEOUT_MS;
	char		*req = NULL, *data = NULL, *raw = NULL, *auth = NULL;
	size_t		 rawlen;
	int		 fd, n, rc = -1;

	memset(r, 0, sizeof(*r));
	if (body != NULL && (data = json_dumps(body, JSON_COMPACT)) == NULL) {
		ctl_warnx("cannot encode the request");
		return (-1);
	}
	if (ctl->token != NULL && asprintf(&auth, "Authorization: Bearer "
	    "%s\r\n", ctl->token) == -1) {
		free(data);
		ctl_warnx("out of memory");
		return (-1);
	}
	n = asprintf(&req, "%s %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "User-Agent: tardyctl/%s\r\n"
	    "Accept: application/json\r\n"
	    "Connection: close\r\n"
	    "%s%s"
	    "Content-Length: %zu\r\n"
	    "\r\n%s",
	    method, path,
	    addr_family(&ctl->api) == AF_UNIX ? "localhost" : ctl->api_str,
	    PACKAGE_VERSION, auth != NULL ? auth : "",
	    data != NULL ? "Content-Type: application/json\r\n" : "",
	    data != NULL ? strlen(data) : 0, data != NULL ? data : "");
	free(data);
	free(auth);
	if (n == -1) {
		ctl_warnx("out of memory");
		return (-1);
	}
	if ((fd = ctl_connect(ctl, deadline)) == -1)
		goto out;
	if (ctl_write_all(fd, req, (size_t)n, deadline) == -1 ||
	    (raw = ctl_read_all(fd, &rawlen, deadline)) == NULL) {
		ctl_warnx("%s: %s", ctl->api_str, strerror(errno));
		close(fd);
		goto out;
	}
	close(fd);
	if (ctl_parse_reply(raw, rawlen, r) == -1) {
		ctl_warnx("%s: not an HTTP reply", ctl->api_str);
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
 * JSON (or json_null() for an empty body), printing it first with
 * --json. On failure prints the server's message and returns NULL.
 */
static json_t *
ctl_call(struct ctl *ctl, const char *method, const char *path,
    json_t *body, int expect)
{
	struct ctl_reply	 r;
	json_error_t		 jerr;
	json_t			*j, *e;

	if (ctl_http(ctl, method, path, body, &r) == -1)
		return (NULL);
	j = r.len > 0 ? json_loadb(r.body, r.len, 0, &jerr) : json_null();
	if (r.status != expect && !(expect == 200 && r.status == 201)) {
		e = j != NULL ? json_object_get(j, "error") : NULL;
		if (json_is_string(e))
			ctl_warnx("%s", json_string_value(e));
		else
			ctl_warnx("%s %s: the server answered %d", method, path,
			    r.status);
		json_decref(j);
		free(r.body);
		return (NULL);
	}
	if (j == NULL) {
		ctl_warnx("%s %s: bad JSON in the reply: %s", method, path,
		    jerr.text);
		free(r.body);
		return (NULL);
	}
	if (ctl->json && r.len > 0) {
		fwrite(r.body, 1, r.len, stdout);
		if (r.body[r.len - 1] != '\n')
			putchar('\n');
	}
	free(r.body);
	return (j);
}

/* --- output ---------------------------------------------------------- */

struct ctl_table {
	size_t	  ncols;
	size_t	  nrows;
	char	**cells;	/* row-major, the first row is the header */
};

static void
ctl_table_init(struct ctl_table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

static void
ctl_table_row(struct ctl_table *t, ...)
{
	va_list	 ap;
	char	**cells;
	size_t	 i;

	cells = reallocarray(t->cells, (t->nrows + 1) * t->ncols,
	    sizeof(*cells));
	if (cells == NULL) {
		ctl_warnx("out of memory");
		exit(EXIT_FAIL);
	}
	t->cells = cells;
	va_start(ap, t);
	for (i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);

		if ((cells[t->nrows * t->ncols + i] = strdup(s)) == NULL) {
			ctl_warnx("out of memory");
			exit(EXIT_FAIL);
		}
	}
	va_end(ap);
	t->nrows++;
}

/* Columns two spaces apart, each as wide as its widest cell. */
static void
ctl_table_print(struct ctl_table *t, const char *indent)
{
	size_t	*w, r, c, n;

	w = ctl_alloc(t->ncols * sizeof(*w));
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			n = strlen(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	}
	for (r = 0; r < t->nrows; r++) {
		fputs(indent, stdout);
		for (c = 0; c < t->ncols; c++) {
			if (c + 1 == t->ncols)
				printf("%s\n", t->cells[r * t->ncols + c]);
			else
				printf("%-*s  ", (int)w[c],
				    t->cells[r * t->ncols + c]);
		}
	}
	for (r = 0; r < t->nrows * t->ncols; r++)
		free(t->cells[r]);
	free(t->cells);
	free(w);
}

static const char *
ctl_str(json_t *o, const char *key)
{
	const char	*s = json_string_value(json_object_get(o, key));

	return (s != NULL ? s : "");
}

/* "k=v k=v", attributes in the server's order. */
static char *
ctl_attrs_text(json_t *attrs)
{
	const char	*k;
	json_t		*v;
	char		*s = NULL, *vs, *ns;

	json_object_foreach(attrs, k, v) {
		vs = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		if (asprintf(&ns, "%s%s%s=%s", s != NULL ? s : "",
		    s != NULL ? " " : "", k, vs != NULL ? vs : "?") == -1) {
			ctl_warnx("out of memory");
			exit(EXIT_FAIL);
		}
		free(vs);
		free(s);
		s = ns;
	}
	return (s != NULL ? s : strdup("-"));
}

static void
ctl_print_toxics(json_t *toxics, const char *indent)
{
	struct ctl_table	 t;
	json_t			*x;
	size_t			 i;
	char			 tox[32], *attrs;

	ctl_table_init(&t, 5);
	ctl_table_row(&t, "NAME", "TYPE", "STREAM", "TOXICITY", "ATTRIBUTES");
	json_array_foreach(toxics, i, x) {
		snprintf(tox, sizeof(tox), "%g",
		    json_number_value(json_object_get(x, "toxicity")));
		attrs = ctl_attrs_text(json_object_get(x, "attributes"));
		ctl_table_row(&t, ctl_str(x, "name"), ctl_str(x, "type"),
		    ctl_str(x, "stream"), tox, attrs);
		free(attrs);
	}
	ctl_table_print(&t, indent);
}

static void
ctl_print_proxy(json_t *p)
{
	json_t	*toxics = json_object_get(p, "toxics");

	printf("name:      %s\n", ctl_str(p, "name"));
	printf("listen:    %s\n", ctl_str(p, "listen"));
	printf("upstream:  %s\n", ctl_str(p, "upstream"));
	printf("enabled:   %s\n", json_is_true(json_object_get(p, "enabled")) ?
	    "yes" : "no");
	if (json_is_string(json_object_get(p, "upstream_failure")))
		printf("upstream failure: %s\n",
		    ctl_str(p, "upstream_failure"));
	if (json_array_size(toxics) == 0)
		printf("toxics:    none\n");
	else {
		printf("toxics:\n");
		ctl_print_toxics(toxics, "  ");
	}
}

/* --- commands -------------------------------------------------------- */

/* /proxies/PROXY[/toxics[/TOXIC]], names percent-encoded. */
static int
ctl_path(char *buf, size_t len, const char *proxy, int toxics,
    const char *toxic)
{
	char	*ep, *et;
	int	 n;

	ep = ctl_escape(proxy);
	et = ctl_escape(toxic != NULL ? toxic : "");
	n = snprintf(buf, len, "/proxies/%s%s%s%s", ep,
	    toxics ? "/toxics" : "", toxic != NULL ? "/" : "", et);
	free(ep);
	free(et);
	if (n < 0 || (size_t)n >= len) {
		ctl_warnx("name too long");
		return (-1);
	}
	return (0);
}

static int
ctl_names_cmp(const void *a, const void *b)
{
	return (strcmp(*(const char *const *)a, *(const char *const *)b));
}

static int
ctl_list(struct ctl *ctl, char **argv)
{
	struct ctl_table	 t;
	const char		*name, **names;
	json_t			*j, *p, *x;
	size_t			 n = 0, i, k;
	char			*toxics, *s;

	if ((j = ctl_call(ctl, "GET", "/proxies", NULL, 200)) == NULL)
		return (EXIT_FAIL);
	if (ctl->json)
		goto done;
	names = ctl_alloc((json_object_size(j) + 1) * sizeof(*names));
	json_object_foreach(j, name, p)
		names[n++] = name;
	qsort(names, n, sizeof(*names), ctl_names_cmp);
	ctl_table_init(&t, 5);
	ctl_table_row(&t, "NAME", "LISTEN", "UPSTREAM", "ENABLED", "TOXICS");
	for (i = 0; i < n; i++) {
		p = json_object_get(j, names[i]);
		toxics = NULL;
		json_array_foreach(json_object_get(p, "toxics"), k, x) {
			if (asprintf(&s, "%s%s%s", toxics != NULL ?
			    toxics : "", toxics != NULL ? "," : "",
			    ctl_str(x, "name")) == -1)
				exit(EXIT_FAIL);
			free(toxics);
			toxics = s;
		}
		ctl_table_row(&t, names[i], ctl_str(p, "listen"),
		    ctl_str(p, "upstream"),
		    json_is_true(json_object_get(p, "enabled")) ? "yes" : "no",
		    toxics != NULL ? toxics : "-");
		free(toxics);
	}
	free(names);
	ctl_table_print(&t, "");
done:
	json_decref(j);
	return (0);
}

static int
ctl_show(struct ctl *ctl, char **argv)
{
	char	 path[2048];
	json_t	*j;

	if (ctl_path(path, sizeof(path), argv[0], 0, NULL) == -1 ||
	    (j = ctl_call(ctl, "GET", path, NULL, 200)) == NULL)
		return (EXIT_FAIL);
	if (!ctl->json)
		ctl_print_proxy(j);
	json_decref(j);
	return (0);
}

static int
ctl_create(struct ctl *ctl, char **argv)
{
	json_t	*body, *j;

	body = json_pack("{s:s, s:s, s:b}", "name", argv[0],
	    "upstream", ctl->upstream, "enabled", !(ctl->given & O_DISABLED));
	if (body == NULL) {
		ctl_warnx("names and addresses must be valid UTF-8");
		return (EXIT_USAGE);
	}
	if (ctl->listen != NULL)
		json_object_set_new(body, "listen", json_string(ctl->listen));
	if (ctl->protocol != NULL)
		json_object_set_new(body, "protocol",
		    json_string(ctl->protocol));
	if (ctl->upstream_failure != NULL)
		json_object_set_new(body, "upstream_failure",
		    json_string(ctl->upstream_failure));
	j = ctl_call(ctl, "POST", "/proxies", body, 201);
	json_decref(body);
	if (j == NULL)
		return (EXIT_FAIL);
	if (!ctl->json)
		ctl_print_proxy(j);
	json_decref(j);
	return (0);
}

static int
ctl_simple(struct ctl *ctl, const char *method, const char *path,
    json_t *body, int expect)
{
	json_t	*j;

	j = ctl_call(ctl, method, path, body, expect);
	json_decref(body);
	if (j == NULL)
		return (EXIT_FAIL);
	json_decref(j);
	return (0);
}

static int
ctl_delete(struct ctl *ctl, char **argv)
{
	char	path[2048];

	if (ctl_path(path, sizeof(path), argv[0], 0, NULL) == -1)
		return (EXIT_FAIL);
	return (ctl_simple(ctl, "DELETE", path, NULL, 204));
}

static int
ctl_set_enabled(struct ctl *ctl, char **argv, int on)
{
	char	path[2048];

	if (ctl_path(path, sizeof(path), argv[0], 0, NULL) == -1)
		return (EXIT_FAIL);
	return (ctl_simple(ctl, "PATCH", path, json_pack("{s:b}", "enabled",
	    on), 200));
}

static int
ctl_enable(struct ctl *ctl, char **argv)
{
	return (ctl_set_enabled(ctl, argv, 1));
}

static int
ctl_disable(struct ctl *ctl, char **argv)
{
	return (ctl_set_enabled(ctl, argv, 0));
}

static int
ctl_reset(struct ctl *ctl, char **argv)
{
	return (ctl_simple(ctl, "POST", "/reset", NULL, 204));
}

static int
ctl_version(struct ctl *ctl, char **argv)
{
	json_t	*j;

	if ((j = ctl_call(ctl, "GET", "/version", NULL, 200)) == NULL)
		return (EXIT_FAIL);
	if (!ctl->json) {
		printf("client: tardyctl %s\n", PACKAGE_VERSION);
		printf("server: %s\n", ctl_str(j, "version"));
	}
	json_decref(j);
	return (0);
}

static int
ctl_toxic_print(struct ctl *ctl, json_t *j)
{
	json_t	*a;

	if (j == NULL)
		return (EXIT_FAIL);
	if (!ctl->json) {
		a = json_array();
		json_array_append(a, j);
		ctl_print_toxics(a, "");
		json_decref(a);
	}
	json_decref(j);
	return (0);
}

static int
ctl_toxic_add(struct ctl *ctl, char **argv)
{
	char	 path[2048];
	json_t	*body, *j;

	if (ctl_path(path, sizeof(path), argv[0], 1, NULL) == -1)
		return (EXIT_FAIL);
	body = json_object();
	json_object_set_new(body, "type", json_string(ctl->type));
	if (ctl->name != NULL)
		json_object_set_new(body, "name", json_string(ctl->name));
	if (ctl->stream != NULL)
		json_object_set_new(body, "stream", json_string(ctl->stream));
	if (ctl->given & O_TOXICITY)
		json_object_set_new(body, "toxicity", json_real(ctl->toxicity));
	json_object_set(body, "attributes", ctl->attrs);
	j = ctl_call(ctl, "POST", path, body, 200);
	json_decref(body);
	return (ctl_toxic_print(ctl, j));
}

static int
ctl_toxic_update(struct ctl *ctl, char **argv)
{
	char	 path[2048];
	json_t	*body, *j;

	if (ctl_path(path, sizeof(path), argv[0], 1, argv[1]) == -1)
		return (EXIT_FAIL);
	body = json_object();
	if (ctl->given & O_TOXICITY)
		json_object_set_new(body, "toxicity", json_real(ctl->toxicity));
	if (json_object_size(ctl->attrs) > 0)
		json_object_set(body, "attributes", ctl->attrs);
	j = ctl_call(ctl, "PATCH", path, body, 200);
	json_decref(body);
	return (ctl_toxic_print(ctl, j));
}

static int
ctl_toxic_remove(struct ctl *ctl, char **argv)
{
	char	path[2048];

	if (ctl_path(path, sizeof(path), argv[0], 1, argv[1]) == -1)
		return (EXIT_FAIL);
	return (ctl_simple(ctl, "DELETE", path, NULL, 204));
}

static int
ctl_toxic_list(struct ctl *ctl, char **argv)
{
	char	 path[2048];
	json_t	*j;

	if (ctl_path(path, sizeof(path), argv[0], 1, NULL) == -1 ||
	    (j = ctl_call(ctl, "GET", path, NULL, 200)) == NULL)
		return (EXIT_FAIL);
	if (!ctl->json)
		ctl_print_toxics(j, "");
	json_decref(j);
	return (0);
}

static const struct ctl_cmd ctl_cmds[] = {
	{ "list", "", 0, 0, 0, ctl_list,
"List every proxy: its name, the address it listens on, its upstream,\n"
"whether it is enabled and the names of its toxics.\n" },
	{ "show", "NAME", 1, 1, 0, ctl_show,
"Show proxy NAME and a table of its toxics.\n" },
	{ "create", "NAME -u ADDRESS [-l ADDRESS] [--disabled] "
	    "[--protocol tcp|udp] [--upstream-failure close|reset]", 1, 1,
	    O_LISTEN | O_UPSTREAM | O_DISABLED | O_PROTOCOL | O_UPFAIL,
	    ctl_create,
"Create proxy NAME, forwarding connections to the upstream ADDRESS, and\n"
"show it. The address it listens on is printed resolved, so with the\n"
"default port 0 it shows the port the server picked.\n"
"\n"
"  -l, --listen ADDRESS     where to listen (default 127.0.0.1:0)\n"
"  -u, --upstream ADDRESS   where to forward connections (required)\n"
"      --disabled           create it without accepting connections\n"
"      --protocol PROTO     tcp (default) or udp: forward datagrams\n"
"      --upstream-failure close|reset\n"
"                           when the upstream cannot be reached, the\n"
"                           client reads EOF (close, the default, as with\n"
"                           Toxiproxy) or is reset\n"
"\n"
"Addresses are host:port, [v6addr]:port or unix:/path. An upstream host\n"
"name need not resolve yet: it is looked up when a connection needs it.\n" },
	{ "delete", "NAME", 1, 1, 0, ctl_delete,
"Delete proxy NAME: its listener and its connections are closed.\n" },
	{ "enable", "NAME", 1, 1, 0, ctl_enable,
"Let proxy NAME accept connections again.\n" },
	{ "disable", "NAME", 1, 1, 0, ctl_disable,
"Stop proxy NAME: new connections are refused (tardyd keeps the port)\n"
"and its open connections are closed.\n" },
	{ "toxic add", "PROXY -T TYPE [-s STREAM] [-n NAME] [--toxicity P] "
	    "[-A K=V]...", 1, 1,
	    O_TYPE | O_STREAM | O_TOXICITY | O_ATTR | O_NAME, ctl_toxic_add,
"Add a toxic to PROXY. It acts on open connections at once.\n"
"\n"
"  -T, --type TYPE          latency, bandwidth, slow_close, timeout,\n"
"                           reset_peer, slicer, limit_data, noop, and\n"
"                           tardy's drop_syn, refuse, blackhole, stall\n"
"  -s, --stream STREAM      upstream (client to server) or downstream\n"
"                           (server to client, the default)\n"
"  -n, --name NAME          its name (default TYPE_STREAM)\n"
"      --toxicity P         the probability, per connection, that it\n"
"                           acts there, from 0 to 1 (default 1)\n"
"  -A, --attr KEY=VALUE     an attribute, e.g. latency=100; integers are\n"
"                           sent as JSON integers (repeat for several)\n" },
	{ "toxic update", "PROXY NAME [--toxicity P] [-A K=V]...", 2, 2,
	    O_TOXICITY | O_ATTR, ctl_toxic_update,
"Change toxic NAME of PROXY: the attributes given replace those of the\n"
"same names, the others stay.\n"
"\n"
"      --toxicity P         the new toxicity, from 0 to 1\n"
"  -A, --attr KEY=VALUE     an attribute to change (repeat for several)\n" },
	{ "toxic remove", "PROXY NAME", 2, 2, 0, ctl_toxic_remove,
"Remove toxic NAME from PROXY; what it held back is passed on.\n" },
	{ "toxic list", "PROXY", 1, 1, 0, ctl_toxic_list,
"List the toxics of PROXY.\n" },
	{ "reset", "", 0, 0, 0, ctl_reset,
"Enable every proxy and remove every toxic.\n" },
	{ "version", "", 0, 0, 0, ctl_version,
"Print tardyctl's version and the server's.\n" },
};
#define CTL_NCMDS	(sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static void
ctl_usage(FILE *fp)
{
	size_t	i;

	fprintf(fp,
"usage: tardyctl [-jhV] [-a address] [-t token] command [argument ...]\n"
"\n"
"tardyctl drives a running tardyd, or Toxiproxy, through its HTTP\n"
"control API.\n"
"\n"
"Commands:\n");
	for (i = 0; i < CTL_NCMDS; i++)
		fprintf(fp, "  tardyctl %s%s%s\n", ctl_cmds[i].name,
		    *ctl_cmds[i].synopsis != '\0' ? " " : "",
		    ctl_cmds[i].synopsis);
	fprintf(fp,
"\n"
"Options:\n"
"  -a, --api ADDRESS   the API to talk to: host:port, [v6addr]:port or\n"
"                      unix:/path (default $TARDY_API, else %s)\n"
"  -t, --token TOKEN   send \"Authorization: Bearer TOKEN\" (default\n"
"                      $TARDY_API_TOKEN)\n"
"  -j, --json          print the server's JSON instead of tables\n"
"  -h, --help          print this help; \"tardyctl COMMAND -h\" prints a\n"
"                      command's\n"
"  -V, --version       print tardyctl's version and exit\n"
"\n"
"Exit status: 0 on success, 1 when the server refuses the request or\n"
"cannot be reached (the reason is printed on standard error), 2 for a\n"
"usage error.\n"
"\n"
"Examples:\n"
"  tardyctl create redis -l 127.0.0.1:26379 -u 127.0.0.1:6379\n"
"  tardyctl toxic add redis -T latency -A latency=300 -A jitter=50\n"
"  tardyctl disable redis\n"
"  tardyctl -a unix:/run/tardy/api.sock --json list\n",
	    CTL_DEFAULT_API);
}

static void
ctl_cmd_usage(const struct ctl_cmd *c, FILE *fp)
{
	fprintf(fp, "usage: tardyctl [options] %s%s%s\n", c->name,
	    *c->synopsis != '\0' ? " " : "", c->synopsis);
}

static void
ctl_cmd_help(const struct ctl_cmd *c)
{
	ctl_cmd_usage(c, stdout);
	printf("\n%s", c->help);
	printf("\nWith --json, the server's JSON reply is printed as it "
	    "is.\nSee \"tardyctl --help\" for the global options.\n");
}

/* The command named by the first one or two words of argv. */
static const struct ctl_cmd *
ctl_find_cmd(int argc, char **argv, int *words)
{
	size_t		i;
	const char	*sp;
	size_t		n;

	for (i = 0; i < CTL_NCMDS; i++) {
		sp = strchr(ctl_cmds[i].name, ' ');
		if (sp == NULL) {
			if (argc >= 1 &&
			    strcmp(argv[0], ctl_cmds[i].name) == 0) {
				*words = 1;
				return (&ctl_cmds[i]);
			}
			continue;
		}
		n = (size_t)(sp - ctl_cmds[i].name);
		if (argc >= 2 && strlen(argv[0]) == n &&
		    strncmp(argv[0], ctl_cmds[i].name, n) == 0 &&
		    strcmp(argv[1], sp + 1) == 0) {
			*words = 2;
			return (&ctl_cmds[i]);
		}
	}
	return (NULL);
}

/* VALUE of --attr: an integer, a number, true/false or else a string. */
static json_t *
ctl_attr_value(const char *v)
{
	json_t	*j;

	if ((j = util_json_number(v)) != NULL)
		return (j);
	if (strcmp(v, "true") == 0)
		return (json_true());
	if (strcmp(v, "false") == 0)
		return (json_false());
	return (json_string(v));
}

static const char *
ctl_opt_name(int bit)
{
	switch (bit) {
	case O_LISTEN:
		return ("--listen");
	case O_UPSTREAM:
		return ("--upstream");
	case O_DISABLED:
		return ("--disabled");
	case O_TYPE:
		return ("--type");
	case O_STREAM:
		return ("--stream");
	case O_TOXICITY:
		return ("--toxicity");
	case O_ATTR:
		return ("--attr");
	case O_NAME:
		return ("--name");
	case O_PROTOCOL:
		return ("--protocol");
	case O_UPFAIL:
		return ("--upstream-failure");
	}
	return ("?");
}

static int
ctl_usage_error(const struct ctl_cmd *c, const char *fmt, ...)
{
	va_list	ap;

	fputs("tardyctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c != NULL) {
		ctl_cmd_usage(c, stderr);
		fprintf(stderr, "Try \"tardyctl %s --help\".\n", c->name);
	} else
		fprintf(stderr, "Try \"tardyctl --help\".\n");
	return (EXIT_USAGE);
}

/* The API address: -a, else $TARDY_API, else the default. */
static int
ctl_set_api(struct ctl *ctl, const char *spec)
{
	char	err[256], *s, *slash;
	int	rc;

	/* Accept a URL as Toxiproxy's tools take it: http://host:port/. */
	if (strncasecmp(spec, "http://", 7) == 0)
		spec += 7;
	if ((s = strdup(spec)) == NULL)
		return (-1);
	if (strncmp(s, "unix:", 5) != 0 && (slash = strchr(s, '/')) != NULL &&
	    slash[1] == '\0')
		*slash = '\0';
	rc = addr_parse(s, &ctl->api, err, sizeof(err));
	free(s);
	if (rc == -1) {
		ctl_warnx("API address: %s", err);
		return (-1);
	}
	addr_fmt(&ctl->api, ctl->api_str, sizeof(ctl->api_str));
	return (0);
}

/* Everything main() does, so it has one place to free what it made. */
static int
ctl_main(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "api",	required_argument,	NULL, 'a' },
		{ "token",	required_argument,	NULL, 't' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
		{ "listen",	required_argument,	NULL, 'l' },
		{ "upstream",	required_argument,	NULL, 'u' },
		{ "disabled",	no_argument,		NULL, 'D' },
		{ "type",	required_argument,	NULL, 'T' },
		{ "stream",	required_argument,	NULL, 's' },
		{ "toxicity",	required_argument,	NULL, 'X' },
		{ "attr",	required_argument,	NULL, 'A' },
		{ "name",	required_argument,	NULL, 'n' },
		{ "protocol",	required_argument,	NULL, 'P' },
		{ "upstream-failure", required_argument, NULL, 'F' },
		{ NULL,		0,			NULL, 0 }
	};
	const struct ctl_cmd	*cmd;
	json_t			*num;
	const char		*api = NULL, *eq;
	char			*key;
	int			 ch, help = 0, words, nargs, bit;

	ctl->token = getenv("TARDY_API_TOKEN");
	if (ctl->token != NULL && *ctl->token == '\0')
		ctl->token = NULL;

	/* Options may come anywhere; the words left are the command. */
	while ((ch = getopt_long(argc, argv, "a:t:jhVl:u:T:s:A:n:", longopts,
	    NULL)) != -1) {
		bit = 0;
		switch (ch) {
		case 'a':
			api = optarg;
			break;
		case 't':
			ctl->token = optarg;
			break;
		case 'j':
			ctl->json = 1;
			break;
		case 'h':
			help = 1;
			break;
		case 'V':
			printf("tardyctl %s\n", PACKAGE_VERSION);
			return (0);
		case 'l':
			ctl->listen = optarg;
			bit = O_LISTEN;
			break;
		case 'u':
			ctl->upstream = optarg;
			bit = O_UPSTREAM;
			break;
		case 'D':
			bit = O_DISABLED;
			break;
		case 'T':
			ctl->type = optarg;
			bit = O_TYPE;
			break;
		case 's':
			ctl->stream = optarg;
			bit = O_STREAM;
			break;
		case 'X':
			if ((num = util_json_number(optarg)) == NULL)
				return (ctl_usage_error(NULL, "--toxicity: "
				    "not a number: \"%s\"", optarg));
			ctl->toxicity = json_number_value(num);
			json_decref(num);
			bit = O_TOXICITY;
			break;
		case 'A':
			if ((eq = strchr(optarg, '=')) == NULL ||
			    eq == optarg)
				return (ctl_usage_error(NULL, "--attr: "
				    "expected KEY=VALUE, got \"%s\"", optarg));
			if ((key = strndup(optarg, (size_t)(eq - optarg))) ==
			    NULL)
				return (EXIT_FAIL);
			json_object_set_new(ctl->attrs, key,
			    ctl_attr_value(eq + 1));
			free(key);
			bit = O_ATTR;
			break;
		case 'n':
			ctl->name = optarg;
			bit = O_NAME;
			break;
		case 'P':
			ctl->protocol = optarg;
			bit = O_PROTOCOL;
			break;
		case 'F':
			ctl->upstream_failure = optarg;
			bit = O_UPFAIL;
			break;
		default:
			return (ctl_usage_error(NULL, "unknown option"));
		}
		ctl->given |= bit;
	}
	argc -= optind;
	argv += optind;

	if (argc == 0) {
		if (help) {
			ctl_usage(stdout);
			return (0);
		}
		return (ctl_usage_error(NULL, "no command given"));
	}
	if (strcmp(argv[0], "help") == 0) {
		if (argc > 1 && (cmd = ctl_find_cmd(argc - 1, argv + 1,
		    &words)) != NULL)
			ctl_cmd_help(cmd);
		else
			ctl_usage(stdout);
		return (0);
	}
	if ((cmd = ctl_find_cmd(argc, argv, &words)) == NULL)
		return (ctl_usage_error(NULL, "unknown command \"%s%s%s\"",
		    argv[0], argc > 1 && strcmp(argv[0], "toxic") == 0 ? " " :
		    "", argc > 1 && strcmp(argv[0], "toxic") == 0 ? argv[1] :
		    ""));
	if (help) {
		ctl_cmd_help(cmd);
		return (0);
	}
	nargs = argc - words;
	if (nargs < cmd->minargs || nargs > cmd->maxargs)
		return (ctl_usage_error(cmd, "%s: expected %d argument%s, "
		    "got %d", cmd->name, cmd->maxargs,
		    cmd->maxargs == 1 ? "" : "s", nargs));
	for (bit = 1; bit <= O_PROTOCOL; bit <<= 1) {
		if ((ctl->given & bit) && !(cmd->opts & bit))
			return (ctl_usage_error(cmd, "%s: %s does not apply",
			    cmd->name, ctl_opt_name(bit)));
	}
	if (strcmp(cmd->name, "create") == 0 && ctl->upstream == NULL)
		return (ctl_usage_error(cmd, "create: --upstream is required"));
	if (strcmp(cmd->name, "toxic add") == 0 && ctl->type == NULL)
		return (ctl_usage_error(cmd, "toxic add: --type is required"));

	if (ctl->token != NULL && strpbrk(ctl->token, "\r\n") != NULL)
		return (ctl_usage_error(NULL, "the token cannot hold a line "
		    "break"));
	if (api == NULL && (api = getenv("TARDY_API")) != NULL && *api == '\0')
		api = NULL;
	if (ctl_set_api(ctl, api != NULL ? api : CTL_DEFAULT_API) == -1)
		return (EXIT_USAGE);
	return (cmd->run(ctl, argv + words));
}

int
main(int argc, char **argv)
{
	struct ctl	ctl;
	int		rc;

	memset(&ctl, 0, sizeof(ctl));
	if ((ctl.attrs = json_object()) == NULL)
		return (EXIT_FAIL);
	rc = ctl_main(&ctl, argc, argv);
	json_decref(ctl.attrs);
	return (rc);
}
