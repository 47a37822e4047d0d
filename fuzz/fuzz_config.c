/*
 * fuzz_config: the configuration parser on arbitrary files, and the
 * --proxy, --toxic and --api arguments on arbitrary strings.
 *
 * The input is the file (held in a memfd and opened by its /proc path,
 * as tardyd opens a file); its comment lines that start with "#--proxy ",
 * "#--toxic " or "#--api " are also given to the matching config_*()
 * call, as if they were on tardyd's command line. Then the whole input
 * is given, as one string, to config_add_proxy_arg(),
 * config_add_toxic_arg() and config_set_api() of a fresh configuration.
 *
 * Checked: every error names where it comes from (it starts with
 * "PATH:LINE: " with a line the file has, "PATH: ", or "--"); a file
 * with a NUL byte before more text is refused; a configuration without
 * errors is complete (every proxy has both addresses, every toxic builds
 * and names a known proxy, every name is valid).
 */
#include "autoconf.h"

#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "addr.h"
#include "config.h"
#include "toxic.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int  conf_fd = -1;
static char conf_path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	if ((conf_fd = memfd_create("tardy.conf", MFD_CLOEXEC)) == -1) {
		perror("memfd_create");
		exit(1);
	}
	snprintf(conf_path, sizeof(conf_path), "/proc/self/fd/%d", conf_fd);
	return (0);
}

static void
write_file(const uint8_t *data, size_t size)
{
	size_t	off = 0;
	ssize_t n;

	if (ftruncate(conf_fd, 0) == -1)
		abort();
	while (off < size) {
		if ((n = pwrite(conf_fd, data + off, size - off, (off_t)off)) <=
		    0)
			abort();
		off += (size_t)n;
	}
}

/* Every error starts with where it comes from. */
static void
check_errors(const struct config *conf, const char *path, int nlines)
{
	const char *e, *p;
	size_t	    i, n;
	long	    line;

	for (i = 0; i < conf->nerrors; i++) {
		e = conf->errors[i];
		FUZZ_CHECK(e != NULL);
		if (strncmp(e, "--", 2) == 0)
			continue;
		if (path == NULL)
			fuzz_fail(__FILE__, __LINE__,
			    "error without its "
			    "origin: \"%s\"",
			    e);
		n = strlen(path);
		if (strncmp(e, path, n) != 0 || e[n] != ':')
			fuzz_fail(__FILE__, __LINE__,
			    "error does not start "
			    "with the path or \"--\": \"%s\"",
			    e);
		p = e + n + 1;
		if (*p == ' ')
			continue; /* PATH: message */
		line = strtol(p, (char **)&p, 10);
		if (*p != ':' || line < 1 || line > nlines)
			fuzz_fail(__FILE__, __LINE__,
			    "error names no line of "
			    "the file (%d lines): \"%s\"",
			    nlines, e);
	}
}

/* A configuration without errors is one the daemon can run. */
static void
check_complete(struct config *conf)
{
	struct proxy_conf *pc;
	struct toxic_conf *tc;
	struct toxic	  *t;
	struct addr	   a;
	json_t		  *j;
	char		   err[256];
	int		   status;

	FUZZ_CHECK(conf->api_str != NULL);
	FUZZ_CHECK(addr_parse(conf->api_str, &a, err, sizeof(err)) == 0);
	FUZZ_CHECK(addr_equal(&a, &conf->api), "api %s", conf->api_str);
	TAILQ_FOREACH(pc, &conf->proxies, entry) {
		FUZZ_CHECK(util_name_valid(pc->name));
		FUZZ_CHECK(pc->listen_str != NULL && pc->upstream_str != NULL,
		    "proxy %s", pc->name);
		FUZZ_CHECK(addr_parse(pc->listen_str, &a, err, sizeof(err)) ==
			0 &&
		    addr_equal(&a, &pc->listen));
		/* An upstream name is kept to be looked up when needed. */
		FUZZ_CHECK(addr_parse_lazy(pc->upstream_str, &a, err,
			       sizeof(err)) == 0 &&
		    addr_equal(&a, &pc->upstream));
		FUZZ_CHECK(pc->connect_timeout >= 1 &&
		    pc->connect_timeout <= 3600000);
		FUZZ_CHECK(pc->rcvbuf <= CONFIG_MAX_RCVBUF);
		FUZZ_CHECK(config_find_proxy(conf, pc->name) == pc);
		FUZZ_CHECK(config_proxy_equal(pc, pc));
	}
	TAILQ_FOREACH(tc, &conf->toxics, entry) {
		FUZZ_CHECK(config_find_proxy(conf, tc->proxy) != NULL);
		FUZZ_CHECK(util_name_valid(tc->name), "toxic \"%s\"", tc->name);
		t = toxic_new(NULL, tc->name, tc->type, tc->stream,
		    tc->has_toxicity ? tc->toxicity : 1.0, tc->attributes, err,
		    sizeof(err), &status);
		if (t == NULL)
			fuzz_fail(__FILE__, __LINE__,
			    "toxic %s accepted by "
			    "the configuration, refused by toxic_new: %s",
			    tc->name, err);
		FUZZ_CHECK((j = toxic_json(t)) != NULL);
		json_decref(j);
		toxic_free(t);
	}
}

static void
add_arg_lines(struct config *conf, char *s)
{
	char *line, *save;

	for (line = strtok_r(s, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "#--proxy ", 9) == 0)
			(void)config_add_proxy_arg(conf, line + 9);
		else if (strncmp(line, "#--toxic ", 9) == 0)
			(void)config_add_toxic_arg(conf, line + 9);
		else if (strncmp(line, "#--api ", 7) == 0)
			(void)config_set_api(conf, line + 7);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *conf;
	const uint8_t *nul;
	char	      *s;
	int	       rc, n, nlines;
	size_t	       i;

	if (size > 64 * 1024)
		return (-1);
	for (i = 0, nlines = 1; i < size; i++)
		nlines += data[i] == '\n';

	/* The file, and its argument lines. */
	write_file(data, size);
	conf = config_new();
	rc = config_load(conf, conf_path);
	FUZZ_CHECK((rc == 0) == (conf->nerrors == 0));
	/* A NUL byte before more text is no text file: say so. */
	if ((nul = memchr(data, '\0', size)) != NULL) {
		for (i = (size_t)(nul - data); i < size && data[i] == 0; i++)
			;
		FUZZ_CHECK(i == size || rc == -1,
		    "a NUL byte at %zu, no "
		    "error",
		    (size_t)(nul - data));
	}
	s = fuzz_strndup(data, size);
	add_arg_lines(conf, s);
	free(s);
	n = config_finish(conf);
	FUZZ_CHECK(n >= 0 && (size_t)n == conf->nerrors);
	check_errors(conf, conf_path, nlines);
	if (conf->nerrors == 0)
		check_complete(conf);
	config_free(conf);

	/* The whole input as arguments. */
	s = fuzz_strndup(data, size);
	conf = config_new();
	(void)config_add_proxy_arg(conf, s);
	(void)config_add_toxic_arg(conf, s);
	(void)config_set_api(conf, s);
	(void)config_finish(conf);
	check_errors(conf, NULL, 0);
	if (conf->nerrors == 0)
		check_complete(conf);
	config_free(conf);
	free(s);
	return (0);
}
