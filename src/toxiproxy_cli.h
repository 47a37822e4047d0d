/*
 * Toxiproxy's server command line (toxiproxy_cli.c), for tardyd started
 * as toxiproxy-server.
 */
#ifndef TARDY_TOXIPROXY_CLI_H
#define TARDY_TOXIPROXY_CLI_H

struct tardy_options;

struct toxiproxy_cli {
	struct tardy_options *opts;    /* filled in */
	const char	     *host;    /* -host */
	const char	     *port;    /* -port */
	char		     *api;     /* host:port, for opts->api */
	int		      version; /* -version */
	const char	     *warning; /* to log once logging is up */
};

int  toxiproxy_cli_wanted(const char *);
void toxiproxy_cli_parse(struct toxiproxy_cli *, int, char **);

#endif
