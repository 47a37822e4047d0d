/*
 * The daemon: its event loop, its proxies, its API, and the configuration
 * they were built from. One struct tardy is the context every module gets
 * to; there are no globals.
 */
#ifndef TARDY_TARDY_H
#define TARDY_TARDY_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "proxy.h"

struct api;
struct config;
struct event;
struct event_base;
struct events;
struct ptimers;
struct resolver;
struct resolver_batch;

/*
 * Event priorities. Sessions' sockets and toxics' timers run below
 * everything else (the API, accepts, signals), and a run of them yields
 * to a new poll after TARDY_DATA_SLICE_US: a busy data plane delays the
 * API by a slice, not by every callback that was ready.
 */
#define TARDY_PRIORITIES	3	/* new events get 1, the default */
#define TARDY_PRI_DATA		2
#define TARDY_DATA_SLICE_US	2000

struct tardy_options {
	const char  *conf_path;
	const char  *api;
	const char  *ready_file;
	char	   **proxy_args;
	size_t	     nproxy_args;
	char	   **toxic_args;
	size_t	     ntoxic_args;
	uint64_t     seed;
	int	     seed_set;
	int	     log_level; /* -1: from the config */
	int	     api_open;	/* --api-open */
	unsigned int threads;	/* --threads, if threads_set; 0: auto */
	int	     threads_set;
};

struct tardy {
	struct loop	loop;	 /* the API's, and the sessions' at threads 1 */
	struct worker **workers; /* threads > 1: theirs (worker.c) */
	unsigned int	nworkers;
	unsigned int	next_worker; /* takes the next connection */
	struct tardy_options   opts;
	struct config	      *conf;
	uint64_t	       seed;
	char		      *api_token;
	struct proxy_list      proxies;
	size_t		       nproxies;
	struct api	      *api;
	struct events	      *events;
	struct event	      *sig_term;
	struct event	      *sig_int;
	struct event	      *sig_hup;
	struct event	      *status_ev;   /* systemd STATUS= updates */
	struct resolver_batch *lookup;	    /* a reload's names, or NULL */
	struct config	      *lookup_conf; /* what waits for them */
	unsigned int	       generation;  /* reloads handled */
	const char	      *last_reload;
	char		       reload_error[512]; /* why it failed */
	uint64_t	       t_start;
};

struct config *tardy_config_load(const struct tardy_options *, int);
void	       tardy_config_print_errors(const struct config *);
struct tardy  *tardy_new(const struct tardy_options *, struct config *);
int	       tardy_start(struct tardy *);
void	       tardy_reload(struct tardy *);
void	       tardy_free(struct tardy *);
struct proxy  *tardy_find_proxy(struct tardy *, const char *);
int	       tardy_write_ready(struct tardy *);

#endif
