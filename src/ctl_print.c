/*
 * tardyctl's text output: the server's JSON turned into tables and
 * "key: value" lines on stdout (--json prints the JSON instead and never
 * comes here).
 *
 * A table holds its rows until it is printed, so each column can be as
 * wide as its widest cell.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctl_print.h"
#include "ctl_util.h"

struct ctl_print_table {
	size_t ncols;
	size_t nrows;
	char **cells; /* row-major, the first row is the header */
};

static void
ctl_print_table_init(struct ctl_print_table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

static void
ctl_print_table_row(struct ctl_print_table *t, ...)
{
	va_list ap;
	char  **cells;
	size_t	i;

	cells = reallocarray(t->cells, (t->nrows + 1) * t->ncols,
	    sizeof(*cells));
	if (cells == NULL) {
		ctl_util_warnx("out of memory");
		exit(EXIT_FAIL);
	}
	t->cells = cells;
	va_start(ap, t);
	for (i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);

		if ((cells[t->nrows * t->ncols + i] = strdup(s)) == NULL) {
			ctl_util_warnx("out of memory");
			exit(EXIT_FAIL);
		}
	}
	va_end(ap);
	t->nrows++;
}

/*
 * Columns two spaces apart, each as wide as its widest cell. The table is
 * printed once: its rows are freed here.
 */
static void
ctl_print_table_flush(struct ctl_print_table *t, const char *indent)
{
	size_t *w, r, c, n;

	w = ctl_util_alloc(t->ncols * sizeof(*w));
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			n = strlen(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	}
	for (r = 0; r < t->nrows; r++) {
		fputs(indent, stdout);
		for (c = 0; c < t->ncols; c++) {
			if (c + 1 == t->ncols)
				printf("%s\n", t->cells[r * t->ncols + c]);
			else
				printf("%-*s  ", (int)w[c],
				    t->cells[r * t->ncols + c]);
		}
	}
	for (r = 0; r < t->nrows * t->ncols; r++)
		free(t->cells[r]);
	free(t->cells);
	free(w);
}

/* Member key of o as text: "" when it is missing or not a string. */
const char *
ctl_print_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return (s != NULL ? s : "");
}

/* "k=v k=v", attributes in the server's order. */
static char *
ctl_print_attrs_text(json_t *attrs)
{
	const char *k;
	json_t	   *v;
	char	   *s = NULL, *vs, *ns;

	json_object_foreach(attrs, k, v) {
		vs = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		ns = ctl_util_printf("%s%s%s=%s", s != NULL ? s : "",
		    s != NULL ? " " : "", k, vs != NULL ? vs : "?");
		free(vs);
		free(s);
		s = ns;
	}
	return (s != NULL ? s : ctl_util_printf("-"));
}

static int
ctl_print_names_cmp(const void *a, const void *b)
{
	return (strcmp(*(const char *const *)a, *(const char *const *)b));
}

/* GET /proxies: one line a proxy, sorted by name, its toxics named. */
void
ctl_print_proxies(json_t *proxies)
{
	struct ctl_print_table t;
	const char	      *name, **names;
	json_t		      *p, *x;
	size_t		       n = 0, i, k;
	char		      *toxics, *s;

	names = ctl_util_alloc((json_object_size(proxies) + 1) *
	    sizeof(*names));
	json_object_foreach(proxies, name, p)
		names[n++] = name;
	qsort(names, n, sizeof(*names), ctl_print_names_cmp);
	ctl_print_table_init(&t, 5);
	ctl_print_table_row(&t, "NAME", "LISTEN", "UPSTREAM", "ENABLED",
	    "TOXICS");
	for (i = 0; i < n; i++) {
		p = json_object_get(proxies, names[i]);
		toxics = NULL;
		json_array_foreach(json_object_get(p, "toxics"), k, x) {
			s = ctl_util_printf("%s%s%s",
			    toxics != NULL ? toxics : "",
			    toxics != NULL ? "," : "",
			    ctl_print_str(x, "name"));
			free(toxics);
			toxics = s;
		}
		ctl_print_table_row(&t, names[i], ctl_print_str(p, "listen"),
		    ctl_print_str(p, "upstream"),
		    json_is_true(json_object_get(p, "enabled")) ? "yes" : "no",
		    toxics != NULL ? toxics : "-");
		free(toxics);
	}
	free(names);
	ctl_print_table_flush(&t, "");
}

/* An array of toxics, a line each, every line led by indent. */
void
ctl_print_toxics(json_t *toxics, const char *indent)
{
	struct ctl_print_table t;
	json_t		      *x;
	size_t		       i;
	char		       tox[32], *attrs;

	ctl_print_table_init(&t, 5);
	ctl_print_table_row(&t, "NAME", "TYPE", "STREAM", "TOXICITY",
	    "ATTRIBUTES");
	json_array_foreach(toxics, i, x) {
		snprintf(tox, sizeof(tox), "%g",
		    json_number_value(json_object_get(x, "toxicity")));
		attrs = ctl_print_attrs_text(json_object_get(x, "attributes"));
		ctl_print_table_row(&t, ctl_print_str(x, "name"),
		    ctl_print_str(x, "type"), ctl_print_str(x, "stream"), tox,
		    attrs);
		free(attrs);
	}
	ctl_print_table_flush(&t, indent);
}

/* One proxy, a field a line, then the table of its toxics. */
void
ctl_print_proxy(json_t *p)
{
	json_t *toxics = json_object_get(p, "toxics");

	printf("name:      %s\n", ctl_print_str(p, "name"));
	printf("listen:    %s\n", ctl_print_str(p, "listen"));
	printf("upstream:  %s\n", ctl_print_str(p, "upstream"));
	printf("enabled:   %s\n",
	    json_is_true(json_object_get(p, "enabled")) ? "yes" : "no");
	if (json_is_string(json_object_get(p, "upstream_failure")))
		printf("upstream failure: %s\n",
		    ctl_print_str(p, "upstream_failure"));
	if (json_array_size(toxics) == 0)
		printf("toxics:    none\n");
	else {
		printf("toxics:\n");
		ctl_print_toxics(toxics, "  ");
	}
}
