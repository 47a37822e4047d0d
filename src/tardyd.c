/*
 * tardyd: a TCP proxy that injects faults on command, to make a client's
 * connect, receive and send timeouts happen when a test wants them.
 */
#include "autoconf.h"

#include <sys/prctl.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "reload_wait.h"
#include "tardy.h"
#include "toxiproxy_cli.h"
#include "util.h"

static void __attribute__((noreturn))
usage(int status)
{
	FILE *fp = status == 0 ? stdout : stderr;

	fprintf(fp,
	    "usage: tardyd [-tvqVh] [-c file] [-a address] [-s seed] [-j threads]\n"
	    "              [--ready-file path]\n"
	    "              [--proxy name=listen=upstream]... [--toxic spec]...\n"
	    "              [--api-open] [--exit-with-parent]\n"
	    "       tardyd [-q] --ready-file path --reload pid\n"
	    "       toxiproxy-server [-host h] [-port p] [-config file.json] [-seed n]\n"
	    "\n"
	    "  -c, --config FILE        read the configuration from FILE (tardy.conf,\n"
	    "                           or Toxiproxy's JSON list of proxies)\n"
	    "  -a, --api ADDRESS        serve the control API on ADDRESS\n"
	    "                           (host:port, [v6]:port or unix:/path;\n"
	    "                           default 127.0.0.1:8474)\n"
	    "      --api-open           serve the API on a non-loopback address\n"
	    "                           without a token, as Toxiproxy does\n"
	    "  -s, --seed N             seed for every random decision (default 1)\n"
	    "  -j, --threads N|auto     event loops serving connections (default\n"
	    "                           auto: one per CPU; 1: all on one thread)\n"
	    "  -p, --proxy N=L=U        add proxy N listening on L, forwarding to U\n"
	    "      --toxic P:T[:K=V,...] add a toxic of type T to proxy P; keys are\n"
	    "                           name, stream, toxicity and T's attributes\n"
	    "      --ready-file PATH    once listening, write the bound addresses to\n"
	    "                           PATH as JSON (rewritten after each reload)\n"
	    "      --exit-with-parent   exit when the process that started us exits\n"
	    "      --reload PID         make the tardyd PID (started with --ready-file\n"
	    "                           PATH) reload, wait for it and exit 0 if the\n"
	    "                           new configuration is in force, else 1\n"
	    "  -t, --check              check the configuration and exit\n"
	    "  -v, --verbose            log debug messages\n"
	    "  -q, --quiet              log warnings and errors only\n"
	    "  -V, --version            print the version and exit\n"
	    "  -h, --help               print this help and exit\n"
	    "\n"
	    "Signals: SIGHUP reloads the configuration, SIGTERM and SIGINT stop.\n"
	    "Started as toxiproxy-server, it takes Toxiproxy's server flags instead\n"
	    "(toxiproxy-server -help lists them).\n"
	    "\n"
	    "Container image: make image builds tardy:VERSION, which runs\n"
	    "toxiproxy-server -host=0.0.0.0 as Toxiproxy's image does:\n"
	    "  podman run -p 127.0.0.1:8474:8474 tardy:VERSION [-config=FILE ...]\n"
	    "(doc/containers.md: Testcontainers, Kubernetes).\n");
	exit(status);
}

int
main(int argc, char **argv)
{
	/* clang-format off */
	static const struct option longopts[] = {
		{ "config",		required_argument,	NULL, 'c' },
		{ "api",		required_argument,	NULL, 'a' },
		{ "seed",		required_argument,	NULL, 's' },
		{ "threads",		required_argument,	NULL, 'j' },
		{ "proxy",		required_argument,	NULL, 'p' },
		{ "toxic",		required_argument,	NULL, 'T' },
		{ "ready-file",		required_argument,	NULL, 'r' },
		{ "exit-with-parent",	no_argument,		NULL, 'P' },
		{ "api-open",		no_argument,		NULL, 'O' },
		{ "reload",		required_argument,	NULL, 'R' },
		{ "check",		no_argument,		NULL, 't' },
		{ "verbose",		no_argument,		NULL, 'v' },
		{ "quiet",		no_argument,		NULL, 'q' },
		{ "version",		no_argument,		NULL, 'V' },
		{ "help",		no_argument,		NULL, 'h' },
		{ NULL,			0,			NULL, 0 }
	};
	/* clang-format on */
	struct tardy_options opts;
	struct toxiproxy_cli tcli;
	struct config	    *conf;
	struct tardy	    *t;
	int		     ch, check = 0, with_parent = 0, rc = 0;
	pid_t		     parent = getppid(), reload_pid = 0;

	memset(&opts, 0, sizeof(opts));
	opts.log_level = -1;
	opts.proxy_args = xcalloc((size_t)argc, sizeof(char *));
	opts.toxic_args = xcalloc((size_t)argc, sizeof(char *));
	memset(&tcli, 0, sizeof(tcli));
	tcli.opts = &opts;
	if (toxiproxy_cli_wanted(argv[0])) {
		toxiproxy_cli_parse(&tcli, argc, argv);
		if (tcli.version) {
			printf("toxiproxy-server version %s (tardyd)\n",
			    PACKAGE_VERSION);
			goto out;
		}
		optind = argc; /* no getopt: Toxiproxy's flags */
	}
	while (optind < argc &&
	    (ch = getopt_long(argc, argv, "c:a:s:j:p:tvqVh", longopts, NULL)) !=
		-1) {
		switch (ch) {
		case 'c':
			opts.conf_path = optarg;
			break;
		case 'a':
			opts.api = optarg;
			break;
		case 's':
			if (util_parse_u64(optarg, UINT64_MAX, &opts.seed) ==
			    -1) {
				fprintf(stderr, "tardyd: invalid seed \"%s\"\n",
				    optarg);
				usage(2);
			}
			opts.seed_set = 1;
			break;
		case 'j':
			if (config_parse_threads(optarg, &opts.threads) == -1) {
				fprintf(stderr,
				    "tardyd: invalid threads \"%s\" (auto, or "
				    "1 to %d)\n",
				    optarg, CONFIG_MAX_THREADS);
				usage(2);
			}
			opts.threads_set = 1;
			break;
		case 'p':
			opts.proxy_args[opts.nproxy_args++] = optarg;
			break;
		case 'T':
			opts.toxic_args[opts.ntoxic_args++] = optarg;
			break;
		case 'r':
			opts.ready_file = optarg;
			break;
		case 'P':
			with_parent = 1;
			break;
		case 'O':
			opts.api_open = 1;
			break;
		case 'R':
			if (reload_wait_parse_pid(optarg, &reload_pid) == -1) {
				fprintf(stderr, "tardyd: invalid pid \"%s\"\n",
				    optarg);
				usage(2);
			}
			break;
		case 't':
			check = 1;
			break;
		case 'v':
			opts.log_level = LOG_LEVEL_DEBUG;
			break;
		case 'q':
			opts.log_level = LOG_LEVEL_WARN;
			break;
		case 'V':
			printf("tardyd %s\n", PACKAGE_VERSION);
			goto out;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc && tcli.api == NULL)
		usage(2);
	if (reload_pid != 0) {
		/* Not a daemon: ask one to reload (ExecReload). */
		if (opts.ready_file == NULL) {
			fprintf(stderr,
			    "tardyd: --reload needs the daemon's "
			    "--ready-file\n");
			usage(2);
		}
		rc = reload_wait_run(opts.ready_file, reload_pid,
		    RELOAD_WAIT_TIMEOUT_MS, opts.log_level == LOG_LEVEL_WARN);
		goto out;
	}

	if (with_parent) {
		/* Die with the test runner, even if it was killed. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
			fatal("prctl");
		if (getppid() != parent)
			fatalx("parent exited before we started");
	}

	log_init("tardyd",
	    opts.log_level >= 0 ? (enum log_level)opts.log_level :
				  LOG_LEVEL_INFO);
	if (tcli.warning != NULL)
		log_warnx("%s", tcli.warning);
	conf = tardy_config_load(&opts, 0);
	if (conf->nerrors > 0) {
		tardy_config_print_errors(conf);
		config_free(conf);
		rc = 1;
		goto out;
	}
	if (check) {
		printf("configuration OK\n");
		config_free(conf);
		goto out;
	}

	t = tardy_new(&opts, conf);
	if (tardy_start(t) == -1)
		rc = 1;
	else
		rc = event_base_dispatch(t->loop.base) == -1 ? 1 : 0;
	tardy_free(t);
out:
	free(tcli.api);
	free(opts.proxy_args);
	free(opts.toxic_args);
	return (rc);
}
