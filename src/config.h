/*
 * The configuration: parsed from an INI file (and --proxy arguments) into a
 * fresh struct config, validated, and only then handed to the daemon, at
 * start-up and on reload alike.
 */
#ifndef TARDY_CONFIG_H
#define TARDY_CONFIG_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>

#include "addr.h"
#include "log.h"

#define CONFIG_DEFAULT_API		"127.0.0.1:8474"
#define CONFIG_DEFAULT_SEED		1
#define CONFIG_MAX_THREADS		256
#define CONFIG_DEFAULT_CONNECT_TIMEOUT	5000	/* ms */
#define CONFIG_MAX_RCVBUF		(64 * 1024 * 1024)	/* bytes */
#define CONFIG_DEFAULT_FLOW_TIMEOUT	60000	/* ms, UDP flows idle */
#define CONFIG_DEFAULT_MAX_FLOWS	1024	/* per UDP proxy */

/* What a proxy carries: TCP connections or UDP datagrams (udp.c). */
enum proxy_protocol {
	PROTO_TCP,
	PROTO_UDP,
};

struct proxy_conf {
	TAILQ_ENTRY(proxy_conf) entry;
	char		       *name;
	char		       *listen_str; /* as written */
	char		       *upstream_str;
	struct addr		listen;
	struct addr		upstream;	/* AF_UNSPEC: a name */
	int			upstream_reset; /* upstream_failure */
	int			enabled;
	unsigned int		connect_timeout; /* ms */
	unsigned int		rcvbuf; /* listener SO_RCVBUF, 0: default */
	enum proxy_protocol	protocol;
	unsigned int		flow_timeout; /* ms, UDP; 0: default */
	unsigned int		max_flows;    /* UDP; 0: default */
	int			line;	      /* of the section header */
	unsigned int		seen;	      /* keys given, for duplicates */
};
TAILQ_HEAD(proxy_conf_list, proxy_conf);

struct toxic_conf {
	TAILQ_ENTRY(toxic_conf) entry;
	char		       *proxy;
	char		       *name;
	char		       *type;
	char		       *stream;
	double			toxicity;
	int			has_toxicity;
	struct json_t	       *attributes; /* name -> value */
	struct json_t	       *lines;	    /* name -> line number */
	int			line;
};
TAILQ_HEAD(toxic_conf_list, toxic_conf);

struct config {
	char		      *path;
	char		      *api_str;
	struct addr	       api;
	char		      *api_token;
	int		       api_open;   /* no token off loopback */
	char		     **api_hosts;  /* more names the API is */
	size_t		       napi_hosts; /* reached by (Host check) */
	char		      *api_group;  /* may drive a unix: API */
	gid_t		       api_gid;
	char		     **unix_dirs;   /* where the API may put or */
	size_t		       nunix_dirs;  /* reach unix sockets */
	char		      *resolv_conf; /* NULL: the system's */
	uint64_t	       seed;
	unsigned int	       threads; /* event loops; 0: one per CPU */
	enum log_level	       log_level;
	struct proxy_conf_list proxies;
	struct toxic_conf_list toxics;
	int		       lazy; /* names left to look up */

	char **errors;
	size_t nerrors;
};

struct config	  *config_new(void);
void		   config_free(struct config *);
int		   config_load(struct config *, const char *);
int		   config_add_proxy_arg(struct config *, const char *);
int		   config_add_toxic_arg(struct config *, const char *);
int		   config_set_api(struct config *, const char *);
int		   config_finish(struct config *);
int		   config_parse_threads(const char *, unsigned int *);
unsigned int	   config_threads(const struct config *);
unsigned int	   config_cpu_quota(const char *);
struct proxy_conf *config_find_proxy(struct config *, const char *);
int config_proxy_equal(const struct proxy_conf *, const struct proxy_conf *);
struct toxic_conf *config_find_toxic(struct config *, const char *,
    const char *);
int  config_toxic_equal(const struct toxic_conf *, const struct toxic_conf *);
void config_error(struct config *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

#endif
