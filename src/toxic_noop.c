/*
 * noop: passes data unchanged (Toxiproxy's, for testing the machinery).
 */
#include "autoconf.h"

#include "toxic_types.h"

const struct toxic_type toxic_noop = {
	.name = "noop",
	.doc = "passes data unchanged",
};
