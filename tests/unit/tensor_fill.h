/*
 * tensor_fill.h — the tensors the connection tests send and check: element i
 * of tensor `seed` depends on i and seed alone, so a receiver can tell any
 * byte out of place.
 */
#ifndef BYOL_TESTS_TENSOR_FILL_H
#define BYOL_TESTS_TENSOR_FILL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline void fill(float *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (float)((i * 2654435761u + seed * 40503u) % 100003) * 0.25f;
}

/* 1 when data (len bytes) is tensor `seed` of n floats. */
static inline int check_fill(const void *data, size_t len, size_t n, uint64_t seed)
{
	if (len != n * sizeof(float))
		return 0;
	float *want = malloc(len);
	fill(want, n, seed);
	int ok = memcmp(data, want, len) == 0;
	free(want);
	return ok;
}

#endif
