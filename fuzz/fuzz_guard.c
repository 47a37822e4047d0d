/*
 * Guards linked into every fuzz target, so that no input can make the
 * daemon's code reach off this machine or outside the scratch directory:
 *
 * - name lookups: getaddrinfo() without AI_NUMERICHOST, getnameinfo()
 *   without NI_NUMERICHOST and gethostbyname() crash the target (the
 *   daemon must not try them once addr_numeric_only(1) is set), and
 *   evdns_base_new() fails, so the API answers "no resolver available"
 *   instead of asking a DNS server;
 * - bind() and connect() only reach loopback addresses, and unix sockets
 *   under FUZZ_DIR; a TCP bind() to a fixed port is allowed only for a
 *   port this process was given by the kernel before (the API lets a
 *   client name a port: that must not take one another program uses);
 * - unlink() removes no socket outside FUZZ_DIR (a stale unix socket is
 *   removed before a listener is bound on its path); other files are
 *   libFuzzer's own, which it removes from its corpus.
 *
 * The definitions here take precedence over libc's (and over the
 * sanitizer runtime's weak interceptors) for calls from the daemon's
 * objects; the real calls go through syscall() or dlsym(RTLD_NEXT).
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "addr.h"
#include "config.h"
#include "log.h"
#include "tardy.h"
#include "fuzz.h"

void
fuzz_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\n==FUZZ== %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	__builtin_trap();
}

struct tardy *
fuzz_tardy(void)
{
	struct tardy_options opts;
	struct config	    *conf;
	struct tardy	    *t;

	memset(&opts, 0, sizeof(opts));
	opts.log_level = -1;
	conf = config_new();
	conf->threads = 1; /* one loop: a run replays exactly */
	t = tardy_new(&opts, conf);
	/* Leave SIGINT and SIGTERM to libFuzzer. */
	evsignal_del(t->sig_term);
	evsignal_del(t->sig_int);
	evsignal_del(t->sig_hup);
	return (t);
}

int
fuzz_unix_listener(const char *name, char *path, size_t pathlen)
{
	struct sockaddr_un sun;
	int		   fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(path, pathlen, "%s/%s.%d", FUZZ_DIR, name,
		(int)getpid()) >= pathlen ||
	    pathlen > sizeof(sun.sun_path))
		fuzz_fail(__FILE__, __LINE__, "unix path too long");
	memcpy(sun.sun_path, path, strlen(path) + 1);
	(void)unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 64) == -1) {
		perror(path);
		exit(1);
	}
	return (fd);
}

char *
fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s;

	if ((s = malloc(size + 1)) == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return (s);
}

void
fuzz_init(void)
{
	const char *v = getenv("FUZZ_VERBOSE");

	addr_numeric_only(1);
	log_init("fuzz",
	    v != NULL && *v != '\0' ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	/* systemd's notify socket, if we were started under it. */
	unsetenv("NOTIFY_SOCKET");
	if (mkdir(FUZZ_DIR, 0700) == -1 && errno != EEXIST) {
		perror("mkdir " FUZZ_DIR);
		exit(1);
	}
}

/* --- name lookups ---------------------------------------------------- */

typedef int (*getaddrinfo_fn)(const char *, const char *,
    const struct addrinfo *, struct addrinfo **);

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	static getaddrinfo_fn real;

	if (node != NULL &&
	    (hints == NULL || !(hints->ai_flags & AI_NUMERICHOST)))
		fuzz_fail(__FILE__, __LINE__, "host name lookup of \"%s\"",
		    node);
	if (real == NULL &&
	    (real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo")) == NULL)
		abort();
	return (real(node, service, hints, res));
}

typedef int (*getnameinfo_fn)(const struct sockaddr *, socklen_t, char *,
    socklen_t, char *, socklen_t, int);

int
getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
    socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
	static getnameinfo_fn real;

	if (host != NULL && hostlen > 0 && !(flags & NI_NUMERICHOST))
		fuzz_fail(__FILE__, __LINE__, "reverse name lookup");
	if (real == NULL &&
	    (real = (getnameinfo_fn)dlsym(RTLD_NEXT, "getnameinfo")) == NULL)
		abort();
	return (real(sa, salen, host, hostlen, serv, servlen, flags));
}

struct hostent *
gethostbyname(const char *name)
{
	fuzz_fail(__FILE__, __LINE__, "gethostbyname(\"%s\")", name);
}

struct evdns_base *
evdns_base_new(struct event_base *base, int flags)
{
	errno = ENOSYS;
	return (NULL);
}

/* --- where sockets may go -------------------------------------------- */

static int
fuzz_path_ok(const char *path)
{
	size_t n = strlen(FUZZ_DIR);

	return (strncmp(path, FUZZ_DIR "/", n + 1) == 0 &&
	    strstr(path, "/../") == NULL && strchr(path + n + 1, '/') == NULL);
}

static int
fuzz_unix_ok(const struct sockaddr *sa, socklen_t len)
{
	const struct sockaddr_un *sun = (const void *)sa;
	char			  path[sizeof(sun->sun_path) + 1];
	size_t			  n;

	if (len <= offsetof(struct sockaddr_un, sun_path))
		return (1); /* unnamed */
	n = len - offsetof(struct sockaddr_un, sun_path);
	if (n > sizeof(sun->sun_path))
		n = sizeof(sun->sun_path);
	if (sun->sun_path[0] == '\0')
		return (1); /* abstract: no file, local by nature */
	memcpy(path, sun->sun_path, n);
	path[n] = '\0';
	return (fuzz_path_ok(path));
}

static int
fuzz_loopback(const struct sockaddr *sa, socklen_t len)
{
	struct addr a;

	if (addr_from_sockaddr(&a, sa, len) == -1)
		return (0);
	return (addr_is_loopback(&a));
}

/* TCP ports this process was given by the kernel. */
#define FUZZ_PORTS	4096
static unsigned short fuzz_ports[FUZZ_PORTS];
static size_t	      fuzz_nports;

static int
fuzz_port_ours(int port)
{
	size_t i;

	for (i = 0; i < fuzz_nports && i < FUZZ_PORTS; i++) {
		if (fuzz_ports[i] == port)
			return (1);
	}
	return (0);
}

int
bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct addr a;
	socklen_t   alen = sizeof(a.ss);
	int	    rc, port;

	switch (len >= sizeof(sa_family_t) ? sa->sa_family : AF_UNSPEC) {
	case AF_UNIX:
		if (!fuzz_unix_ok(sa, len)) {
			errno = EACCES;
			return (-1);
		}
		break;
	case AF_INET:
	case AF_INET6:
		if (!fuzz_loopback(sa, len)) {
			errno = EADDRNOTAVAIL;
			return (-1);
		}
		(void)addr_from_sockaddr(&a, sa, len);
		if ((port = addr_port(&a)) != 0 && !fuzz_port_ours(port)) {
			errno = EADDRINUSE;
			return (-1);
		}
		break;
	default:
		errno = EAFNOSUPPORT;
		return (-1);
	}
	rc = (int)syscall(SYS_bind, fd, sa, len);
	if (rc == 0 && sa->sa_family != AF_UNIX &&
	    getsockname(fd, addr_sa(&a), &alen) == 0) {
		a.len = alen;
		if (!fuzz_port_ours(addr_port(&a)))
			fuzz_ports[fuzz_nports++ % FUZZ_PORTS] =
			    (unsigned short)addr_port(&a);
	}
	return (rc);
}

int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	int family = len >= sizeof(sa_family_t) ? sa->sa_family : AF_UNSPEC;

	if ((family == AF_UNIX && !fuzz_unix_ok(sa, len)) ||
	    ((family == AF_INET || family == AF_INET6) &&
		!fuzz_loopback(sa, len)) ||
	    (family != AF_UNIX && family != AF_INET && family != AF_INET6 &&
		family != AF_UNSPEC)) {
		errno = ECONNREFUSED;
		return (-1);
	}
	return ((int)syscall(SYS_connect, fd, sa, len));
}

int
unlink(const char *path)
{
	struct stat st;

	if (!fuzz_path_ok(path) && lstat(path, &st) == 0 &&
	    S_ISSOCK(st.st_mode)) {
		errno = EACCES;
		return (-1);
	}
	return ((int)syscall(SYS_unlink, path));
}
