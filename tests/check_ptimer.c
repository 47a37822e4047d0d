/*
 * Unit tests for the toxics' timers on a real event loop: never early,
 * in order of due time, cancelled ones never fire, a callback may re-arm
 * its own timer, and an idle loop sleeps instead of polling.
 */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>

#include "ptimer.h"
#include "util.h"

#define NTIMERS	300

struct probe {
	struct ptimer	t;
	struct ptimers *pt;
	uint64_t	fired_ns;
	int		fired;
	int		rearm;	  /* times left to re-arm itself */
	uint64_t       *last_due; /* order check across probes */
	int	       *out_of_order;
};

static void
probe_cb(void *arg)
{
	struct probe *p = arg;
	uint64_t      now = util_now_ns();

	ck_assert_msg(now >= p->t.due_ns, "fired %llu ns early",
	    (unsigned long long)(p->t.due_ns - now));
	if (p->last_due != NULL) {
		if (p->t.due_ns < *p->last_due)
			(*p->out_of_order)++;
		*p->last_due = p->t.due_ns;
	}
	p->fired++;
	p->fired_ns = now;
	if (p->rearm > 0) {
		p->rearm--;
		ptimer_at(p->pt, &p->t, now + 2000000);
	}
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Run the loop until every probe fired or limit_ms passed. */
static void
run_until(struct event_base *base, struct probe *probes, size_t n, int want,
    unsigned int limit_ms)
{
	struct timeval tv = { limit_ms / 1000, (limit_ms % 1000) * 1000 };
	struct event  *stop = evtimer_new(base, stop_cb, base);
	size_t	       i, done;

	evtimer_add(stop, &tv);
	for (;;) {
		ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
		if (event_base_got_break(base))
			break;
		for (i = done = 0; i < n; i++)
			done += probes[i].fired >= want;
		if (done == n)
			break;
	}
	event_free(stop);
}

START_TEST(test_order_never_early)
{
	struct event_base  *base = event_base_new();
	struct ptimers	   *pt = ptimers_new(base, 0, 2000000);
	struct probe	   *p = calloc(NTIMERS, sizeof(*p));
	uint64_t	    now = util_now_ns(), last_due = 0;
	unsigned int	    seed = 7;
	int		    i, out_of_order = 0, fired = 0;
	struct ptimer_stats st = { 0 };

	for (i = 0; i < NTIMERS; i++) {
		p[i].pt = pt;
		p[i].last_due = &last_due;
		p[i].out_of_order = &out_of_order;
		ptimer_set(&p[i].t, probe_cb, &p[i]);
		ptimer_at(pt, &p[i].t,
		    now + 1000000 + (uint64_t)(rand_r(&seed) % 60000) * 1000);
	}
	/* Move some, cancel others: every 7th never fires. */
	for (i = 0; i < NTIMERS; i += 5)
		ptimer_at(pt, &p[i].t,
		    now + 2000000 + (uint64_t)(rand_r(&seed) % 30000) * 1000);
	for (i = 0; i < NTIMERS; i += 7) {
		ptimer_cancel(pt, &p[i].t);
		ck_assert(!ptimer_pending(&p[i].t));
		p[i].fired = 1; /* so run_until does not wait on it */
	}
	run_until(base, p, NTIMERS, 1, 5000);
	for (i = 0; i < NTIMERS; i++) {
		if (i % 7 == 0)
			continue;
		ck_assert_msg(p[i].fired == 1, "timer %d fired %d times", i,
		    p[i].fired);
		fired++;
	}
	ck_assert_int_eq(out_of_order, 0);
	ptimers_stats_add(pt, &st);
	ck_assert_uint_eq(st.fired, (uint64_t)fired);
	ptimers_free(pt);
	event_base_free(base);
	free(p);
}
END_TEST

/* As a latency toxic does: the callback sets its own timer again. */
START_TEST(test_callback_rearms)
{
	struct event_base *base = event_base_new();
	struct ptimers	  *pt = ptimers_new(base, 0, 2000000);
	struct probe	   p = { .pt = pt, .rearm = 4 };
	uint64_t	   t0 = util_now_ns();

	ptimer_set(&p.t, probe_cb, &p);
	ptimer_in_ms(pt, &p.t, 2);
	run_until(base, &p, 1, 5, 2000);
	ck_assert_int_eq(p.fired, 5);
	ck_assert(!ptimer_pending(&p.t));
	/* Five 2 ms steps, each one never early: at least 10 ms in all. */
	ck_assert_uint_ge(p.fired_ns - t0, 10000000);
	ptimers_free(pt);
	event_base_free(base);
}
END_TEST

/*
 * With nothing due the loop sleeps: the timerfd is not left readable, so
 * 50 ms take a turn or two of the loop (the cancelled timer's wake-up
 * may still come), not thousands.
 */
START_TEST(test_idle_loop_sleeps)
{
	struct event_base *base = event_base_new();
	struct ptimers	  *pt = ptimers_new(base, 0, 2000000);
	struct probe	   p = { .pt = pt };
	struct timeval	   tv = { 0, 50000 };
	struct event	  *stop = evtimer_new(base, stop_cb, base);
	uint64_t	   t0;
	int		   turns = 0;

	ptimer_set(&p.t, probe_cb, &p);
	ptimer_in_ms(pt, &p.t, 1);
	run_until(base, &p, 1, 1, 2000);
	ck_assert_int_eq(p.fired, 1);
	ptimer_in_ms(pt, &p.t, 3);
	ptimer_cancel(pt, &p.t);

	evtimer_add(stop, &tv);
	t0 = util_now_ns();
	while (!event_base_got_break(base)) {
		ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
		turns++;
	}
	ck_assert_int_eq(p.fired, 1);
	ck_assert_uint_ge(util_now_ns() - t0, 40000000);
	ck_assert_int_le(turns, 3);
	event_free(stop);
	ptimers_free(pt);
	event_base_free(base);
}
END_TEST

static void
slow_cb(void *arg)
{
	uint64_t until = util_now_ns() + 20000;

	(*(int *)arg)++;
	while (util_now_ns() < until)
		;
}

/*
 * 500 timers due at once, 20 µs of work each: the first turn of the loop
 * fires only a 2 ms slice of them, so the sockets and the API are not
 * kept waiting for 10 ms; the rest follow on the next turns.
 */
START_TEST(test_slice_yields)
{
	struct event_base *base = event_base_new();
	struct ptimers	  *pt = ptimers_new(base, 0, 2000000);
	struct ptimer	  *t = calloc(500, sizeof(*t));
	uint64_t	   now = util_now_ns();
	int		   i, fired = 0, turns = 0;

	for (i = 0; i < 500; i++) {
		ptimer_set(&t[i], slow_cb, &fired);
		ptimer_at(pt, &t[i], now);
	}
	ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
	ck_assert_msg(fired > 0 && fired < 500, "first turn fired %d", fired);
	while (fired < 500 && turns++ < 1000)
		ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
	ck_assert_int_eq(fired, 500);
	ptimers_free(pt);
	event_base_free(base);
	free(t);
}
END_TEST

static Suite *
ptimer_suite(void)
{
	Suite *s = suite_create("ptimer");
	TCase *tc = tcase_create("timers");

	tcase_add_test(tc, test_order_never_early);
	tcase_add_test(tc, test_callback_rearms);
	tcase_add_test(tc, test_idle_loop_sleeps);
	tcase_add_test(tc, test_slice_yields);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner *sr = srunner_create(ptimer_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
