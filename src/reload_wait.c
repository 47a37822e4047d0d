/*
 * Reload a running tardyd and report what it did.
 *
 * systemd before 253 takes "systemctl reload"'s result from the status of
 * ExecReload's commands, and "kill -HUP" succeeds whether or not the
 * daemon could apply the file: a configuration that passes tardyd -t but
 * cannot be applied (a proxy on a port in use) was reported as reloaded
 * while the daemon kept its old one. So the unit's ExecReload runs
 * tardyd --reload $MAINPID, which signals the daemon and waits for its
 * answer in the ready file: each reload the daemon handles increments
 * "generation" and sets "last_reload" to "ok" or "failed" (and
 * "reload_error" to why).
 *
 * No race: the generation is read before the signal is sent, and the
 * daemon, single-threaded, rewrites the file (atomically, by rename) only
 * after a reload has finished. So the first generation seen to differ is
 * that of a reload that began after the read, which loaded the
 * configuration as it was when we were run. A reload someone else asked
 * for meanwhile read that same file: its answer is ours too.
 */
#include "autoconf.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "reload_wait.h"
#include "util.h"

#define RELOAD_WAIT_POLL_MS	5

/* What one reading of the ready file says. */
struct reload_state {
	json_int_t pid;
	json_int_t generation;
	char	   result[16];	/* last_reload */
	char	   reason[512]; /* reload_error, if given */
};

int
reload_wait_parse_pid(const char *s, pid_t *pid)
{
	uint64_t v;

	if (util_parse_u64(s, INT32_MAX, &v) == -1 || v == 0)
		return (-1);
	*pid = (pid_t)v;
	return (0);
}

static int
reload_wait_read(const char *path, struct reload_state *st, char *err,
    size_t errlen)
{
	json_error_t jerr;
	json_t	    *root;
	const char  *result, *reason = NULL;
	int	     rc = -1;

	if ((root = json_load_file(path, 0, &jerr)) == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, jerr.text);
		return (-1);
	}
	if (json_unpack(root, "{s:I, s:I, s:s}", "pid", &st->pid, "generation",
		&st->generation, "last_reload", &result) == -1) {
		snprintf(err, errlen, "%s is not a tardyd ready file", path);
		goto out;
	}
	/* Absent or null: a daemon that does not say why. */
	reason = json_string_value(json_object_get(root, "reload_error"));
	snprintf(st->result, sizeof(st->result), "%s", result);
	snprintf(st->reason, sizeof(st->reason), "%s",
	    reason != NULL ? reason : "");
	rc = 0;
out:
	json_decref(root);
	return (rc);
}

/*
 * Signal pid (a tardyd writing its ready file at path) to reload, wait
 * up to timeout_ms for the outcome and return the exit status: 0 if the
 * new configuration is in force, 1 if not or if the daemon did not say.
 */
int
reload_wait_run(const char *path, pid_t pid, int timeout_ms, int quiet)
{
	struct reload_state before, now;
	struct timespec	    poll = { 0, RELOAD_WAIT_POLL_MS * 1000000L };
	uint64_t	    deadline;
	char		    err[512];

	if (reload_wait_read(path, &before, err, sizeof(err)) == -1) {
		fprintf(stderr,
		    "tardyd: %s (is tardyd running with "
		    "--ready-file %s?)\n",
		    err, path);
		return (1);
	}
	if (before.pid != pid) {
		fprintf(stderr, "tardyd: %s belongs to pid %lld, not %d\n",
		    path, (long long)before.pid, (int)pid);
		return (1);
	}
	if (kill(pid, SIGHUP) == -1) {
		fprintf(stderr, "tardyd: cannot signal pid %d: %s\n", (int)pid,
		    strerror(errno));
		return (1);
	}

	deadline = util_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		err[0] = '\0';
		if (reload_wait_read(path, &now, err, sizeof(err)) == 0) {
			if (now.pid != pid) {
				fprintf(stderr,
				    "tardyd: pid %d was replaced "
				    "by pid %lld during the reload\n",
				    (int)pid, (long long)now.pid);
				return (1);
			}
			if (now.generation != before.generation)
				break;
		}
		if (kill(pid, 0) == -1 && errno == ESRCH) {
			fprintf(stderr,
			    "tardyd: pid %d exited during the "
			    "reload\n",
			    (int)pid);
			return (1);
		}
		if (util_now_ms() >= deadline) {
			fprintf(stderr,
			    "tardyd: no answer from pid %d within "
			    "%d ms (last read: %s)\n",
			    (int)pid, timeout_ms,
			    err[0] != '\0' ? err : "no new generation");
			return (1);
		}
		nanosleep(&poll, NULL);
	}

	if (strcmp(now.result, "ok") == 0) {
		if (!quiet)
			printf("tardyd: configuration reloaded (pid %d, "
			       "generation %lld)\n",
			    (int)pid, (long long)now.generation);
		return (0);
	}
	fprintf(stderr,
	    "tardyd: reload failed: %s; pid %d kept its running "
	    "configuration\n",
	    now.reason[0] != '\0' ? now.reason : "the daemon's log says why",
	    (int)pid);
	return (1);
}
