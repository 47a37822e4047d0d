/*
 * SplitMix64 (Steele, Lea and Flood, 2014) seeded from a hash of the key.
 * Small state, fast, and statistically sound for fault injection; not for
 * cryptography.
 */
#include "autoconf.h"

#include "prng.h"

static uint64_t
mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31));
}

static uint64_t
hash_str(uint64_t h, const char *s)
{
	/* FNV-1a, then the length-terminated string is mixed in. */
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return (mix64(h ^ 0xff));
}

void
prng_init(struct prng *r, uint64_t seed, const char *proxy, uint64_t conn,
    int stream, const char *toxic)
{
	uint64_t h = mix64(seed ^ 0xcbf29ce484222325ULL);

	h = hash_str(h, proxy);
	h = mix64(h ^ conn);
	h = mix64(h ^ (uint64_t)stream);
	h = hash_str(h, toxic);
	r->state = h;
}

uint64_t
prng_next(struct prng *r)
{
	r->state += 0x9e3779b97f4a7c15ULL;
	return (mix64(r->state));
}

/* Uniform in [0, 1), 53 bits. */
double
prng_unit(struct prng *r)
{
	return ((double)(prng_next(r) >> 11) * 0x1.0p-53);
}

/* Uniform in [0, n), without modulo bias (Lemire's method). */
uint64_t
prng_range(struct prng *r, uint64_t n)
{
	__uint128_t m;
	uint64_t    l, t;

	if (n == 0)
		return (0);
	m = (__uint128_t)prng_next(r) * n;
	l = (uint64_t)m;
	if (l < n) {
		t = -n % n;
		while (l < t) {
			m = (__uint128_t)prng_next(r) * n;
			l = (uint64_t)m;
		}
	}
	return ((uint64_t)(m >> 64));
}
