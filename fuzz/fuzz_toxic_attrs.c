/*
 * fuzz_toxic_attrs: toxic validation, as the API and the configuration
 * use it. The input is two bytes, then two JSON texts separated by a NUL
 * byte: the first text is the attributes of a new toxic of every type,
 * the second the attributes of an update of it (the first again when
 * there is no NUL). Byte 0 picks the name, stream and toxicity of the
 * new toxic; byte 1 whether it is made on a proxy (which checks that
 * the name is free and the type suits the proxy) or without one (as the
 * configuration check does), and the toxicity of the update.
 *
 * Types are looked up by name (toxic_type_find()), so a type that is
 * not built in is only one more refused name.
 *
 * Checked: a refused toxic says why, with status 400 (or 409 for a
 * name in use); an accepted one has every attribute in its range, and
 * its JSON (what GET answers) builds the same toxic again; a refused
 * update changes nothing; an accepted one round-trips the same way.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proxy.h"
#include "toxic.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const type_names[] = {
	"noop",
	"latency",
	"bandwidth",
	"slow_close",
	"timeout",
	"reset_peer",
	"slicer",
	"limit_data",
	"blackhole",
	"stall",
	"refuse",
	"drop_syn",
	"loss",
	"duplicate",
	"nosuch",
};
static const char *const names[] = { NULL, "", "t", "taken", "a/b" };
static const char *const streams[] = { NULL, "", "upstream", "downstream",
	"sideways" };
static const double	 toxicities[] = { 1.0, 0.0, 0.5, -0.1, 1.5, NAN };

/* A proxy with no sessions: where toxic_update() looks for links. */
static struct proxy  proxy;
static struct toxic *taken;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];
	int  status;

	fuzz_init();
	TAILQ_INIT(&proxy.sessions);
	TAILQ_INIT(&proxy.toxics);
	proxy.name = "fuzz";
	/* A toxic whose name is in use on the proxy. */
	taken = toxic_new(&proxy, "taken", "noop", NULL, 1.0, NULL, err,
	    sizeof(err), &status);
	if (taken == NULL)
		fuzz_fail(__FILE__, __LINE__, "toxic_new: %s", err);
	TAILQ_INSERT_TAIL(&proxy.toxics, taken, entry);
	return (0);
}

static int
attr_count(const struct toxic_type *tt)
{
	int n = 0;

	while (tt->attrs != NULL && tt->attrs[n].name != NULL)
		n++;
	return (n);
}

/* Everything about t is valid, and its JSON makes the same toxic. */
static void
check_toxic(const struct toxic *t)
{
	const struct toxic_attr *a;
	struct toxic		*u;
	json_t			*j, *attrs;
	char			 err[256];
	int			 i, status;

	FUZZ_CHECK(util_name_valid(t->name), "\"%s\"", t->name);
	FUZZ_CHECK(t->toxicity >= 0.0 && t->toxicity <= 1.0);
	FUZZ_CHECK(t->every >= 1);
	FUZZ_CHECK(attr_count(t->type) <= TOXIC_MAX_ATTRS);
	for (i = 0, a = t->type->attrs; a != NULL && a->name != NULL;
	    a++, i++) {
		FUZZ_CHECK(t->attr[i] >= a->min && t->attr[i] <= a->max,
		    "%s %s = %lld", t->type->name, a->name,
		    (long long)t->attr[i]);
		FUZZ_CHECK(toxic_attr(t, a->name) == t->attr[i]);
		FUZZ_CHECK(toxic_attr_index(t->type, a->name) == i);
	}
	if ((j = toxic_json(t)) == NULL)
		fuzz_fail(__FILE__, __LINE__, "toxic_json");
	FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "name")),
		       t->name) == 0);
	FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "type")),
		       t->type->name) == 0);
	attrs = json_object_get(j, "attributes");
	FUZZ_CHECK(json_is_object(attrs));
	u = toxic_new(NULL, t->name, t->type->name,
	    json_string_value(json_object_get(j, "stream")),
	    json_number_value(json_object_get(j, "toxicity")), attrs, err,
	    sizeof(err), &status);
	if (u == NULL)
		fuzz_fail(__FILE__, __LINE__,
		    "the JSON of a valid toxic is "
		    "refused: %s",
		    err);
	FUZZ_CHECK(toxic_equal(t, u), "JSON round trip of %s", t->name);
	toxic_free(u);
	json_decref(j);
}

static void
check_err(const char *err, size_t len)
{
	FUZZ_CHECK(memchr(err, '\0', len) != NULL);
	FUZZ_CHECK(err[0] != '\0', "(no message)");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul;
	struct proxy  *on;
	json_t	      *a1, *a2;
	json_error_t   jerr;
	struct toxic  *t, before;
	char	       err[256], small[12];
	size_t	       i, n1;
	double	       tox1, tox2;
	int	       status, rc, has2, sel, sel2;

	if (size < 2 || size > 16 * 1024)
		return (-1);
	sel = data[0];
	sel2 = data[1];
	data += 2;
	size -= 2;
	nul = memchr(data, '\0', size);
	n1 = nul != NULL ? (size_t)(nul - data) : size;
	a1 = json_loadb((const char *)data, n1, JSON_DECODE_ANY, &jerr);
	a2 = nul != NULL ? json_loadb((const char *)nul + 1, size - n1 - 1,
			       JSON_DECODE_ANY, &jerr) :
			   json_incref(a1);
	tox1 = toxicities[(sel / 25) % 6];
	tox2 = toxicities[(sel2 >> 1) % 6];
	has2 = sel2 & 0x80;
	on = sel2 & 1 ? NULL : &proxy;

	for (i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		/* A short error buffer truncates; it never overflows. */
		t = toxic_new(on, names[sel % 5], type_names[i],
		    streams[(sel / 5) % 5], tox1, a1, small, sizeof(small),
		    &status);
		if (t == NULL)
			check_err(small, sizeof(small));
		else
			toxic_free(t);

		memset(err, 0, sizeof(err));
		t = toxic_new(on, names[sel % 5], type_names[i],
		    streams[(sel / 5) % 5], tox1, a1, err, sizeof(err),
		    &status);
		if (t == NULL) {
			check_err(err, sizeof(err));
			FUZZ_CHECK(status == 400 || status == 409, "%d",
			    status);
			continue;
		}
		FUZZ_CHECK(strcmp(t->type->name, type_names[i]) == 0);
		FUZZ_CHECK(t->proxy == on);
		check_toxic(t);
		/* toxic_update() looks for the toxic's links on its proxy. */
		t->proxy = &proxy;

		before = *t;
		memset(err, 0, sizeof(err));
		rc = toxic_update(t, a2, tox2, has2, err, sizeof(err));
		if (rc == -1) {
			check_err(err, sizeof(err));
			FUZZ_CHECK(toxic_equal(t, &before),
			    "a refused update changed %s", t->name);
		} else {
			FUZZ_CHECK(rc == 0);
			FUZZ_CHECK(t->type == before.type &&
			    t->stream == before.stream &&
			    strcmp(t->name, before.name) == 0);
			if (!has2)
				FUZZ_CHECK(t->toxicity == before.toxicity);
			check_toxic(t);
		}
		toxic_free(t);
	}
	json_decref(a1);
	json_decref(a2);
	return (0);
}
