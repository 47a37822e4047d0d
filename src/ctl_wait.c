/*
 * tardyctl wait: a shell script's one line for "the client gave up":
 * block until N close events of a proxy, made by the closer asked for,
 * have been recorded after a given event, and print each as a JSON line.
 *
 * It long-polls GET /events?since=ID&wait=MS, so it sees a close as soon
 * as tardyd records it and costs nothing while nothing happens; each poll
 * asks for the rest of the timeout (at most the server's limit), so the
 * timeout is kept to within a round trip.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ctl_http.h"
#include "ctl_util.h"
#include "ctl_wait.h"

#define CTL_WAIT_POLL_MAX	60000 /* tardyd's longest wait= */
#define CTL_WAIT_SLACK_MS	5000  /* past a poll's wait, for its reply */

static uint64_t
ctl_wait_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* One request, with the client's own timeout past the server's wait. */
static json_t *
ctl_wait_get(struct ctl_http *h, const char *path, uint64_t wait_ms)
{
	json_t *j;
	int	saved = h->timeout_ms;

	h->timeout_ms = (int)wait_ms + CTL_WAIT_SLACK_MS;
	j = ctl_http_call(h, "GET", path, NULL, 200);
	h->timeout_ms = saved;
	if (j != NULL && !json_is_array(j)) {
		ctl_util_warnx("GET %s: expected a JSON array", path);
		json_decref(j);
		return (NULL);
	}
	return (j);
}

/* The newest event's id, so that only what happens from now on counts. */
static int
ctl_wait_last_id(struct ctl_http *h, uint64_t *id)
{
	json_t *j, *last;

	if ((j = ctl_wait_get(h, "/events", 0)) == NULL)
		return (-1);
	*id = 0;
	if ((last = json_array_get(j, json_array_size(j) - 1)) != NULL)
		*id = (uint64_t)json_integer_value(json_object_get(last, "id"));
	json_decref(j);
	return (0);
}

static int
ctl_wait_match(json_t *e, const struct ctl_wait *w)
{
	const char *type, *proxy, *by;

	type = json_string_value(json_object_get(e, "type"));
	proxy = json_string_value(json_object_get(e, "proxy"));
	by = json_string_value(json_object_get(e, "closed_by"));
	return (type != NULL && strcmp(type, "close") == 0 && proxy != NULL &&
	    strcmp(proxy, w->proxy) == 0 &&
	    (w->closed_by == NULL ||
		(by != NULL && strcmp(by, w->closed_by) == 0)));
}

/*
 * Wait as w says. Returns 0 once w->count matching closes are printed,
 * EXIT_FAIL at the timeout or when the server cannot answer.
 */
int
ctl_wait_closes(struct ctl_http *h, const struct ctl_wait *w)
{
	uint64_t deadline = ctl_wait_now_ms() + w->timeout_ms;
	uint64_t since = w->since, seen = 0, now, poll, id;
	json_t	*j, *e;
	size_t	 i;
	char	 path[128];

	h->echo = 0; /* what it prints is JSON already */
	if (!w->since_set && ctl_wait_last_id(h, &since) == -1)
		return (EXIT_FAIL);
	while ((now = ctl_wait_now_ms()) < deadline) {
		poll = deadline - now;
		if (poll > CTL_WAIT_POLL_MAX)
			poll = CTL_WAIT_POLL_MAX;
		snprintf(path, sizeof(path),
		    "/events?since=%" PRIu64 "&wait=%" PRIu64, since, poll);
		if ((j = ctl_wait_get(h, path, poll)) == NULL)
			return (EXIT_FAIL);
		json_array_foreach(j, i, e) {
			id = (uint64_t)json_integer_value(json_object_get(e,
			    "id"));
			if (id <= since)
				continue;
			if (id > since + 1 && i == 0)
				ctl_util_warnx("events %" PRIu64 " to %" PRIu64
					       " were overwritten before they "
					       "were read",
				    since + 1, id - 1);
			since = id;
			if (!ctl_wait_match(e, w))
				continue;
			/* Numbers as the server wrote them (api_reply). */
			if (json_dumpf(e, stdout,
				JSON_COMPACT | JSON_REAL_PRECISION(15)) == -1 ||
			    putchar('\n') == EOF || fflush(stdout) == EOF) {
				ctl_util_warnx("cannot write to stdout");
				json_decref(j);
				return (EXIT_FAIL);
			}
			if (++seen == w->count) {
				json_decref(j);
				return (0);
			}
		}
		json_decref(j);
	}
	ctl_util_warnx("timed out after %" PRIu64 " ms: %" PRIu64 " of %" PRIu64
		       " close%s of %s%s%s",
	    w->timeout_ms, seen, w->count, w->count == 1 ? "" : "s", w->proxy,
	    w->closed_by != NULL ? " by " : "",
	    w->closed_by != NULL ? w->closed_by : "");
	return (EXIT_FAIL);
}
