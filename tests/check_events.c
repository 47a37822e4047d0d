/*
 * check_events.c - the event ring behind GET /events?since=ID, through
 * the real tardyd, filled past its size (src/events.h: EVENTS_MAX).
 *
 * One proxy with NTOXICS noop toxics (toxicity 1) in front of an echo
 * upstream; connections go through it one at a time, each to its end, so
 * every connection makes the same PER_CONN events in the same order:
 * accept, one toxic_acted per toxic in the order of the configuration,
 * connected, close. Event id i is then known without asking: connection
 * (i - 1) / PER_CONN + 1, kind (i - 1) % PER_CONN. What the API returns
 * is checked against that, event by event, before the ring wraps, just
 * after, and twice over: the oldest dropped, ids increasing by one (no
 * duplicate, no gap), since= an id that fell off the ring giving what is
 * left, and a client polling with the last id it saw missing nothing.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "events.h"
#include "harness.h"

#define NTOXICS 40
#define PER_CONN ((uint64_t)NTOXICS + 3)
/* Past twice the ring's size: it wraps more than once. */
#define NCONN ((int)((2 * EVENTS_MAX) / PER_CONN + 10))
/* Polling every POLL_EVERY connections keeps well within the ring. */
#define POLL_EVERY 10

static struct harness *h;

static void
setup(void)
{
	h = harness_new();
}

static void
teardown(void)
{
	harness_free(h);
	h = NULL;
}

static json_t *
events_since(struct harness_tardyd *t, uint64_t since)
{
	return (harness_api_get(h, t,
	    harness_printf(h, "/events?since=%" PRIu64, since)));
}

/* Event id as the generation made it: see the comment at the top. */
static void
check_event(json_t *e, uint64_t id, const char *what)
{
	uint64_t    k = (id - 1) % PER_CONN, conn = (id - 1) / PER_CONN + 1;
	const char *type = json_string_value(json_object_get(e, "type"));
	const char *proxy = json_string_value(json_object_get(e, "proxy"));
	const char *toxic = json_string_value(json_object_get(e, "toxic"));
	json_t	   *c = json_object_get(e, "connection");
	json_t	   *reason = json_object_get(e, "reason");
	const char *want, *want_toxic = NULL;

	if (k == 0)
		want = "accept";
	else if (k <= NTOXICS) {
		want = "toxic_acted";
		want_toxic = harness_printf(h, "t%02d", (int)k - 1);
	} else if (k == NTOXICS + 1)
		want = "connected";
	else
		want = "close";
	ck_assert_msg(type != NULL && strcmp(type, want) == 0 &&
		proxy != NULL && strcmp(proxy, "ev") == 0 &&
		json_is_integer(c) && (uint64_t)json_integer_value(c) == conn &&
		(want_toxic == NULL ?
			toxic == NULL :
			toxic != NULL && strcmp(toxic, want_toxic) == 0),
	    "%s: event %" PRIu64 " is %s of connection %lld on %s (toxic %s), "
	    "want %s of connection %" PRIu64 " on ev (toxic %s)",
	    what, id, type != NULL ? type : "?",
	    (long long)json_integer_value(c), proxy != NULL ? proxy : "?",
	    toxic != NULL ? toxic : "none", want, conn,
	    want_toxic != NULL ? want_toxic : "none");
	/* Nothing left over from the event the slot held before. */
	ck_assert_msg((reason != NULL) == (k == NTOXICS + 2),
	    "%s: event %" PRIu64 ", %s, %s a reason", what, id, type,
	    reason != NULL ? "with" : "without");
}

/*
 * j must hold exactly the events from..to (none if from > to), in order,
 * each the one generated with its id. Takes j.
 */
static void
check_events(json_t *j, uint64_t from, uint64_t to, const char *what)
{
	size_t	   n, want = from <= to ? (size_t)(to - from + 1) : 0;
	json_t	  *e;
	json_int_t first = -1, last = -1;

	ck_assert_msg(json_is_array(j), "%s: not an array", what);
	n = json_array_size(j);
	if (n > 0) {
		first = json_integer_value(json_object_get(json_array_get(j, 0),
		    "id"));
		last = json_integer_value(
		    json_object_get(json_array_get(j, n - 1), "id"));
	}
	ck_assert_msg(n == want,
	    "%s: %zu events (ids %lld to %lld), want "
	    "%zu (ids %" PRIu64 " to %" PRIu64 ")",
	    what, n, (long long)first, (long long)last, want, from, to);
	for (size_t i = 0; i < n; i++) {
		e = json_array_get(j, i);
		ck_assert_msg(json_is_integer(json_object_get(e, "id")) &&
			(uint64_t)json_integer_value(json_object_get(e,
			    "id")) == from + i,
		    "%s: event %zu has id %lld, want %" PRIu64
		    " (ids must go up by one)",
		    what, i,
		    (long long)json_integer_value(json_object_get(e, "id")),
		    from + i);
		check_event(e, from + i, what);
	}
	json_decref(j);
}

/* One connection through the proxy, to its end on both sides. */
static void
one_connection(const struct harness_addr *a, int i)
{
	int fd = harness_connect_ok(a), err;

	harness_echo_ok(fd, "a connection", 16, (uint64_t)i);
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	err = harness_wait_close(fd, HARNESS_IO_TIMEOUT_MS, NULL);
	ck_assert_msg(err == 0, "connection %d: end: %s", i,
	    harness_strerror(err));
	close(fd);
}

START_TEST(test_ring_wraps)
{
	struct harness_upstream *up = harness_upstream_start(h,
	    HARNESS_UPSTREAM_ECHO, "127.0.0.1:0", NULL, 0);
	struct harness_tardyd	*t;
	struct harness_addr	 a;
	char			*conf;
	size_t			 clen;
	FILE			*f;
	uint64_t		 n, seen = 0, oldest;

	f = open_memstream(&conf, &clen);
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[proxy ev]\nlisten = 127.0.0.1:0\nupstream = %s\n",
	    up->addr.text);
	for (int i = 0; i < NTOXICS; i++)
		fprintf(f,
		    "\n[toxic ev t%02d]\ntype = noop\n"
		    "stream = downstream\ntoxicity = 1\n",
		    i);
	ck_assert_int_eq(fclose(f), 0);
	t = harness_tardyd_start(h, "-c",
	    harness_write_file(h, "tardy.conf", "%s", conf), NULL);
	free(conf);
	a = harness_proxy_ok(t, "ev");
	check_events(harness_api_get(h, t, "/events"), 1, 0,
	    "before any connection");

	for (int c = 1; c <= NCONN; c++) {
		one_connection(&a, c);
		n = (uint64_t)c * PER_CONN;
		/* A client that polls with the last id it saw. */
		if (c % POLL_EVERY == 0) {
			check_events(events_since(t, seen), seen + 1, n,
			    harness_printf(h,
				"polling since %" PRIu64
				" after %d connections",
				seen, c));
			seen = n;
		}
		/* Just before the ring is full, and just after. */
		if (n <= EVENTS_MAX && n + PER_CONN > EVENTS_MAX)
			check_events(harness_api_get(h, t, "/events"), 1, n,
			    "the ring not yet full");
		if (n > EVENTS_MAX && n - PER_CONN <= EVENTS_MAX) {
			oldest = n - EVENTS_MAX + 1;
			check_events(harness_api_get(h, t, "/events"), oldest,
			    n, "the ring wrapped once");
			check_events(events_since(t, oldest - 1), oldest, n,
			    "since the id before the oldest kept");
			check_events(events_since(t, oldest), oldest + 1, n,
			    "since the oldest kept");
		}
	}

	/* Wrapped more than once: the last EVENTS_MAX are left. */
	n = (uint64_t)NCONN * PER_CONN;
	ck_assert(n > 2 * EVENTS_MAX);
	oldest = n - EVENTS_MAX + 1;
	check_events(harness_api_get(h, t, "/events"), oldest, n,
	    "GET /events");
	check_events(events_since(t, 0), oldest, n, "since=0");
	check_events(events_since(t, 1), oldest, n, "since=1, long gone");
	check_events(events_since(t, oldest - EVENTS_MAX), oldest, n,
	    "since an id a whole ring gone");
	check_events(events_since(t, oldest - 2), oldest, n,
	    "since an id just gone");
	check_events(events_since(t, oldest - 1), oldest, n,
	    "since the id before the oldest kept");
	check_events(events_since(t, oldest), oldest + 1, n,
	    "since the oldest kept");
	check_events(events_since(t, n - 100), n - 99, n, "since n - 100");
	check_events(events_since(t, n - 1), n, n, "since n - 1");
	check_events(events_since(t, n), n + 1, n, "since the last");
	check_events(events_since(t, n + 1000), n + 1, n, "since a future id");
	check_events(events_since(t, INT64_MAX), n + 1, n,
	    "since the largest id an event can print");
	ck_assert_msg(harness_tardyd_alive(t), "tardyd died: %s",
	    harness_status_str(h, harness_tardyd_status(t)));
}
END_TEST

static Suite *
events_suite(void)
{
	Suite *s = suite_create("events");
	TCase *tc;

	tc = tcase_create("ring");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ring_wraps);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner *sr = srunner_create(events_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
