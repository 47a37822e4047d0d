/*
 * Socket addresses as users write them: "host:port", "[v6addr]:port" and
 * "unix:/path". addr_parse() resolves a host name with getaddrinfo();
 * addr_parse_lazy() leaves it to be looked up on the event loop when it
 * is needed (resolver.c).
 */
#ifndef TARDY_ADDR_H
#define TARDY_ADDR_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <stddef.h>

/* Longest formatted address: "unix:" plus a full sun_path. */
#define ADDR_STRLEN	(sizeof("unix:") + sizeof(((struct sockaddr_un *)0)->sun_path))

struct addr {
	struct sockaddr_storage ss;
	socklen_t		len;
};

int  addr_parse(const char *, struct addr *, char *, size_t);
int  addr_parse_lazy(const char *, struct addr *, char *, size_t);
int  addr_name(const char *, char *, size_t, int *);
int  addr_name_valid(const char *);
void addr_numeric_only(int);
int  addr_from_sockaddr(struct addr *, const struct sockaddr *, socklen_t);
const char *addr_fmt(const struct addr *, char *, size_t);
int	    addr_family(const struct addr *);
int	    addr_port(const struct addr *);
void	    addr_set_port(struct addr *, int);
int	    addr_equal(const struct addr *, const struct addr *);
int	    addr_is_loopback(const struct addr *);
const char *addr_unix_path(const struct addr *);
#define addr_sa(a)	((struct sockaddr *)&(a)->ss)

#endif
