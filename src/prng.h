/*
 * Reproducible randomness. Every link (one toxic on one connection) gets
 * its own generator, keyed by (seed, proxy name, connection number,
 * stream, toxic name): its draws do not depend on what other connections
 * did, or when.
 */
#ifndef TARDY_PRNG_H
#define TARDY_PRNG_H

#include <stdint.h>

struct prng {
	uint64_t state;
};

void	 prng_init(struct prng *, uint64_t, const char *, uint64_t, int,
	const char *);
uint64_t prng_next(struct prng *);
double	 prng_unit(struct prng *);
uint64_t prng_range(struct prng *, uint64_t);

#endif
