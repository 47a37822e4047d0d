/*
 * Who may drive the control API.
 *
 * Through the API a client changes what a test's connections go through
 * and, through a proxy, reaches whatever tardyd's user can connect to, so
 * every request passes these checks before it is routed
 * (api_auth_check), in this order:
 *
 * - on a unix-socket API, the peer's credentials (SO_PEERCRED): tardyd's
 *   own user, root or a member of api_group;
 * - no browser: a "Mozilla/" User-Agent (Toxiproxy's check), an Origin
 *   that is not this machine's or one of api_hosts, or a Sec-Fetch-Site
 *   other than same-origin or none is refused;
 * - the token, when one is set;
 * - without a token, the Host the request was sent to: a loopback name
 *   or address, the address the client connected to, or one of
 *   api_hosts. A web page whose name an attacker rebinds to 127.0.0.1
 *   (DNS rebinding) is same-origin to the browser and sends its own name
 *   as Host, which is refused. An API off loopback is reached by names
 *   tardy cannot know (a compose service, a Kubernetes Service, a Docker
 *   host), so there the Host is checked only once api_hosts is set.
 *
 * A unix path a request names, as a proxy's listen or upstream address,
 * must lie in a directory the API may use (api_auth_unix_path_ok). The
 * configuration file and the command line are the administrator's and
 * are not limited. doc/api.md has the threat model.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "addr.h"
#include "api_auth.h"
#include "config.h"

#define API_AUTH_QUOTE_LEN	96	/* of a header quoted in a reply */
#define API_AUTH_HOST_LEN	256

/* A client's words for a reply: printable ASCII, cut to fit. */
static const char *
api_auth_quote(const char *in, char *out, size_t len)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < len; i++)
		out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[i] = '\0';
	if (in[i] != '\0' && len > 4)
		memcpy(out + len - 4, "...", 4);
	return (out);
}

static int
api_auth_fd(struct evhttp_request *req)
{
	struct evhttp_connection *evcon;
	struct bufferevent	 *bev;

	if ((evcon = evhttp_request_get_connection(req)) == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return (-1);
	return (bufferevent_getfd(bev));
}

/* --- peer credentials ------------------------------------------------ */

/* The peer's groups as they were when it connected (SO_PEERGROUPS). */
static int
api_auth_peer_in_group(int fd, const struct ucred *uc, gid_t gid)
{
#ifdef SO_PEERGROUPS
	gid_t	  small[64], *groups = small;
	socklen_t len = sizeof(small);
	size_t	  i;
	int	  found = 0;
#endif

	if (uc->gid == gid)
		return (1);
#ifdef SO_PEERGROUPS
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == -1) {
		/* ERANGE: len is what it takes. */
		if (errno != ERANGE || (groups = malloc(len)) == NULL)
			return (0);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) ==
		    -1)
			len = 0;
	}
	for (i = 0; i < len / sizeof(*groups); i++) {
		if (groups[i] == gid)
			found = 1;
	}
	if (groups != small)
		free(groups);
	return (found);
#else
	return (0);
#endif
}

/* Who is at the other end of a unix-socket API. Returns 0 or 403. */
static int
api_auth_peer(int fd, const struct config *conf, char *msg, size_t len)
{
	struct ucred uc;
	socklen_t    ulen = sizeof(uc);

	if (fd == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ulen) == -1) {
		snprintf(msg, len,
		    "peer not allowed: its credentials cannot "
		    "be read: %s",
		    strerror(fd == -1 ? EBADF : errno));
		return (403);
	}
	if (uc.uid == 0 || uc.uid == geteuid())
		return (0);
	if (conf->api_group != NULL &&
	    api_auth_peer_in_group(fd, &uc, conf->api_gid))
		return (0);
	if (conf->api_group != NULL)
		snprintf(msg, len,
		    "peer not allowed: uid %u is not tardyd's "
		    "user (uid %u) nor root, and not in api_group \"%s\"",
		    (unsigned int)uc.uid, (unsigned int)geteuid(),
		    conf->api_group);
	else
		snprintf(msg, len,
		    "peer not allowed: uid %u is not tardyd's "
		    "user (uid %u) nor root (api_group lets a group in)",
		    (unsigned int)uc.uid, (unsigned int)geteuid());
	return (403);
}

/* --- hosts and origins ----------------------------------------------- */

/*
 * "name", "name:port", "[v6]" or "[v6]:port" to the host alone, lower
 * case, without brackets or a final dot. Returns -1 if malformed.
 */
static int
api_auth_split(const char *hostport, char *host, size_t len)
{
	const char *start = hostport, *port, *end;
	size_t	    n, i;

	if (*hostport == '[') {
		if ((end = strchr(hostport, ']')) == NULL)
			return (-1);
		start = hostport + 1;
		n = (size_t)(end - start);
		port = end + 1;
		if (*port != '\0' && *port != ':')
			return (-1);
	} else {
		port = strchr(hostport, ':');
		/* A bare IPv6 address is no Host: it needs brackets. */
		if (port != NULL && strchr(port + 1, ':') != NULL)
			return (-1);
		n = port != NULL ? (size_t)(port - hostport) : strlen(hostport);
		if (port == NULL)
			port = "";
	}
	if (*port == ':') {
		port++;
		if (*port == '\0' || strlen(port) > 5 ||
		    strspn(port, "0123456789") != strlen(port))
			return (-1);
	}
	if (n == 0 || n >= len)
		return (-1);
	for (i = 0; i < n; i++) {
		host[i] = start[i];
		if (host[i] >= 'A' && host[i] <= 'Z')
			host[i] += 'a' - 'A';
	}
	if (n > 1 && host[n - 1] == '.')
		n--;
	host[n] = '\0';
	return (0);
}

/* Whether an IP address in host is the one the client connected to. */
static int
api_auth_is_local(const char *host, int fd)
{
	struct sockaddr_storage ss;
	struct in6_addr		in6;
	struct in_addr		in;
	const struct in6_addr  *l6;
	socklen_t		len = sizeof(ss);

	if (fd == -1 || getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return (0);
	if (ss.ss_family == AF_INET && inet_pton(AF_INET, host, &in) == 1)
		return (((struct sockaddr_in *)&ss)->sin_addr.s_addr ==
		    in.s_addr);
	if (ss.ss_family != AF_INET6)
		return (0);
	l6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	if (inet_pton(AF_INET6, host, &in6) == 1)
		return (memcmp(l6, &in6, sizeof(in6)) == 0);
	/* A dual-stack socket: an IPv4 client is ::ffff:a.b.c.d. */
	return (IN6_IS_ADDR_V4MAPPED(l6) &&
	    inet_pton(AF_INET, host, &in) == 1 &&
	    memcmp(&l6->s6_addr[12], &in, 4) == 0);
}

/*
 * Whether a host (as api_auth_split leaves it) names this API: a
 * loopback name or address, an unspecified address (which reaches this
 * machine), the address the client connected to, or one of api_hosts.
 * An IP address cannot be rebound; a name other than these can.
 */
static int
api_auth_host_ok(const char *host, const struct config *conf, int fd)
{
	struct in6_addr in6;
	struct in_addr	in;
	size_t		n = strlen(host), i;
	uint32_t	a;

	/* RFC 6761: browsers resolve these to loopback themselves. */
	if (strcmp(host, "localhost") == 0 ||
	    (n > 10 && strcmp(host + n - 10, ".localhost") == 0))
		return (1);
	if (inet_pton(AF_INET, host, &in) == 1) {
		a = ntohl(in.s_addr);
		if ((a >> 24) == 127 || a == 0)
			return (1);
	} else if (inet_pton(AF_INET6, host, &in6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&in6) ||
		    IN6_IS_ADDR_UNSPECIFIED(&in6) ||
		    (IN6_IS_ADDR_V4MAPPED(&in6) && in6.s6_addr[12] == 127))
			return (1);
	}
	if (api_auth_is_local(host, fd))
		return (1);
	for (i = 0; i < conf->napi_hosts; i++) {
		if (strcmp(host, conf->api_hosts[i]) == 0)
			return (1);
	}
	return (0);
}

/* "host[:port]" that names this API (api_auth_host_ok). */
static int
api_auth_hostport_ok(const char *hostport, const struct config *conf, int fd)
{
	char host[API_AUTH_HOST_LEN];

	return (api_auth_split(hostport, host, sizeof(host)) == 0 &&
	    api_auth_host_ok(host, conf, fd));
}

/* An Origin: "http(s)://host[:port]" with a host as for Host. */
static int
api_auth_origin_ok(const char *origin, const struct config *conf, int fd)
{
	char	    authority[API_AUTH_HOST_LEN];
	const char *p;
	size_t	    n;

	if (strncasecmp(origin, "http://", 7) == 0)
		p = origin + 7;
	else if (strncasecmp(origin, "https://", 8) == 0)
		p = origin + 8;
	else
		return (0); /* "null" (a sandbox, a file), others */
	n = strcspn(p, "/@");
	if ((p[n] != '\0' && strcmp(p + n, "/") != 0) || n >= sizeof(authority))
		return (0);
	memcpy(authority, p, n);
	authority[n] = '\0';
	return (api_auth_hostport_ok(authority, conf, fd));
}

/*
 * Whether the Host is checked: on a loopback API always, since that is
 * what a rebound name reaches; off loopback once api_hosts says what
 * the API's names are; never on a unix socket (no browser reaches one).
 */
static int
api_auth_host_checked(const struct addr *bound, const struct config *conf)
{
	if (addr_family(bound) == AF_UNIX)
		return (0);
	return (addr_is_loopback(bound) || conf->napi_hosts > 0);
}

/* The Host header (one at most) and an absolute request URI's host. */
static int
api_auth_host(struct evhttp_request *req, const struct config *conf, int fd,
    char *msg, size_t len)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(req);
	const struct evhttp_uri *uri;
	struct evkeyval		*kv;
	const char		*value = NULL, *uhost, *bad = NULL;
	char			 q[API_AUTH_QUOTE_LEN];
	int			 n = 0;

	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, "Host") == 0) {
			value = kv->value;
			n++;
		}
	}
	if (n > 1) {
		snprintf(msg, len,
		    "host not allowed: more than one Host "
		    "header");
		return (403);
	}
	uri = evhttp_request_get_evhttp_uri(req);
	/* No Host (HTTP/1.0) or an empty one: no browser sends that. */
	if (value != NULL && *value != '\0' &&
	    !api_auth_hostport_ok(value, conf, fd))
		bad = value;
	/*
	 * "GET http://name/..." names the host too, and overrides Host
	 * (RFC 9112, 3.2.2); "//name/x" is only a path.
	 */
	else if (uri != NULL && evhttp_uri_get_scheme(uri) != NULL &&
	    (uhost = evhttp_uri_get_host(uri)) != NULL && *uhost != '\0' &&
	    !api_auth_hostport_ok(uhost, conf, fd))
		bad = uhost;
	if (bad == NULL)
		return (0);
	snprintf(msg, len,
	    "host not allowed: \"%s\" is not a loopback name "
	    "or address, this API's address or one of api_hosts",
	    api_auth_quote(bad, q, sizeof(q)));
	return (403);
}

/* --- the check ------------------------------------------------------- */

/* Compare in time that depends on the expected length only. */
int
api_auth_token_equal(const char *got, size_t gotlen, const char *want)
{
	size_t	      wantlen = strlen(want), i;
	unsigned char diff = gotlen != wantlen;

	for (i = 0; i < wantlen; i++)
		diff |= (unsigned char)want[i] ^
		    (unsigned char)(i < gotlen ? got[i] : 0);
	return (diff == 0);
}

/*
 * Whether the request may go on: 0, or the status of the error reply
 * (401 or 403) with its message in msg; for a 401 the
 * WWW-Authenticate header is added to the reply already. bound is
 * where the API listens, token NULL when none is required.
 */
int
api_auth_check(struct evhttp_request *req, const struct addr *bound,
    const struct config *conf, const char *token, char *msg, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char	 *ua, *origin, *site, *auth;
	char		  q[API_AUTH_QUOTE_LEN];
	int		  fd = api_auth_fd(req), status;

	if (addr_family(bound) == AF_UNIX &&
	    (status = api_auth_peer(fd, conf, msg, len)) != 0)
		return (status);
	/* Toxiproxy's guard against web pages, with its words. */
	if ((ua = evhttp_find_header(h, "User-Agent")) != NULL &&
	    strncmp(ua, "Mozilla/", 8) == 0) {
		snprintf(msg, len, "User agent not allowed");
		return (403);
	}
	if ((origin = evhttp_find_header(h, "Origin")) != NULL &&
	    !api_auth_origin_ok(origin, conf, fd)) {
		snprintf(msg, len,
		    "origin not allowed: \"%s\" is not a "
		    "loopback origin or one of api_hosts",
		    api_auth_quote(origin, q, sizeof(q)));
		return (403);
	}
	if ((site = evhttp_find_header(h, "Sec-Fetch-Site")) != NULL &&
	    strcasecmp(site, "same-origin") != 0 &&
	    strcasecmp(site, "none") != 0) {
		snprintf(msg, len,
		    "cross-site request not allowed: "
		    "Sec-Fetch-Site is \"%s\"",
		    api_auth_quote(site, q, sizeof(q)));
		return (403);
	}
	if (token != NULL) {
		/* A page a rebound name serves cannot know the token. */
		auth = evhttp_find_header(h, "Authorization");
		if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
			for (auth += 7; *auth == ' '; auth++)
				;
			if (api_auth_token_equal(auth, strlen(auth), token))
				return (0);
		}
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer realm=\"tardy\"");
		snprintf(msg, len, "missing or invalid API token");
		return (401);
	}
	if (api_auth_host_checked(bound, conf))
		return (api_auth_host(req, conf, fd, msg, len));
	return (0);
}

/*
 * A unix-socket API is group-accessible (0660), in api_group when one is
 * set, so that group's members can connect; api_auth_peer still decides
 * who may ask. Returns -1 with err set if that cannot be done.
 */
int
api_auth_socket(const struct addr *bound, const struct config *conf, char *err,
    size_t errlen)
{
	const char *path;

	if (addr_family(bound) != AF_UNIX)
		return (0);
	path = addr_unix_path(bound);
	if (conf->api_group != NULL &&
	    chown(path, (uid_t)-1, conf->api_gid) == -1) {
		snprintf(err, errlen, "chown %s to api_group %s: %s", path,
		    conf->api_group, strerror(errno));
		return (-1);
	}
	if (chmod(path, 0660) == -1) {
		snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
		return (-1);
	}
	return (0);
}

/* --- unix paths ------------------------------------------------------ */

/*
 * The path a unix socket path really names: no ".." in it, the longest
 * part that exists through realpath(3) (symbolic links followed), the
 * rest as written. A dangling link would be followed later: refused.
 */
static int
api_auth_resolve(const char *path, char *out, size_t outlen, char *err,
    size_t errlen)
{
	char	    cur[PATH_MAX], real[PATH_MAX], rest[PATH_MAX];
	char	    tmp[PATH_MAX], *slash;
	const char *p;
	struct stat st;
	size_t	    n;

	for (p = path; *p != '\0'; p += n) {
		p += strspn(p, "/");
		n = strcspn(p, "/");
		if (n == 2 && strncmp(p, "..", 2) == 0) {
			snprintf(err, errlen,
			    "\"..\" is not allowed in a "
			    "path");
			return (-1);
		}
	}
	if (*path == '/')
		n = (size_t)snprintf(cur, sizeof(cur), "%s", path);
	else if (getcwd(tmp, sizeof(tmp)) != NULL)
		n = (size_t)snprintf(cur, sizeof(cur), "%s/%s", tmp, path);
	else {
		snprintf(err, errlen, "getcwd: %s", strerror(errno));
		return (-1);
	}
	if (n >= sizeof(cur)) {
		snprintf(err, errlen, "path too long");
		return (-1);
	}
	rest[0] = '\0';
	while (realpath(cur, real) == NULL) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "%s", strerror(errno));
			return (-1);
		}
		if (lstat(cur, &st) == 0) {
			snprintf(err, errlen,
			    "%.200s is a symbolic link to "
			    "nowhere",
			    cur);
			return (-1);
		}
		/* cur is absolute and "/" exists, so there is a slash. */
		slash = strrchr(cur, '/');
		snprintf(tmp, sizeof(tmp), "%s%s", slash, rest);
		memcpy(rest, tmp, sizeof(rest));
		if (slash == cur)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	if ((size_t)snprintf(out, outlen, "%s%s",
		strcmp(real, "/") == 0 ? "" : real, rest) >= outlen) {
		snprintf(err, errlen, "path too long");
		return (-1);
	}
	return (0);
}

/* Whether path (resolved) lies in dir (resolved too). */
static int
api_auth_under(const char *path, const char *dir)
{
	char   real[PATH_MAX];
	size_t n;

	if (realpath(dir, real) == NULL)
		return (0); /* not there (yet): nothing is in it */
	if (strcmp(real, "/") == 0)
		return (1);
	n = strlen(real);
	return (strncmp(path, real, n) == 0 && path[n] == '/');
}

/* Add dir to the list of directories named in an error, cut to fit. */
static void
api_auth_list_add(char *list, size_t len, const char *dir)
{
	size_t n = strlen(list), i;

	if (n > 0 && n + 2 < len) {
		memcpy(list + n, ", ", 2);
		n += 2;
	}
	for (i = 0; dir[i] != '\0' && n + 1 < len; i++)
		list[n++] = dir[i];
	list[n] = '\0';
}

/* A ':'-separated list of directories from the environment. */
static int
api_auth_env_dirs(const char *var, const char *path, char *list, size_t len)
{
	const char *v = getenv(var), *p;
	char	    dir[PATH_MAX];
	size_t	    n;

	if (v == NULL)
		return (0);
	for (p = v; *p != '\0'; p += n + (p[n] == ':')) {
		n = strcspn(p, ":");
		if (n == 0 || *p != '/' || n >= sizeof(dir))
			continue; /* only absolute paths count */
		memcpy(dir, p, n);
		dir[n] = '\0';
		if (api_auth_under(path, dir))
			return (1);
		api_auth_list_add(list, len, dir);
	}
	return (0);
}

/*
 * The directory of the API's own socket, where its users already
 * connect, when only tardyd's user or root can write there: a directory
 * others can write (/tmp) would let them plant links to sockets elsewhere.
 */
static int
api_auth_socket_dir(const struct addr *bound, char *dir, size_t len)
{
	struct stat st;
	char	   *slash;

	if (addr_family(bound) != AF_UNIX ||
	    (size_t)snprintf(dir, len, "%s", addr_unix_path(bound)) >= len)
		return (0);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, len, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_uid == geteuid() || st.st_uid == 0) &&
	    (st.st_mode & (S_IWGRP | S_IWOTH)) == 0);
}

/*
 * Whether the API may use path as a unix socket address: only inside the
 * directories of unix_dirs, TARDY_UNIX_DIRS and RUNTIME_DIRECTORY (the
 * systemd unit's RuntimeDirectory, ':'-separated both) and that of the
 * API's own socket. Returns 1, or 0 with err saying why not.
 */
int
api_auth_unix_path_ok(const char *path, const struct addr *bound,
    const struct config *conf, char *err, size_t errlen)
{
	char   real[PATH_MAX], dir[PATH_MAX], why[256], list[256];
	size_t i;

	if (api_auth_resolve(path, real, sizeof(real), why, sizeof(why)) ==
	    -1) {
		snprintf(err, errlen, "unix:%s: %s", path, why);
		return (0);
	}
	list[0] = '\0';
	for (i = 0; i < conf->nunix_dirs; i++) {
		if (api_auth_under(real, conf->unix_dirs[i]))
			return (1);
		api_auth_list_add(list, sizeof(list), conf->unix_dirs[i]);
	}
	if (api_auth_env_dirs("TARDY_UNIX_DIRS", real, list, sizeof(list)) ||
	    api_auth_env_dirs("RUNTIME_DIRECTORY", real, list, sizeof(list)))
		return (1);
	if (api_auth_socket_dir(bound, dir, sizeof(dir))) {
		if (api_auth_under(real, dir))
			return (1);
		api_auth_list_add(list, sizeof(list), dir);
	}
	if (list[0] == '\0')
		snprintf(err, errlen,
		    "unix:%s: the API may not use unix "
		    "sockets: no directory is allowed (unix_dirs in [tardy], "
		    "TARDY_UNIX_DIRS)",
		    path);
	else
		snprintf(err, errlen,
		    "unix:%s%s%s%s is outside the "
		    "directories the API may use: %s (unix_dirs in [tardy], "
		    "TARDY_UNIX_DIRS)",
		    path, strcmp(real, path) != 0 ? " (" : "",
		    strcmp(real, path) != 0 ? real : "",
		    strcmp(real, path) != 0 ? ")" : "", list);
	return (0);
}
