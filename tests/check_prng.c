/*
 * Unit tests for the seeded generators: same key, same sequence; any part
 * of the key changed, another sequence; ranges stay in range.
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>

#include "prng.h"

START_TEST(test_same_key_same_sequence)
{
	struct prng a, b;
	int	    i;

	prng_init(&a, 42, "db", 7, 1, "latency_downstream");
	prng_init(&b, 42, "db", 7, 1, "latency_downstream");
	for (i = 0; i < 1000; i++)
		ck_assert_uint_eq(prng_next(&a), prng_next(&b));
}
END_TEST

START_TEST(test_key_parts_matter)
{
	struct prng base, r[5];
	uint64_t    first;
	int	    i;

	prng_init(&base, 42, "db", 7, 1, "t");
	prng_init(&r[0], 43, "db", 7, 1, "t");
	prng_init(&r[1], 42, "dc", 7, 1, "t");
	prng_init(&r[2], 42, "db", 8, 1, "t");
	prng_init(&r[3], 42, "db", 7, 0, "t");
	prng_init(&r[4], 42, "db", 7, 1, "u");
	first = prng_next(&base);
	for (i = 0; i < 5; i++)
		ck_assert_msg(prng_next(&r[i]) != first, "key part %d ignored",
		    i);
}
END_TEST

/* Key boundaries are not ambiguous: ("ab", "c") differs from ("a", "bc"). */
START_TEST(test_no_concatenation_collision)
{
	struct prng a, b;

	prng_init(&a, 1, "ab", 1, 0, "c");
	prng_init(&b, 1, "a", 1, 0, "bc");
	ck_assert_uint_ne(prng_next(&a), prng_next(&b));
}
END_TEST

START_TEST(test_unit_and_range)
{
	struct prng r;
	double	    u, sum = 0;
	uint64_t    v, counts[10] = { 0 };
	int	    i;

	prng_init(&r, 1, "p", 1, 0, "t");
	for (i = 0; i < 100000; i++) {
		u = prng_unit(&r);
		ck_assert(u >= 0.0 && u < 1.0);
		sum += u;
		v = prng_range(&r, 10);
		ck_assert_uint_lt(v, 10);
		counts[v]++;
	}
	/* Mean of 100k uniforms: 0.5 within ~5 standard errors. */
	ck_assert(sum / 100000 > 0.495 && sum / 100000 < 0.505);
	for (i = 0; i < 10; i++)
		ck_assert_msg(counts[i] > 9500 && counts[i] < 10500,
		    "bucket %d: %llu", i, (unsigned long long)counts[i]);
	ck_assert_uint_eq(prng_range(&r, 0), 0);
	ck_assert_uint_eq(prng_range(&r, 1), 0);
}
END_TEST

static Suite *
prng_suite(void)
{
	Suite *s = suite_create("prng");
	TCase *tc = tcase_create("determinism");

	tcase_add_test(tc, test_same_key_same_sequence);
	tcase_add_test(tc, test_key_parts_matter);
	tcase_add_test(tc, test_no_concatenation_collision);
	tcase_add_test(tc, test_unit_and_range);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner *sr = srunner_create(prng_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
