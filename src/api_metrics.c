/*
 * GET /metrics: the daemon's counters in Prometheus' text exposition
 * format (version 0.0.4), read from the live proxies at each scrape, so
 * bytes and connections show up while connections are still open.
 *
 * Next to tardy's own series come Toxiproxy's proxy metrics (2.12,
 * collectors/proxy.go), so dashboards and scripts made for Toxiproxy read
 * tardyd unchanged. Toxiproxy shows them only with -proxy-metrics; here
 * they are always on. Its Go runtime metrics (-runtime-metrics: go_*,
 * process_*) have no meaning for a C daemon and are left out.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <stdint.h>
#include <stdio.h>

#include <event2/buffer.h>

#include "addr.h"
#include "api.h"
#include "proxy.h"
#include "ptimer.h"
#include "tardy.h"
#include "util.h"
#include "worker.h"

struct api_metrics_family {
	const char *name;
	const char *type;
	const char *help;
};

/* A label value, escaped as the format asks: \\, \" and \n. */
static void
api_metrics_label(struct evbuffer *out, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '\\':
			evbuffer_add(out, "\\\\", 2);
			break;
		case '"':
			evbuffer_add(out, "\\\"", 2);
			break;
		case '\n':
			evbuffer_add(out, "\\n", 2);
			break;
		default:
			evbuffer_add(out, s, 1);
			break;
		}
	}
}

static void
api_metrics_header(struct evbuffer *out, const struct api_metrics_family *f)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name,
	    f->help, f->name, f->type);
}

/* One sample per proxy; direction is NULL or a direction label. */
static void
api_metrics_sample(struct evbuffer *out, const char *name,
    const struct proxy *p, const char *direction, uint64_t v)
{
	evbuffer_add_printf(out, "%s{proxy=\"", name);
	api_metrics_label(out, p->name);
	if (direction != NULL)
		evbuffer_add_printf(out, "\",direction=\"%s", direction);
	evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)v);
}

/*
 * One sample of a Toxiproxy family. Its labels are those of its links
 * (link.go): the direction, then the proxy's name, listen and upstream
 * address, and client_golang writes them sorted by name. The listener is
 * the address bound, as Toxiproxy reports it once listening, the upstream
 * as given.
 */
static void
api_metrics_toxiproxy(struct evbuffer *out, const char *name,
    const struct proxy *p, const char *direction, uint64_t v)
{
	char buf[ADDR_STRLEN];

	evbuffer_add_printf(out, "%s{direction=\"%s\",listener=\"", name,
	    direction);
	api_metrics_label(out, addr_fmt(&p->bound, buf, sizeof(buf)));
	evbuffer_add_printf(out, "\",proxy=\"");
	api_metrics_label(out, p->name);
	evbuffer_add_printf(out, "\",upstream=\"");
	api_metrics_label(out, p->upstream_str);
	evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)v);
}

/* A proxy's fault_ms histogram, in seconds as Prometheus has it. */
static void
api_metrics_fault(struct evbuffer *out, const char *name, const struct proxy *p)
{
	static const double bounds[] = PROXY_FAULT_BOUNDS;
	uint64_t	    cum = 0;
	size_t		    i;

	for (i = 0; i <= PROXY_FAULT_BUCKETS; i++) {
		evbuffer_add_printf(out, "%s_bucket{proxy=\"", name);
		api_metrics_label(out, p->name);
		if (i < PROXY_FAULT_BUCKETS) {
			cum += COUNT_GET(p->stats->fault_buckets[i]);
			evbuffer_add_printf(out, "\",le=\"%g\"} %llu\n",
			    bounds[i] / 1000, (unsigned long long)cum);
		} else
			evbuffer_add_printf(out, "\",le=\"+Inf\"} %llu\n",
			    (unsigned long long)
				COUNT_GET(p->stats->fault_count));
	}
	evbuffer_add_printf(out, "%s_sum{proxy=\"", name);
	api_metrics_label(out, p->name);
	evbuffer_add_printf(out, "\"} %.6f\n",
	    (double)COUNT_GET(p->stats->fault_sum_us) / 1e6);
	evbuffer_add_printf(out, "%s_count{proxy=\"", name);
	api_metrics_label(out, p->name);
	evbuffer_add_printf(out, "\"} %llu\n",
	    (unsigned long long)COUNT_GET(p->stats->fault_count));
}

void
api_metrics_render(struct tardy *t, struct evbuffer *out)
{
	static const struct api_metrics_family build = {
		"tardy_build_info", "gauge",
		"Always 1; the version label says which tardyd this is."
	}, proxies = {
		"tardy_proxies", "gauge",
		"Proxies configured."
	}, enabled = {
		"tardy_proxy_enabled", "gauge",
		"1 while the proxy accepts connections, 0 while disabled."
	}, accepted = {
		"tardy_connections_accepted_total", "counter",
		"Client connections accepted."
	}, active = {
		"tardy_connections_active", "gauge",
		"Client connections open now."
	}, failed = {
		"tardy_connections_failed_total", "counter",
		"Connections whose upstream could not be reached or set up."
	}, bytes = {
		"tardy_bytes_total", "counter",
		"Bytes forwarded; upstream is client to server, downstream "
		"server to client."
	}, applied = {
		"tardy_toxics_applied_total", "counter",
		"Times a toxic started acting, on a connection or a listener."
	}, late = {
		"tardy_timer_late_seconds", "histogram",
		"How long after their time the exact timers fired (a latency "
		"release, a bandwidth slice, a toxic's timeout, a UDP flow's "
		"expiry); never before it."
	}, fault = {
		"tardy_client_fault_seconds", "histogram",
		"For connections their client closed: seconds from the first "
		"toxic acting on the connection to the client's close (how long "
		"clients hold on under faults)."
	}, tp_received = {
		/* Toxiproxy's own, help (empty) and all. */
		"toxiproxy_proxy_received_bytes_total", "counter", ""
	}, tp_sent = {
		"toxiproxy_proxy_sent_bytes_total", "counter", ""
	};
	struct ptimer_stats timers = { 0 }, *ts = &timers;
	struct proxy	   *p;
	uint64_t	    cum = 0;
	size_t		    i;
	char		    le[32];

	api_metrics_header(out, &build);
	evbuffer_add_printf(out, "tardy_build_info{version=\"%s\"} 1\n",
	    PACKAGE_VERSION);
	api_metrics_header(out, &proxies);
	evbuffer_add_printf(out, "tardy_proxies %zu\n", t->nproxies);

	api_metrics_header(out, &enabled);
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_sample(out, enabled.name, p, NULL,
		    (uint64_t)(p->enabled != 0));
	api_metrics_header(out, &accepted);
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_sample(out, accepted.name, p, NULL,
		    COUNT_GET(p->stats->accepted));
	api_metrics_header(out, &active);
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_sample(out, active.name, p, NULL,
		    proxy_nsessions(p));
	api_metrics_header(out, &failed);
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_sample(out, failed.name, p, NULL,
		    COUNT_GET(p->stats->failed));
	api_metrics_header(out, &bytes);
	TAILQ_FOREACH(p, &t->proxies, entry) {
		api_metrics_sample(out, bytes.name, p, "upstream",
		    COUNT_GET(p->stats->bytes_up));
		api_metrics_sample(out, bytes.name, p, "downstream",
		    COUNT_GET(p->stats->bytes_down));
	}
	api_metrics_header(out, &applied);
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_sample(out, applied.name, p, NULL,
		    COUNT_GET(p->stats->toxics_applied));

	api_metrics_header(out, &fault);
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_fault(out, fault.name, p);

	api_metrics_header(out, &late);
	ptimers_stats_add(t->loop.timers, ts);
	for (i = 0; i < t->nworkers; i++)
		ptimers_stats_add(worker_loop(t->workers[i])->timers, ts);
	for (i = 0; i < PTIMER_NBUCKETS; i++) {
		cum += ts->bucket[i];
		if (ptimer_bucket_ns[i] == UINT64_MAX)
			snprintf(le, sizeof(le), "+Inf");
		else
			snprintf(le, sizeof(le), "%g",
			    (double)ptimer_bucket_ns[i] / 1e9);
		evbuffer_add_printf(out, "%s_bucket{le=\"%s\"} %llu\n",
		    late.name, le, (unsigned long long)cum);
	}
	evbuffer_add_printf(out, "%s_sum %.9f\n%s_count %llu\n", late.name,
	    (double)ts->late_ns / 1e9, late.name,
	    (unsigned long long)ts->fired);

	/*
	 * Received is what a direction read from its source, sent what its
	 * toxics passed on to the destination. Toxiproxy adds a link's bytes
	 * when the link ends; these count as the bytes move. Downstream
	 * first, as client_golang sorts the series.
	 */
	api_metrics_header(out, &tp_received);
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_toxiproxy(out, tp_received.name, p, "downstream",
		    COUNT_GET(p->stats->received_down));
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_toxiproxy(out, tp_received.name, p, "upstream",
		    COUNT_GET(p->stats->received_up));
	api_metrics_header(out, &tp_sent);
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_toxiproxy(out, tp_sent.name, p, "downstream",
		    COUNT_GET(p->stats->bytes_down));
	TAILQ_FOREACH(p, &t->proxies, entry)
		api_metrics_toxiproxy(out, tp_sent.name, p, "upstream",
		    COUNT_GET(p->stats->bytes_up));
}
